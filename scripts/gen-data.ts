import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { findProjectRoot } from '../lib/config';
import {
  DatagenOptionsError,
  DIRTY_KINDS,
  generateDataset,
  type GenerateOptions,
  type OutputFormat,
} from '../lib/datagen';

const USAGE = `Usage: node dist/scripts/gen-data.js --users N --items N --events N [options]

Generates a seeded synthetic e-commerce interaction log (same options + seed => byte-identical files).

Required:
  --users N            organic users
  --items N            catalogue size
  --events N           clean (organic) events; dirty rows and bot views come on top
Options:
  --seed N             PRNG seed (default 42)
  --out DIR            output folder (default data/datasets/synthetic under the project root)
  --dirty-rate R       dirty rows as a share of clean events, 0..0.5 (default 0.02)
  --bot-users N        scraper-like users with thousands of views (default 5)
  --days N             length of the time window in days (default 42)
  --start DATE         window start, YYYY-MM-DD or ISO instant (default 2026-09-01)
  --format csv|jsonl   interactions file format (default csv; items are always CSV)
  --zipf S             item popularity exponent (default 1.0)
  --quiet              no progress output
  -h, --help           this text`;

class UsageError extends Error {}

function num(name: string, raw: string | undefined, integer: boolean): number | undefined {
  if (raw === undefined) return undefined;
  const v = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(v) || (integer && !Number.isInteger(v))) {
    throw new UsageError(`--${name} expects ${integer ? 'an integer' : 'a number'}, got "${raw}"`);
  }
  return v;
}

function defaultOut(): string {
  try {
    return path.join(findProjectRoot(), 'data', 'datasets', 'synthetic');
  } catch {
    return path.resolve('data', 'datasets', 'synthetic');
  }
}

export function parseCli(argv: string[]): GenerateOptions & { quiet: boolean } {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        users: { type: 'string' },
        items: { type: 'string' },
        events: { type: 'string' },
        seed: { type: 'string' },
        out: { type: 'string' },
        'dirty-rate': { type: 'string' },
        'bot-users': { type: 'string' },
        days: { type: 'string' },
        start: { type: 'string' },
        format: { type: 'string' },
        zipf: { type: 'string' },
        quiet: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const users = num('users', values.users, true);
  const items = num('items', values.items, true);
  const events = num('events', values.events, true);
  const missing = [
    users === undefined && '--users',
    items === undefined && '--items',
    events === undefined && '--events',
  ].filter(Boolean);
  if (missing.length > 0) throw new UsageError(`missing required ${missing.join(', ')}`);
  const format = values.format ?? 'csv';
  if (format !== 'csv' && format !== 'jsonl')
    throw new UsageError(`--format must be csv or jsonl, got "${format}"`);
  return {
    users: users as number,
    items: items as number,
    events: events as number,
    seed: num('seed', values.seed, true) ?? 42,
    out: path.resolve(values.out ?? defaultOut()),
    dirtyRate: num('dirty-rate', values['dirty-rate'], false) ?? 0.02,
    botUsers: num('bot-users', values['bot-users'], true) ?? 5,
    days: num('days', values.days, true) ?? 42,
    start: values.start ?? '2026-09-01',
    format: format as OutputFormat,
    zipfExponent: num('zipf', values.zipf, false) ?? 1.0,
    quiet: values.quiet ?? false,
  };
}

async function main(): Promise<void> {
  const { quiet, ...opts } = parseCli(process.argv.slice(2));
  let lastPct = -1;
  const result = await generateDataset({
    ...opts,
    onProgress: quiet
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
  const secs = result.elapsedMs / 1000;
  const rate = Math.round(c.totalRows / Math.max(secs, 1e-3));
  console.log(
    `[gen-data] wrote ${result.outDir} in ${secs.toFixed(2)} s (${rate.toLocaleString('en-US')} rows/s)`,
  );
  console.log(
    `  ${path.basename(result.files.interactions)}: ${c.totalRows} rows (${result.manifest.files.interactions.bytes} bytes)`,
  );
  console.log(
    `    clean events ${c.cleanEvents}: ${Object.entries(c.eventTypes)
      .map(([t, n]) => `${t}=${n}`)
      .join(' ')}`,
  );
  console.log(`    bot users ${c.botUsers} with ${c.botEvents} views`);
  console.log(`    dirty rows ${c.dirtyTotal}: ${DIRTY_KINDS.map((k) => `${k}=${c.dirty[k]}`).join(' ')}`);
  console.log(`  ${path.basename(result.files.items)}: ${c.items} items; users ${c.users}`);
  console.log(`  ${path.basename(result.files.manifest)}: options, counts, sha256`);
}

if (require.main === module) {
  main().catch((err: unknown) => {
    if (err instanceof UsageError || err instanceof DatagenOptionsError) {
      console.error(`[gen-data] ${err.message}\n\n${USAGE}`);
      process.exit(2);
    }
    console.error(`[gen-data] failed: ${(err as Error).stack ?? String(err)}`);
    process.exit(1);
  });
}
