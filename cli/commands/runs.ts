import type { Command } from 'commander';
import { connect, loadContext, UsageError, type GlobalOptions } from '../context';
import { formatRunsTable, runRow, type RunRow } from '../render/runs';

interface RunsOptions {
  limit: string;
  dataset?: string;
  outcome?: string;
}

export function registerRuns(program: Command): void {
  program
    .command('runs')
    .description(
      'recent retrain runs: outcome (rejected runs as rejected), gate decision, headline metric, model version',
    )
    .option('-n, --limit <n>', 'how many runs', '20')
    .option('--dataset <id>', 'only this dataset')
    .option('--outcome <outcome>', 'only runs with this outcome (running, completed, rejected, failed, …)')
    .action(async (o: RunsOptions, cmd: Command) => {
      const ctx = await loadContext(cmd.optsWithGlobals<GlobalOptions>());
      const limit = Number(o.limit);
      if (!Number.isInteger(limit) || limit <= 0)
        throw new UsageError(`--limit expects a positive integer, got '${o.limit}'`);
      if (o.dataset && !/^[\w.-]+$/.test(o.dataset))
        throw new UsageError(`--dataset: '${o.dataset}' is not a dataset id`);
      const { client, close } = await connect(ctx);
      try {
        const query = [
          `WorkflowType = 'retrainPipeline'`,
          o.dataset ? `RecforgeDataset = '${o.dataset}'` : '',
        ]
          .filter(Boolean)
          .join(' AND ');
        const rows: RunRow[] = [];
        for await (const w of client.workflow.list({ query })) {
          const row = runRow({
            workflowId: w.workflowId,
            runId: w.runId,
            status: w.status.name,
            startTime: w.startTime,
            closeTime: w.closeTime,
            memo: w.memo,
            searchAttributes: w.searchAttributes as Record<string, unknown>,
          });
          if (!o.outcome || row.outcome === o.outcome) rows.push(row);
          // The server lists newest first; a bounded scan keeps a filter on a long history cheap.
          if (rows.length >= limit) break;
        }
        rows.sort((a, b) => b.startedAt.localeCompare(a.startedAt));
        process.stdout.write(
          ctx.json
            ? `${JSON.stringify(rows, null, 2)}\n`
            : `${rows.length ? formatRunsTable(rows) : 'no runs'}\n`,
        );
      } finally {
        await close();
      }
    });
}
