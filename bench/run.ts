import { parseArgs } from 'node:util';
import { findProjectRoot } from '../lib/config';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { benchIngest } from './ingest';
import { benchScoring } from './scoring';
import { benchE2e } from './e2e';
import { benchItemItem } from './item-item';

const BENCHES = [
  'ingest',
  'training',
  'quality',
  'scoring',
  'scoring-kernels',
  'item-item',
  'e2e',
  'cold-start',
] as const;
/** Benchmarks a plain `npm run bench` leaves out (exploratory tables; ask for them with --only). */
const ON_REQUEST = new Set<string>(['cold-start']);

/**
 * `npm run bench [-- --only ingest,training,quality,scoring,scoring-kernels,e2e,cold-start | -- quality] [--events N]
 * [quality options] [scoring options] [e2e options]`: runs the benchmarks (cold-start only when asked for);
 * scoring-kernels (bench/scoring-kernels.ts: top-N scoring against the backend's matmul) runs with its defaults; each
 * writes bench/results/<name>.json with baselines measured in the same
 * run. Scoring options (bench/scoring.ts): --users N (1M), --items N (50k), --history N (events per user, 5),
 * --shards 1,2,4, --memory-limits 2GB (DuckDB's, per activity; several: largest first). Quality options
 * (bench/quality.ts): --datasets movielens-small,ml-1m,synthetic, --variants default,movielens,name=overlay.yaml,
 * name=overlay.yaml+key.path=value, --no-recforge, --no-force, --quick, --movielens-source dslabs|auto,
 * --threads N, --results-name quality-x. Ingest: --events 5000000,20000000. Item-item
 * (bench/item-item.ts): --events N (5M), --users N (20,000). End to end (bench/e2e.ts): --sizes
 * 600000,2000000,5000000 (none: skip), --full (adds 20M; or RECFORGE_BENCH_FULL=1), --learned mf@5000000,two-tower@5000000
 * (the default; 20M too with --full; none: skip), --mf-events N (the older form of --learned mf@N), --results-name, --timeout S (per configuration, 2400).
 */
async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      only: { type: 'string' },
      events: { type: 'string' },
      datasets: { type: 'string' },
      variants: { type: 'string' },
      'no-recforge': { type: 'boolean' },
      'no-force': { type: 'boolean' },
      quick: { type: 'boolean' },
      'movielens-source': { type: 'string' },
      threads: { type: 'string' },
      'results-name': { type: 'string' },
      users: { type: 'string' },
      items: { type: 'string' },
      history: { type: 'string' },
      shards: { type: 'string' },
      'memory-limits': { type: 'string' },
      full: { type: 'boolean' },
      sizes: { type: 'string' },
      'mf-events': { type: 'string' },
      learned: { type: 'string' },
      timeout: { type: 'string' },
    },
  });
  const names = [...(values.only ? values.only.split(',') : []), ...positionals].map((s) => s.trim());
  for (const n of names)
    if (!(BENCHES as readonly string[]).includes(n))
      throw new Error(`unknown benchmark "${n}" (known: ${BENCHES.join(', ')})`);
  const only = names.length > 0 ? new Set(names) : undefined;
  const root = findProjectRoot();
  const want = (n: string) => (only ? only.has(n) : !ON_REQUEST.has(n));
  if (want('ingest')) {
    const events = (values.events ?? '5000000,20000000').split(',').map(Number);
    const file = await benchIngest(root, events);
    console.log(`[bench] wrote ${file}`);
  }
  if (want('scoring')) {
    const num = (v: string | undefined) => (v === undefined ? undefined : Number(v));
    const file = await benchScoring(root, {
      users: num(values.users),
      items: num(values.items),
      history: num(values.history),
      shards: values.shards?.split(',').map(Number),
      memoryLimits: values['memory-limits']?.split(','),
    });
    console.log(`[bench] wrote ${file}`);
  }
  if (want('item-item')) {
    const file = await benchItemItem(root, {
      events: values.events ? Number(values.events.split(',')[0]) : undefined,
      users: values.users ? Number(values.users) : undefined,
    });
    console.log(`[bench] wrote ${file}`);
  }
  if (want('e2e')) {
    const file = await benchE2e(root, {
      full: values.full,
      sizes: values.sizes === 'none' ? [] : values.sizes?.split(',').map(Number),
      mfEvents: values['mf-events'] === undefined ? undefined : Number(values['mf-events']),
      learned:
        values.learned === undefined
          ? undefined
          : values.learned === 'none'
            ? []
            : values.learned.split(',').map((s) => {
                const [challenger, events] = s.split('@');
                if (!challenger || !Number(events))
                  throw new Error(`--learned ${s}: expected challenger@events`);
                return { challenger, events: Number(events) };
              }),
      resultsName: values['results-name'],
      timeoutSeconds: values.timeout === undefined ? undefined : Number(values.timeout),
    });
    console.log(`[bench] wrote ${file}`);
  }
  if (want('training')) {
    // A process of its own: it compares tfjs backends, whose global state must not leak into other benchmarks.
    const r = spawnSync(process.execPath, [path.join(__dirname, 'training.js')], { stdio: 'inherit' });
    if (r.status !== 0) throw new Error(`training benchmark failed (exit ${r.status})`);
  }
  if (want('scoring-kernels')) {
    // Its own process as well: it switches between tfjs backends.
    const r = spawnSync(process.execPath, [path.join(__dirname, 'scoring-kernels.js')], { stdio: 'inherit' });
    if (r.status !== 0) throw new Error(`scoring-kernels benchmark failed (exit ${r.status})`);
  }
  if (want('quality')) {
    // A process of its own too: it starts recforge pipelines and Python references as children and reads
    // Parquet through DuckDB; none of that should share state with the other benchmarks.
    const pass: string[] = [];
    for (const k of ['datasets', 'variants', 'movielens-source', 'threads', 'results-name'] as const)
      if (values[k] !== undefined) pass.push(`--${k}`, values[k]);
    for (const k of ['no-recforge', 'no-force', 'quick'] as const) if (values[k]) pass.push(`--${k}`);
    const r = spawnSync(process.execPath, [path.join(__dirname, 'quality.js'), ...pass], {
      stdio: 'inherit',
    });
    if (r.status !== 0) throw new Error(`quality benchmark failed (exit ${r.status})`);
  }
  if (want('cold-start')) {
    const pass: string[] = [];
    for (const k of ['datasets', 'threads'] as const)
      if (values[k] !== undefined) pass.push(`--${k}`, values[k]);
    if (values.quick) pass.push('--quick');
    const r = spawnSync(process.execPath, [path.join(__dirname, 'cold-start.js'), ...pass], {
      stdio: 'inherit',
    });
    if (r.status !== 0) throw new Error(`cold-start benchmark failed (exit ${r.status})`);
  }
}

main().catch((err) => {
  console.error(`[bench] ${(err as Error).stack ?? err}`);
  process.exit(1);
});
