import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { DuckDBInstance } from '@duckdb/node-api';
import {
  bundleWorkflowCode,
  Runtime,
  DefaultLogger,
  makeTelemetryFilterString,
  type WorkflowBundle,
} from '@temporalio/worker';
import { deepMerge, loadConfig, findProjectRoot, type RecforgeConfig } from '../../lib/config';
import { requireTemporalCli } from '../../lib/temporal/cli-locator';
import { ALL_SEARCH_ATTRIBUTES } from '../../contracts/search-attributes';
import { createWorkers, type QueueRole, type WorkerSet } from '../../worker/workers';

export const ROOT = findProjectRoot(__dirname);

let runtimeInstalled = false;
function quietRuntime(): void {
  if (runtimeInstalled) return;
  runtimeInstalled = true;
  try {
    Runtime.install({
      logger: new DefaultLogger('ERROR'),
      shutdownSignals: [],
      // The SDK core's own warnings (a cancelled activity completing late, slow workflow tasks on a loaded
      // machine) go to the test logger at ERROR instead of straight to stderr.
      telemetryOptions: {
        logging: { forward: {}, filter: makeTelemetryFilterString({ core: 'ERROR', other: 'ERROR' }) },
      },
    });
  } catch {
    // Already installed by another helper in this test file.
  }
}

/** A real Temporal dev server (the project's CLI binary via existing-path), never a download. */
export async function startTemporal(): Promise<TestWorkflowEnvironment> {
  quietRuntime();
  return TestWorkflowEnvironment.createLocal({
    server: {
      executable: { type: 'existing-path', path: requireTemporalCli(ROOT).path },
      searchAttributes: ALL_SEARCH_ATTRIBUTES,
      log: { format: 'pretty', level: 'error' },
    },
  });
}

let bundle: Promise<WorkflowBundle> | undefined;
/** One workflow bundle per test file: bundling is the slow part of starting a worker. */
export function workflowBundle(): Promise<WorkflowBundle> {
  bundle ??= bundleWorkflowCode({
    workflowsPath: require.resolve('../../workflows'),
    logger: new DefaultLogger('ERROR'),
  });
  return bundle;
}

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `recforge-${prefix}-`));
}

/**
 * Config overrides that keep a test's state in its own folder and its timeouts short. The quality gates
 * are opened up: test datasets are tiny (and differentially private), and these tests exercise the
 * machinery; the gates themselves are tested in test/unit/metrics.test.ts and test/integration/registry.test.ts.
 */
export function testOverrides(dataDir: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  // The machinery tests train item-item (seconds); the default challenger (blend, tuned) has its own tests.
  const base = deepMerge({ training: { challenger: 'itemitem' } }, extra);
  return {
    dataDir,
    gates: { minimums: { ndcg: 0, coverage: 0 }, mostPopMargin: -1, maxRegression: 1 },
    ...base,
    temporal: {
      activities: {
        heartbeatTimeout: '5s',
        startToCloseTimeout: '10m',
        trainingStartToCloseTimeout: '10m',
        maximumAttempts: 3,
      },
      ...((base.temporal as Record<string, unknown>) ?? {}),
    },
  };
}

/**
 * testOverrides with differential privacy on for a test population `unit`: the small dataset spans
 * 2026-09-01..29, so its last week is the holdout, cut at a public instant.
 */
export function testPrivateOverrides(
  dataDir: string,
  unit: string,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return testOverrides(
    dataDir,
    deepMerge({ privacy: { enabled: true, unit }, evaluation: { cutoff: '2026-09-22T00:00:00Z' } }, extra),
  );
}

export function testConfig(dataDir: string): RecforgeConfig {
  return loadConfig({ root: ROOT, overrides: testOverrides(dataDir), env: {} }).config;
}

export async function startWorkers(
  env: TestWorkflowEnvironment,
  config: RecforgeConfig,
  roles: QueueRole[] = ['cpu', 'training'],
): Promise<{ set: WorkerSet; running: Promise<void> }> {
  const set = await createWorkers({
    root: ROOT,
    config,
    address: env.address,
    roles,
    workflowBundle: await workflowBundle(),
    // Tests point each run at its own data folder and shorten timeouts through workflow-input overrides.
    allowProtectedOverrides: true,
  });
  const running = set.run();
  return { set, running };
}

export async function stopWorkers(w: { set: WorkerSet; running: Promise<void> }): Promise<void> {
  w.set.shutdown();
  await w.running.catch(() => undefined);
  await w.set.close();
}

/** A small, seeded synthetic dataset (the bundled generator at test scale). */
export async function smallDataset(
  dir: string,
  events = 20000,
): Promise<{ interactions: string; items: string }> {
  const { generateDataset } = await import('../../datasets/synthetic');
  await generateDataset({
    users: 300,
    items: 200,
    events,
    seed: 7,
    out: dir,
    dirtyRate: 0.02,
    botUsers: 2,
    days: 28,
  });
  return { interactions: path.join(dir, 'interactions.csv'), items: path.join(dir, 'items.csv') };
}

type Workers = Awaited<ReturnType<typeof startWorkers>>;

/**
 * What most integration suites start in `beforeAll`: the small dataset in `input` (default `<dataDir>/input`),
 * the dev server, and the cpu and training workers configured for `dataDir`.
 */
export async function startSuite(
  dataDir: string,
  opts: { input?: string; events?: number } = {},
): Promise<{
  data: { interactions: string; items: string };
  env: TestWorkflowEnvironment;
  workers: Workers;
}> {
  const data = await smallDataset(opts.input ?? path.join(dataDir, 'input'), opts.events);
  const env = await startTemporal();
  const workers = await startWorkers(env, testConfig(dataDir));
  return { data, env, workers };
}

/** The suite's `afterAll`: the workers, then the server, whichever of them started. */
export async function stopSuite(workers?: Workers, env?: TestWorkflowEnvironment): Promise<void> {
  if (workers) await stopWorkers(workers);
  if (env) await env.teardown();
}

/** The innermost failure message: WorkflowFailedError → ActivityFailure → ApplicationFailure. */
export function rootMessage(err: unknown): string {
  let e = err as { message?: string; cause?: unknown } | undefined;
  let msg = '';
  while (e) {
    msg = e.message ?? msg;
    e = e.cause as typeof e;
  }
  return msg;
}

/**
 * Runs SQL in a fresh DuckDB (in memory, or a file opened read-only) and returns JSON-friendly rows: tests read
 * what the pipeline wrote with an engine of their own, not through the code under test.
 */
export async function queryDuckDb(sql: string, dbFile = ':memory:'): Promise<Record<string, unknown>[]> {
  const db = await DuckDBInstance.create(dbFile, dbFile === ':memory:' ? {} : { access_mode: 'READ_ONLY' });
  const c = await db.connect();
  try {
    return (await c.runAndReadAll(sql)).getRowObjectsJson() as Record<string, unknown>[];
  } finally {
    c.closeSync();
    db.closeSync();
  }
}

/**
 * With RECORD_HISTORIES=1, writes a finished workflow's history to test/histories/<name>.json for the replay test,
 * in the Temporal CLI's JSON (the format Worker.runReplayHistory reads back). A no-op otherwise.
 */
export function recordHistory(address: string, workflowId: string, name: string): void {
  if (!process.env.RECORD_HISTORIES) return;
  const json = execFileSync(requireTemporalCli(ROOT).path, [
    'workflow',
    'show',
    '--address',
    address,
    '-w',
    workflowId,
    '-o',
    'json',
  ]);
  fs.writeFileSync(path.join(ROOT, 'test', 'histories', `${name}.json`), json);
}
