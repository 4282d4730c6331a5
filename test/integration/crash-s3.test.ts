import * as path from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { startTemporal, tempDir, smallDataset } from '../helpers/env';
import {
  awsEnv,
  createBucket,
  readWithPyarrow,
  startS3Server,
  type S3TestServer,
} from '../helpers/s3-server';
import {
  activityStarts,
  processOverrides,
  startWorkerProcess,
  stopWorkerProcess,
  type WorkerProcess,
} from '../helpers/worker-process';
import type { RunSummary } from '../../contracts/stages';
import type { LivePointer, ModelRecord } from '../../contracts/registry';
import type { Manifest } from '../../activities/support/publishing';
import { S3Storage } from '../../lib/storage';

jest.setTimeout(600_000);

/**
 * kill -9 during publish and during promote, with storage on S3 (issue #17). The server holds every upload of a
 * version's part file and every write of the live pointer for a while, so a worker can be killed while exactly
 * that request is in flight. Readers following the pointer must see the previous version, whole, until the new
 * one is live; the workflow's retry on another worker must finish the job with pointer, manifest and registry in
 * agreement, and no move recorded twice.
 */
let server: S3TestServer;
let env: TestWorkflowEnvironment;
const bucket = 'recforge-crash';
const storageRoot = `s3://${bucket}/crash`;
const outputKey = 'output/recommendations/synthetic';
const outputUri = `${storageRoot}/${outputKey}`;
const base = tempDir('s3-crash');
let store: S3Storage;
let data: { interactions: string; items: string };
const workers: WorkerProcess[] = [];

function worker(name: string): WorkerProcess {
  const w = startWorkerProcess({
    address: env.address,
    dataDir: path.join(base, name),
    env: { ...awsEnv(server), RECFORGE_STORAGE_ROOT: storageRoot },
  });
  workers.push(w);
  return w;
}

beforeAll(async () => {
  server = await startS3Server({
    delays: [
      { method: 'PUT', pattern: '/versions/[^/]+/part-', ms: 2500 },
      { method: 'PUT', pattern: '/_current\\.json$', ms: 2500 },
    ],
  });
  await createBucket(server, bucket);
  store = new S3Storage(storageRoot, server.env);
  // The input is read by whichever worker ingests: a landing folder outside every worker's data folder.
  data = await smallDataset(path.join(base, 'landing'));
  env = await startTemporal();
}, 120_000);

afterAll(async () => {
  for (const w of workers) await stopWorkerProcess(w);
  if (env) await env.teardown();
  await server?.stop();
});

const json = async <T>(key: string): Promise<T | null> => {
  const o = await store.get(key);
  return o ? (JSON.parse(o.body.toString('utf8')) as T) : null;
};

function start(workflowId: string) {
  return env.client.workflow.start('retrainPipeline', {
    taskQueue: 'recforge-cpu',
    workflowId,
    args: [
      {
        interactions: data.interactions,
        items: data.items,
        overrides: processOverrides({ privacy: { enabled: false }, publish: { shards: 2 } }),
      },
    ],
  });
}

const logs = () => workers.map((w, i) => `--- worker ${i}\n${w.log.join('').slice(-3000)}`).join('\n');

test('a worker killed while uploading the version, another while moving the pointer: the run completes', async () => {
  const a = worker('a');
  const first = (await (await start('s3-crash-1')).result()) as RunSummary;
  expect(first.status).toBe('completed');
  const v1 = first.modelVersion;

  // Kill A while the second part file of the new version is being uploaded (the first one is in the bucket).
  const firstPart = server.nextDelayed(/\/versions\/[^/]+\/part-/);
  const handle = await start('s3-crash-2');
  await firstPart;
  await server.nextDelayed(/\/versions\/[^/]+\/part-/);
  a.child.kill('SIGKILL');
  await a.exited();

  // Readers still get the previous version, whole: the pointer has not moved and its manifest checks out.
  const during = await readWithPyarrow(server, outputUri);
  expect(during.version).toBe(v1);
  expect(during.checked.every((c) => c.bytesOk && c.sha256Ok)).toBe(true);
  const v2Folders = (await store.list(`${outputKey}/versions`)).filter((k) => !k.includes(`/${v1}/`));
  expect(v2Folders.length).toBeGreaterThan(0); // half a version is there …
  expect(v2Folders.some((k) => k.endsWith('/_manifest.json'))).toBe(false); // … without a manifest

  // B takes the retried publish over; kill it while its pointer write is in flight.
  const pointerWrite = server.nextDelayed(/\/_current\.json$/);
  const b = worker('b');
  await pointerWrite;
  b.child.kill('SIGKILL');
  await b.exited();
  // The swap may or may not have landed: either way the pointer names a whole version.
  await new Promise((r) => setTimeout(r, 3000));
  const between = await readWithPyarrow(server, outputUri);
  expect(between.checked.every((c) => c.bytesOk && c.sha256Ok)).toBe(true);

  const c = worker('c');
  const second = (await handle.result().catch((err: Error) => {
    throw new Error(`${err.message}\n${logs()}`);
  })) as RunSummary;
  expect(second.status).toBe('completed');
  const v2 = second.modelVersion;
  expect([between.version === v1, between.version === v2]).toContain(true);

  // Pointer, manifest and registry agree; the promotion is recorded once although it ran twice.
  const pointer = (await json<LivePointer>(`${outputKey}/_current.json`))!;
  expect([pointer.version, pointer.previous]).toEqual([v2, v1]);
  expect(pointer.history.map((m) => [m.kind, m.version])).toEqual([
    ['promote', v1],
    ['promote', v2],
  ]);
  const manifest = (await json<Manifest>(`${outputKey}/${pointer.manifest}`))!;
  expect([manifest.modelVersion, manifest.runId]).toEqual([v2, second.runId]);
  const record = (await json<ModelRecord>(`registry/synthetic/models/${v2}/model.json`))!;
  expect([record.runId, record.parentVersion]).toEqual([second.runId, v1]);
  const after = await readWithPyarrow(server, outputUri);
  expect(after.version).toBe(v2);
  expect(after.checked.every((x) => x.bytesOk && x.sha256Ok)).toBe(true);
  expect(after.rows).toBe(second.published!.rows);
  // The folder holds exactly what the manifest lists (the killed attempt's uploads were the same objects).
  const folder = `${outputKey}/versions/${v2}/`;
  const keys = (await store.list(`${outputKey}/versions/${v2}`)).map((k) => k.slice(folder.length));
  expect(keys.sort()).toEqual(
    [
      ...manifest.files.map((f) => f.path),
      manifest.fallback.path,
      manifest.report.json,
      manifest.report.html,
      '_manifest.json',
    ].sort(),
  );
  expect((await json<{ holder: unknown }>('locks/synthetic.json'))!.holder).toBeNull();

  // The history says who did what: publish retried on B, promotion retried on C.
  const starts = await activityStarts(handle);
  const last = (type: string) => starts.filter((s) => s.type === type).at(-1)!;
  expect(last('publishVersion').attempt).toBeGreaterThanOrEqual(2);
  expect(last('publishVersion').identity.startsWith(`${b.child.pid}@`)).toBe(true);
  expect(last('promoteCandidate').attempt).toBeGreaterThanOrEqual(2);
  expect(last('promoteCandidate').identity.startsWith(`${c.child.pid}@`)).toBe(true);
});
