import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** Where workers keep runs' scratch folders (DuckDB spill, staging): one folder per run id (RunIO.scratch). */
export function scratchRoot(): string {
  return path.join(os.tmpdir(), 'recforge-scratch');
}

/**
 * A run's scratch folder untouched this long belongs to no live activity: the longest activity heartbeats for
 * tens of minutes, a nightly run lasts hours at most, and DuckDB writes its spill files while it works.
 */
export const STALE_SCRATCH_MS = 24 * 3_600_000;

/** The newest modification time of a folder and everything below it (lstat: links are not followed). */
function newestMtime(dir: string): number {
  let newest = fs.lstatSync(dir, { throwIfNoEntry: false })?.mtimeMs ?? 0;
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return newest;
  }
  for (const e of entries) {
    const p = path.join(dir, e.name);
    newest = Math.max(
      newest,
      e.isDirectory() ? newestMtime(p) : (fs.lstatSync(p, { throwIfNoEntry: false })?.mtimeMs ?? 0),
    );
  }
  return newest;
}

/**
 * Removes the scratch folders of runs that nothing has touched for `maxAgeMs`: what a worker killed mid-activity
 * left (a kill -9 runs no `finally`; a DuckDB spill can be gigabytes). Several workers on one host share the
 * folder, so only age decides, never "not mine". Returns the run ids removed. Workers call it when they start.
 */
export function sweepStaleScratch(maxAgeMs = STALE_SCRATCH_MS, root = scratchRoot()): string[] {
  let runs: string[];
  try {
    runs = fs.readdirSync(root);
  } catch {
    return [];
  }
  const now = Date.now();
  return runs.filter((run) => {
    const dir = path.join(root, run);
    if (now - newestMtime(dir) <= maxAgeMs) return false;
    fs.rmSync(dir, { recursive: true, force: true });
    return true;
  });
}
