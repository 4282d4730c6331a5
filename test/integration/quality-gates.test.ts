import * as fs from 'node:fs';
import * as path from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { startWorkers, tempDir, queryDuckDb, startSuite, stopSuite } from '../helpers/env';
import type { RunSummary } from '../../contracts/stages';
import { loadConfig } from '../../lib/config';
import { registryOf } from '../../activities/support/storage';
import { ROOT } from '../helpers/env';

/**
 * The default challenger (blend, tuned in the run) under the *configured* gates, not the opened-up test gates:
 * on data with structure it beats MostPop by the margin and is published; a nightly re-run starts its search from
 * the champion's parameters; a challenger worse than MostPop is refused and the champion's output stays live.
 */
jest.setTimeout(300_000);

let env: TestWorkflowEnvironment;
let workers: Awaited<ReturnType<typeof startWorkers>>;
const dataDir = tempDir('quality-gates');
let data: { interactions: string; items: string };

/** Only the test's folder and short timeouts: gates, challenger and tuning are configs/default.yaml's. */
const overrides = (extra: Record<string, unknown> = {}) => ({
  dataDir,
  training: { tuning: { budgetSeconds: 30 } },
  temporal: {
    activities: {
      heartbeatTimeout: '10s',
      startToCloseTimeout: '10m',
      trainingStartToCloseTimeout: '10m',
      maximumAttempts: 2,
    },
  },
  ...extra,
});

async function run(workflowId: string, extra: Record<string, unknown> = {}): Promise<RunSummary> {
  const handle = await env.client.workflow.start('retrainPipeline', {
    taskQueue: 'recforge-cpu',
    workflowId,
    args: [{ interactions: data.interactions, items: data.items, overrides: overrides(extra) }],
  });
  return (await handle.result()) as RunSummary;
}

const registry = () =>
  registryOf(loadConfig({ root: ROOT, overrides: { dataDir }, env: {} }).config, 'synthetic');

beforeAll(async () => {
  ({ data, env, workers } = await startSuite(dataDir, { events: 30000 }));
});

afterAll(() => stopSuite(workers, env));

describe('default challenger under the configured gates', () => {
  let first: RunSummary;
  let second: RunSummary;

  beforeAll(async () => {
    first = await run('it-quality-1');
    second = await run('it-quality-2');
  });

  test('the tuned blend beats MostPop by the configured margin and is published', async () => {
    expect(first.status).toBe('completed');
    expect(first.gate.decision).toBe('promote');
    const k = 10;
    const blend = first.metrics.blend[`ndcg@${k}`];
    expect(blend).toBeGreaterThan(first.metrics.mostpop[`ndcg@${k}`] * 1.05);
    // Every check of the default gates ran and passed, the refit agreement among them.
    const names = first.gate.checks.map((c) => c.name);
    expect(names).toEqual(
      expect.arrayContaining([
        'evaluated users >= minimum',
        `blend ndcg@${k} beats mostpop by 5%`,
        `published blend (refit on all data) agrees with the evaluated one (mean top-${k} overlap)`,
      ]),
    );
    const agreement = first.gate.checks.find((c) => c.name.startsWith('published blend'))!;
    expect(agreement.value).toBeGreaterThanOrEqual(0.3);
    expect(agreement.value).toBeLessThanOrEqual(1);
    expect(first.published).not.toBeNull();
  });

  test('the tuning is in the summary and the registry, its trials in tuning.json', async () => {
    const t = first.training!.tuning!;
    expect(t.family).toBe('blend');
    expect(t.trials).toBeGreaterThan(3);
    expect(t.warmStarted).toBe(false);
    expect(t.description).toMatch(/EASE|iALS/);
    const record = await registry().require(first.modelVersion);
    expect(record.model).toBe('blend');
    expect(record.params).toEqual(t.params);
    expect(record.tuning!.trials).toBe(t.trials);
    const report = JSON.parse(fs.readFileSync(path.join(dataDir, t.report), 'utf8')) as {
      trials: { phase: string; score: number; budget: number; params: unknown }[];
    };
    expect(report.trials).toHaveLength(t.trials);
    expect(new Set(report.trials.map((x) => x.phase))).toEqual(new Set(['ease', 'ials', 'blend']));
    // The chosen parameters score best on validation among the full-budget trials.
    const best = Math.max(
      ...report.trials.filter((x) => x.budget === 1).map((x) => (Number.isFinite(x.score) ? x.score : -1)),
    );
    expect(t.validationScore).toBeCloseTo(best, 10);
  });

  test('every user with training data gets exactly topN rows; fallbacks are counted', async () => {
    const current = path.join(first.outputDir!, 'current');
    const [c] = await queryDuckDb(`
      SELECT count(DISTINCT user_id)::INT AS users, min(n)::INT AS min_n, max(n)::INT AS max_n FROM (
        SELECT user_id, count(*) AS n FROM read_parquet('${current}/*.parquet') GROUP BY user_id)`);
    const [events] = await queryDuckDb(
      `SELECT count(DISTINCT user_id)::INT AS users FROM read_parquet('${path.join(dataDir, 'runs', 'synthetic', first.runId, 'events.parquet')}')`,
    );
    expect(c.users).toBe(events.users);
    expect(c.min_n).toBe(20);
    expect(c.max_n).toBe(20);
    expect(first.published!.users).toBe(events.users);
    expect(first.published!.fallbackUsers).toBeGreaterThanOrEqual(0);
    expect(first.published!.fallbackUsers).toBeLessThan(first.published!.users);
  });

  test('the nightly re-run starts from the champion’s parameters and costs fewer trials', () => {
    expect(second.status).toBe('completed');
    const t1 = first.training!.tuning!;
    const t2 = second.training!.tuning!;
    expect(t2.warmStarted).toBe(true);
    expect(t2.trials).toBeLessThan(t1.trials);
    expect(second.gate.decision).toBe('promote');
  });
});

describe('a challenger worse than MostPop', () => {
  test('is refused by the gate and the champion’s output stays live', async () => {
    const reg = registry();
    const before = await reg.pointer();
    expect(before).not.toBeNull();
    // BPR-MF with one tiny step of learning: near-random scores.
    const bad = await run('it-quality-bad', {
      training: {
        challenger: 'mf',
        mf: { epochs: 1, fullEpochs: 0, lr: 1e-6, patience: 1, checkpointEvery: 0 },
      },
    });
    expect(bad.status).toBe('rejected');
    expect(bad.gate.decision).toBe('reject');
    const beats = bad.gate.checks.find((c) => c.name === 'mf ndcg@10 beats mostpop by 5%')!;
    expect(beats.passed).toBe(false);
    expect(bad.metrics.mf['ndcg@10']).toBeLessThan(bad.metrics.mostpop['ndcg@10']);
    expect(bad.published).toBeNull();
    const after = await reg.pointer();
    expect(after!.version).toBe(before!.version);
    // The rejected model is in the registry, inspectable, and not live.
    const record = await reg.require(bad.modelVersion);
    expect(record.gate?.decision).toBe('reject');
    expect(await reg.status(record)).toBe('rejected');
  });
});
