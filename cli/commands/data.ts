import * as path from 'node:path';
import type { Command } from 'commander';
import type { OutputFormat } from '../../datasets/synthetic';
import type { SourceChoice } from '../../datasets/fetch';
import { UsageError, type GlobalOptions } from '../context';

const int = (flag: string) => (v: string) => {
  const n = Number(v);
  if (v.trim() === '' || !Number.isInteger(n))
    throw new UsageError(`--${flag} expects an integer, got '${v}'`);
  return n;
};
const real = (flag: string) => (v: string) => {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n)) throw new UsageError(`--${flag} expects a number, got '${v}'`);
  return n;
};
const defaultDir = async (name: string) =>
  path.join((await import('../../lib/config')).findProjectRoot(), 'data', 'datasets', name);

interface GenOptions {
  users: number;
  items: number;
  events: number;
  seed: number;
  out?: string;
  dirtyRate: number;
  botUsers: number;
  days: number;
  start: string;
  format: string;
  zipf: number;
  quiet?: boolean;
}

export function registerGenData(program: Command): void {
  program
    .command('gen-data')
    .description('generate the seeded synthetic e-commerce log (same options + seed => byte-identical files)')
    .requiredOption('--users <n>', 'organic users', int('users'))
    .requiredOption('--items <n>', 'catalogue size', int('items'))
    .requiredOption(
      '--events <n>',
      'clean (organic) events; dirty rows and bot views come on top',
      int('events'),
    )
    .option('--seed <n>', 'PRNG seed', int('seed'), 42)
    .option('--out <dir>', 'output folder (default: data/datasets/synthetic)')
    .option('--dirty-rate <r>', 'dirty rows as a share of clean events, 0..0.5', real('dirty-rate'), 0.02)
    .option('--bot-users <n>', 'scraper-like users with thousands of views', int('bot-users'), 5)
    .option('--days <n>', 'length of the time window in days', int('days'), 42)
    .option('--start <date>', 'window start, YYYY-MM-DD or ISO instant', '2026-09-01')
    .option('--format <csv|jsonl>', 'interactions file format (items are always CSV)', 'csv')
    .option('--zipf <s>', 'item popularity exponent', real('zipf'), 1.0)
    .option('--quiet', 'no progress output')
    .action(async (o: GenOptions, cmd: Command) => {
      const json = !!cmd.optsWithGlobals<GlobalOptions>().json;
      if (o.format !== 'csv' && o.format !== 'jsonl')
        throw new UsageError(`--format must be csv or jsonl, got '${o.format}'`);
      const { DIRTY_KINDS, generateDataset } = await import('../../datasets/synthetic');
      let lastPct = -1;
      const result = await generateDataset({
        users: o.users,
        items: o.items,
        events: o.events,
        seed: o.seed,
        out: path.resolve(o.out ?? (await defaultDir('synthetic'))),
        dirtyRate: o.dirtyRate,
        botUsers: o.botUsers,
        days: o.days,
        start: o.start,
        format: o.format as OutputFormat,
        zipfExponent: o.zipf,
        onProgress: o.quiet
          ? undefined
          : ({ cleanEvents, totalEvents }) => {
              const pct = Math.floor((100 * cleanEvents) / totalEvents / 10) * 10;
              if (pct > lastPct && pct < 100) {
                lastPct = pct;
                process.stderr.write(`[gen-data] ${pct}% (${cleanEvents.toLocaleString('en-US')} events)\n`);
              }
            },
      });
      const c = result.counts;
      if (json) {
        process.stdout.write(
          `${JSON.stringify({ outDir: result.outDir, files: result.files, counts: c })}\n`,
        );
        return;
      }
      const secs = result.elapsedMs / 1000;
      process.stdout.write(
        [
          `[gen-data] wrote ${result.outDir} in ${secs.toFixed(2)} s (${Math.round(c.totalRows / Math.max(secs, 1e-3)).toLocaleString('en-US')} rows/s)`,
          `  ${path.basename(result.files.interactions)}: ${c.totalRows} rows (${result.manifest.files.interactions.bytes} bytes)`,
          `    clean events ${c.cleanEvents}: ${Object.entries(c.eventTypes)
            .map(([t, n]) => `${t}=${n}`)
            .join(' ')}`,
          `    bot users ${c.botUsers} with ${c.botEvents} views`,
          `    dirty rows ${c.dirtyTotal}: ${DIRTY_KINDS.map((k) => `${k}=${c.dirty[k]}`).join(' ')}`,
          `  ${path.basename(result.files.items)}: ${c.items} items; users ${c.users}`,
          `  ${path.basename(result.files.manifest)}: options, counts, sha256`,
        ].join('\n') + '\n',
      );
    });
}

interface FetchOptions {
  out?: string;
  source: string;
  install?: boolean;
  force?: boolean;
  timeoutMs: number;
}

export function registerDatasets(program: Command): void {
  const datasets = program.command('datasets').description('public datasets in the pipeline schema');
  datasets
    .command('fetch')
    .argument('<name>', 'dataset: movielens')
    .description(
      'fetch MovieLens (ml-latest-small) as ratings.csv, items.csv, dataset.json; its terms forbid redistribution: it stays under data/',
    )
    .option('--out <dir>', 'output folder (default: data/datasets/movielens)')
    .option('--source <s>', 'auto | grouplens | dslabs (Debian r-cran-dslabs exported with Rscript)', 'auto')
    .option('--install', 'if R/dslabs are missing, apt-get install them (root only)')
    .option('--force', 'fetch again even when a complete copy is present')
    .option('--timeout-ms <n>', 'how long to wait for GroupLens to answer', int('timeout-ms'), 10_000)
    .action(async (name: string, o: FetchOptions) => {
      if (name !== 'movielens') throw new UsageError(`unknown dataset '${name}' (known: movielens)`);
      if (!['auto', 'grouplens', 'dslabs'].includes(o.source))
        throw new UsageError(`--source must be auto, grouplens or dslabs, got '${o.source}'`);
      if (o.timeoutMs <= 0) throw new UsageError('--timeout-ms expects a positive integer');
      const { fetchMovielens } = await import('../../datasets/fetch');
      const { SourceUnavailableError } = await import('../../datasets/sources');
      const log = (s: string): void => void process.stderr.write(`[datasets] ${s}\n`);
      const started = Date.now();
      try {
        const result = await fetchMovielens({
          out: o.out ?? (await defaultDir('movielens')),
          source: o.source as SourceChoice,
          install: o.install ?? false,
          force: o.force ?? false,
          connectTimeoutMs: o.timeoutMs,
          log,
        });
        const m = result.manifest;
        const summary = `${m.counts.ratings} ratings, ${m.counts.users} users, ${m.counts.items} items (source ${m.source}: ${m.origin})`;
        if (result.skipped) {
          process.stdout.write(
            `[datasets] movielens already present and complete in ${result.out}: ${summary}; skipping (--force to re-fetch)\n`,
          );
          return;
        }
        for (const w of result.warnings) log(`warning: ${w}`);
        process.stdout.write(
          `[datasets] wrote ${result.out} in ${((Date.now() - started) / 1000).toFixed(1)} s: ${summary}\n` +
            '  ratings.csv, items.csv, dataset.json — MovieLens terms forbid redistribution; do not commit.\n',
        );
      } catch (err) {
        if (err instanceof SourceUnavailableError && err.hint)
          throw new Error(
            `${err.message}\nto fix, run as root:\n  ${err.hint}\n  (or re-run with --install as root)`,
          );
        throw err;
      }
    });
}
