import { fork, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { zcdpToEpsilon } from '../../privacy/calibration';
import { composeSpends } from '../../privacy/accountant';
import {
  LedgerConflictError,
  PrivacyBudgetExceededError,
  PrivacyUnitConflictError,
  type BudgetLimits,
  type ReservationRequest,
} from '../../privacy/budget';
import { LEDGER_KEY, PrivacyLedger } from '../../privacy/ledger';
import { createSeededRng } from '../../privacy/rng';
import type { PrivacySpend } from '../../privacy/spend';
import { LocalStorage, type Storage } from '../../lib/storage';
import { isRecforgeError } from '../../contracts/errors';
import { compileForChildren } from '../helpers/compile';

const laplace = (epsilon: number): PrivacySpend => ({
  mechanism: 'discrete-laplace',
  epsilon,
  delta: 0,
  rho: (epsilon * epsilon) / 2,
  sensitivity: { query: 'item-event-count', norm: 'L1', value: 10 },
  params: { scale: 10 / epsilon },
});

const gaussian = (rho: number, delta: number): PrivacySpend => ({
  mechanism: 'discrete-gaussian',
  epsilon: zcdpToEpsilon(rho, delta),
  delta,
  rho,
  sensitivity: { query: 'item-event-count', norm: 'L2', value: 5 },
  params: { sigma: 5 / Math.sqrt(2 * rho) },
});

const noRho = (epsilon: number, delta: number): PrivacySpend => ({
  mechanism: 'dp-sgd',
  epsilon,
  delta,
  sensitivity: { query: 'clipped-gradient', norm: 'L2', value: 1 },
  params: {},
});

let root: string;
const freshDir = (): string => fs.mkdtempSync(path.join(root, 'ledger-'));
const open = (dir = freshDir()) => new PrivacyLedger(new LocalStorage(dir));

beforeAll(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'recforge-privacy-ledger-'));
});

afterAll(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

/** Window ε = 1 per day, lifetime ε = 3. */
const limits: BudgetLimits = {
  window: { kind: 'day', epsilon: 1, delta: 1e-6 },
  lifetime: { epsilon: 3, delta: 1e-5 },
};
const DAY1 = '2026-11-23T02:00:00.000Z';

const req = (
  runId: string,
  spend: PrivacySpend,
  over: Partial<ReservationRequest> = {},
): ReservationRequest => ({
  runId,
  unit: 'shoppers',
  label: 'ds',
  inputs: ['/data/events.csv'],
  at: DAY1,
  spend,
  limits,
  ...over,
});

describe('PrivacyLedger semantics', () => {
  test('reserve → commit; the refusal names unit, window, budget, spent and requested, before data is read', async () => {
    const ledger = open();
    await ledger.reserve(req('run-1', laplace(0.6)));
    await ledger.commit('run-1');
    let dataRead = false;
    const runPipeline = async (runId: string): Promise<void> => {
      await ledger.reserve(req(runId, laplace(0.5)));
      dataRead = true; // a real run would read the interactions only now
    };
    const err = await runPipeline('run-2').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PrivacyBudgetExceededError);
    expect(isRecforgeError(err, 'PrivacyBudgetExceeded')).toBe(true);
    expect(dataRead).toBe(false);
    const msg = (err as Error).message;
    expect(msg).toContain('unit "shoppers" window "2026-11-23"');
    expect(msg).toContain('budget ε=1 δ=0.00000100000');
    expect(msg).toContain('spent ε=0.600000 δ=0');
    expect(msg).toContain('requested ε=0.500000 δ=0 (discrete-laplace)');
    expect(msg).toContain('total would be ε=1.10000');
    const e = err as PrivacyBudgetExceededError;
    expect(e.scope).toBe('window');
    expect(e.spent.epsilon).toBeCloseTo(0.6, 12);
    // The next day is another window; another unit has its own budget (on its own input).
    await ledger.reserve(req('run-3', laplace(0.5), { at: '2026-11-24T00:00:00Z' }));
    await ledger.reserve(req('run-4', laplace(0.5), { unit: 'other', inputs: ['/data/other.csv'] }));
    // Exactly filling the budget is allowed despite float rounding (0.6 + 0.4).
    await ledger.reserve(req('run-5', laplace(0.4)));
    const u = await ledger.usage('shoppers', DAY1, limits);
    expect(u.window.composed.basic.epsilon).toBeCloseTo(1, 12);
    expect(u.window.label).toBe('2026-11-23');
    expect(u.lifetime.composed.basic.epsilon).toBeCloseTo(1.5, 12);
  });

  test('the dataset label decides nothing: two labels over one unit share one budget', async () => {
    const ledger = open();
    await ledger.reserve(req('a', laplace(0.6), { label: 'synthetic' }));
    await expect(
      ledger.reserve(req('b', laplace(0.6), { label: 'synthetic-copy', inputs: ['/data/copy.csv'] })),
    ).rejects.toBeInstanceOf(PrivacyBudgetExceededError);
  });

  test('lifetime: windows reset, the lifetime bound does not', async () => {
    const ledger = open();
    const day = (d: number) => `2026-11-${String(d).padStart(2, '0')}T01:00:00Z`;
    for (let d = 1; d <= 3; d++) {
      await ledger.reserve(req(`r${d}a`, laplace(0.5), { at: day(d) }));
      await ledger.reserve(req(`r${d}b`, laplace(0.5), { at: day(d) }));
    }
    // Day 4's window is empty, but the unit has spent ε = 3 of its lifetime 3.
    const err = await ledger.reserve(req('r4', laplace(0.1), { at: day(4) })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PrivacyBudgetExceededError);
    expect((err as PrivacyBudgetExceededError).scope).toBe('lifetime');
    expect((err as Error).message).toMatch(/unit "shoppers" lifetime: budget ε=3 .*lifetime budget/);
    // Releasing a run that released nothing gives lifetime budget back too.
    await ledger.release('r3b');
    await ledger.reserve(req('r4', laplace(0.1), { at: day(4) }));
  });

  test('an input location belongs to the first unit that spends it; another unit is refused', async () => {
    const ledger = open();
    await ledger.reserve(req('mine', laplace(0.1), { inputs: ['/data/events.csv', '/data/more.csv'] }));
    await ledger.release('mine');
    const err = await ledger
      .reserve(req('theirs', laplace(0.1), { unit: 'fresh-unit', inputs: ['/data/more.csv'] }))
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PrivacyUnitConflictError);
    expect(isRecforgeError(err, 'ConfigError')).toBe(true);
    expect((err as Error).message).toMatch(
      /input \/data\/more\.csv belongs to privacy unit "shoppers" \(first spent by run mine .*this worker's unit is "fresh-unit"/,
    );
    // The same unit keeps using it; the binding is recorded with its first run.
    await ledger.reserve(req('again', laplace(0.1), { inputs: ['/data/more.csv'] }));
    expect((await ledger.bindings())['/data/more.csv']).toMatchObject({ unit: 'shoppers', runId: 'mine' });
    expect((await ledger.entries()).find((e) => e.runId === 'again')!.inputs).toEqual(['/data/more.csv']);
  });

  test('idempotent per runId: retries do not double-spend; conflicts are refused', async () => {
    const ledger = open();
    const a = await ledger.reserve(req('r', laplace(0.3)));
    const b = await ledger.reserve(req('r', laplace(0.3)));
    expect(b).toEqual(a);
    expect((await ledger.usage('shoppers', DAY1, limits)).window.entries).toHaveLength(1);
    await expect(ledger.reserve(req('r', laplace(0.31)))).rejects.toBeInstanceOf(LedgerConflictError);
    await expect(
      ledger.reserve(req('r', laplace(0.3), { at: '2026-11-24T00:00:00Z' })),
    ).rejects.toBeInstanceOf(LedgerConflictError);
    await expect(ledger.reserve(req('r', laplace(0.3), { unit: 'x' }))).rejects.toBeInstanceOf(
      LedgerConflictError,
    );
    expect((await ledger.commit('r')).status).toBe('committed');
    expect((await ledger.commit('r')).status).toBe('committed');
    expect((await ledger.reserve(req('r', laplace(0.3)))).status).toBe('committed');
    await expect(ledger.release('r')).rejects.toThrow(/committed; cannot mark it released/);
    await expect(ledger.commit('nope')).rejects.toBeInstanceOf(LedgerConflictError);
  });

  test('release returns budget; a released run can be re-reserved (checked again)', async () => {
    const ledger = open();
    await ledger.reserve(req('failed', laplace(0.7)));
    await expect(ledger.reserve(req('next', laplace(0.7)))).rejects.toBeInstanceOf(
      PrivacyBudgetExceededError,
    );
    expect((await ledger.release('failed')).status).toBe('released');
    expect((await ledger.release('failed')).status).toBe('released');
    await ledger.reserve(req('next', laplace(0.7)));
    await expect(ledger.reserve(req('failed', laplace(0.7)))).rejects.toBeInstanceOf(
      PrivacyBudgetExceededError,
    );
    await expect(ledger.commit('failed')).rejects.toThrow(/released; cannot mark it committed/);
  });

  test('zCDP composition admits more Gaussian releases than basic composition, and reports the tighter', async () => {
    const ledger = open();
    const spend = gaussian(0.004, 1e-8); // ε ≈ 0.39 each by itself
    let admitted = 0;
    for (let i = 0; i < 100; i++) {
      try {
        await ledger.reserve(req(`g${i}`, spend));
        admitted++;
      } catch (err) {
        expect(err).toBeInstanceOf(PrivacyBudgetExceededError);
        break;
      }
    }
    // Basic composition would stop at ⌊1 / 0.39⌋ = 2; zCDP allows Σρ up to rhoForApproxDp(1, 1e-6) ≈ 0.0243.
    expect(admitted).toBeGreaterThanOrEqual(5);
    const usage = (await ledger.usage('shoppers', DAY1, limits)).window;
    expect(usage.composed.best.via).toBe('zcdp');
    expect(usage.composed.best.epsilon).toBeLessThanOrEqual(1 + 1e-12);
    expect(usage.composed.basic.epsilon).toBeGreaterThan(1);
    await expect(ledger.reserve(req('sgd', noRho(0.01, 0)))).rejects.toBeInstanceOf(
      PrivacyBudgetExceededError,
    );
  });

  test('approximate zCDP (partition selection): Σ approxDelta is taken out of δ before ρ is converted', () => {
    const withThreshold: PrivacySpend = { ...gaussian(0.01, 2e-7), delta: 4e-7, approxDelta: 2e-7 };
    const plain = composeSpends([gaussian(0.01, 2e-7)], 1e-6);
    const approx = composeSpends([withThreshold], 1e-6);
    expect(approx.zcdp!.approxDelta).toBe(2e-7);
    expect(approx.zcdp!.epsilon).toBeCloseTo(zcdpToEpsilon(0.01, 8e-7), 12);
    expect(approx.zcdp!.epsilon).toBeGreaterThan(plain.zcdp!.epsilon);
    // Thresholds that eat the whole δ leave no zCDP route.
    expect(
      composeSpends([withThreshold, withThreshold, withThreshold, withThreshold, withThreshold], 1e-6).zcdp,
    ).toBe(undefined);
  });

  test('persisted as a compare-and-swap document: a new instance sees the entries; no lock file exists', async () => {
    const dir = freshDir();
    await open(dir).reserve(req('p1', laplace(0.2)));
    expect((await open(dir).entries()).map((e) => e.runId)).toEqual(['p1']);
    expect(fs.readdirSync(dir).sort()).toEqual([`.${LEDGER_KEY}.journal`, LEDGER_KEY]);
    expect(JSON.parse(fs.readFileSync(path.join(dir, LEDGER_KEY), 'utf8')).version).toBe(2);
  });

  test('the per-dataset ledger of earlier versions is migrated: its spends count against every unit', async () => {
    const dir = freshDir();
    fs.writeFileSync(
      path.join(dir, 'privacy-ledger.json'),
      JSON.stringify({
        version: 1,
        entries: {
          old: {
            runId: 'old',
            datasetId: 'synthetic',
            window: '2026-11-23',
            spend: laplace(0.8),
            budget: { epsilon: 12, delta: 1e-5 },
            status: 'committed',
            reservedAt: DAY1,
            updatedAt: DAY1,
          },
        },
      }),
    );
    const ledger = open(dir);
    await expect(ledger.reserve(req('new', laplace(0.3)))).rejects.toBeInstanceOf(PrivacyBudgetExceededError);
    await ledger.reserve(req('new', laplace(0.2)));
    expect((await ledger.entries()).map((e) => [e.runId, e.unit]).sort()).toEqual([
      ['new', 'shoppers'],
      ['old', '*'],
    ]);
  });

  test('property: random reserve/commit/release sequences never exceed the window or the lifetime budget', async () => {
    const gen = createSeededRng('ledger-property');
    for (let trial = 0; trial < 10; trial++) {
      const ledger = open();
      const lim: BudgetLimits = {
        window: { kind: 'day', epsilon: 0.5 + gen.uniformInt(6) / 4, delta: 1e-6 },
        lifetime: { epsilon: 2 + gen.uniformInt(4), delta: 1e-5 },
      };
      const runs: { runId: string; at: string; spend: PrivacySpend }[] = [];
      for (let op = 0; op < 30; op++) {
        const kind = gen.uniformInt(10);
        if (kind < 6 || runs.length === 0) {
          const again =
            gen.uniformInt(3) === 0 && runs.length > 0 ? runs[gen.uniformInt(runs.length)] : undefined;
          const run = again ?? {
            runId: `r${op}`,
            at: `2026-11-${String(1 + gen.uniformInt(4)).padStart(2, '0')}T03:00:00Z`,
            spend: [
              laplace(0.05 + gen.uniformInt(20) / 40),
              gaussian(0.001 * (1 + gen.uniformInt(10)), 1e-8),
            ][gen.uniformInt(2)],
          };
          const before = await ledger.entries();
          const existing = before.find((e) => e.runId === run.runId);
          const live = before.filter((e) => e.status !== 'released' && e.runId !== run.runId);
          const fitsIn = (spends: PrivacySpend[], b: { epsilon: number; delta: number }) => {
            const c = composeSpends([...spends, run.spend], b.delta);
            return (
              (c.basic.epsilon <= b.epsilon * (1 + 1e-12) && c.basic.delta <= b.delta * (1 + 1e-12)) ||
              (c.zcdp !== undefined && c.zcdp.epsilon <= b.epsilon * (1 + 1e-12))
            );
          };
          const inWindow = live.filter((e) => e.at.slice(0, 10) === run.at.slice(0, 10)).map((e) => e.spend);
          const ok =
            (existing !== undefined && existing.status !== 'released') ||
            (fitsIn(inWindow, lim.window) &&
              fitsIn(
                live.map((e) => e.spend),
                lim.lifetime,
              ));
          const result = await ledger.reserve(req(run.runId, run.spend, { at: run.at, limits: lim })).then(
            () => 'ok',
            (e: unknown) => (e as Error).name,
          );
          expect(result).toBe(ok ? 'ok' : 'PrivacyBudgetExceeded');
          if (!again) runs.push(run);
        } else {
          const run = runs[gen.uniformInt(runs.length)];
          const entry = (await ledger.entries()).find((e) => e.runId === run.runId);
          if (!entry) continue;
          const to = kind < 8 ? 'commit' : 'release';
          const legal =
            entry.status === 'reserved' || entry.status === (to === 'commit' ? 'committed' : 'released');
          const result = await (to === 'commit' ? ledger.commit(run.runId) : ledger.release(run.runId)).then(
            () => 'ok',
            (e: unknown) => (e as Error).name,
          );
          expect(result).toBe(legal ? 'ok' : 'LedgerConflictError');
        }
        for (const at of new Set(runs.map((r) => r.at))) {
          const u = await ledger.usage('shoppers', at, lim);
          const within = (c: typeof u.window.composed, b: { epsilon: number; delta: number }) =>
            (c.basic.epsilon <= b.epsilon * (1 + 1e-12) && c.basic.delta <= b.delta * (1 + 1e-12)) ||
            (c.zcdp !== undefined && c.zcdp.epsilon <= b.epsilon * (1 + 1e-12));
          expect(within(u.window.composed, lim.window)).toBe(true);
          expect(within(u.lifetime.composed, lim.lifetime)).toBe(true);
        }
      }
    }
  });
});

describe('PrivacyLedger under concurrency', () => {
  test('the race test can fail: a store without compare-and-swap lets concurrent reservations overspend', async () => {
    // Same ledger code over a store whose conditional write ignores the token: what CAS prevents really happens.
    const real = new LocalStorage(freshDir());
    const broken: Storage = {
      ...real,
      kind: real.kind,
      root: real.root,
      uri: (k) => real.uri(k),
      get: (k) => real.get(k),
      put: (k, b) => real.put(k, b),
      putIfMatch: async (k, b) => {
        await real.put(k, b);
        return 'any';
      },
      exists: (k) => real.exists(k),
      list: (p) => real.list(p),
      delete: (k) => real.delete(k),
      deletePrefix: (p) => real.deletePrefix(p),
      localDir: (p) => real.localDir(p),
      putDir: (l, p) => real.putDir(l, p),
      syncCopy: (k) => real.syncCopy(k),
    };
    const ledger = new PrivacyLedger(broken);
    const results = await Promise.allSettled(
      Array.from({ length: 20 }, (_, i) => ledger.reserve(req(`x${i}`, laplace(0.1)))),
    );
    // With ε = 1 at most 10 fit; without CAS more than 10 reservations "succeed".
    expect(results.filter((r) => r.status === 'fulfilled').length).toBeGreaterThan(10);
    // The same race on the real store admits exactly 10.
    const good = open();
    const ok = await Promise.allSettled(
      Array.from({ length: 20 }, (_, i) => good.reserve(req(`y${i}`, laplace(0.1)))),
    );
    expect(ok.filter((r) => r.status === 'fulfilled')).toHaveLength(10);
  });

  describe('real concurrent processes', () => {
    let childScript: string;

    beforeAll(() => {
      // Child processes cannot load TypeScript: compile what the ledger imports with swc.
      const build = compileForChildren(
        // lib/ for lib/faults.ts, which the local store's compare-and-swap imports.
        ['privacy', 'lib', 'lib/storage', 'contracts'],
        fs.mkdtempSync(path.join(root, 'build-')),
      );
      childScript = path.join(build, 'child.js');
      fs.writeFileSync(
        childScript,
        `const { PrivacyLedger } = require('./privacy/ledger.js');
const { LocalStorage } = require('./lib/storage/index.js');
process.on('message', async (msg) => {
  const ledger = new PrivacyLedger(new LocalStorage(msg.dir));
  const results = [];
  for (const job of msg.jobs) {
    try {
      await ledger.reserve(job);
      results.push({ runId: job.runId, ok: true });
    } catch (e) {
      results.push({ runId: job.runId, ok: false, name: e.name });
    }
  }
  process.send({ results }, () => process.exit(0));
});
process.send({ ready: true });
`,
      );
    });

    type Result = { runId: string; ok: boolean; name?: string };

    /** Forks one process per job list, waits until all are ready, then releases them at once. */
    async function race(dir: string, jobLists: ReservationRequest[][]): Promise<Result[]> {
      const children: ChildProcess[] = jobLists.map(() => fork(childScript, [], { stdio: 'ignore' }));
      await Promise.all(
        children.map((c) => new Promise<void>((resolve) => c.once('message', () => resolve()))),
      );
      const done = children.map(
        (c) =>
          new Promise<Result[]>((resolve, reject) => {
            c.once('message', (m) => resolve((m as { results: Result[] }).results));
            c.once('error', reject);
            c.once('exit', (code) =>
              code === 0 ? undefined : reject(new Error(`child exited with ${code}`)),
            );
          }),
      );
      children.forEach((c, i) => c.send({ dir, jobs: jobLists[i] }));
      return (await Promise.all(done)).flat();
    }

    test('8 processes × 3 reservations of ε = 0.1 against ε = 1: exactly 10 admitted, never over budget', async () => {
      const dir = freshDir();
      const jobs = Array.from({ length: 8 }, (_, p) =>
        Array.from({ length: 3 }, (_, j) => req(`p${p}-${j}`, laplace(0.1), { label: `label-${p}` })),
      );
      const results = await race(dir, jobs);
      expect(results).toHaveLength(24);
      expect(results.filter((r) => r.ok)).toHaveLength(10);
      expect(results.filter((r) => !r.ok).every((r) => r.name === 'PrivacyBudgetExceeded')).toBe(true);
      const live = (await open(dir).usage('shoppers', DAY1, limits)).window;
      expect(live.entries).toHaveLength(10);
      expect(live.composed.basic.epsilon).toBeLessThanOrEqual(1 + 1e-12);
      expect(new Set(live.entries.map((e) => e.runId))).toEqual(
        new Set(results.filter((r) => r.ok).map((r) => r.runId)),
      );
    }, 60_000);

    test('6 processes retrying the same runId concurrently spend it once', async () => {
      const dir = freshDir();
      const results = await race(
        dir,
        Array.from({ length: 6 }, () => [req('activity-attempt', laplace(0.6))]),
      );
      expect(results.every((r) => r.ok)).toBe(true);
      const live = (await open(dir).usage('shoppers', DAY1, limits)).window;
      expect(live.entries).toHaveLength(1);
      expect(live.composed.basic.epsilon).toBe(0.6);
    }, 60_000);

    test('6 processes of 6 units racing to spend one file: exactly one unit gets it', async () => {
      const dir = freshDir();
      const results = await race(
        dir,
        Array.from({ length: 6 }, (_, p) => [req(`u${p}`, laplace(0.1), { unit: `unit-${p}` })]),
      );
      expect(results.filter((r) => r.ok)).toHaveLength(1);
      expect(results.filter((r) => !r.ok).every((r) => r.name === 'ConfigError')).toBe(true);
      const winner = results.find((r) => r.ok)!.runId;
      expect((await open(dir).bindings())['/data/events.csv'].runId).toBe(winner);
    }, 60_000);
  });
});
