import * as fs from 'node:fs';
import * as path from 'node:path';
import { runSequence, type SequenceJob, type SequenceModules } from '../support/sequence';

/**
 * Child process of the kill harness: runs one SequenceJob (argv[2], a JSON file) with the compiled product code
 * (dist/, so RECFORGE_FAULT in this process's environment arms lib/faults.ts) and prints the result as JSON.
 * Exit 0 done, 1 failed (the error on stderr); killed by SIGKILL when a fault point or the harness says so.
 */
async function main(): Promise<void> {
  const root = process.env.RECFORGE_ROOT;
  if (!root) throw new Error('RECFORGE_ROOT must name the project root');
  const dist = (m: string) => path.join(root, 'dist', m);
  const modules: SequenceModules = {
    publish: (await import(dist('activities/publish.js'))) as SequenceModules['publish'],
    registry: (await import(dist('activities/registry.js'))) as SequenceModules['registry'],
    storage: (await import(dist('activities/support/storage.js'))) as SequenceModules['storage'],
  };
  const job = JSON.parse(fs.readFileSync(process.argv[2], 'utf8')) as SequenceJob;
  // Modules loaded: from here on a timed kill lands in the sequence's work.
  process.stdout.write('ready\n');
  const result = await runSequence(modules, { root, dataDir: job.run.plan.config.dataDir }, job);
  process.stdout.write(`result ${JSON.stringify(result)}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
