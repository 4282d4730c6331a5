import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * The test tooling's own Python venv (.test-venv/, git-ignored): pyarrow, the independent reader the tests use to
 * read published output back from the object store the way downstream users do. A test tool, never a product
 * dependency; `npm run setup` (part of `npm test`) creates it from PyPI.
 */
export const TEST_VENV_DIR = '.test-venv';
export const TEST_VENV_PACKAGES = ['pyarrow==26.0.1'] as const;
const PROBE = 'import pyarrow.dataset, pyarrow.fs';

export function testVenvPython(root: string): string {
  return path.join(root, TEST_VENV_DIR, 'bin', 'python');
}

function ready(py: string): boolean {
  return fs.existsSync(py) && spawnSync(py, ['-c', PROBE], { stdio: 'ignore' }).status === 0;
}

/** The venv's python with pyarrow, or a clear error naming the command that installs it. */
export function requireTestVenv(root: string): string {
  const py = testVenvPython(root);
  if (!ready(py))
    throw new Error(
      `${TEST_VENV_DIR}/ with ${TEST_VENV_PACKAGES.join(' ')} is missing: run \`npm run setup\``,
    );
  return py;
}

/** Creates the venv and installs the pinned packages unless they already import there (idempotent). */
export function ensureTestVenv(root: string, python: string, log: (s: string) => void): string {
  const py = testVenvPython(root);
  if (ready(py)) return py;
  if (!fs.existsSync(py)) {
    log(`creating ${TEST_VENV_DIR}/ (python3 -m venv)`);
    const r = spawnSync(python, ['-m', 'venv', path.join(root, TEST_VENV_DIR)], { encoding: 'utf8' });
    if (r.status !== 0)
      throw new Error(`python3 -m venv ${TEST_VENV_DIR} failed: ${(r.stderr || r.stdout).trim()}`);
  }
  log(`pip install ${TEST_VENV_PACKAGES.join(' ')} into ${TEST_VENV_DIR}/`);
  const r = spawnSync(
    py,
    ['-m', 'pip', 'install', '--disable-pip-version-check', '-q', ...TEST_VENV_PACKAGES],
    {
      encoding: 'utf8',
      stdio: ['ignore', 'inherit', 'pipe'],
    },
  );
  if (r.status !== 0 || !ready(py))
    throw new Error(
      `pip install into ${TEST_VENV_DIR} failed: ${(r.stderr ?? '').trim().split('\n').slice(-3).join(' | ')}`,
    );
  return py;
}
