import * as fs from 'node:fs';
import * as path from 'node:path';
import { scratchRoot } from '../../../activities/support/scratch';

/** What a process and a data folder use, read from /proc and the filesystem (Linux). */

export function rssBytes(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /^VmRSS:\s+(\d+) kB/m.exec(status);
  return m ? Number(m[1]) * 1024 : 0;
}

/** The peak resident set of a process's life so far (VmHWM). */
export function peakRssBytes(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /^VmHWM:\s+(\d+) kB/m.exec(status);
  return m ? Number(m[1]) * 1024 : 0;
}

export function openFds(pid: number): number {
  return fs.readdirSync(`/proc/${pid}/fd`).length;
}

/** Bytes (apparent sizes) and files under a folder, by top-level entry. */
export function diskUsage(dir: string): { bytes: number; files: number; by: Record<string, number> } {
  const by: Record<string, number> = {};
  let files = 0;
  const walk = (p: string, top: string): number => {
    const st = fs.lstatSync(p, { throwIfNoEntry: false });
    if (!st) return 0;
    if (!st.isDirectory()) {
      files++;
      return st.size;
    }
    return fs.readdirSync(p).reduce((a, n) => a + walk(path.join(p, n), top), 0);
  };
  let bytes = 0;
  for (const n of fs.existsSync(dir) ? fs.readdirSync(dir) : []) {
    by[n] = walk(path.join(dir, n), n);
    bytes += by[n];
  }
  return { bytes, files, by };
}

/** Every journal folder under `dir`: its generation names and non-empty (content-holding) generations. */
export function journals(dir: string): { dir: string; names: number; withContent: number; bytes: number }[] {
  const out: { dir: string; names: number; withContent: number; bytes: number }[] = [];
  const walk = (p: string) => {
    for (const e of fs.readdirSync(p, { withFileTypes: true })) {
      if (!e.isDirectory()) continue;
      const child = path.join(p, e.name);
      if (e.name.endsWith('.journal')) {
        const names = fs.readdirSync(child);
        const sizes = names.map((n) => fs.statSync(path.join(child, n)).size);
        out.push({
          dir: path.relative(dir, child),
          names: names.length,
          withContent: sizes.filter((s) => s > 0).length,
          bytes: sizes.reduce((a, b) => a + b, 0),
        });
      } else walk(child);
    }
  };
  if (fs.existsSync(dir)) walk(dir);
  return out;
}

/** The worker-local scratch folders (RunIO.scratch) of the given runs that are still there. */
export function scratchLeft(runIds: Iterable<string>): string[] {
  return [...runIds].filter((id) => fs.existsSync(path.join(scratchRoot(), id)));
}
