import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * Child process of the switch harness (test/reliability/kill-switch.test.ts): moves a dataset's live version back
 * and forth between published versions as fast as it can — each move is the whole promotion step, the pointer
 * and everything derived from it — until it is SIGKILLed, so the kill lands at an arbitrary point of a switch.
 * With `once` it makes one move and exits: the retry a new worker would run.
 *
 * `design: 'new'` is today's code (dist/): ModelRegistry.setLive, one compare-and-swap of the live pointer.
 * `design: 'old'` is the code of commit 7cbba63, compiled from git history into `oldModules`: the registry's
 * alias move under aliases.lock (lib/registry.ts, lib/file-lock.ts) with the output switched inside it by that
 * commit's switchCurrent (activities/publish.ts), as its promoteCandidate did — the design issue #16 reports.
 */
export interface StormJob {
  design: 'new' | 'old';
  dataDir: string;
  datasetId: string;
  versions: string[];
  oldModules?: string;
  once?: string;
}

type Move = (version: string) => Promise<unknown>;

async function mover(job: StormJob, root: string): Promise<Move> {
  const out = path.join(job.dataDir, 'output', 'recommendations', job.datasetId);
  const by = `storm-${process.pid}`;
  if (job.design === 'new') {
    const { ModelRegistry } = (await import(
      path.join(root, 'dist', 'registry', 'registry.js')
    )) as typeof import('../../../registry/registry');
    const { LocalStorage } = (await import(
      path.join(root, 'dist', 'lib', 'storage', 'index.js')
    )) as typeof import('../../../lib/storage');
    const registry = new ModelRegistry(new LocalStorage(job.dataDir), {
      datasetId: job.datasetId,
      registryPrefix: `registry/${job.datasetId}`,
      outputPrefix: `output/recommendations/${job.datasetId}`,
    });
    return (v) => registry.setLive(v, { at: new Date().toISOString(), reason: 'storm', by });
  }
  // The old modules are plain CommonJS compiled by the test; their types are the old code's, described here.
  interface OldAliases {
    champion: string | null;
  }
  interface OldRegistry {
    updateAliases(
      decide: (a: OldAliases) => { champion: string | null; previous: string | null } | null,
      reason: string,
      by: string,
    ): Promise<OldAliases>;
  }
  const dir = job.oldModules!;
  const { Registry } = (await import(path.join(dir, 'lib', 'registry.js'))) as {
    Registry: new (dir: string) => OldRegistry;
  };
  const { switchCurrent } = (await import(path.join(dir, 'switch.js'))) as {
    switchCurrent: (root: string, version: string) => string;
  };
  const registry = new Registry(path.join(job.dataDir, 'registry', job.datasetId));
  // 7cbba63's promoteCandidate: the alias moves under the registry lock, the output switched inside it.
  return (v) =>
    registry.updateAliases(
      (now) => {
        if (now.champion === v) {
          switchCurrent(out, v);
          return null;
        }
        switchCurrent(out, v);
        return { champion: v, previous: now.champion };
      },
      'storm',
      by,
    );
}

async function main(): Promise<void> {
  const root = process.env.RECFORGE_ROOT!;
  const job = JSON.parse(fs.readFileSync(process.argv[2], 'utf8')) as StormJob;
  const move = await mover(job, root);
  process.stdout.write('ready\n');
  if (job.once) {
    await move(job.once);
    process.stdout.write('done\n');
    return;
  }
  for (let i = 0; ; i++) await move(job.versions[i % job.versions.length]);
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
