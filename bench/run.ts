import { parseArgs } from 'node:util';
import { findProjectRoot } from '../lib/config';
import { benchIngest } from './ingest';

/**
 * `npm run bench [-- --only ingest,training] [--events N]`: runs the benchmarks; each writes
 * bench/results/<name>.json with baselines measured in the same run.
 */
async function main(): Promise<void> {
  const { values } = parseArgs({ options: { only: { type: 'string' }, events: { type: 'string' } } });
  const only = values.only ? new Set(values.only.split(',')) : undefined;
  const root = findProjectRoot();
  const want = (n: string) => !only || only.has(n);
  if (want('ingest')) {
    const file = await benchIngest(root, Number(values.events ?? 20_000_000));
    console.log(`[bench] wrote ${file}`);
  }
}

main().catch((err) => {
  console.error(`[bench] ${(err as Error).stack ?? err}`);
  process.exit(1);
});
