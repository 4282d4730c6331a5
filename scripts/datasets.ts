import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { findProjectRoot } from '../lib/config';
import { fetchMovielens, type SourceChoice } from '../lib/datasets/fetch';
import { MovielensFormatError } from '../lib/datasets/movielens';
import { SourceUnavailableError } from '../lib/datasets/sources';

const USAGE = `Usage: node dist/scripts/datasets.js fetch movielens [options]

Fetches MovieLens (ml-latest-small) into our schema: ratings.csv, items.csv, dataset.json.
MovieLens terms forbid redistribution: the data lives under data/ (git-ignored); never commit it.

Sources, in order for --source auto:
  grouplens  download ${'https://files.grouplens.org/datasets/movielens/ml-latest-small.zip'}
  dslabs     Debian's r-cran-dslabs (MovieLens 100,004 ratings) exported with Rscript

Options:
  --out DIR          output folder (default data/datasets/movielens under the project root)
  --source S         auto | grouplens | dslabs (default auto)
  --install          if R/dslabs are missing, apt-get install them (root only)
  --force            fetch again even when a complete copy is present
  --timeout-ms N     how long to wait for GroupLens to answer (default 10000)
  -h, --help         this text`;

class UsageError extends Error {}

function defaultOut(): string {
  try {
    return path.join(findProjectRoot(), 'data', 'datasets', 'movielens');
  } catch {
    return path.resolve('data', 'datasets', 'movielens');
  }
}

async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: true,
      options: {
        out: { type: 'string' },
        source: { type: 'string' },
        install: { type: 'boolean' },
        force: { type: 'boolean' },
        'timeout-ms': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const [command, dataset, ...extra] = positionals;
  if (command !== 'fetch') throw new UsageError(command ? `unknown command "${command}"` : 'missing command');
  if (dataset !== 'movielens')
    throw new UsageError(
      dataset ? `unknown dataset "${dataset}" (known: movielens)` : 'missing dataset name',
    );
  if (extra.length > 0) throw new UsageError(`unexpected arguments: ${extra.join(' ')}`);
  const source = (values.source ?? 'auto') as SourceChoice;
  if (!['auto', 'grouplens', 'dslabs'].includes(source))
    throw new UsageError(`--source must be auto, grouplens or dslabs, got "${source}"`);
  const timeout = Number(values['timeout-ms'] ?? 10_000);
  if (!Number.isInteger(timeout) || timeout <= 0)
    throw new UsageError(`--timeout-ms expects a positive integer, got "${values['timeout-ms']}"`);

  const log = (s: string): void => console.error(`[datasets] ${s}`);
  const started = Date.now();
  const result = await fetchMovielens({
    out: values.out ?? defaultOut(),
    source,
    install: values.install ?? false,
    force: values.force ?? false,
    connectTimeoutMs: timeout,
    log,
  });
  const m = result.manifest;
  const summary = `${m.counts.ratings} ratings, ${m.counts.users} users, ${m.counts.items} items (source ${m.source}: ${m.origin})`;
  if (result.skipped) {
    console.log(
      `[datasets] movielens already present and complete in ${result.out}: ${summary}; skipping (--force to re-fetch)`,
    );
    return 0;
  }
  for (const w of result.warnings) log(`warning: ${w}`);
  console.log(
    `[datasets] wrote ${result.out} in ${((Date.now() - started) / 1000).toFixed(1)} s: ${summary}`,
  );
  console.log(
    `  ratings.csv, items.csv, dataset.json — MovieLens terms forbid redistribution; do not commit.`,
  );
  return 0;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      if (err instanceof UsageError) {
        console.error(`[datasets] ${err.message}\n\n${USAGE}`);
        process.exit(2);
      }
      if (err instanceof SourceUnavailableError) {
        console.error(`[datasets] ${err.message}`);
        if (err.hint)
          console.error(
            `[datasets] to fix, run as root:\n  ${err.hint}\n  (or re-run with --install as root)`,
          );
        process.exit(1);
      }
      if (err instanceof MovielensFormatError) {
        console.error(`[datasets] unexpected MovieLens format: ${err.message}`);
        process.exit(1);
      }
      console.error(`[datasets] failed: ${(err as Error).stack ?? String(err)}`);
      process.exit(1);
    },
  );
}
