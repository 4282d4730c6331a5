import type { Command } from 'commander';
import type { Client, WorkflowHandle } from '@temporalio/client';
import { connect, loadContext, UsageError, type GlobalOptions } from '../context';
import { follow, liveState } from '../follow';
import { renderProgress } from '../render/progress';
import { runRow } from '../render/runs';

interface StatusOptions {
  dataset?: string;
  workflowId?: string;
  follow?: boolean;
}

export function registerStatus(program: Command): void {
  program
    .command('status')
    .argument('[runId]', 'a run id (default: the latest run of the dataset)')
    .description("a run's state: stages done, the stage in flight with its progress, and its outcome")
    .option('--dataset <id>', 'dataset whose latest run to show (default: dataset.id)')
    .option('--workflow-id <id>', 'workflow id (default: retrain-<dataset>, or found from the run id)')
    .option('--follow', 'keep watching until the run ends')
    .action(async (runId: string | undefined, o: StatusOptions, cmd: Command) => {
      const ctx = await loadContext(cmd.optsWithGlobals<GlobalOptions>());
      const { client, close } = await connect(ctx);
      try {
        const handle = await findRun(
          client,
          runId,
          o.workflowId ?? `retrain-${o.dataset ?? ctx.config.dataset.id}`,
        );
        if (o.follow && !ctx.json) {
          const end = await follow(handle, { out: process.stdout, tty: !!process.stdout.isTTY });
          process.exitCode = end?.status === 'COMPLETED' || end?.status === 'RUNNING' ? 0 : 1;
          return;
        }
        const d = await handle.describe();
        const state = await liveState(handle);
        const row = runRow({
          workflowId: d.workflowId,
          runId: d.runId,
          status: d.status.name,
          startTime: d.startTime,
          closeTime: d.closeTime,
          memo: d.memo,
          searchAttributes: d.searchAttributes as Record<string, unknown>,
        });
        if (ctx.json) {
          process.stdout.write(
            `${JSON.stringify({ ...row, stages: state.stages, pending: state.pending }, null, 2)}\n`,
          );
          return;
        }
        process.stdout.write(
          `${row.workflowId} run ${row.runId}: ${row.outcome}${row.decision ? ` (gate ${row.decision})` : ''}\n` +
            `${renderProgress(state).join('\n')}\n` +
            (row.report ? `  report: ${row.report}\n` : ''),
        );
      } finally {
        await close();
      }
    });
}

/** The run by id (any retrainPipeline workflow), else the latest execution of the workflow id. */
async function findRun(
  client: Client,
  runId: string | undefined,
  workflowId: string,
): Promise<WorkflowHandle> {
  if (!runId) return client.workflow.getHandle(workflowId);
  if (!/^[0-9a-fA-F-]{8,}$/.test(runId)) throw new UsageError(`'${runId}' does not look like a run id`);
  for await (const w of client.workflow.list({ query: `RunId = '${runId}'` })) {
    return client.workflow.getHandle(w.workflowId, w.runId);
  }
  throw new Error(`no workflow run ${runId} on this server`);
}
