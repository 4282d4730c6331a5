import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import {
  startTemporal,
  startWorkers,
  tempDir,
  testConfig,
  testOverrides,
  ROOT,
  stopSuite,
} from '../helpers/env';
import type { RunSummary } from '../../contracts/stages';

jest.setTimeout(300_000);

/**
 * The pipeline on real data: MovieLens latest-small, fetched by `datasets fetch movielens` (GroupLens, or
 * Debian's r-cran-dslabs offline — CI installs it). Skipped, loudly, only where neither source exists.
 */
const hasR =
  spawnSync('Rscript', ['-e', 'suppressMessages(library(dslabs))'], { encoding: 'utf8' }).status === 0;
const maybe = hasR || process.env.CI ? test : test.skip;
if (!hasR && !process.env.CI)
  console.warn('movielens.test: Rscript with dslabs not installed; skipping (CI installs it)');

let env: TestWorkflowEnvironment | undefined;
let workers: Awaited<ReturnType<typeof startWorkers>> | undefined;
afterAll(() => stopSuite(workers, env));

maybe('retrainPipeline runs on MovieLens with the movielens overlay', async () => {
  const dataDir = tempDir('movielens');
  const out = path.join(dataDir, 'datasets', 'movielens');
  const fetch = spawnSync(
    process.execPath,
    [
      path.join(ROOT, 'bin', 'recforge.js'),
      'datasets',
      'fetch',
      'movielens',
      '--out',
      out,
      '--source',
      'dslabs',
    ],
    {
      encoding: 'utf8',
    },
  );
  expect(fetch.status).toBe(0);
  expect(fs.existsSync(path.join(out, 'ratings.csv'))).toBe(true);

  env = await startTemporal();
  workers = await startWorkers(env, testConfig(dataDir));
  const handle = await env.client.workflow.start('retrainPipeline', {
    taskQueue: 'recforge-cpu',
    workflowId: 'it-movielens',
    args: [{ config: path.join(ROOT, 'configs', 'movielens.yaml'), overrides: testOverrides(dataDir) }],
  });
  const summary = (await handle.result()) as RunSummary;
  expect(summary.datasetId).toBe('movielens');
  expect(summary.rows.ingested).toBe(100004);
  expect(summary.rows.quarantined).toBe(0);
  for (const model of ['mostpop', 'itemitem']) {
    // 671 raters; 657 of them have a positive (rating >= 4) among their held-out ratings: the relevant items.
    expect(summary.metrics[model].users).toBe(657);
    expect(summary.metrics[model]['ndcg@10']).toBeGreaterThan(0.01);
  }
  // Whatever the gates decide, the outcome is consistent: published iff promoted.
  expect(summary.status).toBe(summary.gate.decision === 'promote' ? 'completed' : 'rejected');
  expect(fs.existsSync(path.join(dataDir, 'output', 'recommendations', 'movielens', 'current'))).toBe(
    summary.status === 'completed',
  );
});
