import * as path from 'node:path';
import type { Command } from 'commander';
import type { WorkflowHandle, WorkflowHandleWithFirstExecutionRunId } from '@temporalio/client';
import type { RetrainInput, RunSummary } from '../../contracts/stages';
import type { WorkerSet } from '../../worker/workers';
import {
  connect,
  ensureServer,
  loadContext,
  rootCause,
  type CliContext,
  type GlobalOptions,
} from '../context';
import { follow } from '../follow';
import { summaryLines } from '../render/summary';

interface RunOptions {
  input?: string;
  items?: string;
  dataset?: string;
  runDate?: string;
  summaryJson?: string;
  follow?: boolean;
  worker: boolean;
  detach?: boolean;
  logLevel?: string;
}

export function registerRun(program: Command): void {
  program
    .command('run')
    .description(
      'run the retrain pipeline end to end (starts the embedded Temporal server and a worker unless told otherwise)',
    )
    .option('--input <file|folder|glob>', 'interaction data (default: dataset.interactions)')
    .option('--items <file>', 'item metadata (default: dataset.items)')
    .option('--dataset <id>', 'dataset id (default: dataset.id)')
    .option('--run-date <YYYY-MM-DD>', "the run's logical date (incremental runs)")
    .option('--summary-json <file>', 'also write the run summary to this file')
    .option('--follow', 'live stage and in-stage progress bars with ETA')
    .option('--no-worker', 'do not start a worker in this process (workers already serve the task queues)')
    .option(
      '--detach',
      'start the run and exit (implies --no-worker); watch it with `recforge status --follow`',
    )
    .option('--log-level <level>', 'SDK and activity log level (JSON on stderr)', 'warn')
    .action(async (o: RunOptions, cmd: Command) => {
      process.exitCode = await run(await loadContext(cmd.optsWithGlobals<GlobalOptions>()), o);
    });
}

async function run(ctx: CliContext, o: RunOptions): Promise<number> {
  const { WorkflowExecutionAlreadyStartedError, WorkflowFailedError } = await import('@temporalio/client');
  // --config names the *run's* layers, exactly as a workflow input's `config`: files under configs/, merged over
  // the worker's config, which may not change protected keys (privacy, dataDir, …). The in-process worker's own
  // config comes only from configs/default.yaml, RECFORGE_CONFIG and the environment (.env), so the command
  // line cannot choose another privacy ledger or lift the budget. Checked here first to fail fast.
  const { loadRunConfig, loadWorkerConfig } = await import('../../lib/config');
  const runConfig = loadRunConfig({ root: ctx.root, config: ctx.overlays }).config;
  const workerConfig = loadWorkerConfig({ root: ctx.root }).config;
  const { WorkflowIdConflictPolicy } = await import('@temporalio/common');
  const { writeJsonAtomic } = await import('../../lib/fs-atomic');
  const { installObservability } = await import('../../lib/observability/runtime');
  const { createWorkers } = await import('../../worker/workers');
  const say = (s: string) => (ctx.json ? process.stderr : process.stdout).write(`[recforge] ${s}\n`);
  const inProcessWorker = o.worker && !o.detach;
  installObservability({
    logLevel: o.logLevel,
    fallbackLevel: 'WARN',
    shutdownSignals: [],
    base: { role: 'cli' },
  });
  const input: RetrainInput = {
    ...(o.input ? { interactions: path.resolve(o.input) } : {}),
    ...(o.items ? { items: path.resolve(o.items) } : {}),
    ...(ctx.overlays.length ? { config: ctx.overlays } : {}),
    ...(o.dataset ? { datasetId: o.dataset } : {}),
    ...(o.runDate ? { runDate: o.runDate } : {}),
  };
  const datasetId = o.dataset ?? runConfig.dataset.id;
  const summaryFile = o.summaryJson ? path.resolve(o.summaryJson) : undefined;
  const server = inProcessWorker ? await ensureServer(ctx, say) : null;
  if (server) {
    ctx.address = server.address;
    say(`Temporal at ${server.address}; Web UI ${server.uiUrl}`);
  }
  let workers: WorkerSet | undefined;
  let conn: Awaited<ReturnType<typeof connect>> | undefined;
  try {
    if (inProcessWorker) {
      workers = await createWorkers({
        root: ctx.root,
        config: workerConfig,
        address: ctx.address,
        roles: ['cpu', 'training'],
      });
    }
    conn = await connect(ctx);
  } catch (err) {
    // Never leave a dev server this process started holding the port.
    await workers?.close();
    await server?.stop();
    throw err;
  }
  const running = workers?.run();
  const t0 = Date.now();
  try {
    const workflowId = `retrain-${datasetId}`;
    let handle: WorkflowHandleWithFirstExecutionRunId;
    try {
      handle = await conn.client.workflow.start('retrainPipeline', {
        taskQueue: ctx.config.temporal.taskQueues.cpu,
        workflowId,
        args: [input],
        workflowIdConflictPolicy: WorkflowIdConflictPolicy.FAIL,
      });
    } catch (err) {
      if (err instanceof WorkflowExecutionAlreadyStartedError) {
        throw new Error(
          `a retrain of dataset '${datasetId}' is already running (workflow ${workflowId}); watch it with \`recforge status --follow\` or cancel it in the Temporal UI`,
        );
      }
      throw err;
    }
    say(`started workflow ${workflowId} run ${handle.firstExecutionRunId}`);
    if (o.detach) {
      if (ctx.json)
        process.stdout.write(`${JSON.stringify({ workflowId, runId: handle.firstExecutionRunId })}\n`);
      return 0;
    }
    // Progress goes where it does not mix with --json's output.
    const out = ctx.json ? process.stderr : process.stdout;
    const watcher = new AbortController();
    const watching = o.follow
      ? follow(handle, { out, tty: !!out.isTTY, signal: watcher.signal })
      : printStages(handle, say, watcher.signal);
    try {
      const summary = (await handle.result()) as RunSummary;
      // --follow ends by itself on its next poll, drawing the finished picture; the stage printer is stopped.
      if (!o.follow) watcher.abort();
      await watching.catch(() => undefined);
      if (ctx.json) process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
      else {
        process.stdout.write(
          `\n${summaryLines(summary)
            .map((l, i) => (i ? l : `[recforge] ${l}`))
            .join('\n')}\n`,
        );
        say(`wall time ${((Date.now() - t0) / 1000).toFixed(1)}s`);
      }
      if (summaryFile) writeJsonAtomic(summaryFile, summary);
      // Rejected is a model decision, not a failure of the run: exit 0, but distinguishable from promote.
      return summary.status === 'completed' ? 0 : 3;
    } finally {
      watcher.abort();
      await watching.catch(() => undefined);
    }
  } catch (err) {
    const message = err instanceof WorkflowFailedError ? rootCause(err) : (err as Error).message;
    process.stderr.write(`[recforge] FAILED: ${message}\n`);
    if (summaryFile) writeJsonAtomic(summaryFile, { status: 'failed', error: message });
    return 1;
  } finally {
    workers?.shutdown();
    await running?.catch(() => undefined);
    await workers?.close();
    await conn.close();
    await server?.stop();
  }
}

/** Without --follow: one line per finished stage, as `npm run pipeline` always printed them. */
async function printStages(
  handle: WorkflowHandle,
  say: (s: string) => void,
  signal: AbortSignal,
): Promise<void> {
  let printed = 0;
  const print = (stages: Array<{ name: string; seconds: number }>) => {
    for (; printed < stages.length; printed++)
      say(`stage ${stages[printed].name.padEnd(9)} done in ${stages[printed].seconds.toFixed(1)}s`);
  };
  while (!signal.aborted) {
    try {
      print((await handle.query<{ stages: Array<{ name: string; seconds: number }> }>('progress')).stages);
    } catch {
      // Between workflow tasks; the next poll catches up.
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  try {
    const result = (await handle.result()) as RunSummary;
    print(result.stages);
  } catch {
    // The failure is reported by the caller.
  }
}
