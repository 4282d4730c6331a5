import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { startTemporal, tempDir, testOverrides, smallDataset, ROOT, recordHistory } from '../helpers/env';
import type { RunSummary } from '../../contracts/stages';

jest.setTimeout(300_000);

/**
 * A worker process killed (SIGKILL, no cleanup) in the middle of the pipeline: a new worker picks the run up
 * and it completes, because activities are idempotent and heartbeat timeouts expose the dead worker quickly.
 */
let env: TestWorkflowEnvironment;
const dataDir = tempDir('crash');
const workerLog: string[] = [];

function startWorkerProcess(dir = dataDir): ChildProcess {
  const child = spawn(process.execPath, [path.join(ROOT, 'dist', 'worker', 'main.js')], {
    env: {
      ...process.env,
      TEMPORAL_ADDRESS: env.address,
      RECFORGE_DATA_DIR: dir,
      RECFORGE_ALLOW_PROTECTED_OVERRIDES: '1',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // Kept for the failure message only: worker logs are noise when the test passes.
  child.stderr!.on('data', (d) => workerLog.push(String(d)));
  child.stdout!.on('data', (d) => workerLog.push(String(d)));
  return child;
}

function waitForExit(child: ChildProcess): Promise<void> {
  return new Promise((resolve) =>
    child.exitCode !== null || child.signalCode !== null ? resolve() : child.once('exit', () => resolve()),
  );
}

beforeAll(async () => {
  env = await startTemporal();
});

afterAll(async () => {
  await env?.teardown();
});

test('killing the worker mid-run and starting another: the run completes', async () => {
  const data = await smallDataset(path.join(dataDir, 'input'), 300_000);
  let worker = startWorkerProcess();
  const handle = await env.client.workflow.start('retrainPipeline', {
    taskQueue: 'recforge-cpu',
    workflowId: 'it-crash',
    args: [{ interactions: data.interactions, items: data.items, overrides: testOverrides(dataDir) }],
  });
  // Kill it while a data stage is running.
  let killedDuring = '';
  for (let i = 0; i < 600 && !killedDuring; i++) {
    const p = await handle.query<{ stage: string }>('progress').catch(() => ({ stage: 'plan' }));
    if (['ingest', 'profile', 'clean'].includes(p.stage)) {
      worker.kill('SIGKILL');
      killedDuring = p.stage;
    } else await new Promise((r) => setTimeout(r, 50));
  }
  expect(killedDuring).not.toBe('');
  await waitForExit(worker);

  worker = startWorkerProcess();
  try {
    const summary = (await handle.result().catch((err) => {
      throw new Error(`${(err as Error).message}\nworker log:\n${workerLog.join('').slice(-4000)}`);
    })) as RunSummary;
    expect(summary.status).toBe('completed');
    expect(fs.existsSync(path.join(summary.outputDir!, 'current', '_manifest.json'))).toBe(true);
    // The stage that was interrupted ran more than once.
    const history = await handle.fetchHistory();
    const attempts = (history.events ?? [])
      .filter((e) => e.activityTaskStartedEventAttributes)
      .map((e) => e.activityTaskStartedEventAttributes!.attempt ?? 1);
    expect(Math.max(...attempts)).toBeGreaterThanOrEqual(2);
  } finally {
    worker.kill('SIGTERM');
    await waitForExit(worker);
  }
});

test.each([
  // tfjs: a checkpoint every 20 optimizer steps; hogwild: one at every epoch's end (its step count is epochs).
  ['tfjs', { batchSize: 256, epochs: 40, patience: 40, checkpointEvery: 20, dim: 32 }, 20],
  ['hogwild', { epochs: 60, patience: 60, dim: 32 }, 1],
] as const)(
  'killing the worker mid-training (%s trainer): the retried activity resumes from the last checkpoint',
  async (trainer, mf, minStep) => {
    const dir = tempDir(`crash-mf-${trainer}`);
    const data = await smallDataset(path.join(dir, 'input'), 40_000);
    let worker = startWorkerProcess(dir);
    const handle = await env.client.workflow.start('retrainPipeline', {
      taskQueue: 'recforge-cpu',
      workflowId: `it-crash-mf-${trainer}`,
      args: [
        {
          interactions: data.interactions,
          items: data.items,
          overrides: testOverrides(dir, {
            privacy: { enabled: false },
            training: {
              challenger: 'mf',
              mf: { ...mf, trainer },
            },
          }),
        },
      ],
    });
    const runDir = path.join(dir, 'runs', 'synthetic', handle.firstExecutionRunId, 'models', 'mf.ckpt');
    let killed = false;
    for (let i = 0; i < 1200 && !killed; i++) {
      if (fs.existsSync(runDir)) {
        worker.kill('SIGKILL');
        killed = true;
      } else await new Promise((r) => setTimeout(r, 50));
    }
    expect(killed).toBe(true);
    await waitForExit(worker);
    worker = startWorkerProcess(dir);
    try {
      const summary = (await handle.result().catch((err) => {
        throw new Error(`${(err as Error).message}\nworker log:\n${workerLog.join('').slice(-4000)}`);
      })) as RunSummary;
      // The gates are open in tests (testOverrides): a resumed run publishes like any other.
      expect(summary.status).toBe('completed');
      expect(summary.metrics.mf).toBeDefined();
      expect(summary.training!.resumed.length).toBeGreaterThan(0);
      expect(summary.training!.resumed[0]).toMatchObject({ variant: 'mf' });
      expect(summary.training!.resumed[0].fromStep).toBeGreaterThanOrEqual(minStep);
      // The learned-challenger path (trainLearned, retried after the crash) for the replay test.
      if (trainer === 'tfjs') recordHistory(env.address, `it-crash-mf-${trainer}`, 'retrain-mf-resumed');
    } finally {
      worker.kill('SIGTERM');
      await waitForExit(worker);
    }
  },
);
