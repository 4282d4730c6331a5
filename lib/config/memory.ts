import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/**
 * `duckdb.memoryLimit: auto` — DuckDB's memory sized from the machine, resolved when the config is loaded so
 * everything downstream sees a byte size such as `3758096384B`.
 *
 * Rule: AUTO_MEMORY_FRACTION of the memory available to this process — the cgroup v2 `memory.max` of the
 * process's own cgroup when one is set (a container's limit), else the machine's total memory (os.totalmem()),
 * whichever is smaller — divided by the activities one worker process runs at once (each opens its own DuckDB
 * with this limit), never below AUTO_MEMORY_FLOOR and never above AUTO_MEMORY_CAP. The other half is left to Node, tfjs/wasm training
 * buffers, Arrow results read into JS and the page cache. DuckDB spills larger-than-memory operators to the
 * run's temp_directory (lib/duckdb.ts, RunIO) instead of failing.
 */
export const AUTO_MEMORY_FRACTION = 0.5;
/** The least `auto` gives: below about 1 GB the ranking and windowed clean statements spill on every run. */
export const AUTO_MEMORY_FLOOR = 2 ** 30;
/**
 * The most `auto` gives one activity: a worker is meant to stay under 4 GiB at 20M events (issue #16's scale run).
 * Measured there on a 23.5 GiB machine: uncapped, auto was 3.9 GiB per activity and the worker peaked at 5.1 GiB
 * (DuckDB filled its limit in evaluate and publish before spilling); DuckDB spills past the cap instead.
 */
export const AUTO_MEMORY_CAP = 2 * 2 ** 30;
/** Activities a worker runs at once on the cpu queue (worker/workers.ts maxConcurrentActivityTaskExecutions). */
export const CPU_ACTIVITY_SLOTS = 2;
/** … and on the training queue. */
export const TRAINING_ACTIVITY_SLOTS = 1;
/** Activities one worker process with both roles (the default) may run at once, each with its own DuckDB. */
export const WORKER_ACTIVITY_SLOTS = CPU_ACTIVITY_SLOTS + TRAINING_ACTIVITY_SLOTS;

export interface MemoryReader {
  /** Bytes of the process's cgroup v2 memory.max, or null when unlimited ("max") or not under cgroup v2. */
  cgroupLimit(): number | null;
  /** Bytes of physical memory (os.totalmem()). */
  totalMemory(): number;
}

/** Parses a cgroup v2 memory.max file's text: a byte count, or "max" (no limit). */
export function parseCgroupMemoryMax(text: string): number | null {
  const t = text.trim();
  if (t === '' || t === 'max') return null;
  const n = Number(t);
  return Number.isFinite(n) && n > 0 ? n : null;
}

/** The real machine: /proc/self/cgroup's v2 path under /sys/fs/cgroup, then the root's memory.max. */
export const systemMemory: MemoryReader = {
  cgroupLimit(): number | null {
    const read = (f: string): number | null => {
      try {
        return parseCgroupMemoryMax(fs.readFileSync(f, 'utf8'));
      } catch {
        return null;
      }
    };
    const candidates: string[] = [];
    try {
      // cgroup v2: a single line "0::/some/path".
      const line = fs
        .readFileSync('/proc/self/cgroup', 'utf8')
        .split('\n')
        .find((l) => l.startsWith('0::'));
      if (line) candidates.push(path.join('/sys/fs/cgroup', line.slice(3).trim(), 'memory.max'));
    } catch {
      // not Linux, or no procfs
    }
    candidates.push('/sys/fs/cgroup/memory.max');
    const limits = candidates.map(read).filter((n): n is number => n !== null);
    return limits.length > 0 ? Math.min(...limits) : null;
  },
  totalMemory: () => os.totalmem(),
};

/** Bytes `auto` stands for under `reader`, for `slots` concurrent activities. */
export function autoMemoryBytes(reader: MemoryReader = systemMemory, slots = WORKER_ACTIVITY_SLOTS): number {
  const total = reader.totalMemory();
  const cgroup = reader.cgroupLimit();
  const available = cgroup !== null ? Math.min(cgroup, total) : total;
  const share = Math.floor((available * AUTO_MEMORY_FRACTION) / Math.max(1, slots));
  return Math.min(AUTO_MEMORY_CAP, Math.max(AUTO_MEMORY_FLOOR, share));
}

/** The byte size string (e.g. `3758096384B`, which DuckDB and parseByteSize read) that `auto` resolves to. */
export function autoMemoryLimit(reader: MemoryReader = systemMemory, slots = WORKER_ACTIVITY_SLOTS): string {
  return `${autoMemoryBytes(reader, slots)}B`;
}
