import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { sha256File } from '../../lib/fs-atomic';
import { IMPLICIT_EVENT_TYPES, INTERACTION_COLUMNS, ITEM_COLUMNS } from '../../lib/interactions';
import { AliasTable } from '../../datasets/synthetic/alias';
import { DirtyInjector, planDirtyCounts, toFutureYear, FUTURE_YEAR } from '../../datasets/synthetic/dirty';
import { csvField, TimestampFormatter } from '../../datasets/synthetic/format';
import {
  DIRTY_KINDS,
  DatagenOptionsError,
  generateDataset,
  isGeneratedDatasetComplete,
  type GenerateResult,
  type GenerationManifest,
} from '../../datasets/synthetic';
import { Rng } from '../../datasets/synthetic/prng';
import { allocateActivity, apportion } from '../../datasets/synthetic/users';
import { parseCsv } from '../../datasets/csv';

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'recforge-datagen-'));
afterAll(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/;

describe('prng and sampling primitives', () => {
  test('Rng is deterministic per seed and uniform in [0, 1)', () => {
    const a = new Rng(123);
    const b = new Rng(123);
    const c = new Rng(124);
    const xs = Array.from({ length: 1000 }, () => a.next());
    expect(Array.from({ length: 1000 }, () => b.next())).toEqual(xs);
    expect(Array.from({ length: 1000 }, () => c.next())).not.toEqual(xs);
    expect(Math.min(...xs)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...xs)).toBeLessThan(1);
    const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
    expect(Math.abs(mean - 0.5)).toBeLessThan(0.05);
  });

  test('derived streams differ from each other and from the parent seed', () => {
    const firsts = new Set([
      new Rng(7).u32(),
      Rng.derive(7, 1).u32(),
      Rng.derive(7, 2).u32(),
      Rng.derive(7, 2, 1).u32(),
    ]);
    expect(firsts.size).toBe(4);
  });

  test('alias table draws match the weights', () => {
    const weights = [1, 0, 3, 6];
    const table = new AliasTable(weights);
    const rng = new Rng(1);
    const counts = [0, 0, 0, 0];
    const n = 200_000;
    for (let i = 0; i < n; i++) counts[table.sample(rng)]++;
    expect(counts[1]).toBe(0);
    weights.forEach((w, i) => expect(Math.abs(counts[i] / n - w / 10)).toBeLessThan(0.01));
    expect(() => new AliasTable([0, 0])).toThrow();
  });

  test('apportion sums exactly and stays within one of the ideal share', () => {
    const w = Float64Array.from([0.1, 5, 2.2, 0, 7.7, 1]);
    const parts = apportion(w, 1001);
    expect(parts.reduce((s, x) => s + x, 0)).toBe(1001);
    const total = w.reduce((s, x) => s + x, 0);
    parts.forEach((p, i) => expect(Math.abs(p - (1001 * w[i]) / total)).toBeLessThanOrEqual(1));
    const activity = allocateActivity(5, 1000, 50_000, 1.1);
    expect(activity.reduce((s, x) => s + x, 0)).toBe(50_000);
    expect(Math.min(...activity)).toBeGreaterThanOrEqual(1);
  });

  test('dirty injector places exactly the planned rows', () => {
    const planned = planDirtyCounts(10_000, 0.05);
    expect(Object.values(planned).reduce((s, x) => s + x, 0)).toBe(500);
    const inj = new DirtyInjector(planned, 10_000, new Rng(3));
    const seen = Object.fromEntries(DIRTY_KINDS.map((k) => [k, 0])) as Record<string, number>;
    for (let i = 0; i < 10_000; i++) {
      const k = inj.next();
      if (k) seen[k]++;
    }
    expect(seen).toEqual(planned);
  });

  test('timestamp formatting matches Date#toISOString without milliseconds', () => {
    const f = new TimestampFormatter();
    const rng = new Rng(9);
    for (let i = 0; i < 2000; i++) {
      const sec = Math.floor(rng.next() * 4e9) - 1e9;
      expect(f.format(sec)).toBe(new Date(sec * 1000).toISOString().replace('.000Z', 'Z'));
    }
    expect(toFutureYear('2028-02-29T10:00:00Z')).toBe(`${FUTURE_YEAR}-02-28T10:00:00Z`);
    expect(toFutureYear('2026-10-01T12:34:56Z')).toBe(`${FUTURE_YEAR}-10-01T12:34:56Z`);
  });

  test('csv quoting follows RFC 4180', () => {
    expect(csvField('plain')).toBe('plain');
    expect(csvField('a, b')).toBe('"a, b"');
    expect(csvField('12" Vase')).toBe('"12"" Vase"');
    expect(parseCsv(`x,${csvField('a "b", c')}\n`)).toEqual([['x', 'a "b", c']]);
  });

  test('bad options fail with the option named', async () => {
    const base = { users: 10, items: 10, events: 100, seed: 1, out: path.join(tmpRoot, 'bad') };
    await expect(generateDataset({ ...base, dirtyRate: 0.9 })).rejects.toThrow(/dirtyRate/);
    await expect(generateDataset({ ...base, users: 0 })).rejects.toThrow(DatagenOptionsError);
    await expect(generateDataset({ ...base, start: 'yesterday' })).rejects.toThrow(/start/);
  });
});

describe('determinism', () => {
  const small = { users: 300, items: 200, events: 20_000, dirtyRate: 0.03, botUsers: 2 };
  let a: GenerateResult;

  beforeAll(async () => {
    a = await generateDataset({ ...small, seed: 11, out: path.join(tmpRoot, 'det-a') });
  });

  test('same options and seed give byte-identical files; another seed differs', async () => {
    const b = await generateDataset({ ...small, seed: 11, out: path.join(tmpRoot, 'det-b') });
    const c = await generateDataset({ ...small, seed: 12, out: path.join(tmpRoot, 'det-c') });
    for (const key of ['interactions', 'items', 'manifest'] as const) {
      expect(await sha256File(b.files[key])).toBe(await sha256File(a.files[key]));
    }
    expect(await sha256File(c.files.interactions)).not.toBe(await sha256File(a.files.interactions));
    expect(await sha256File(c.files.items)).not.toBe(await sha256File(a.files.items));
    expect(await sha256File(a.files.interactions)).toBe(a.manifest.files.interactions.sha256);
  });

  test('changing the dirty rate leaves the clean events untouched', async () => {
    const d = await generateDataset({
      ...small,
      dirtyRate: 0,
      botUsers: 0,
      seed: 11,
      out: path.join(tmpRoot, 'det-d'),
    });
    const clean = fs.readFileSync(d.files.interactions, 'utf8').split('\n');
    const dirty = new Set(fs.readFileSync(a.files.interactions, 'utf8').split('\n'));
    expect(clean.every((l) => dirty.has(l))).toBe(true);
  });

  test('completeness check follows the manifest', () => {
    const dir = path.join(tmpRoot, 'det-a');
    expect(isGeneratedDatasetComplete(dir, { seed: 11, users: 300 })).toBe(true);
    expect(isGeneratedDatasetComplete(dir, { seed: 99 })).toBe(false);
    fs.appendFileSync(a.files.interactions, 'x\n');
    expect(isGeneratedDatasetComplete(dir)).toBe(false);
  });

  test('jsonl format: clean rows are JSON objects with the contract columns, malformed ones are not JSON', async () => {
    const j = await generateDataset({
      ...small,
      seed: 11,
      format: 'jsonl',
      out: path.join(tmpRoot, 'jsonl'),
    });
    expect(path.basename(j.files.interactions)).toBe('interactions.jsonl');
    let bad = 0;
    for (const line of fs.readFileSync(j.files.interactions, 'utf8').split('\n')) {
      if (line === '') continue;
      let obj: Record<string, unknown>;
      try {
        obj = JSON.parse(line) as Record<string, unknown>;
      } catch {
        bad++;
        continue;
      }
      if (Object.keys(obj).join(',') !== INTERACTION_COLUMNS.join(','))
        throw new Error(`unexpected keys: ${line}`);
    }
    expect(bad).toBe(j.counts.dirty.malformed);
  });
});

interface Parsed {
  header: string;
  kinds: Record<string, number>;
  /** Valid organic rows: [user, item, type, epochSec]. */
  organic: { user: string; item: string; type: string; sec: number }[];
  botRows: number;
  ratedRows: number;
  inWindow: boolean;
}

/** Classifies each line independently of the generator's code, as an ingestion step would. */
function classify(file: string, organicUsers: number): Parsed {
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  expect(lines.pop()).toBe(''); // ends with a newline
  const header = lines.shift() as string;
  const kinds: Record<string, number> = Object.fromEntries(DIRTY_KINDS.map((k) => [k, 0]));
  const seen = new Set<string>();
  const organic: Parsed['organic'] = [];
  let botRows = 0;
  let ratedRows = 0;
  const win = {
    lo: Date.parse('2026-09-01T00:00:00Z') / 1000,
    hi: Date.parse('2026-10-13T00:00:00Z') / 1000,
  };
  let inWindow = true;
  const types = new Set<string>(IMPLICIT_EVENT_TYPES);
  for (const line of lines) {
    const f = line.split(',');
    if (f.length !== 5) kinds.malformed++;
    else if (f[0] === '' || f[1] === '') kinds.nullId++;
    else if (!types.has(f[2])) kinds.unknownEventType++;
    else if (!ISO.test(f[4]) || !Number.isFinite(Date.parse(f[4]))) kinds.badTimestamp++;
    else if (f[4].startsWith(`${FUTURE_YEAR}-`)) kinds.futureTimestamp++;
    else if (seen.has(line))
      kinds.duplicate++; // only clean rows are duplicated
    else {
      seen.add(line);
      const sec = Date.parse(f[4]) / 1000;
      if (sec < win.lo || sec >= win.hi) inWindow = false;
      if (f[3] !== '') ratedRows++; // implicit events carry no rating
      if (Number(f[0].slice(1)) >= organicUsers) botRows++;
      else organic.push({ user: f[0], item: f[1], type: f[2], sec });
    }
  }
  return { header, kinds, organic, botRows, ratedRows, inWindow };
}

describe('a 200k-event dataset', () => {
  const opts = { users: 3000, items: 1500, events: 200_000, seed: 42, dirtyRate: 0.02, botUsers: 3 };
  let result: GenerateResult;
  let parsed: Parsed;
  let heapGrowth = 0;

  beforeAll(async () => {
    const base = process.memoryUsage().heapUsed;
    result = await generateDataset({
      ...opts,
      out: path.join(tmpRoot, 'main'),
      onProgress: () => (heapGrowth = Math.max(heapGrowth, process.memoryUsage().heapUsed - base)),
    });
    parsed = classify(result.files.interactions, opts.users);
  });

  test('header and columns follow the contract', () => {
    expect(parsed.header).toBe(INTERACTION_COLUMNS.join(','));
    expect(parsed.ratedRows).toBe(0);
    const items = parseCsv(fs.readFileSync(result.files.items, 'utf8'));
    expect(items[0]).toEqual([...ITEM_COLUMNS]);
    expect(items).toHaveLength(opts.items + 1);
    const body = items.slice(1);
    expect(body.every((r) => r.length === 5 && /^i\d{5}$/.test(r[0]) && /^\d+\.\d{2}$/.test(r[2]))).toBe(
      true,
    );
    expect(body.some((r) => r[3].includes(','))).toBe(true); // quoting is exercised
    expect(body.some((r) => r[3].includes('"'))).toBe(true);
    const inStock = body.filter((r) => r[4] === 'true').length / body.length;
    expect(inStock).toBeGreaterThan(0.9);
    expect(inStock).toBeLessThan(0.99);
    expect(parsed.organic.every((r) => /^u\d{6}$/.test(r.user) && /^i\d{5}$/.test(r.item))).toBe(true);
  });

  test('dirty-row counts match generation.json and the requested rate', () => {
    const manifest = JSON.parse(fs.readFileSync(result.files.manifest, 'utf8')) as GenerationManifest;
    expect(manifest.counts).toEqual(result.counts);
    expect(parsed.kinds).toEqual(manifest.counts.dirty);
    expect(parsed.organic.length).toBe(opts.events);
    expect(parsed.botRows).toBe(manifest.counts.botEvents);
    const rate = manifest.counts.dirtyTotal / manifest.counts.cleanEvents;
    expect(Math.abs(rate - opts.dirtyRate)).toBeLessThan(0.002);
    for (const k of DIRTY_KINDS) expect(manifest.counts.dirty[k]).toBeGreaterThan(0);
    expect(manifest.counts.botEvents).toBeGreaterThanOrEqual(3 * 1000);
  });

  test('bots are many uniform views within two days', () => {
    const botIds = new Set<string>();
    const lines = fs.readFileSync(result.files.interactions, 'utf8').split('\n');
    const perBot = new Map<string, { n: number; min: number; max: number; items: Set<string> }>();
    for (const line of lines) {
      const f = line.split(',');
      if (f.length !== 5 || !/^u\d+$/.test(f[0]) || Number(f[0].slice(1)) < opts.users) continue;
      botIds.add(f[0]);
      const sec = Date.parse(f[4]) / 1000;
      if (!Number.isFinite(sec) || f[4].startsWith(`${FUTURE_YEAR}`)) continue;
      const s = perBot.get(f[0]) ?? { n: 0, min: Infinity, max: -Infinity, items: new Set<string>() };
      s.n++;
      s.min = Math.min(s.min, sec);
      s.max = Math.max(s.max, sec);
      s.items.add(f[1]);
      perBot.set(f[0], s);
    }
    expect(botIds.size).toBe(opts.botUsers);
    for (const s of perBot.values()) {
      expect(s.n).toBeGreaterThanOrEqual(1000);
      expect(s.max - s.min).toBeLessThanOrEqual(2 * 86400);
      expect(s.items.size).toBeGreaterThan(0.45 * Math.min(s.n, opts.items)); // uniform, not popularity-driven
    }
  });

  test('timestamps stay inside the window except the injected future ones', () => {
    expect(parsed.inWindow).toBe(true);
    expect(result.manifest.window).toEqual({ start: '2026-09-01T00:00:00Z', end: '2026-10-13T00:00:00Z' });
  });

  test('item popularity is heavy-tailed', () => {
    const perItem = new Map<string, number>();
    for (const r of parsed.organic) perItem.set(r.item, (perItem.get(r.item) ?? 0) + 1);
    const counts = [...perItem.values()].sort((x, y) => y - x);
    const top = counts.slice(0, Math.ceil(opts.items / 10)).reduce((s, x) => s + x, 0);
    expect(top / parsed.organic.length).toBeGreaterThan(0.4);
  });

  test('the funnel narrows: view > click > cart > purchase', () => {
    const t = result.counts.eventTypes;
    expect(t.view).toBeGreaterThan(t.click);
    expect(t.click).toBeGreaterThan(t.cart);
    expect(t.cart).toBeGreaterThan(t.purchase);
    expect(t.purchase).toBeGreaterThan(0);
  });

  test("users' categories are predictable from their own history far above popularity", () => {
    const items = parseCsv(fs.readFileSync(result.files.items, 'utf8')).slice(1);
    const catOf = new Map(items.map((r) => [r[0], r[1]]));
    const byUser = new Map<string, { sec: number; cat: string }[]>();
    for (const r of parsed.organic) {
      const list = byUser.get(r.user) ?? [];
      list.push({ sec: r.sec, cat: catOf.get(r.item) as string });
      byUser.set(r.user, list);
    }
    const top3 = (cats: string[]): Set<string> => {
      const m = new Map<string, number>();
      for (const c of cats) m.set(c, (m.get(c) ?? 0) + 1);
      return new Set(
        [...m.entries()]
          .sort((a, b) => b[1] - a[1])
          .slice(0, 3)
          .map(([c]) => c),
      );
    };
    const globalTop = top3(parsed.organic.map((r) => catOf.get(r.item) as string));
    let personalHits = 0;
    let globalHits = 0;
    let total = 0;
    for (const events of byUser.values()) {
      if (events.length < 20) continue;
      events.sort((a, b) => a.sec - b.sec);
      // Top-3 categories from the first half predict the second half: a signal a recommender can learn.
      const half = Math.floor(events.length / 2);
      const mine = top3(events.slice(0, half).map((e) => e.cat));
      for (const e of events.slice(half)) {
        total++;
        if (mine.has(e.cat)) personalHits++;
        if (globalTop.has(e.cat)) globalHits++;
      }
    }
    expect(total).toBeGreaterThan(50_000);
    expect(personalHits / total).toBeGreaterThan(0.7);
    expect(personalHits / total).toBeGreaterThan(globalHits / total + 0.3);
  });

  test('output is streamed: bounded buffer and bounded heap', () => {
    expect(result.peakBufferedChars).toBeLessThanOrEqual(2 * (1 << 20));
    expect(heapGrowth).toBeLessThan(200 * 1024 * 1024);
  });
});

describe('memory stays flat as the dataset grows', () => {
  /** Live heap after a full GC: exposes `gc` at runtime, since jest's worker is not started with --expose-gc. */
  function liveHeap(): number {
    v8.setFlagsFromString('--expose-gc');
    (vm.runInNewContext('gc') as () => void)();
    return process.memoryUsage().heapUsed;
  }

  test('1M events (~45 MB of CSV) keep the live heap growth under 16 MB', async () => {
    const base = liveHeap();
    let peak = 0;
    let calls = 0;
    const result = await generateDataset({
      users: 10_000,
      items: 5000,
      events: 1_000_000,
      seed: 3,
      dirtyRate: 0.02,
      botUsers: 1,
      out: path.join(tmpRoot, 'big'),
      onProgress: () => {
        if (++calls % 8 === 0) peak = Math.max(peak, liveHeap() - base);
      },
    });
    expect(calls).toBeGreaterThan(30);
    expect(result.manifest.files.interactions.bytes).toBeGreaterThan(40e6);
    // Holding the rows would need at least the file size; streaming needs about two 1 MB chunks plus the model.
    expect(peak).toBeLessThan(16 * 1024 * 1024);
    fs.rmSync(path.join(tmpRoot, 'big'), { recursive: true, force: true });
  });
});
