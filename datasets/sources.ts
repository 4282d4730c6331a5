import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * Where MovieLens comes from, as I/O helpers: GroupLens over HTTPS, or Debian's r-cran-dslabs through Rscript.
 * No conversion logic here (see movielens.ts).
 */

export const GROUPLENS_SMALL_URL = 'https://files.grouplens.org/datasets/movielens/ml-latest-small.zip';
export const APT_PACKAGES = ['r-base-core', 'r-cran-dslabs'] as const;
export const APT_INSTALL_COMMAND = `apt-get install -y --no-install-recommends ${APT_PACKAGES.join(' ')}`;

/** A source cannot be used here; `hint` tells the operator what would fix it. */
export class SourceUnavailableError extends Error {
  override name = 'SourceUnavailableError';
  constructor(
    message: string,
    readonly hint?: string,
  ) {
    super(message);
  }
}

/** PATH lookup without a shell. */
export function findExecutable(name: string, envPath = process.env.PATH ?? ''): string | undefined {
  for (const dir of envPath.split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, name);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      if (fs.statSync(candidate).isFile()) return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/**
 * Downloads `url` to `dest`. `connectTimeoutMs` bounds the wait for response headers, so a machine without
 * internet (DNS failure, firewalled egress that drops packets) fails fast; the body gets a longer deadline.
 */
export async function downloadFile(
  url: string,
  dest: string,
  connectTimeoutMs: number,
  bodyTimeoutMs = 120_000,
): Promise<number> {
  const controller = new AbortController();
  let timer = setTimeout(
    () => controller.abort(new Error(`no response within ${connectTimeoutMs} ms`)),
    connectTimeoutMs,
  );
  try {
    const res = await fetch(url, { signal: controller.signal, redirect: 'follow' });
    if (!res.ok || !res.body) throw new Error(`HTTP ${res.status} ${res.statusText}`);
    clearTimeout(timer);
    timer = setTimeout(
      () => controller.abort(new Error(`download not finished within ${bodyTimeoutMs} ms`)),
      bodyTimeoutMs,
    );
    const data = Buffer.from(await res.arrayBuffer());
    fs.writeFileSync(dest, data);
    return data.length;
  } catch (err) {
    const cause = (err as { cause?: unknown }).cause;
    const detail = cause instanceof Error ? `: ${cause.message}` : '';
    throw new SourceUnavailableError(`download of ${url} failed (${(err as Error).message}${detail})`);
  } finally {
    clearTimeout(timer);
  }
}

/** Unzips with `unzip` when installed, else Python's zipfile module (present on most machines that lack unzip). */
export function unzipArchive(zip: string, destDir: string): void {
  fs.mkdirSync(destDir, { recursive: true });
  const unzip = findExecutable('unzip');
  const python = findExecutable('python3');
  const [cmd, args] = unzip
    ? [unzip, ['-q', '-o', zip, '-d', destDir]]
    : python
      ? [python, ['-m', 'zipfile', '-e', zip, destDir]]
      : [undefined, []];
  if (!cmd)
    throw new SourceUnavailableError(
      'cannot unzip: neither unzip nor python3 is installed',
      'apt-get install -y unzip',
    );
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0)
    throw new Error(
      `${path.basename(cmd)} failed on ${zip}: ${r.stderr || r.error?.message || `status ${r.status}`}`,
    );
}

/** Finds a file by name anywhere under `dir` (zip layouts put it in a versioned subfolder). */
export function findFile(dir: string, name: string): string | undefined {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isFile() && entry.name === name) return p;
    if (entry.isDirectory()) {
      const found = findFile(p, name);
      if (found) return found;
    }
  }
  return undefined;
}

export interface GroupLensFiles {
  ratingsText: string;
  moviesText: string;
  origin: string;
}

export async function fetchGroupLensSmall(
  workDir: string,
  connectTimeoutMs: number,
): Promise<GroupLensFiles> {
  const zip = path.join(workDir, 'ml-latest-small.zip');
  await downloadFile(GROUPLENS_SMALL_URL, zip, connectTimeoutMs);
  unzipArchive(zip, path.join(workDir, 'unzipped'));
  const ratings = findFile(path.join(workDir, 'unzipped'), 'ratings.csv');
  const movies = findFile(path.join(workDir, 'unzipped'), 'movies.csv');
  if (!ratings || !movies)
    throw new Error(`${GROUPLENS_SMALL_URL} did not contain ratings.csv and movies.csv`);
  return {
    ratingsText: fs.readFileSync(ratings, 'utf8'),
    moviesText: fs.readFileSync(movies, 'utf8'),
    origin: GROUPLENS_SMALL_URL,
  };
}

/** Exit status the R script uses when dslabs is not installed (distinguishes it from an R failure). */
const STATUS_NO_DSLABS = 3;

const EXPORT_SCRIPT = `
args <- commandArgs(trailingOnly = TRUE)
if (!requireNamespace("dslabs", quietly = TRUE)) quit(status = ${STATUS_NO_DSLABS})
data("movielens", package = "dslabs", envir = environment())
m <- movielens
m$genres <- as.character(m$genres)
write.csv(m, args[1], row.names = FALSE, na = "")
cat(as.character(packageVersion("dslabs")))
`;

export interface DslabsExport {
  csvText: string;
  /** dslabs version, plus the Debian package version when installed through apt. */
  origin: string;
}

/** Debian package version via dpkg-query, or undefined (not Debian, or not installed through apt). */
export function debianPackageVersion(pkg: string): string | undefined {
  if (!findExecutable('dpkg-query')) return undefined;
  const r = spawnSync('dpkg-query', ['-W', '-f=${Version}', pkg], { encoding: 'utf8' });
  return r.status === 0 && r.stdout.trim() !== '' ? r.stdout.trim() : undefined;
}

export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

/** Exports dslabs::movielens with Rscript (write.csv: RFC 4180 quoting, NA as empty). */
export function exportDslabsMovielens(workDir: string): DslabsExport {
  const rscript = findExecutable('Rscript');
  if (!rscript) {
    throw new SourceUnavailableError(
      'Rscript is not installed, so the Debian r-cran-dslabs copy of MovieLens cannot be exported',
      APT_INSTALL_COMMAND,
    );
  }
  const script = path.join(workDir, 'export-movielens.R');
  const csv = path.join(workDir, 'dslabs-movielens.csv');
  fs.writeFileSync(script, EXPORT_SCRIPT);
  const r = spawnSync(rscript, ['--vanilla', script, csv], { encoding: 'utf8', timeout: 300_000 });
  if (r.status === STATUS_NO_DSLABS) {
    throw new SourceUnavailableError('the R package dslabs is not installed', APT_INSTALL_COMMAND);
  }
  if (r.status !== 0)
    throw new Error(`Rscript failed (status ${r.status}): ${r.stderr || r.error?.message || ''}`.trim());
  const deb = debianPackageVersion('r-cran-dslabs');
  return {
    csvText: fs.readFileSync(csv, 'utf8'),
    origin: `R package dslabs ${r.stdout.trim()}${deb ? ` (Debian r-cran-dslabs ${deb})` : ''}`,
  };
}

/** Installs R and dslabs with apt-get (root only; the caller asked with --install). */
export function installRPackages(log: (s: string) => void): void {
  if (!isRoot())
    throw new SourceUnavailableError('--install needs root to run apt-get', `sudo ${APT_INSTALL_COMMAND}`);
  if (!findExecutable('apt-get'))
    throw new SourceUnavailableError('--install needs apt-get (a Debian-based system)');
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  for (const args of [['update'], ['install', '-y', '--no-install-recommends', ...APT_PACKAGES]]) {
    log(`running apt-get ${args.join(' ')}`);
    const r = spawnSync('apt-get', args, { stdio: 'inherit', env, timeout: 900_000 });
    if (r.status !== 0) throw new Error(`apt-get ${args[0]} failed (status ${r.status ?? r.signal})`);
  }
}
