/**
 * Incremental runs, the pure part: the watermark log of a dataset, which input files a run for a given date
 * reads, and the training history window. No I/O here (activities/incremental.ts reads and writes the log),
 * so every rule is unit-testable on plain values.
 *
 * The log holds one entry per successful run date. A run for date D reads the input files that no entry
 * dated before D consumed; so re-running D reads the same files again (idempotent), and a file that changed
 * since it was consumed (different digest) is read again as new.
 */

export interface FileRecord {
  path: string;
  size: number;
  mtimeMs: number;
  sha256: string;
}

export interface WatermarkEntry {
  /** YYYY-MM-DD (UTC): the run's logical date. */
  runDate: string;
  runId: string;
  committedAt: string;
  /** The files this run read (and consumed). */
  files: FileRecord[];
  /** The newest clean event among them (null when none survived cleaning). */
  newestEvent: string | null;
  /** This run's store partition: its clean new events (absolute path). */
  partition: string;
  /** Rows in the partition. */
  rows: number;
}

export interface Watermark {
  formatVersion: 1;
  datasetId: string;
  entries: WatermarkEntry[];
}

export interface FileStat {
  path: string;
  size: number;
  mtimeMs: number;
  /** Given when needsDigest() asked for it. */
  sha256?: string;
}

export interface Selection {
  /** Files to read in this run (new, or changed since they were consumed). */
  read: string[];
  /** Files an earlier run already consumed, with that run's date. */
  skipped: { path: string; consumedOn: string }[];
}

const DATE = /^\d{4}-\d{2}-\d{2}$/;

/** A real calendar date in YYYY-MM-DD form (2025-02-30 is not). */
export function isRunDate(s: string): boolean {
  if (!DATE.test(s)) return false;
  const t = Date.parse(`${s}T00:00:00Z`);
  return Number.isFinite(t) && new Date(t).toISOString().slice(0, 10) === s;
}

/**
 * The run date: the one asked for, or the workflow's start date in UTC (deterministic under replay). A date after
 * the start date is refused: once committed it would make every scheduled run until then "a backfill".
 */
export function runDateOf(requested: string | undefined, startedAt: string): string {
  const today = startedAt.slice(0, 10);
  const d = requested ?? today;
  if (!isRunDate(d)) throw new Error(`runDate '${d}': expected a calendar date YYYY-MM-DD`);
  if (d > today) throw new Error(`runDate ${d} is after the run's start date (${today}, UTC)`);
  return d;
}

export function emptyWatermark(datasetId: string): Watermark {
  return { formatVersion: 1, datasetId, entries: [] };
}

/** Entries committed for dates before `runDate`, oldest first: the history a run for `runDate` builds on. */
export function priorEntries(wm: Watermark, runDate: string): WatermarkEntry[] {
  return wm.entries.filter((e) => e.runDate < runDate).sort((a, b) => a.runDate.localeCompare(b.runDate));
}

/**
 * Why a run for `runDate` may not run, or null. Dates older than the latest committed one are refused: that
 * run would re-read files a later date consumed and rewrite history that later partitions were built on.
 */
export function runDateProblem(wm: Watermark, runDate: string): string | null {
  const latest = wm.entries
    .map((e) => e.runDate)
    .sort()
    .at(-1);
  if (latest && runDate < latest) {
    return `runDate ${runDate} is before the latest successful run (${latest}); re-run ${latest} or a later date`;
  }
  return null;
}

/** The latest record of each file consumed before `runDate` (a changed file may have been read twice). */
function consumed(wm: Watermark, runDate: string): Map<string, { rec: FileRecord; on: string }> {
  const m = new Map<string, { rec: FileRecord; on: string }>();
  for (const e of priorEntries(wm, runDate))
    for (const f of e.files) m.set(f.path, { rec: f, on: e.runDate });
  return m;
}

/**
 * Files whose digest decides whether they are new: consumed before, but their size or mtime differs now
 * (a touched file with the same content is not new). Files with the same path, size and mtime are trusted
 * unchanged without re-hashing, which keeps planning cheap on a folder that grows every night.
 */
export function needsDigest(wm: Watermark, runDate: string, files: FileStat[]): string[] {
  const seen = consumed(wm, runDate);
  return files
    .filter((f) => {
      const c = seen.get(f.path);
      return c !== undefined && (c.rec.size !== f.size || c.rec.mtimeMs !== f.mtimeMs);
    })
    .map((f) => f.path);
}

/** The files a run for `runDate` reads: everything not consumed before it, or changed since. */
export function selectFiles(wm: Watermark, runDate: string, files: FileStat[]): Selection {
  const seen = consumed(wm, runDate);
  const read: string[] = [];
  const skipped: Selection['skipped'] = [];
  for (const f of files) {
    const c = seen.get(f.path);
    const same =
      c !== undefined &&
      ((c.rec.size === f.size && c.rec.mtimeMs === f.mtimeMs) ||
        (f.sha256 !== undefined && f.sha256 === c.rec.sha256));
    if (same) skipped.push({ path: f.path, consumedOn: c.on });
    else read.push(f.path);
  }
  return { read, skipped };
}

/**
 * Files that may have grown by appending since an earlier run consumed them: larger now, so the earlier bytes
 * could be a prefix. The caller confirms by hashing that many leading bytes (`previous.size`).
 */
export function appendCandidates(
  wm: Watermark,
  runDate: string,
  files: FileStat[],
): { path: string; previous: FileRecord; consumedOn: string }[] {
  const seen = consumed(wm, runDate);
  const out: { path: string; previous: FileRecord; consumedOn: string }[] = [];
  for (const f of files) {
    const c = seen.get(f.path);
    if (c && f.size > c.rec.size && f.sha256 !== c.rec.sha256)
      out.push({ path: f.path, previous: c.rec, consumedOn: c.on });
  }
  return out;
}

/** The log with `entry` as the entry of its date (a re-run replaces the earlier entry), oldest first. */
export function withEntry(wm: Watermark, entry: WatermarkEntry): Watermark {
  const entries = wm.entries.filter((e) => e.runDate !== entry.runDate).concat(entry);
  entries.sort((a, b) => a.runDate.localeCompare(b.runDate));
  return { ...wm, entries };
}

/** The oldest event time the training window keeps: `historyDays` before the newest event. */
export function windowStart(newestEvent: string, historyDays: number): string {
  return new Date(Date.parse(newestEvent) - Math.round(historyDays * 86_400_000)).toISOString();
}

/**
 * The prior entries whose partitions can still hold events inside the training window. The window ends at the
 * newest event overall, which is at least the newest of the prior entries, so an entry whose newest event is
 * older than that minus `historyDays` lies wholly outside it: not read at all, which keeps a run's cost bounded
 * by the window instead of growing with every night ever ingested.
 */
export function entriesInWindow(
  entries: WatermarkEntry[],
  historyDays: number,
  /** A public window start (privacy on: the run date minus historyDays) instead of one from the data. */
  publicStart?: string,
): WatermarkEntry[] {
  if (publicStart !== undefined) {
    const start = new Date(publicStart).toISOString();
    return entries.filter((e) => e.newestEvent === null || new Date(e.newestEvent).toISOString() >= start);
  }
  const newest = entries
    .map((e) => e.newestEvent)
    .filter((t): t is string => t !== null)
    .sort()
    .at(-1);
  if (!newest) return entries;
  const start = windowStart(newest, historyDays);
  return entries.filter((e) => e.newestEvent === null || new Date(e.newestEvent).toISOString() >= start);
}

/** Checks a parsed watermark file; the message names what is wrong (the caller adds the file). */
export function checkWatermark(value: unknown, datasetId: string): Watermark {
  const wm = value as Partial<Watermark> | null;
  if (!wm || wm.formatVersion !== 1 || !Array.isArray(wm.entries)) {
    throw new Error('not a watermark log (expected formatVersion 1 and an entries list)');
  }
  if (wm.datasetId !== datasetId) {
    throw new Error(`belongs to dataset '${String(wm.datasetId)}', not '${datasetId}'`);
  }
  for (const e of wm.entries) {
    if (!e || !isRunDate(e.runDate) || !Array.isArray(e.files) || typeof e.partition !== 'string') {
      throw new Error(`malformed entry ${JSON.stringify(e).slice(0, 200)}`);
    }
  }
  return wm as Watermark;
}
