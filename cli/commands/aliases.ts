import type { Command } from 'commander';
import type { AliasInput, AliasResult } from '../../contracts/stages';
import { connect, loadContext, rootCause, type CliContext, type GlobalOptions } from '../context';

interface AliasOptions {
  dataset?: string;
  reason?: string;
  force?: boolean;
}

export function registerAliases(program: Command): void {
  program
    .command('promote')
    .argument('<version>', 'the model version to make champion')
    .description('make a registered model version champion and point the output at its recommendations')
    .option('--dataset <id>', 'dataset (default: dataset.id)')
    .option('--reason <text>', 'recorded with the alias move')
    .option('--force', 'promote even a version its gates rejected')
    .action(async (version: string, o: AliasOptions, cmd: Command) => {
      const ctx = await loadContext(cmd.optsWithGlobals<GlobalOptions>());
      process.exitCode = await startAlias(ctx, 'promoteModel', {
        version,
        ...common(ctx, o),
        ...(o.force ? { force: true } : {}),
      });
    });
  program
    .command('rollback')
    .description('make the previous champion champion again (its recommendations become current)')
    .option('--dataset <id>', 'dataset (default: dataset.id)')
    .option('--reason <text>', 'recorded with the alias move')
    .action(async (o: AliasOptions, cmd: Command) => {
      const ctx = await loadContext(cmd.optsWithGlobals<GlobalOptions>());
      process.exitCode = await startAlias(ctx, 'rollbackModel', common(ctx, o));
    });
}

function common(ctx: CliContext, o: AliasOptions): AliasInput {
  return {
    ...(o.dataset ? { datasetId: o.dataset } : {}),
    ...(o.reason ? { reason: o.reason } : {}),
    ...(ctx.overlays.length ? { config: ctx.overlays } : {}),
  };
}

/** Runs the alias workflow on the workers' queue and waits for it (workers must be running: `recforge dev`). */
async function startAlias(
  ctx: CliContext,
  type: 'promoteModel' | 'rollbackModel',
  input: AliasInput,
): Promise<number> {
  const { WorkflowFailedError } = await import('@temporalio/client');
  const { client, close } = await connect(ctx);
  try {
    const dataset = input.datasetId ?? ctx.config.dataset.id;
    const handle = await client.workflow.start(type, {
      taskQueue: ctx.config.temporal.taskQueues.cpu,
      workflowId: `${type === 'promoteModel' ? 'promote' : 'rollback'}-${dataset}-${Date.now()}`,
      args: [input],
    });
    if (!ctx.json)
      process.stderr.write(`[recforge] started ${type} ${handle.workflowId}; waiting for a worker…\n`);
    const result = (await handle.result()) as AliasResult;
    process.stdout.write(
      ctx.json
        ? `${JSON.stringify(result)}\n`
        : `champion ${result.champion ?? '–'} (previous ${result.previous ?? '–'}); current -> ${result.currentPath}\n`,
    );
    return 0;
  } catch (err) {
    process.stderr.write(
      `[recforge] ${type} failed: ${err instanceof WorkflowFailedError ? rootCause(err) : (err as Error).message}\n`,
    );
    return 1;
  } finally {
    await close();
  }
}
