import { fork, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { transformFileSync } from '@swc/core';
import { zcdpToEpsilon } from '../../privacy/calibration';
import { composeSpends } from '../../privacy/accountant';
import {
  LedgerConflictError,
  LedgerLockTimeoutError,
  PrivacyBudgetExceededError,
  PrivacyLedger,
  type PrivacyBudget,
} from '../../privacy/ledger';
import { createSeededRng } from '../../privacy/rng';
import type { PrivacySpend } from '../../privacy/spend';

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

beforeAll(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'recforge-privacy-ledger-'));
});

afterAll(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

describe('PrivacyLedger semantics', () => {
  const budget: PrivacyBudget = { epsilon: 1, delta: 1e-6 };

  test('reserve → commit; budget refusal names budget, spent and requested; refusal happens before data is read', async () => {
    const ledger = new PrivacyLedger(freshDir());
    await ledger.reserve('ds', '2024-06', laplace(0.6), budget, 'run-1');
    await ledger.commit('run-1');
    let dataRead = false;
    const runPipeline = async (runId: string): Promise<void> => {
      await ledger.reserve('ds', '2024-06', laplace(0.5), budget, runId);
      dataRead = true; // a real run would read the interactions only now
    };
    const err = await runPipeline('run-2').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PrivacyBudgetExceededError);
    expect(dataRead).toBe(false);
    const msg = (err as Error).message;
    expect(msg).toContain('dataset "ds" window "2024-06"');
    expect(msg).toContain('budget ε=1 δ=0.00000100000');
    expect(msg).toContain('spent ε=0.600000 δ=0');
    expect(msg).toContain('requested ε=0.500000 δ=0 (discrete-laplace)');
    expect(msg).toContain('total would be ε=1.10000');
    const e = err as PrivacyBudgetExceededError;
    expect(e.spent.epsilon).toBeCloseTo(0.6, 12);
    expect(e.requested.epsilon).toBe(0.5);
    // Other windows and datasets have their own budget.
    await ledger.reserve('ds', '2024-07', laplace(0.5), budget, 'run-3');
    await ledger.reserve('other', '2024-06', laplace(0.5), budget, 'run-4');
    // Exactly filling the budget is allowed despite float rounding (0.6 + 0.4).
    await ledger.reserve('ds', '2024-06', laplace(0.4), budget, 'run-5');
    expect(ledger.usage('ds', '2024-06', budget.delta).composed.basic.epsilon).toBeCloseTo(1, 12);
  });

  test('idempotent per runId: retries do not double-spend; conflicts are refused', async () => {
    const ledger = new PrivacyLedger(freshDir());
    const a = await ledger.reserve('ds', 'w', laplace(0.3), budget, 'r');
    const b = await ledger.reserve('ds', 'w', laplace(0.3), budget, 'r');
    expect(b).toEqual(a);
    expect(ledger.usage('ds', 'w', 1e-6).entries).toHaveLength(1);
    await expect(ledger.reserve('ds', 'w', laplace(0.31), budget, 'r')).rejects.toBeInstanceOf(
      LedgerConflictError,
    );
    await expect(ledger.reserve('ds', 'w2', laplace(0.3), budget, 'r')).rejects.toBeInstanceOf(
      LedgerConflictError,
    );
    expect((await ledger.commit('r')).status).toBe('committed');
    expect((await ledger.commit('r')).status).toBe('committed');
    // Reserving again after commit returns the committed entry (still one spend).
    expect((await ledger.reserve('ds', 'w', laplace(0.3), budget, 'r')).status).toBe('committed');
    await expect(ledger.release('r')).rejects.toThrow(/committed; cannot mark it released/);
    await expect(ledger.commit('nope')).rejects.toBeInstanceOf(LedgerConflictError);
  });

  test('release returns budget; a released run can be re-reserved (checked again)', async () => {
    const ledger = new PrivacyLedger(freshDir());
    await ledger.reserve('ds', 'w', laplace(0.7), budget, 'failed');
    await expect(ledger.reserve('ds', 'w', laplace(0.7), budget, 'next')).rejects.toBeInstanceOf(
      PrivacyBudgetExceededError,
    );
    expect((await ledger.release('failed')).status).toBe('released');
    expect((await ledger.release('failed')).status).toBe('released');
    await ledger.reserve('ds', 'w', laplace(0.7), budget, 'next');
    // The retry of the released run must now fit again, and does not.
    await expect(ledger.reserve('ds', 'w', laplace(0.7), budget, 'failed')).rejects.toBeInstanceOf(
      PrivacyBudgetExceededError,
    );
    await expect(ledger.commit('failed')).rejects.toThrow(/released; cannot mark it committed/);
  });

  test('zCDP composition admits more Gaussian releases than basic composition, and reports the tighter', async () => {
    const ledger = new PrivacyLedger(freshDir());
    const b: PrivacyBudget = { epsilon: 1, delta: 1e-6 };
    const spend = gaussian(0.004, 1e-8); // ε ≈ 0.39 each by itself
    let admitted = 0;
    for (let i = 0; i < 100; i++) {
      try {
        await ledger.reserve('ds', 'w', spend, b, `g${i}`);
        admitted++;
      } catch (err) {
        expect(err).toBeInstanceOf(PrivacyBudgetExceededError);
        break;
      }
    }
    // Basic composition would stop at ⌊1 / 0.39⌋ = 2; zCDP allows Σρ up to rhoForApproxDp(1, 1e-6) ≈ 0.0243.
    expect(admitted).toBeGreaterThanOrEqual(5);
    const usage = ledger.usage('ds', 'w', b.delta);
    expect(usage.composed.best.via).toBe('zcdp');
    expect(usage.composed.best.epsilon).toBeLessThanOrEqual(1 + 1e-12);
    expect(usage.composed.basic.epsilon).toBeGreaterThan(1);
    // A spend without ρ forces basic composition, which is already over budget.
    await expect(ledger.reserve('ds', 'w', noRho(0.01, 0), b, 'sgd')).rejects.toBeInstanceOf(
      PrivacyBudgetExceededError,
    );
  });

  test('persisted atomically: a new instance sees the entries, no temp files are left, file is JSON', async () => {
    const dir = freshDir();
    await new PrivacyLedger(dir).reserve('ds', 'w', laplace(0.2), budget, 'p1');
    const again = new PrivacyLedger(dir);
    expect(again.entries().map((e) => e.runId)).toEqual(['p1']);
    expect(fs.readdirSync(dir).sort()).toEqual(['privacy-ledger.json']);
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'privacy-ledger.json'), 'utf8')).version).toBe(1);
  });

  test('property: random reserve/commit/release sequences never exceed the budget', async () => {
    const gen = createSeededRng('ledger-property');
    for (let trial = 0; trial < 15; trial++) {
      const ledger = new PrivacyLedger(freshDir());
      const b: PrivacyBudget = { epsilon: 0.5 + gen.uniformInt(10) / 4, delta: 1e-6 };
      const runs: string[] = [];
      for (let op = 0; op < 30; op++) {
        const kind = gen.uniformInt(10);
        if (kind < 6 || runs.length === 0) {
          const runId =
            gen.uniformInt(3) === 0 && runs.length > 0 ? runs[gen.uniformInt(runs.length)] : `r${op}`;
          const existing = ledger.entries().find((e) => e.runId === runId);
          const spend = existing
            ? existing.spend
            : [laplace(0.05 + gen.uniformInt(20) / 40), gaussian(0.001 * (1 + gen.uniformInt(10)), 1e-8)][
                gen.uniformInt(2)
              ];
          const live = ledger
            .usage('ds', 'w', b.delta)
            .entries.filter((e) => e.runId !== runId)
            .map((e) => e.spend);
          const after = composeSpends([...live, spend], b.delta);
          const fitsBasic =
            after.basic.epsilon <= b.epsilon * (1 + 1e-12) && after.basic.delta <= b.delta * (1 + 1e-12);
          const fitsZ = after.zcdp !== undefined && after.zcdp.epsilon <= b.epsilon * (1 + 1e-12);
          const alreadyLive = existing !== undefined && existing.status !== 'released';
          const result = await ledger.reserve('ds', 'w', spend, b, runId).then(
            () => 'ok',
            (e: unknown) => (e as Error).name,
          );
          expect(result).toBe(alreadyLive || fitsBasic || fitsZ ? 'ok' : 'PrivacyBudgetExceededError');
          if (!runs.includes(runId)) runs.push(runId);
        } else {
          const runId = runs[gen.uniformInt(runs.length)];
          const entry = ledger.entries().find((e) => e.runId === runId);
          if (!entry) continue;
          const to = kind < 8 ? 'commit' : 'release';
          const legal =
            entry.status === 'reserved' || entry.status === (to === 'commit' ? 'committed' : 'released');
          const result = await (to === 'commit' ? ledger.commit(runId) : ledger.release(runId)).then(
            () => 'ok',
            (e: unknown) => (e as Error).name,
          );
          expect(result).toBe(legal ? 'ok' : 'LedgerConflictError');
        }
        const best = ledger.usage('ds', 'w', b.delta).composed;
        const within =
          (best.basic.epsilon <= b.epsilon * (1 + 1e-12) && best.basic.delta <= b.delta * (1 + 1e-12)) ||
          (best.zcdp !== undefined && best.zcdp.epsilon <= b.epsilon * (1 + 1e-12));
        expect(within).toBe(true);
      }
    }
  });
});

describe('PrivacyLedger locking', () => {
  const budget: PrivacyBudget = { epsilon: 1, delta: 1e-6 };

  test('a lock left by a dead process is broken', async () => {
    const dir = freshDir();
    const child = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']);
    const deadPid = Number(child.stdout.toString());
    fs.writeFileSync(
      path.join(dir, 'privacy-ledger.lock'),
      JSON.stringify({ pid: deadPid, host: os.hostname(), createdAt: Date.now(), token: 'dead' }),
    );
    const ledger = new PrivacyLedger(dir, { lockTimeoutMs: 5000 });
    await ledger.reserve('ds', 'w', laplace(0.1), budget, 'after-crash');
    expect(fs.existsSync(path.join(dir, 'privacy-ledger.lock'))).toBe(false);
  });

  test('an old lock (other host) is broken after staleLockMs; a fresh live lock times out', async () => {
    const dir = freshDir();
    const lock = path.join(dir, 'privacy-ledger.lock');
    fs.writeFileSync(
      lock,
      JSON.stringify({ pid: 1, host: 'elsewhere', createdAt: Date.now() - 60_000, token: 'old' }),
    );
    await new PrivacyLedger(dir, { staleLockMs: 1000 }).reserve('ds', 'w', laplace(0.1), budget, 'x');
    fs.writeFileSync(
      lock,
      JSON.stringify({ pid: process.pid, host: os.hostname(), createdAt: Date.now(), token: 'live' }),
    );
    await expect(
      new PrivacyLedger(dir, { lockTimeoutMs: 150 }).reserve('ds', 'w', laplace(0.1), budget, 'y'),
    ).rejects.toBeInstanceOf(LedgerLockTimeoutError);
    // The live lock was not stolen.
    expect(JSON.parse(fs.readFileSync(lock, 'utf8')).token).toBe('live');
    fs.rmSync(lock);
  });

  describe('real concurrent processes racing for the last budget', () => {
    let buildDir: string;
    let childScript: string;

    beforeAll(() => {
      // Child processes cannot load TypeScript, so compile privacy/*.ts with swc (already a dev dependency).
      buildDir = fs.mkdtempSync(path.join(root, 'build-'));
      const srcDir = path.join(__dirname, '..', '..', 'privacy');
      fs.mkdirSync(path.join(buildDir, 'privacy'));
      for (const f of fs.readdirSync(srcDir).filter((x) => x.endsWith('.ts'))) {
        const { code } = transformFileSync(path.join(srcDir, f), {
          swcrc: false,
          jsc: { parser: { syntax: 'typescript' }, target: 'es2022' },
          module: { type: 'commonjs' },
        });
        fs.writeFileSync(path.join(buildDir, 'privacy', f.replace(/\.ts$/, '.js')), code);
      }
      childScript = path.join(buildDir, 'child.js');
      fs.writeFileSync(
        childScript,
        `const { PrivacyLedger } = require('./privacy/ledger.js');
process.on('message', async (msg) => {
  const ledger = new PrivacyLedger(msg.dir);
  const results = [];
  for (const job of msg.jobs) {
    try {
      await ledger.reserve(job.datasetId, job.window, job.spend, job.budget, job.runId);
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

    interface Job {
      datasetId: string;
      window: string;
      spend: PrivacySpend;
      budget: PrivacyBudget;
      runId: string;
    }
    type Result = { runId: string; ok: boolean; name?: string };

    /** Forks one process per job list, waits until all are ready, then releases them at once. */
    async function race(dir: string, jobLists: Job[][]): Promise<Result[]> {
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
      const budget: PrivacyBudget = { epsilon: 1, delta: 1e-6 };
      const jobs = Array.from({ length: 8 }, (_, p) =>
        Array.from({ length: 3 }, (_, j) => ({
          datasetId: 'ds',
          window: 'w',
          spend: laplace(0.1),
          budget,
          runId: `p${p}-${j}`,
        })),
      );
      const results = await race(dir, jobs);
      expect(results).toHaveLength(24);
      expect(results.filter((r) => r.ok)).toHaveLength(10);
      expect(results.filter((r) => !r.ok).every((r) => r.name === 'PrivacyBudgetExceededError')).toBe(true);
      const ledger = new PrivacyLedger(dir);
      const live = ledger.usage('ds', 'w', budget.delta);
      expect(live.entries).toHaveLength(10);
      expect(live.composed.basic.epsilon).toBeLessThanOrEqual(1 + 1e-12);
      expect(new Set(live.entries.map((e) => e.runId))).toEqual(
        new Set(results.filter((r) => r.ok).map((r) => r.runId)),
      );
      expect(fs.readdirSync(dir)).toEqual(['privacy-ledger.json']);
    });

    test('6 processes retrying the same runId concurrently spend it once', async () => {
      const dir = freshDir();
      const budget: PrivacyBudget = { epsilon: 1, delta: 1e-6 };
      const job = { datasetId: 'ds', window: 'w', spend: laplace(0.6), budget, runId: 'activity-attempt' };
      const results = await race(
        dir,
        Array.from({ length: 6 }, () => [job]),
      );
      expect(results.every((r) => r.ok)).toBe(true);
      const live = new PrivacyLedger(dir).usage('ds', 'w', budget.delta);
      expect(live.entries).toHaveLength(1);
      expect(live.composed.basic.epsilon).toBe(0.6);
    });
  });
});
