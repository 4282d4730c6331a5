import * as fs from 'node:fs';
import * as path from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { startTemporal, tempDir, smallDataset } from '../helpers/env';
import {
  awsEnv,
  createBucket,
  queryBucket,
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

jest.setTimeout(600_000);

/**
 * Two workers on two "machines" (issue #17): two worker processes with their own data folders and working
 * directories, sharing only the Temporal server and the bucket. One run with `publish.shards: 4` must have its
 * shards scored on both, and the version assembled from them must be complete and correct: every user once, N
 * rows each, checksums as the manifest says, and the same recommendations as an unsharded run.
 */
let server: S3TestServer;
let env: TestWorkflowEnvironment;
const bucket = 'recforge-two';
const storageRoot = `s3://${bucket}/shared`;
const base = tempDir('s3-two');
let data: { interactions: string; items: string };
const machines: WorkerProcess[] = [];

beforeAll(async () => {
  // Each shard's upload is held a moment: a worker busy with two shards (its activity slots) cannot take the
  // others before the second worker's poll does, as on a real cluster where scoring a shard takes a while.
  server = await startS3Server({
    delays: [{ method: 'PUT', pattern: '/runs/[^/]+/[^/]+/publish/part-', ms: 1500 }],
  });
  await createBucket(server, bucket);
  // The input: a landing folder outside both machines' folders (whichever worker ingests reads it).
  data = await smallDataset(path.join(base, 'landing'));
  env = await startTemporal();
  for (const name of ['machine-a', 'machine-b']) {
    const home = path.join(base, name);
    machines.push(
      startWorkerProcess({
        address: env.address,
        dataDir: path.join(home, 'data'),
        cwd: home,
        env: { ...awsEnv(server), RECFORGE_STORAGE_ROOT: storageRoot },
      }),
    );
  }
}, 120_000);

afterAll(async () => {
  for (const w of machines) await stopWorkerProcess(w);
  if (env) await env.teardown();
  await server?.stop();
});

const logs = () => machines.map((w, i) => `--- worker ${i}\n${w.log.join('').slice(-3000)}`).join('\n');

async function run(datasetId: string, shards: number) {
  const handle = await env.client.workflow.start('retrainPipeline', {
    taskQueue: 'recforge-cpu',
    workflowId: `two-${datasetId}`,
    args: [
      {
        datasetId,
        interactions: data.interactions,
        items: data.items,
        overrides: processOverrides({ privacy: { enabled: false }, publish: { shards } }),
      },
    ],
  });
  const summary = (await handle.result().catch((err: Error) => {
    throw new Error(`${err.message}\n${logs()}`);
  })) as RunSummary;
  return { handle, summary };
}

test('a 4-shard run scores shards on both workers and publishes a complete, correct version', async () => {
  const { handle, summary } = await run('four', 4);
  expect(summary.status).toBe('completed');

  // Who scored which shard (the last, successful attempt of each): both machines took part.
  const shards = (await activityStarts(handle)).filter((s) => s.type === 'scorePublishShard');
  const byShard = new Map(shards.map((s) => [s.input[2] as number, s.identity]));
  expect([...byShard.keys()].sort()).toEqual([0, 1, 2, 3]);
  const pids = machines.map((w) => `${w.child.pid}@`);
  const ran = new Set([...byShard.values()].map((id) => pids.findIndex((p) => id.startsWith(p))));
  expect([...ran].sort()).toEqual([0, 1]);

  // Complete and correct, read from the bucket by pyarrow the documented way.
  const out = `${storageRoot}/output/recommendations/four`;
  const r = await readWithPyarrow(server, out);
  expect(r.version).toBe(summary.modelVersion);
  expect(r.checked).toHaveLength(5);
  expect(r.checked.every((c) => c.bytesOk && c.sha256Ok)).toBe(true);
  expect(r.rows).toBe(summary.published!.rows);
  expect([r.minRowsPerUser, r.maxRowsPerUser, r.minRank, r.maxRank]).toEqual([20, 20, 1, 20]);
  // Every user of the run's clean events, once: in exactly one part file, with ranks 1..20.
  const folder = `${out}/versions/${summary.modelVersion}`;
  const events = `${storageRoot}/runs/four/${summary.runId}/events.parquet`;
  const [c] = await queryBucket(
    server,
    storageRoot,
    `WITH recs AS (SELECT * FROM read_parquet('${folder}/part-*.parquet', filename = true))
     SELECT (SELECT count(DISTINCT user_id) FROM read_parquet('${events}'))::INT AS event_users,
            (SELECT count(DISTINCT user_id) FROM recs)::INT AS users,
            (SELECT count(*) FROM (SELECT user_id FROM recs GROUP BY 1 HAVING count(DISTINCT filename) > 1))::INT AS in_two,
            (SELECT count(*) FROM (SELECT user_id FROM recs GROUP BY 1
              HAVING count(*) <> 20 OR count(DISTINCT rank) <> 20 OR count(DISTINCT item_id) <> 20))::INT AS bad_lists`,
  );
  expect(c).toEqual({ event_users: r.users, users: r.users, in_two: 0, bad_lists: 0 });
  expect(r.users).toBe(summary.published!.users);

  // The same recommendations an unsharded run publishes.
  const one = await run('one', 1);
  const canonical = (ds: string, v: string) =>
    `(SELECT user_id, rank, item_id, score FROM read_parquet('${storageRoot}/output/recommendations/${ds}/versions/${v}/part-*.parquet'))`;
  const a = canonical('four', summary.modelVersion);
  const b = canonical('one', one.summary.modelVersion);
  const [d] = await queryBucket(
    server,
    storageRoot,
    `SELECT (SELECT count(*) FROM (SELECT * FROM ${a} EXCEPT ALL SELECT * FROM ${b}))::INT AS only_four,
            (SELECT count(*) FROM (SELECT * FROM ${b} EXCEPT ALL SELECT * FROM ${a}))::INT AS only_one`,
  );
  expect(d).toEqual({ only_four: 0, only_one: 0 });

  // Nothing but storage was shared: each machine's data folder holds only its own mirror of the bucket.
  for (const w of machines) expect(fs.readdirSync(w.dataDir)).toEqual(['mirror']);
});
