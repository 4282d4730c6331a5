import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Command } from 'commander';
import type { RunPlan } from '../../contracts/stages';
import { loadContext, UsageError, type GlobalOptions } from '../context';

interface ReportOptions {
  dataset?: string;
  indexOnly?: boolean;
}

export function registerReport(program: Command): void {
  program
    .command('report')
    .argument('[runId]', 'the run (default: the latest run of the dataset)')
    .description("(re)build a run's HTML report and the dataset's index of runs from the run's artifacts")
    .option('--dataset <id>', 'dataset (default: dataset.id)')
    .option('--index-only', 'rebuild only the index of runs')
    .action(async (runId: string | undefined, o: ReportOptions, cmd: Command) => {
      const ctx = await loadContext(cmd.optsWithGlobals<GlobalOptions>());
      const datasetId = o.dataset ?? ctx.config.dataset.id;
      if (ctx.config.storage.root) {
        // Object storage: the run's artifacts are in the bucket, the pages are built in this machine's mirror.
        const { rebuildStoredReport } = await import('../../activities/report');
        const paths = await rebuildStoredReport(ctx.config, datasetId, { runId, indexOnly: o.indexOnly });
        const text = paths.html
          ? `report: ${paths.html}\nindex:  ${paths.index}\n`
          : `index: ${paths.index}\n`;
        process.stdout.write(ctx.json ? `${JSON.stringify(paths)}\n` : text);
        return;
      }
      const { writeRunIndex, writeRunReport } = await import('../../analytics/run-report/write');
      if (o.indexOnly) {
        const index = await writeRunIndex(ctx.config.dataDir, datasetId);
        process.stdout.write(ctx.json ? `${JSON.stringify({ index })}\n` : `index: ${index}\n`);
        return;
      }
      const runDir = findRunDir(ctx.config.dataDir, datasetId, runId);
      const paths = await writeRunReport(runDir);
      process.stdout.write(
        ctx.json ? `${JSON.stringify(paths)}\n` : `report: ${paths.html}\nindex:  ${paths.index}\n`,
      );
    });
}

/** A run's folder: the one named, else the most recently started run of the dataset. */
export function findRunDir(dataDir: string, datasetId: string, runId?: string): string {
  const runsDir = path.join(dataDir, 'runs', datasetId);
  if (runId) {
    if (!/^[\w-]+$/.test(runId)) throw new UsageError(`'${runId}' is not a run id`);
    const dir = path.join(runsDir, runId);
    if (!fs.existsSync(dir)) throw new Error(`no run ${runId} of dataset '${datasetId}' under ${runsDir}`);
    return dir;
  }
  const runs = fs.existsSync(runsDir)
    ? fs
        .readdirSync(runsDir)
        .map((id) => ({ dir: path.join(runsDir, id), plan: readPlan(path.join(runsDir, id, 'plan.json')) }))
        .filter((r) => r.plan)
        .sort((a, b) => b.plan!.run.startedAt.localeCompare(a.plan!.run.startedAt))
    : [];
  if (!runs.length) throw new Error(`no runs of dataset '${datasetId}' under ${runsDir}`);
  return runs[0].dir;
}

function readPlan(file: string): RunPlan | undefined {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as RunPlan;
  } catch {
    return undefined;
  }
}
