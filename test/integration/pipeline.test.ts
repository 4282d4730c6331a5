import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { WorkflowFailedError } from '@temporalio/client';
import { parquetReadObjects, parquetMetadata } from 'hyparquet';
import {
  startWorkers,
  tempDir,
  testConfig,
  testOverrides,
  testPrivateOverrides,
  ROOT,
  rootMessage,
  queryDuckDb,
  recordHistory,
  startSuite,
  stopSuite,
} from '../helpers/env';
import type { RunSummary } from '../../contracts/stages';
import { LocalStorage, readDocument, updateDocument } from '../../lib/storage';
import { createTrainingActivities } from '../../activities';
import type { Manifest } from '../../activities/support/publishing';
import { scratchRoot } from '../../activities/support/scratch';

const query = (sql: string) => queryDuckDb(sql);

jest.setTimeout(240_000);

let env: TestWorkflowEnvironment;
let workers: Awaited<ReturnType<typeof startWorkers>>;
const dataDir = tempDir('pipeline');
let data: { interactions: string; items: string };

/** A run's scratch folder a killed worker left two days ago: starting the workers removes it. */
const staleScratch = path.join(scratchRoot(), `it-pipeline-stale-${process.pid}`);

beforeAll(async () => {
  fs.mkdirSync(path.join(staleScratch, 'train-1-ab-duckdb-tmp'), { recursive: true });
  const twoDaysAgo = new Date(Date.now() - 48 * 3_600_000);
  for (const p of [path.join(staleScratch, 'train-1-ab-duckdb-tmp'), staleScratch])
    fs.utimesSync(p, twoDaysAgo, twoDaysAgo);
  ({ data, env, workers } = await startSuite(dataDir));
});

afterAll(() => stopSuite(workers, env));

/**
 * Privacy is an opt-in per population; this suite's main runs opt in (the learned-challenger and cancellation
 * runs below opt out). The test data spans 2026-09-01..29: its last week is the holdout, cut at a public instant.
 */
const privateOverrides = (dir: string, extra: Record<string, unknown> = {}) =>
  testPrivateOverrides(dir, 'it-pipeline-users', extra);

function runPipeline(workflowId: string, input: Record<string, unknown>) {
  return env.client.workflow.start('retrainPipeline', {
    taskQueue: 'recforge-cpu',
    workflowId,
    args: [{ overrides: privateOverrides(dataDir), ...input }],
  });
}

describe('retrainPipeline end to end', () => {
  let summary: RunSummary;

  beforeAll(async () => {
    const handle = await runPipeline('it-pipeline-1', { interactions: data.interactions, items: data.items });
    summary = (await handle.result()) as RunSummary;
    recordHistory(env.address, 'it-pipeline-1', 'retrain-completed');
  });

  test('completes and reports every stage, rows and metrics', () => {
    expect(summary.status).toBe('completed');
    expect(summary.stages.map((s) => s.name)).toEqual([
      'plan',
      'input',
      'ingest',
      'profile',
      'clean',
      'train',
      'evaluate',
      'publish',
    ]);
    expect(summary.rows.ingested).toBeGreaterThan(20000);
    expect(summary.rows.quarantined).toBeGreaterThan(0);
    expect(summary.rows.kept + summary.rows.quarantined).toBe(summary.rows.ingested);
    expect(Object.keys(summary.rows.byReason)).toEqual(
      expect.arrayContaining(['duplicate', 'malformed_line', 'bot_user']),
    );
    expect(summary.metrics.mostpop['ndcg@10']).toBeGreaterThan(0);
    expect(summary.metrics.itemitem['recall@10']).toBeGreaterThan(0);
  });

  test('leaves no worker-local scratch folder behind: a worker serves runs for months', () => {
    const scratch = path.join(scratchRoot(), summary.runId);
    expect(fs.existsSync(scratch) ? fs.readdirSync(scratch, { recursive: true }) : null).toBeNull();
    // And what a killed worker left long ago went when the workers started.
    expect(fs.existsSync(staleScratch)).toBe(false);
  });

  test('publishes Parquet with the documented schema, N per user, no seen items', async () => {
    const current = path.join(summary.outputDir!, 'current');
    const manifest = JSON.parse(fs.readFileSync(path.join(current, '_manifest.json'), 'utf8')) as Manifest;
    expect(manifest.modelVersion).toBe(summary.modelVersion);
    expect(manifest.runId).toBe(summary.runId);
    // With privacy on nothing exact about the users is in the manifest: no row or user counts.
    expect(manifest.rowCount).toBeUndefined();
    expect(manifest.users).toBeUndefined();
    expect(manifest.files[0].rows).toBeUndefined();
    expect(manifest.files[0].bytes).toBe(fs.statSync(path.join(current, manifest.files[0].path)).size);
    const rowCount = summary.published!.rows; // exact, in the run summary (internal)
    const file = path.join(current, manifest.files[0].path);
    const sha = createHash('sha256').update(fs.readFileSync(file)).digest('hex');
    expect(sha).toBe(manifest.files[0].sha256);

    const schema = await query(`DESCRIBE SELECT * FROM read_parquet('${file}')`);
    expect(schema.map((r) => [r.column_name, r.column_type])).toEqual([
      ['user_id', 'VARCHAR'],
      ['rank', 'INTEGER'],
      ['item_id', 'VARCHAR'],
      ['score', 'DOUBLE'],
      ['model_version', 'VARCHAR'],
      ['generated_at', 'TIMESTAMP WITH TIME ZONE'],
    ]);
    const [counts] = await query(`SELECT count(*)::INT AS n, count(DISTINCT user_id)::INT AS users,
        max(rank)::INT AS max_rank, count(DISTINCT (user_id, rank))::INT AS distinct_ranks
      FROM read_parquet('${file}')`);
    expect(counts.n).toBe(rowCount);
    expect(counts.distinct_ranks).toBe(counts.n);
    expect(counts.max_rank).toBe(20);
    const perUser = await query(
      `SELECT count(*)::INT AS n FROM read_parquet('${file}') GROUP BY user_id HAVING count(*) <> 20`,
    );
    expect(perUser).toEqual([]);

    // Seen items: every (user, item) of the clean input must be absent from that user's list.
    const seen = await query(`
      WITH recs AS (SELECT * FROM read_parquet('${file}')),
      raw AS (SELECT * FROM read_csv('${data.interactions}', all_varchar = true, header = true, ignore_errors = true))
      SELECT count(*)::INT AS n FROM recs JOIN raw ON raw.user_id = recs.user_id AND raw.item_id = recs.item_id`);
    expect(seen[0].n).toBe(0);

    // A second, independent Parquet reader agrees with DuckDB.
    const bytes = fs.readFileSync(file);
    const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
    const meta = parquetMetadata(buffer);
    expect(Number(meta.num_rows)).toBe(rowCount);
    const rows = (await parquetReadObjects({ file: buffer, columns: ['user_id', 'rank', 'item_id'] })) as {
      user_id: string;
      rank: number;
    }[];
    expect(rows.length).toBe(rowCount);
    expect(rows[0].rank).toBe(1);

    // The cold-start fallback: N popular items, in a subfolder that `current/*.parquet` does not match.
    const fallback = path.join(current, manifest.fallback.path);
    const [fb] = await query(
      `SELECT count(*)::INT AS n, min(rank)::INT AS first FROM read_parquet('${fallback}')`,
    );
    expect(fb).toEqual({ n: 20, first: 1 });
    const [glob] = await query(`SELECT count(*)::INT AS n FROM read_parquet('${current}/*.parquet')`);
    expect(glob.n).toBe(rowCount);
  });

  test('differential privacy: the spend is in the summary, the manifest and the registry, and was committed', () => {
    expect(summary.privacy).toMatchObject({ delta: 1e-6, mechanism: 'discrete-gaussian' });
    expect(summary.privacy!.epsilon).toBeCloseTo(4, 9);
    expect(summary.privacy!.rowsRemovedByCaps).toBeGreaterThan(0);
    const manifest = JSON.parse(
      fs.readFileSync(path.join(summary.outputDir!, 'current', '_manifest.json'), 'utf8'),
    ) as Manifest;
    expect(manifest.privacy!.epsilon).toBeCloseTo(4, 9);
    // Evaluation metrics are measured on the raw holdout: not published while privacy is on.
    expect(manifest.metrics).toEqual({});
    expect(manifest.privacy).toMatchObject({
      delta: 1e-6,
      mechanism: 'discrete-gaussian',
      window: summary.privacy!.window,
    });
    const model = JSON.parse(
      fs.readFileSync(
        path.join(dataDir, 'registry', 'synthetic', 'models', summary.modelVersion, 'model.json'),
        'utf8',
      ),
    );
    expect(model.privacy.epsilon).toBeCloseTo(4, 9);
    const ledger = JSON.parse(fs.readFileSync(path.join(dataDir, 'privacy-ledger', 'ledger.json'), 'utf8'));
    expect(ledger.entries[summary.runId]).toMatchObject({ unit: 'it-pipeline-users', status: 'committed' });
    expect(Object.values(ledger.bindings)).toContainEqual(
      expect.objectContaining({ unit: 'it-pipeline-users' }),
    );
    expect(summary.privacy!.unit).toBe('it-pipeline-users');
    expect(summary.privacy!.utility).toMatchObject({ verdict: expect.stringMatching(/signal|weak|noise/) });
    // The gate's reference with privacy on: MostPop on exact counts (internal), beside the noisy one.
    expect(summary.metrics['mostpop-exact']).toBeDefined();
  });

  test('the published report is built from the DP popularity release only, never from raw counts', async () => {
    const current = path.join(summary.outputDir!, 'current');
    const manifest = JSON.parse(fs.readFileSync(path.join(current, '_manifest.json'), 'utf8')) as Manifest;
    expect(manifest.report.basis).toBe('differentially-private');
    const report = JSON.parse(fs.readFileSync(path.join(current, manifest.report.json), 'utf8')) as {
      topItems: { itemId: string; users: number }[];
      privacy: { epsilon: number };
    };
    expect(report.privacy.epsilon).toBeCloseTo(4, 9);
    expect(fs.readFileSync(path.join(current, manifest.report.html), 'utf8')).toContain(
      'Differentially private',
    );
    // Its counts are the noisy release (the DP MostPop model), not the exact distinct-user counts.
    const runDir = path.join(dataDir, 'runs', 'synthetic', summary.runId);
    const released = await query(
      `SELECT item_id, users::DOUBLE AS users FROM read_parquet('${runDir}/models/mostpop-full.parquet')`,
    );
    const releasedBy = new Map(released.map((r) => [String(r.item_id), Number(r.users)]));
    for (const t of report.topItems) expect(t.users).toBe(releasedBy.get(t.itemId));
    // ... which differ from the exact counts of the bounded events (P(all 20 noise draws are 0) < 1e-20).
    const exact = await query(`SELECT item_id, count(DISTINCT user_id)::DOUBLE AS users
      FROM read_parquet('${runDir}/all_bounded.parquet') GROUP BY item_id`);
    const exactBy = new Map(exact.map((r) => [String(r.item_id), Number(r.users)]));
    expect(report.topItems.some((t) => t.users !== exactBy.get(t.itemId))).toBe(true);
  });

  test('quarantine keeps every rejected row with its reason, file and line', async () => {
    const runDir = path.join(dataDir, 'runs', 'synthetic', summary.runId);
    const q = await query(`SELECT reason, count(*)::INT AS n, min(source_line)::INT AS first_line,
        count(*) FILTER (WHERE source_file IS NULL OR source_line IS NULL)::INT AS unlocated
      FROM read_parquet('${runDir}/quarantine.parquet') GROUP BY reason`);
    const total = q.reduce((s, r) => s + Number(r.n), 0);
    expect(total).toBe(summary.rows.quarantined);
    for (const r of q) expect(r.unlocated).toBe(0);
  });

  test('records search attributes and memo for the UI', async () => {
    const d = await env.client.workflow.getHandle('it-pipeline-1').describe();
    expect(d.searchAttributes.RecforgeGateDecision).toEqual(['promote']);
    expect(d.searchAttributes.RecforgeDataset).toEqual(['synthetic']);
    expect((d.memo as { summary: { status: string } }).summary.status).toBe('completed');
  });
});

describe('bad input publishes nothing', () => {
  test('a missing input file fails with a clear, non-retried error', async () => {
    const dir = tempDir('missing');
    const handle = await env.client.workflow.start('retrainPipeline', {
      taskQueue: 'recforge-cpu',
      workflowId: 'it-missing',
      args: [
        { datasetId: 'missing', interactions: path.join(dir, 'nope.csv'), overrides: testOverrides(dir) },
      ],
    });
    const err = await handle.result().catch((e) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    expect(rootMessage(err)).toMatch(/nope\.csv.*no such file/);
    expect(fs.existsSync(path.join(dir, 'output'))).toBe(false);
  });

  test('a garbled (binary) file fails naming the file; the previous output stays current', async () => {
    const garbled = path.join(dataDir, 'garbled.csv');
    fs.writeFileSync(
      garbled,
      Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 0xff, 0xfe]),
    );
    const before = fs.readlinkSync(path.join(dataDir, 'output', 'recommendations', 'synthetic', 'current'));
    const handle = await runPipeline('it-garbled', { interactions: garbled });
    const err = (await handle.result().catch((e) => e)) as WorkflowFailedError;
    expect(err).toBeInstanceOf(WorkflowFailedError);
    expect(rootMessage(err)).toMatch(/garbled\.csv/);
    expect(fs.readlinkSync(path.join(dataDir, 'output', 'recommendations', 'synthetic', 'current'))).toBe(
      before,
    );
  });

  test('a run whose privacy spend would exceed the budget is refused before reading data', async () => {
    const dir = tempDir('budget');
    const handle = await env.client.workflow.start('retrainPipeline', {
      taskQueue: 'recforge-cpu',
      workflowId: 'it-budget',
      args: [
        {
          interactions: data.interactions,
          overrides: privateOverrides(dir, {
            privacy: { budget: { epsilon: 3, delta: 1e-5, window: 'day' } },
          }),
        },
      ],
    });
    const err = (await handle.result().catch((e) => e)) as WorkflowFailedError;
    expect(err).toBeInstanceOf(WorkflowFailedError);
    // No items file: the plan includes DP partition selection, whose threshold costs a little less δ than set aside.
    expect(rootMessage(err)).toMatch(
      /unit "it-pipeline-users" window "\d{4}-\d\d-\d\d": budget ε=3 .*requested ε=(3\.9\d+|4) .*dp-partition-selection/s,
    );
    // Refused in planning: nothing was ingested.
    const runs = path.join(dir, 'runs', 'synthetic');
    const landed = fs.existsSync(runs)
      ? fs.readdirSync(runs).filter((r) => fs.existsSync(path.join(runs, r, 'raw')))
      : [];
    expect(landed).toEqual([]);
  });

  test('a second run on the same dataset while one is running is refused', async () => {
    const first = await runPipeline('it-concurrent-a', {
      interactions: data.interactions,
      items: data.items,
    });
    // Wait until the first run holds the dataset (it has finished planning).
    for (let i = 0; i < 100; i++) {
      const p = await first.query<{ stages: unknown[] }>('progress').catch(() => ({ stages: [] }));
      if (p.stages.length > 0) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const second = await runPipeline('it-concurrent-b', { interactions: data.interactions });
    const err = (await second.result().catch((e) => e)) as WorkflowFailedError;
    expect(err).toBeInstanceOf(WorkflowFailedError);
    expect(rootMessage(err)).toMatch(/already being retrained by workflow it-concurrent-a/);
    expect(((await first.result()) as RunSummary).status).toBe('completed');

    // A lock left behind by a holder that is no longer running (its release never ran) is taken over, in the
    // same compare-and-swap that judged it.
    const store = new LocalStorage(dataDir);
    const holder = { workflowId: first.workflowId, runId: first.firstExecutionRunId, acquiredAt: 'x' };
    await updateDocument(store, 'locks/synthetic.json', (cur: { history: unknown[] } | null) => ({
      write: { holder, history: cur?.history ?? [] },
      result: undefined,
    }));
    const third = await runPipeline('it-concurrent-c', {
      interactions: data.interactions,
      items: data.items,
    });
    expect(((await third.result()) as RunSummary).status).toBe('completed');
    const lock = (await readDocument<{ holder: unknown; history: { event: string; runId: string }[] }>(
      store,
      'locks/synthetic.json',
    ))!.value;
    expect(lock.holder).toBeNull();
    expect(lock.history.slice(-2).map((h) => h.event)).toEqual(['taken-over', 'released']);
  });
});

describe('learned challengers', () => {
  test('two-tower trains, publishes, and the next run warm-starts from it and re-scores it as champion', async () => {
    const dir = tempDir('two-tower');
    const run = async (id: string) => {
      const handle = await env.client.workflow.start('retrainPipeline', {
        taskQueue: 'recforge-cpu',
        workflowId: id,
        args: [
          {
            datasetId: 'tt',
            interactions: data.interactions,
            items: data.items,
            overrides: testOverrides(dir, {
              privacy: { enabled: false },
              training: { challenger: 'two-tower', twoTower: { epochs: 1, fullEpochs: 1, batchSize: 256 } },
            }),
          },
        ],
      });
      return (await handle.result()) as RunSummary;
    };
    const first = await run('it-tt-1');
    expect(first.status).toBe('completed');
    // Privacy off: the manifest carries the exact counts readers can check against.
    const ttManifest = JSON.parse(
      fs.readFileSync(path.join(first.outputDir!, 'current', '_manifest.json'), 'utf8'),
    ) as Manifest;
    expect(ttManifest.rowCount).toBe(first.published!.rows);
    expect(ttManifest.files[0].rows).toBe(first.published!.rows);
    expect(first.privacy).toBeNull();
    expect(first.metrics['two-tower']['ndcg@10']).toBeGreaterThan(0);
    expect(first.training!.device).toMatch(/wasm|cpu|GPU|tensorflow/i);
    const model = JSON.parse(
      fs.readFileSync(path.join(dir, 'registry', 'tt', 'models', first.modelVersion, 'model.json'), 'utf8'),
    );
    expect(model.model).toBe('two-tower');
    // Model folders are referenced by storage key (inside the run's folder), never copied.
    expect(fs.readdirSync(path.join(dir, model.modelDirs.full)).length).toBeGreaterThan(0);

    const second = await run('it-tt-2');
    expect(second.metrics.champion).toBeDefined();
    expect(second.gate.checks.some((c) => c.name.includes(`champion ${first.modelVersion}`))).toBe(true);
  });
});

describe('cancellation', () => {
  test('cancelling a run mid-training stops the training activity before the run releases the dataset', async () => {
    const dir = tempDir('cancel');
    const handle = await env.client.workflow.start('retrainPipeline', {
      taskQueue: 'recforge-cpu',
      workflowId: 'it-cancel',
      args: [
        {
          datasetId: 'cancelled',
          interactions: data.interactions,
          items: data.items,
          overrides: testOverrides(dir, {
            privacy: { enabled: false },
            // Long enough that only a cancellation ends it within the test's time.
            training: { challenger: 'mf', mf: { epochs: 1000, patience: 1000, fullEpochs: 100 } },
          }),
        },
      ],
    });
    // Wait until the learned model is training (its heartbeats carry the epoch).
    let training = false;
    for (let i = 0; i < 600 && !training; i++) {
      const d = await handle.describe();
      training = (d.raw.pendingActivities ?? []).some(
        (a) => a.activityType?.name === 'trainLearned' && a.heartbeatDetails !== null,
      );
      if (!training) await new Promise((r) => setTimeout(r, 100));
    }
    expect(training).toBe(true);
    await handle.cancel();
    const err = await handle.result().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    expect((err as WorkflowFailedError).cause?.name).toBe('CancelledFailure');
    const events = (await handle.fetchHistory()).events ?? [];
    // The training activity acknowledged the cancellation (it did not run on to its end) ...
    const cancelled = events.findIndex((e) => e.activityTaskCanceledEventAttributes);
    expect(cancelled).toBeGreaterThan(-1);
    // ... before the run released its dataset lock (the saga's release is scheduled after it).
    const releaseScheduled = events.findIndex(
      (e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'releaseDatasetLock',
    );
    expect(releaseScheduled).toBeGreaterThan(cancelled);
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'locks', 'cancelled.json'), 'utf8')).holder).toBeNull();
    expect(fs.existsSync(path.join(dir, 'output', 'recommendations', 'current'))).toBe(false);
  });
});

describe('DP-SGD', () => {
  test('mf with privacy on trains with DP-SGD; the summary, manifest, registry and ledger show the spend', async () => {
    const dir = tempDir('mf-dp');
    const handle = await env.client.workflow.start('retrainPipeline', {
      taskQueue: 'recforge-cpu',
      workflowId: 'it-mf-dp',
      args: [
        {
          datasetId: 'mfdp',
          interactions: data.interactions,
          items: data.items,
          overrides: privateOverrides(dir, {
            training: { challenger: 'mf', mf: { dim: 16, checkpointEvery: 4 } },
            privacy: { dpSgd: { epochs: 2, fullEpochs: 1, samplingRate: 0.2 } },
          }),
        },
      ],
    });
    const summary = (await handle.result()) as RunSummary;
    expect(summary.status).toBe('completed');
    // DP-MF is evaluated on the same users as the baselines (its value may be small: it is noisy).
    expect(summary.metrics.mf.users).toBe(summary.metrics.mostpop.users);
    expect(Number.isFinite(summary.metrics.mf['ndcg@10'])).toBe(true);
    expect(summary.backend).toMatch(/duckdb-sql\+dp \+ tfjs-/);
    const p = summary.privacy!;
    expect(p.mechanism).toBe('discrete-gaussian + dp-sgd');
    // The run's total (counts + DP-SGD, composed in RDP) fills but never exceeds the run's ε = 4.
    expect(p.epsilon).toBeLessThanOrEqual(4);
    expect(p.epsilon).toBeGreaterThan(3.99);
    expect(p.rho).toBeNull();
    expect(p.params).toMatchObject({
      dpSgdMechanism: 'dp-sgd',
      dpSgdSteps: 15, // (2 + 1) epochs x ⌈1/0.2⌉ steps
      dpSgdStepsEval: 10,
      dpSgdStepsFull: 5,
      dpSgdClipNorm: 1,
      dpSgdDelta: 1e-6,
    });
    // The rate is rounded up to the sampler's 2^-32 grid, and accounted at that value.
    expect(p.params.dpSgdSamplingRate as number).toBeCloseTo(0.2, 9);
    expect(p.params.dpSgdSamplingRate as number).toBeGreaterThanOrEqual(0.2);
    expect(p.params.dpSgdNoiseMultiplier as number).toBeGreaterThan(0.3);
    expect(p.params.dpSgdEpsilon as number).toBeLessThan(4);
    const manifest = JSON.parse(
      fs.readFileSync(path.join(summary.outputDir!, 'current', '_manifest.json'), 'utf8'),
    ) as Manifest;
    expect(manifest.model).toBe('mf');
    expect(manifest.privacy).toEqual({
      epsilon: p.epsilon,
      delta: p.delta,
      rho: null,
      mechanism: p.mechanism,
      window: p.window,
      params: p.params,
    });
    const model = JSON.parse(
      fs.readFileSync(
        path.join(dir, 'registry', 'mfdp', 'models', summary.modelVersion, 'model.json'),
        'utf8',
      ),
    );
    expect(model.privacy.params.dpSgdNoiseMultiplier).toBe(p.params.dpSgdNoiseMultiplier);
    const ledger = JSON.stringify(
      JSON.parse(fs.readFileSync(path.join(dir, 'privacy-ledger', 'ledger.json'), 'utf8')),
    );
    // The DP-MF candidate lists name only released item ids (here the public catalogue).
    const catalogue = new Set(
      fs
        .readFileSync(data.items, 'utf8')
        .split('\n')
        .slice(1)
        .filter(Boolean)
        .map((l) => l.split(',')[0]),
    );
    const listed = await query(
      `SELECT DISTINCT item_id FROM read_parquet('${path.join(dir, 'runs', 'mfdp', summary.runId, 'models', 'mf-full.parquet')}')`,
    );
    expect(listed.length).toBeGreaterThan(0);
    for (const r of listed) expect(catalogue.has(String(r.item_id))).toBe(true);
    expect(ledger).toContain('dp-sgd');
    expect(ledger).toContain('committed');
    // Each variant was released once, with a marker a retried activity would reuse instead of drawing noise.
    const models = path.join(dir, 'runs', 'mfdp', summary.runId, 'models');
    for (const v of ['mf', 'mf-full']) {
      const marker = JSON.parse(fs.readFileSync(path.join(models, `dp-sgd-release-${v}.json`), 'utf8'));
      expect(marker.steps).toBe(v === 'mf' ? 10 : 5);
      expect(fs.existsSync(path.join(dir, marker.modelDir, 'model.json'))).toBe(true);
    }
    // A retried training activity (same plan, e.g. after its result was lost) reuses both released variants:
    // no training step runs and no new noise is drawn, so the reservation still covers the run.
    const released = ['mf', 'mf-full'].map((v) => {
      const m = JSON.parse(fs.readFileSync(path.join(models, `dp-sgd-release-${v}.json`), 'utf8'));
      const modelDir = path.join(dir, m.modelDir as string);
      return { dir: modelDir, mtime: fs.statSync(modelDir).mtimeMs };
    });
    // The very inputs the workflow gave the training activity, from its history.
    const scheduled = ((await handle.fetchHistory()).events ?? []).find(
      (e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'trainLearned',
    )!;
    const args = scheduled.activityTaskScheduledEventAttributes!.input!.payloads!.map((pl) =>
      JSON.parse(Buffer.from(pl.data!).toString('utf8')),
    ) as Parameters<ReturnType<typeof createTrainingActivities>['trainLearned']>;
    const again = await createTrainingActivities({ root: ROOT, dataDir: dir }).trainLearned(...args);
    expect(again.resumed).toEqual([
      { variant: 'mf', fromStep: 10 },
      { variant: 'mf-full', fromStep: 5 },
    ]);
    for (const r of released) expect(fs.statSync(r.dir).mtimeMs).toBe(r.mtime);
  });
});

describe('DP partition selection', () => {
  test('without an items file only item ids that pass the noisy threshold are released, anywhere', async () => {
    const dir = tempDir('partition-selection');
    const handle = await env.client.workflow.start('retrainPipeline', {
      taskQueue: 'recforge-cpu',
      workflowId: 'it-partition-selection',
      args: [
        {
          datasetId: 'nocatalogue',
          interactions: data.interactions,
          // A large ε so that this small population (300 users) clears the threshold for some items.
          overrides: privateOverrides(dir, {
            privacy: { epsilon: 60, budget: { epsilon: 100, delta: 1e-5 } },
          }),
        },
      ],
    });
    const summary = (await handle.result()) as RunSummary;
    expect(summary.privacy!.params).toMatchObject({ itemSelection: 'dp-partition-selection', releases: 5 });
    expect(summary.privacy!.mechanism).toBe('discrete-gaussian + dp-partition-selection');
    expect(summary.privacy!.utility!.partitionSelectionThreshold).toBe(
      summary.privacy!.params.partitionSelectionThreshold,
    );
    const runDir = path.join(dir, 'runs', 'nocatalogue', summary.runId);
    const keys = new Set(
      fs
        .readFileSync(path.join(runDir, 'models', 'dp-keys.csv'), 'utf8')
        .split('\n')
        .slice(1)
        .filter(Boolean)
        .map((k) => JSON.parse(k)),
    );
    const observed = await query(
      `SELECT count(DISTINCT item_id)::INT AS n FROM read_csv('${data.interactions}', all_varchar = true, header = true, ignore_errors = true)`,
    );
    expect(keys.size).toBeGreaterThan(0);
    expect(keys.size).toBeLessThan(Number(observed[0].n));
    for (const f of ['mostpop.parquet', 'mostpop-full.parquet', 'itemitem-full.parquet']) {
      const items = await query(
        `SELECT DISTINCT item_id FROM read_parquet('${path.join(runDir, 'models', f)}')`,
      );
      for (const r of items) expect(keys.has(String(r.item_id))).toBe(true);
    }
    // The test gates are open (testOverrides): the run publishes, so the output can be checked too.
    expect(summary.status).toBe('completed');
    {
      const current = path.join(summary.outputDir!, 'current');
      const listed = await query(
        `SELECT DISTINCT item_id FROM read_parquet(['${current}/part-00000.parquet', '${current}/_fallback/popular.parquet'])`,
      );
      for (const r of listed) expect(keys.has(String(r.item_id))).toBe(true);
      const report = JSON.parse(fs.readFileSync(path.join(current, '_report', 'report.json'), 'utf8'));
      expect(report.catalogueItems).toBe(keys.size);
    }
  });
});

describe('protected config keys', () => {
  test('a worker without the test switch refuses workflow-input overrides of privacy, dataDir or temporal', async () => {
    const { createWorkers } = await import('../../worker/workers');
    const { workflowBundle } = await import('../helpers/env');
    const strict = await createWorkers({
      root: ROOT,
      config: {
        ...testConfig(dataDir),
        temporal: {
          ...testConfig(dataDir).temporal,
          taskQueues: { cpu: 'strict-cpu', training: 'strict-training' },
        },
      },
      address: env.address,
      roles: ['cpu'],
      workflowBundle: await workflowBundle(),
    });
    const running = strict.run();
    try {
      const handle = await env.client.workflow.start('retrainPipeline', {
        taskQueue: 'strict-cpu',
        workflowId: 'it-protected',
        args: [
          {
            interactions: data.interactions,
            overrides: { privacy: { budget: { epsilon: 1000, delta: 1e-5, window: 'day' } } },
          },
        ],
      });
      const err = (await handle.result().catch((e) => e)) as WorkflowFailedError;
      expect(err).toBeInstanceOf(WorkflowFailedError);
      expect(rootMessage(err)).toMatch(
        /workflow input overrides: may not change the protected key privacy\.budget\.epsilon/,
      );
    } finally {
      strict.shutdown();
      await running.catch(() => undefined);
      await strict.close();
    }
  });
});
