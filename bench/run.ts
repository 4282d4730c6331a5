import { parseArgs } from 'node:util';
import { findProjectRoot } from '../lib/config';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
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
  if (want('training')) {
    // A process of its own: it compares tfjs backends, whose global state must not leak into other benchmarks.
    const r = spawnSync(process.execPath, [path.join(__dirname, 'training.js')], { stdio: 'inherit' });
    if (r.status !== 0) throw new Error(`training benchmark failed (exit ${r.status})`);
  }
}

main().catch((err) => {
  console.error(`[bench] ${(err as Error).stack ?? err}`);
  process.exit(1);
});
