import * as fs from 'node:fs';
import * as path from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import {
  startTemporal,
  startWorkers,
  tempDir,
  testConfig,
  testOverrides,
  testPrivateOverrides,
  smallDataset,
  stopSuite,
} from '../helpers/env';
import {
  awsEnv,
  createBucket,
  queryBucket,
  readWithPyarrow,
  startS3Server,
  type S3TestServer,
} from '../helpers/s3-server';
import type { AliasResult, RunSummary } from '../../contracts/stages';
import type { LivePointer, ModelRecord } from '../../contracts/registry';
import type { Manifest } from '../../activities/support/publishing';
import { S3Storage } from '../../lib/storage';
import type { Watermark } from '../../analytics/incremental';
import { rebuildStoredReport } from '../../activities/report';

jest.setTimeout(600_000);

/**
 * The whole pipeline with storage on a local S3 API server (issue #17): runs, registry, published output, the
 * dataset lock, the privacy ledger and the run report all live in the bucket; the worker's data folder holds only
 * its scratch mirror. Promote and rollback move the pointer in the bucket, and the published output is read back
 * from the bucket by DuckDB (httpfs) and by pyarrow, following `_current.json` as downstream readers do.
 */
let server: S3TestServer;
let env: TestWorkflowEnvironment;
let workers: Awaited<ReturnType<typeof startWorkers>>;
const bucket = 'recforge-it';
const storageRoot = `s3://${bucket}/pipeline`;
const dataDir = tempDir('s3-pipeline');
const savedEnv = { ...process.env };
let data: { interactions: string; items: string };
let store: S3Storage;
const outputKey = 'output/recommendations/synthetic';
const outputUri = `${storageRoot}/${outputKey}`;

beforeAll(async () => {
  server = await startS3Server();
  await createBucket(server, bucket);
  // The in-process workers' S3 clients (and DuckDB's secret) take credentials from the environment only.
  Object.assign(process.env, awsEnv(server));
  store = new S3Storage(storageRoot, server.env);
  data = await smallDataset(path.join(dataDir, 'input'));
  env = await startTemporal();
  workers = await startWorkers(env, testConfig(dataDir));
}, 120_000);

afterAll(async () => {
  await stopSuite(workers, env);
  await server?.stop();
  process.env = savedEnv;
});

// Privacy on (as the main local suite): the ledger and its compare-and-swap live in the bucket too.
const overrides = (extra: Record<string, unknown> = {}) =>
  testPrivateOverrides(dataDir, 'it-s3-users', {
    storage: { root: storageRoot },
    publish: { shards: 3 },
    ...extra,
  });

let n = 0;
async function retrain(): Promise<RunSummary> {
  const handle = await env.client.workflow.start('retrainPipeline', {
    taskQueue: 'recforge-cpu',
    workflowId: `s3-retrain-${++n}`,
    args: [{ interactions: data.interactions, items: data.items, overrides: overrides() }],
  });
  return (await handle.result()) as RunSummary;
}

async function alias(type: 'promoteModel' | 'rollbackModel', input: Record<string, unknown>) {
  const handle = await env.client.workflow.start(type, {
    taskQueue: 'recforge-cpu',
    workflowId: `s3-${type}-${++n}`,
    args: [{ overrides: overrides(), ...input }],
  });
  return (await handle.result()) as AliasResult;
}

const json = async <T>(key: string): Promise<T> =>
  JSON.parse((await store.get(key))!.body.toString('utf8')) as T;

describe('retrainPipeline with storage on S3', () => {
  let first: RunSummary;
  let second: RunSummary;

  beforeAll(async () => {
    first = await retrain();
  });

  test('completes and keeps every artifact and state document in the bucket, none in the data folder', async () => {
    expect(first.status).toBe('completed');
    expect(first.outputDir).toBe(outputUri);
    const runKey = `runs/synthetic/${first.runId}`;
    const keys = await store.list(runKey);
    for (const k of [
      'plan.json',
      'profile.json',
      'events.parquet',
      'evaluation.json',
      'summary.json',
      'report.html',
    ])
      expect(keys).toContain(`${runKey}/${k}`);
    expect(keys.filter((k) => k.startsWith(`${runKey}/publish/part-`))).toHaveLength(3);
    expect(await store.exists(`registry/synthetic/models/${first.modelVersion}/model.json`)).toBe(true);
    expect((await json<{ holder: unknown }>('locks/synthetic.json')).holder).toBeNull();
    expect((await store.list('privacy-ledger')).length).toBeGreaterThan(0);
    expect(await store.exists('reports/synthetic/index.html')).toBe(true);
    // The report points into the bucket, and the worker's data folder holds only its mirror.
    expect(first.report!.html).toBe(store.uri(`${runKey}/report.html`));
    expect(fs.readdirSync(dataDir).sort()).toEqual(['input', 'mirror']);
    const report = (await store.get(`${runKey}/report.html`))!.body.toString('utf8');
    // The report's samples came from the published parts, fetched from the bucket into the mirror.
    expect(report).toContain(first.modelVersion);
  });

  test('the pointer, the manifest and the registry agree', async () => {
    const pointer = await json<LivePointer>(`${outputKey}/_current.json`);
    expect(pointer.version).toBe(first.modelVersion);
    expect(pointer.history.map((m) => m.kind)).toEqual(['promote']);
    const manifest = await json<Manifest>(`${outputKey}/${pointer.manifest}`);
    expect(manifest.modelVersion).toBe(first.modelVersion);
    expect(manifest.files.map((f) => f.path)).toEqual([
      'part-00000.parquet',
      'part-00001.parquet',
      'part-00002.parquet',
    ]);
    const record = await json<ModelRecord>(`registry/synthetic/models/${first.modelVersion}/model.json`);
    expect(record.runId).toBe(first.runId);
    expect(record.artifacts.full.startsWith(`runs/synthetic/${first.runId}/`)).toBe(true);
  });

  test('DuckDB reads the live version from the bucket through httpfs, following the pointer', async () => {
    const q = (sql: string) => queryBucket(server, storageRoot, sql);
    const [p] = await q(`SELECT content FROM read_text('${outputUri}/_current.json')`);
    const pointer = JSON.parse(String(p.content)) as LivePointer;
    const [m] = await q(`SELECT content FROM read_text('${outputUri}/${pointer.manifest}')`);
    const manifest = JSON.parse(String(m.content)) as Manifest;
    const folder = `${outputUri}/${pointer.path}`;
    for (const f of [...manifest.files, manifest.fallback]) {
      const [b] = await q(
        `SELECT size::INT AS size, sha256(content) AS sha FROM read_blob('${folder}/${f.path}')`,
      );
      expect([b.size, b.sha]).toEqual([f.bytes, f.sha256]);
    }
    const [c] = await q(`SELECT count(*)::INT AS n, count(DISTINCT user_id)::INT AS users,
        count(DISTINCT (user_id, rank))::INT AS distinct_ranks, max(rank)::INT AS max_rank,
        count(DISTINCT model_version)::INT AS versions, any_value(model_version) AS version
      FROM read_parquet('${folder}/*.parquet')`);
    expect(c.n).toBe(first.published!.rows);
    expect(c.users).toBe(first.published!.users);
    expect(c.distinct_ranks).toBe(c.n);
    expect(c.max_rank).toBe(20);
    expect([c.versions, c.version]).toEqual([1, first.modelVersion]);
    // Shards partition the users: nobody is in two part files.
    const [d] = await q(`SELECT count(*)::INT AS users_in_two_parts FROM (
        SELECT user_id FROM read_parquet('${folder}/part-*.parquet', filename = true)
        GROUP BY user_id HAVING count(DISTINCT filename) > 1)`);
    expect(d.users_in_two_parts).toBe(0);
  });

  test('pyarrow reads it from the bucket the documented way: pointer, manifest, checksums, dataset', async () => {
    const r = await readWithPyarrow(server, outputUri);
    expect(r.version).toBe(first.modelVersion);
    expect(r.manifestVersion).toBe(first.modelVersion);
    expect(r.checked).toHaveLength(4);
    expect(r.checked.every((c) => c.bytesOk && c.sha256Ok)).toBe(true);
    expect(r.listed).toEqual([
      '_fallback',
      '_manifest.json',
      '_report',
      'part-00000.parquet',
      'part-00001.parquet',
      'part-00002.parquet',
    ]);
    expect(r.rows).toBe(first.published!.rows);
    expect(r.users).toBe(first.published!.users);
    expect(r.columns).toEqual(['user_id', 'rank', 'item_id', 'score', 'model_version', 'generated_at']);
    expect([r.minRank, r.maxRank, r.maxRowsPerUser]).toEqual([1, 20, 20]);
  });

  test('a second run replaces it; rollback and promote move the pointer in the bucket', async () => {
    second = await retrain();
    expect(second.status).toBe('completed');
    expect(second.registry).toEqual({ champion: second.modelVersion, previous: first.modelVersion });

    const back = await alias('rollbackModel', { reason: 'it: roll back on S3' });
    expect(back).toEqual({
      champion: first.modelVersion,
      previous: second.modelVersion,
      currentPath: store.uri(`${outputKey}/_current.json`),
    });
    expect((await readWithPyarrow(server, outputUri)).version).toBe(first.modelVersion);

    const fwd = await alias('promoteModel', { version: second.modelVersion, reason: 'it: promote on S3' });
    expect([fwd.champion, fwd.previous]).toEqual([second.modelVersion, first.modelVersion]);
    const pointer = await json<LivePointer>(`${outputKey}/_current.json`);
    expect(pointer.history.map((m) => [m.kind, m.version])).toEqual([
      ['promote', first.modelVersion],
      ['promote', second.modelVersion],
      ['rollback', first.modelVersion],
      ['set', second.modelVersion],
    ]);
    const r = await readWithPyarrow(server, outputUri);
    expect(r.version).toBe(second.modelVersion);
    expect(r.checked.every((c) => c.bytesOk && c.sha256Ok)).toBe(true);
    // Both versions are kept (keepVersions 5), and the index lists both runs.
    const versions = new Set((await store.list(`${outputKey}/versions`)).map((k) => k.split('/')[4]));
    expect([...versions].sort()).toEqual([first.modelVersion, second.modelVersion].sort());
    const index = (await store.get('reports/synthetic/index.html'))!.body.toString('utf8');
    expect(index).toContain(first.modelVersion);
    expect(index).toContain(second.modelVersion);
  });

  test("`recforge report` rebuilds a run's report from the bucket on a machine that has none of its files", async () => {
    const runKey = `runs/synthetic/${first.runId}`;
    await store.delete(`${runKey}/report.html`);
    await store.delete('reports/synthetic/index.html');
    const elsewhere = tempDir('s3-report');
    const config = testConfig(elsewhere);
    config.storage.root = storageRoot;
    const paths = await rebuildStoredReport(config, 'synthetic', { runId: first.runId });
    expect(paths).toEqual({
      html: store.uri(`${runKey}/report.html`),
      index: store.uri('reports/synthetic/index.html'),
    });
    const html = (await store.get(`${runKey}/report.html`))!.body.toString('utf8');
    expect(html).toContain(first.modelVersion);
    // The sample recommendations come from the published parts, fetched into this machine's mirror.
    expect(
      fs.readdirSync(path.join(elsewhere, 'mirror', bucket, 'pipeline', ...outputKey.split('/'), 'versions')),
    ).toContain(first.modelVersion);
    const index = (await store.get('reports/synthetic/index.html'))!.body.toString('utf8');
    expect(index).toContain(second.modelVersion);
    // Without a run id: the most recently started run; --index-only rebuilds just the index.
    expect((await rebuildStoredReport(config, 'synthetic')).html).toBe(
      store.uri(`runs/synthetic/${second.runId}/report.html`),
    );
    await store.delete('reports/synthetic/index.html');
    expect(await rebuildStoredReport(config, 'synthetic', { indexOnly: true })).toEqual({
      index: store.uri('reports/synthetic/index.html'),
    });
    expect(await store.exists('reports/synthetic/index.html')).toBe(true);
  });
});

describe('user shards on one worker', () => {
  /** user_id, rank, item_id, score of a dataset's live version, read from the bucket by DuckDB. */
  async function canonical(datasetId: string) {
    const out = `${storageRoot}/output/recommendations/${datasetId}`;
    const [p] = await queryBucket(
      server,
      storageRoot,
      `SELECT content FROM read_text('${out}/_current.json')`,
    );
    const pointer = JSON.parse(String(p.content)) as LivePointer;
    return `(SELECT user_id, rank, item_id, score FROM read_parquet('${out}/${pointer.path}/part-*.parquet'))`;
  }

  test('4 shards publish exactly what 1 shard does (same seed, privacy off)', async () => {
    const summaries: Record<string, RunSummary> = {};
    for (const shards of [1, 4]) {
      const handle = await env.client.workflow.start('retrainPipeline', {
        taskQueue: 'recforge-cpu',
        workflowId: `s3-shards-${shards}`,
        // Each its dataset's first run: nothing from an earlier run (id maps, champion) differs between them.
        args: [
          {
            datasetId: `shards${shards}`,
            interactions: data.interactions,
            items: data.items,
            overrides: testOverrides(dataDir, {
              storage: { root: storageRoot },
              privacy: { enabled: false },
              publish: { shards },
            }),
          },
        ],
      });
      summaries[shards] = (await handle.result()) as RunSummary;
    }
    const one = await canonical('shards1');
    const four = await canonical('shards4');
    const [c] = await queryBucket(
      server,
      storageRoot,
      `SELECT (SELECT count(*) FROM ${one})::INT AS one, (SELECT count(*) FROM ${four})::INT AS four,
              (SELECT count(*) FROM (SELECT * FROM ${one} EXCEPT ALL SELECT * FROM ${four}))::INT AS only_one,
              (SELECT count(*) FROM (SELECT * FROM ${four} EXCEPT ALL SELECT * FROM ${one}))::INT AS only_four`,
    );
    expect(c.one).toBe(summaries[1].published!.rows);
    expect(c.one).toBeGreaterThan(1000);
    expect(c).toEqual({ one: c.one, four: c.one, only_one: 0, only_four: 0 });
    // And the four parts really split the users: each holds some, none holds a user of another.
    const folder = `${storageRoot}/output/recommendations/shards4/versions/${summaries[4].modelVersion}`;
    const parts = await queryBucket(
      server,
      storageRoot,
      `SELECT parse_filename(filename) AS part, count(DISTINCT user_id)::INT AS users,
              count(DISTINCT user_id) FILTER (WHERE user_id IN (
                SELECT user_id FROM read_parquet('${folder}/part-*.parquet', filename = true) x
                WHERE x.filename <> p.filename))::INT AS shared
       FROM read_parquet('${folder}/part-*.parquet', filename = true) p GROUP BY ALL ORDER BY part`,
    );
    expect(parts.map((r) => r.part)).toEqual([0, 1, 2, 3].map((i) => `part-0000${i}.parquet`));
    for (const r of parts) expect([Number(r.users) > 0, r.shared]).toEqual([true, 0]);
  });
});

describe('incremental runs on S3', () => {
  test('day 2 on a worker with an empty mirror reads only the new file and trains on both partitions from the bucket', async () => {
    const drop = path.join(dataDir, 'drop');
    fs.mkdirSync(drop, { recursive: true });
    const [header, ...lines] = fs.readFileSync(data.interactions, 'utf8').trimEnd().split('\n');
    const half = Math.floor(lines.length / 2);
    const fileA = path.join(drop, 'events-a.csv');
    const fileB = path.join(drop, 'events-b.csv');
    fs.writeFileSync(fileA, [header, ...lines.slice(0, half)].join('\n') + '\n');
    const run = async (workflowId: string, runDate: string) => {
      const handle = await env.client.workflow.start('retrainPipeline', {
        taskQueue: 'recforge-cpu',
        workflowId,
        args: [
          {
            datasetId: 'inc',
            interactions: drop,
            runDate,
            overrides: testOverrides(dataDir, {
              storage: { root: storageRoot },
              dataset: { incremental: { enabled: true, historyDays: 365 } },
              privacy: { enabled: false },
              quality: { minRows: 100, maxDriftPsi: 100, maxVolumeChange: 100 },
            }),
          },
        ],
      });
      return (await handle.result()) as RunSummary;
    };
    const day1 = await run('s3-inc-day1', '2026-03-01');
    // Another worker, as far as the run can tell: nothing of day 1 is left on this machine.
    fs.rmSync(path.join(dataDir, 'mirror'), { recursive: true, force: true });
    fs.writeFileSync(fileB, [header, ...lines.slice(half)].join('\n') + '\n');
    const day2 = await run('s3-inc-day2', '2026-03-02');
    expect(day1.input!.files).toEqual([fileA]);
    expect(day2.input!.files).toEqual([fileB]);

    // The watermark is a document in the bucket; its partitions are objects there.
    const wm = await json<Watermark>('state/inc/watermark.json');
    expect(wm.entries.map((e) => [e.runDate, e.files.map((f) => f.path)])).toEqual([
      ['2026-03-01', [fileA]],
      ['2026-03-02', [fileB]],
    ]);
    const [a, b] = wm.entries;
    for (const e of wm.entries) expect(await store.exists(e.partition)).toBe(true);
    // Day 2's training window is both partitions, read back from the bucket.
    const [c] = await queryBucket(
      server,
      storageRoot,
      `SELECT (SELECT count(*) FROM read_parquet('${store.uri(`runs/inc/${day2.runId}/events-window.parquet`)}'))::INT AS window,
              (SELECT count(*) FROM read_parquet('${store.uri(a.partition)}') p
                 ANTI JOIN read_parquet('${store.uri(`runs/inc/${day2.runId}/events-window.parquet`)}') e
                 USING (user_id, item_id, event_type, ts))::INT AS missing_from_a`,
    );
    expect(c).toEqual({ window: a.rows + b.rows, missing_from_a: 0 });
    expect(day2.rows.kept).toBe(a.rows + b.rows);
  });
});
