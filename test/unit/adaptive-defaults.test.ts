import * as fs from 'node:fs';
import * as path from 'node:path';
import { deepMerge, loadConfig } from '../../lib/config';
import { ingest } from '../../activities/ingest';
import { clean } from '../../activities/clean';
import { trainBaselines } from '../../activities/train/baselines';
import { validationSplitFor, type TimedData } from '../../activities/train/checkpoints';
import {
  chooseItemItemLimits,
  chooseSplit,
  historyQuantile,
  ITEM_ITEM_AUTO,
  joinPairs,
  publicItemItemLimits,
} from '../../analytics/adaptive';
import { buildRunSummary, scoringInputsOf, type SummaryParts } from '../../workflows/summary';
import { summaryLines } from '../../cli/render/summary';
import type { CleanResult, RawArtifacts, StageRun } from '../../contracts/stages';
import { ROOT, tempDir } from '../helpers/env';
import { artifactFile, directStage, queryArtifacts } from '../helpers/stages';

/**
 * Defaults that fit the data they meet (issue 14): `evaluation.split: auto`, `cleaning.detectBots: auto` and the
 * item-item limits `auto`, through the real ingest and clean activities (DuckDB files, Parquet artifacts), with
 * neighbouring datasets (one user more or less) for the privacy-on rules.
 */
jest.setTimeout(120_000);

const dir = tempDir('adaptive');
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const DAY = 86_400_000;
const T0 = Date.parse('2025-01-06T00:00:00Z');
const iso = (ms: number) => new Date(ms).toISOString().replace('.000Z', 'Z');
const HEADER = 'user_id,item_id,event_type,rating,timestamp';

/** Deterministic [0, 1) stream (mulberry32). */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Line = string;

/**
 * MovieLens-like raters: each user rates `perUser` films in one burst (a single day), the users' bursts spread over
 * `spanDays` — few users are active on both sides of any global cut.
 */
function burstyRaters(
  prefix: string,
  users: number,
  perUser: number,
  spanDays: number,
  seed: number,
): Line[] {
  const r = prng(seed);
  const out: Line[] = [];
  for (let u = 0; u < users; u++) {
    const day = T0 + Math.floor((u * spanDays) / users) * DAY;
    const films = new Set<number>();
    while (films.size < perUser) films.add(Math.floor(r() * 900));
    let k = 0;
    for (const f of films) {
      const rating = 1 + Math.floor(r() * 5);
      out.push(`${prefix}${u},m${f},rating,${rating},${iso(day + 3600_000 + k++ * 60_000)}`);
    }
  }
  return out;
}

/** Shoppers active every day of `days`, each day viewing an item new to them (evaluable under any time cut). */
function steadyShoppers(prefix: string, users: number, days: number): Line[] {
  const out: Line[] = [];
  for (let u = 0; u < users; u++)
    for (let d = 0; d < days; d++)
      out.push(`${prefix}${u},s${u}-${d},view,,${iso(T0 + d * DAY + 36e5 + u * 1000)}`);
  return out;
}

function writeCsv(name: string, lines: Line[]): string {
  const file = path.join(dir, `${name}.csv`);
  fs.writeFileSync(file, [HEADER, ...lines].join('\n') + '\n');
  return file;
}

interface Cleaned {
  result: CleanResult;
  raw: RawArtifacts;
  stage: ReturnType<typeof directStage>;
}

let runs = 0;
/** ingest + clean over `file` with `overrides` on the default config (privacy off unless they say otherwise). */
async function cleanFile(file: string, overrides: Record<string, unknown>, items?: string): Promise<Cleaned> {
  const name = `run${++runs}`;
  const dataDir = path.join(dir, name);
  fs.mkdirSync(dataDir, { recursive: true });
  const config = loadConfig({
    root: ROOT,
    env: {},
    overrides: deepMerge(
      {
        dataDir,
        quality: { minRows: 1, maxQuarantineShare: 1 },
        privacy: { enabled: false },
        cleaning: { requireKnownItems: false },
      },
      overrides,
    ),
  }).config;
  const stage = directStage(config, [file], {
    runId: name,
    datasetId: 'adaptive',
    itemsFile: items ?? null,
    startedAt: '2026-06-01T00:00:00.000Z',
  });
  const { raw } = await ingest(stage.deps, stage.run);
  const result = await clean(stage.deps, stage.run, raw);
  return { result, raw, stage };
}

const PRIVATE = (cutoff: string, extra: Record<string, unknown> = {}) =>
  deepMerge({ privacy: { enabled: true, unit: 'adaptive-test' }, evaluation: { cutoff } }, extra);

describe('evaluation.split: auto', () => {
  test('is the default, and the rule: enough users and share for the time cut, else user-time', () => {
    const c = loadConfig({ root: ROOT, env: {} }).config;
    expect(c.evaluation.split).toBe('auto');
    expect(c.cleaning.detectBots).toBe('auto');
    expect(c.training.itemItem).toEqual({ maxHistoryPerUser: 'auto', neighbours: 'auto' });
    const needed = { users: 50, share: 0.02 };
    expect(chooseSplit({ evaluableUsers: 50, trainUsers: 2000 }, needed).chosen).toBe('time');
    expect(chooseSplit({ evaluableUsers: 49, trainUsers: 60 }, needed).chosen).toBe('user-time');
    // Enough users, too small a share of a large population: a biased sliver.
    expect(chooseSplit({ evaluableUsers: 60, trainUsers: 10_000 }, needed).chosen).toBe('user-time');
    expect(chooseSplit({ evaluableUsers: 0, trainUsers: 0 }, needed).reason).toMatch(
      /0 evaluable users of 0/,
    );
    // The per-user split is taken only when it evaluates more users than the cut: auto is never worse than `time`.
    const short = { evaluableUsers: 10, trainUsers: 40 };
    expect(chooseSplit(short, needed, { evaluableUsers: 35, trainUsers: 40 }).chosen).toBe('user-time');
    const stays = chooseSplit(short, needed, { evaluableUsers: 10, trainUsers: 40 });
    expect(stays.chosen).toBe('time');
    expect(stays.reason).toMatch(/would evaluate only 10: the time cut stays/);
  });

  test('picks the time cut on steady shoppers: enough users on both sides of it', async () => {
    const { result } = await cleanFile(writeCsv('steady', steadyShoppers('s', 80, 30)), {});
    const s = result.artifacts.choices!.split;
    expect(s.configured).toBe('auto');
    expect(s.chosen).toBe('time');
    expect(s.timeCut).toEqual({ evaluableUsers: 80, trainUsers: 80 });
    expect(s.needed).toEqual({ users: 50, share: 0.02 });
    expect(result.artifacts.split.kind).toBe('time');
  });

  test('falls back to the per-user split on bursty raters (MovieLens-like): the global window leaves too few', async () => {
    const { result, stage } = await cleanFile(writeCsv('bursty', burstyRaters('r', 120, 30, 360, 1)), {});
    const s = result.artifacts.choices!.split;
    expect(s.chosen).toBe('user-time');
    // The last week holds the bursts of the last two users, who have no history before it.
    expect(s.timeCut!.evaluableUsers).toBeLessThan(3);
    expect(s.reason).toMatch(/each user's latest share/);
    expect(result.artifacts.split.kind).toBe('files');
    // Every user with 3+ events has a holdout: the later stages evaluate (nearly) everyone.
    const [h] = await queryArtifacts<{ users: bigint }>(
      stage,
      { clean: result.artifacts },
      `SELECT count(DISTINCT user_id) AS users FROM holdout_events`,
    );
    expect(Number(h.users)).toBe(120);
    // A fixed `time` is still honoured (and says how few users it leaves).
    const fixed = await cleanFile(writeCsv('bursty-time', burstyRaters('r', 120, 30, 360, 1)), {
      evaluation: { split: 'time' },
    });
    expect(fixed.result.artifacts.choices!.split).toMatchObject({ configured: 'time', chosen: 'time' });
    expect(fixed.result.artifacts.split.kind).toBe('time');
  });

  test('with privacy on, auto is the public time cut whatever the data', async () => {
    const lines = burstyRaters('r', 120, 30, 360, 1);
    const cutoff = iso(T0 + 300 * DAY);
    const { result } = await cleanFile(writeCsv('bursty-private', lines), PRIVATE(cutoff));
    const s = result.artifacts.choices!.split;
    expect(s.chosen).toBe('time');
    expect(s.needed).toBeNull();
    expect(s.reason).toMatch(/privacy on/);
    expect(result.artifacts.split).toEqual({ kind: 'time', holdoutStart: cutoff.replace('Z', '.000000Z') });
  });

  /**
   * Neighbouring datasets: exactly 50 steady shoppers are evaluable under the cut (gates.minUsers 50) beside 100
   * bursty raters. Without privacy one shopper less flips the choice (the rule reads counts across users); with
   * privacy on the choice is the public cut for both.
   */
  test('neighbouring datasets: one user less flips auto without privacy, never with it', async () => {
    const base = [...steadyShoppers('s', 50, 28), ...burstyRaters('r', 100, 20, 18, 2)];
    const less = base.filter((l) => !l.startsWith('s7,'));
    const off = await cleanFile(writeCsv('nb-base', base), {});
    const offLess = await cleanFile(writeCsv('nb-less', less), {});
    expect(off.result.artifacts.choices!.split).toMatchObject({
      chosen: 'time',
      timeCut: { evaluableUsers: 50 },
    });
    expect(offLess.result.artifacts.choices!.split).toMatchObject({
      chosen: 'user-time',
      timeCut: { evaluableUsers: 49 },
    });
    const cutoff = iso(T0 + 21 * DAY);
    const on = await cleanFile(writeCsv('nb-base-p', base), PRIVATE(cutoff));
    const onLess = await cleanFile(writeCsv('nb-less-p', less), PRIVATE(cutoff));
    for (const r of [on, onLess]) {
      expect(r.result.artifacts.choices!.split.chosen).toBe('time');
      expect(r.result.artifacts.split).toEqual(on.result.artifacts.split);
    }
  });

  test("the learned models' validation split follows the chosen split, not the config's auto", () => {
    // Ten users, each with an item a day for ten days, one user every 30 days: only the last user spans the
    // validation period of the time shape; every user has a latest share.
    const n = 100;
    const time = (k: number) => (Math.floor(k / 10) * 30 + (k % 10)) * 86400;
    const data: TimedData = {
      userIdx: Int32Array.from({ length: n }, (_, k) => Math.floor(k / 10)),
      itemIdx: Int32Array.from({ length: n }, (_, k) => k),
      numUsers: 10,
      weight: new Float32Array(n).fill(1),
      timestamps: Float64Array.from({ length: n }, (_, k) => time(k)),
      firstTimestamps: Float64Array.from({ length: n }, (_, k) => time(k)),
    };
    const config = loadConfig({ root: ROOT, env: {} }).config;
    const art = { key: 'k', rows: 1, bytes: 1, sha256: '' } as never;
    const heldUsers = (kind: 'time' | 'files') =>
      new Set(
        validationSplitFor(
          {
            config,
            clean: {
              split: kind === 'time' ? { kind, holdoutStart: '' } : { kind, train: art, holdout: art },
            } as never,
          },
          data,
          1,
          1,
        ).heldOut.userIdx,
      ).size;
    expect(heldUsers('files')).toBe(10);
    expect(heldUsers('time')).toBe(1);
  });
});

describe('cleaning.detectBots: auto', () => {
  /**
   * 30 ordinary clickers (a few views a day), 40 ordinary raters, 3 film buffs who rate 300 films a day, and a
   * scraper that views 600 items a day.
   */
  function botLog(): Line[] {
    const r = prng(3);
    const out: Line[] = [];
    for (let u = 0; u < 30; u++)
      for (let d = 0; d < 20; d++)
        for (let k = 0; k < 3 + (u % 5); k++)
          out.push(
            `c${u},i${Math.floor(r() * 300)},${k % 3 ? 'view' : 'click'},,${iso(T0 + d * DAY + k * 600_000 + u * 1000)}`,
          );
    out.push(...burstyRaters('r', 40, 25, 20, 4));
    for (let b = 0; b < 3; b++)
      for (let d = 0; d < 2; d++)
        for (let k = 0; k < 300; k++)
          out.push(
            `buff${b},m${(d * 300 + k) % 900},rating,${1 + (k % 5)},${iso(T0 + (5 + d) * DAY + k * 90_000)}`,
          );
    for (let d = 0; d < 2; d++)
      for (let k = 0; k < 600; k++)
        out.push(`scraper,i${k % 300},view,,${iso(T0 + (8 + d) * DAY + k * 60_000)}`);
    return out;
  }

  const flagged = async (c: Cleaned) =>
    (
      await queryArtifacts<{ user_id: string }>(
        c.stage,
        {},
        `SELECT DISTINCT user_id FROM read_parquet('${artifactFile(c.stage, c.result.artifacts.quarantine)}')
         WHERE reason = 'bot_user' ORDER BY 1`,
      )
    ).map((x) => x.user_id);

  test('ignores heavy raters but still flags the click bot; `true` flags the raters too', async () => {
    const file = writeCsv('bots', botLog());
    const auto = await cleanFile(file, { evaluation: { split: 'user-time' } });
    expect(await flagged(auto)).toEqual(['scraper']);
    expect(auto.result.artifacts.choices!.bots).toEqual({
      configured: 'auto',
      counted: 'implicit-events',
      rule: 'adaptive',
      threshold: 200,
      users: 1,
      rows: 1200,
    });
    const all = await cleanFile(file, { cleaning: { detectBots: true }, evaluation: { split: 'user-time' } });
    expect(await flagged(all)).toEqual(['buff0', 'buff1', 'buff2', 'scraper']);
    expect(all.result.artifacts.choices!.bots).toMatchObject({ counted: 'all-events', users: 4 });
    const off = await cleanFile(file, {
      cleaning: { detectBots: false },
      evaluation: { split: 'user-time' },
    });
    expect(await flagged(off)).toEqual([]);
    expect(off.result.artifacts.choices!.bots).toMatchObject({ counted: 'off', users: 0 });
  });

  test('with privacy on: the public per-user threshold on implicit events, unmoved by any other user', async () => {
    const lines = botLog();
    const cutoff = iso(T0 + 15 * DAY);
    const p = PRIVATE(cutoff, { cleaning: { botMaxEventsPerDay: 250 } });
    const base = await cleanFile(writeCsv('bots-p', lines), p);
    expect(await flagged(base)).toEqual(['scraper']);
    expect(base.result.artifacts.choices!.bots).toMatchObject({ rule: 'public', threshold: 250, users: 1 });
    // Neighbours: without a film buff, a clicker, a rater or the scraper itself, nobody else's status changes.
    for (const gone of ['buff0', 'c3', 'r7', 'scraper']) {
      const n = await cleanFile(
        writeCsv(
          `bots-p-${gone}`,
          lines.filter((l) => !l.startsWith(`${gone},`)),
        ),
        p,
      );
      expect(await flagged(n)).toEqual(gone === 'scraper' ? [] : ['scraper']);
      expect(n.result.artifacts.choices!.bots.threshold).toBe(250);
    }
  });
});

describe('training.itemItem limits: auto', () => {
  /** Film buffs: 100 users with 20–200 films each from a catalogue of 10,000, over 30 days. */
  function longHistories(): Line[] {
    const r = prng(5);
    const out: Line[] = [];
    for (let u = 0; u < 100; u++) {
      const n = 20 + ((u * 37) % 181);
      for (let k = 0; k < n; k++)
        out.push(
          `f${u},m${Math.floor(r() * 10_000)},rating,${1 + (k % 5)},${iso(T0 + (k % 30) * DAY + u * 1000 + k)}`,
        );
    }
    return out;
  }
  /** Shoppers: 300 users with 3–15 items each from a catalogue of 200. */
  function shortHistories(): Line[] {
    const r = prng(6);
    const out: Line[] = [];
    for (let u = 0; u < 300; u++) {
      const n = 3 + (u % 13);
      for (let k = 0; k < n; k++)
        out.push(`p${u},i${Math.floor(r() * 200)},view,,${iso(T0 + (k % 30) * DAY + u * 1000 + k)}`);
    }
    return out;
  }

  /** The rule computed here, from the training split read back with an engine of the test's own. */
  async function expected(c: Cleaned): Promise<{ maxHistoryPerUser: number; neighbours: number }> {
    const rows = await queryArtifacts<{ user_id: string; item_id: string }>(
      c.stage,
      {},
      `SELECT DISTINCT user_id, item_id FROM read_parquet('${artifactFile(c.stage, (c.result.artifacts.split as { train: { key: string } }).train)}')`,
    );
    const perUser = new Map<string, number>();
    for (const x of rows) perUser.set(x.user_id, (perUser.get(x.user_id) ?? 0) + 1);
    const sizes = [...perUser.values()].sort((a, b) => a - b);
    const q = (p: number) => sizes[Math.max(1, Math.ceil(p * sizes.length)) - 1];
    const items = new Set(rows.map((x) => x.item_id)).size;
    const clamp = (x: number) => Math.min(500, Math.max(50, x));
    let h = clamp(q(0.9));
    while (h > 50 && sizes.reduce((a, n) => a + Math.min(n, h) ** 2, 0) > ITEM_ITEM_AUTO.pairBudget)
      h = Math.max(50, Math.floor(h * 0.9));
    return { maxHistoryPerUser: h, neighbours: clamp(Math.ceil(items / q(0.5))) };
  }

  test('follow the data: two distributions, two choices, used by training and scoring, in the summary', async () => {
    const split = { evaluation: { split: 'user-time' } };
    const long = await cleanFile(writeCsv('long', longHistories()), split);
    const short = await cleanFile(writeCsv('short', shortHistories()), split);
    const a = long.result.artifacts.choices!.itemItem;
    const b = short.result.artifacts.choices!.itemItem;
    expect({ maxHistoryPerUser: a.maxHistoryPerUser, neighbours: a.neighbours }).toEqual(
      await expected(long),
    );
    expect({ maxHistoryPerUser: b.maxHistoryPerUser, neighbours: b.neighbours }).toEqual(
      await expected(short),
    );
    expect(a.source).toEqual({ maxHistoryPerUser: 'data', neighbours: 'data' });
    expect(a.maxHistoryPerUser).toBeGreaterThan(100);
    expect(a.neighbours).toBeGreaterThan(50);
    expect(b).toMatchObject({ maxHistoryPerUser: 50, neighbours: 50 });

    // Training uses the choice: the long-history model keeps more than 50 neighbours per item, up to the choice.
    const trained = await trainBaselines(long.stage.deps, long.stage.run, long.result.artifacts, long.raw);
    const ii = trained.models.find((m) => m.name === 'itemitem')!;
    const [most] = await queryArtifacts<{ n: bigint }>(
      long.stage,
      {},
      `SELECT max(n) AS n FROM (SELECT count(*) AS n FROM read_parquet('${artifactFile(long.stage, ii.key)}') GROUP BY item_id)`,
    );
    expect(Number(most.n)).toBeGreaterThan(50);
    expect(Number(most.n)).toBeLessThanOrEqual(a.neighbours);
    // Publishing scores with the chosen history limit.
    const scoring = scoringInputsOf(long.stage.run, long.result.artifacts, long.raw, trained, {
      chosenModel: 'itemitem',
    });
    expect(scoring.maxHistory).toBe(a.maxHistoryPerUser);

    // The summary says what was chosen, and the printed summary too.
    const summary = buildRunSummary(summaryParts(long.stage.run, long.result));
    expect(summary.choices).toEqual(long.result.artifacts.choices);
    const printed = summaryLines(summary).join('\n');
    expect(printed).toContain(
      `item-item: history ${a.maxHistoryPerUser} (data), neighbours ${a.neighbours} (data)`,
    );
    expect(printed).toContain('split: user-time');
    expect(printed).toContain('bots: none flagged: no user has implicit events');
  });

  test('configured numbers are kept as they are', async () => {
    const c = await cleanFile(writeCsv('fixed', shortHistories()), {
      evaluation: { split: 'user-time' },
      training: { itemItem: { maxHistoryPerUser: 7, neighbours: 9 } },
    });
    expect(c.result.artifacts.choices!.itemItem).toMatchObject({
      maxHistoryPerUser: 7,
      neighbours: 9,
      source: { maxHistoryPerUser: 'config', neighbours: 'config' },
    });
  });

  test('with privacy on: public values only, the same for both datasets and their neighbours', async () => {
    const cutoff = iso(T0 + 24 * DAY);
    const longLines = longHistories();
    const heaviest = 'f18,'; // 20 + (18·37 mod 181) = 141 films, among the longest histories
    const runsP = [
      await cleanFile(writeCsv('long-p', longLines), PRIVATE(cutoff)),
      await cleanFile(
        writeCsv(
          'long-p-less',
          longLines.filter((l) => !l.startsWith(heaviest)),
        ),
        PRIVATE(cutoff),
      ),
      await cleanFile(writeCsv('short-p', shortHistories()), PRIVATE(iso(T0 + 10 * DAY))),
    ];
    const config = loadConfig({ root: ROOT, env: {} }).config;
    const want = publicItemItemLimits(config, null, { maxHistoryPerUser: 'auto', neighbours: 'auto' });
    expect(want).toMatchObject({ maxHistoryPerUser: 200, neighbours: 50 });
    for (const r of runsP) expect(r.result.artifacts.choices!.itemItem).toEqual(want);
    // Without privacy the same neighbouring pair is allowed to differ: the rule reads the data.
    const offA = await cleanFile(writeCsv('long-o', longLines), { evaluation: { split: 'user-time' } });
    expect(offA.result.artifacts.choices!.itemItem.source.maxHistoryPerUser).toBe('data');
  });

  test('pure rules: quantiles, the self-join budget and the public catalogue', () => {
    const h = [
      { n: 10, users: 5 },
      { n: 100, users: 4 },
      { n: 3000, users: 1 },
    ];
    expect(historyQuantile(h, 0.5)).toBe(10);
    expect(historyQuantile(h, 0.9)).toBe(100);
    expect(joinPairs(h, 50)).toBe(5 * 100 + 5 * 2500);
    // 500 users with 600 items each: p90 clamps to 500, whose self-join (125M pairs) is cut back to the budget.
    const auto = { maxHistoryPerUser: 'auto', neighbours: 'auto' } as const;
    const big = [{ n: 600, users: 500 }];
    const d = chooseItemItemLimits({ histogram: big, items: 1000 }, auto);
    expect(d.maxHistoryPerUser).toBe(191);
    expect(joinPairs(big, d.maxHistoryPerUser)).toBeLessThanOrEqual(ITEM_ITEM_AUTO.pairBudget);
    expect(joinPairs(big, 213)).toBeGreaterThan(ITEM_ITEM_AUTO.pairBudget);
    expect(d.reason).toMatch(/lowered to fit/);
    // Never below the old fixed limit (50), whatever the budget says.
    const huge = chooseItemItemLimits({ histogram: [{ n: 600, users: 200_000 }], items: 1000 }, auto);
    expect(huge.maxHistoryPerUser).toBe(50);
    const config = loadConfig({ root: ROOT, env: {} }).config;
    // A public catalogue smaller than the candidates bounds the neighbours (an item has no pair beyond it).
    expect(
      publicItemItemLimits(config, 30, { maxHistoryPerUser: 'auto', neighbours: 'auto' }).neighbours,
    ).toBe(29);
  });
});

/** The parts of a run summary that matter here around a real clean result. */
function summaryParts(run: StageRun, cleaned: CleanResult): SummaryParts {
  return {
    runId: 'r',
    workflowId: 'w',
    run,
    stages: [],
    ingested: { rows: cleaned.kept, rejectedLines: 0 } as never,
    profiled: { report: '', drift: null } as never,
    cleaned,
    trained: { backend: 'duckdb-sql', models: [] },
    evaluation: { metrics: {}, gate: { decision: 'promote', checks: [] } } as never,
    published: null,
    live: null,
    input: { files: [], skipped: [], warnings: [], schemaDrift: [], watermark: null },
  };
}
