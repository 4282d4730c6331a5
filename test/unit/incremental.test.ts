import {
  checkWatermark,
  emptyWatermark,
  isRunDate,
  needsDigest,
  entriesInWindow,
  appendCandidates,
  priorEntries,
  runDateOf,
  runDateProblem,
  selectFiles,
  windowStart,
  withEntry,
  type Watermark,
  type WatermarkEntry,
} from '../../analytics/incremental';

/** The pure watermark rules: which files a run for a date reads, and the history window. */

const A = { path: '/in/a.csv', size: 100, mtimeMs: 1000, sha256: 'aaa' };
const B = { path: '/in/b.csv', size: 200, mtimeMs: 2000, sha256: 'bbb' };

function entry(runDate: string, files: WatermarkEntry['files']): WatermarkEntry {
  return {
    runDate,
    runId: `run-${runDate}`,
    committedAt: `${runDate}T03:00:00.000Z`,
    files,
    newestEvent: `${runDate}T00:00:00Z`,
    partition: `/state/events/date=${runDate}/run-${runDate}.parquet`,
    rows: 10,
  };
}

const wm = (...entries: WatermarkEntry[]): Watermark => ({ ...emptyWatermark('ds'), entries });
const stat = (f: typeof A) => ({ path: f.path, size: f.size, mtimeMs: f.mtimeMs });

test('run dates are calendar dates; the default is the start date in UTC', () => {
  expect(isRunDate('2026-02-28')).toBe(true);
  expect(isRunDate('2026-02-30')).toBe(false);
  expect(isRunDate('2026-2-28')).toBe(false);
  expect(runDateOf(undefined, '2026-03-01T23:59:59.000Z')).toBe('2026-03-01');
  expect(runDateOf('2026-02-27', '2026-03-01T00:00:00.000Z')).toBe('2026-02-27');
  expect(() => runDateOf('yesterday', '2026-03-01T00:00:00.000Z')).toThrow(/runDate 'yesterday'/);
  // A future date would block every scheduled run until then (they would count as backfills).
  expect(() => runDateOf('2026-03-02', '2026-03-01T23:00:00.000Z')).toThrow(/after the run's start date/);
});

test('append candidates: consumed files that grew (the caller confirms the prefix by hashing)', () => {
  const log = wm(entry('2026-03-01', [A, B]));
  const grown = { path: A.path, size: 150, mtimeMs: 3000, sha256: 'a2' };
  const shrunk = { path: B.path, size: 50, mtimeMs: 3000, sha256: 'b2' };
  const fresh = { path: '/in/c.csv', size: 500, mtimeMs: 3000 };
  expect(appendCandidates(log, '2026-03-02', [grown, shrunk, fresh])).toEqual([
    { path: A.path, previous: A, consumedOn: '2026-03-01' },
  ]);
  // Re-running the date that consumed A: A is new to that run, not appended.
  expect(appendCandidates(log, '2026-03-01', [grown])).toEqual([]);
});

test('the first run reads every file', () => {
  expect(selectFiles(wm(), '2026-03-01', [stat(A), stat(B)])).toEqual({
    read: [A.path, B.path],
    skipped: [],
  });
});

test('day 2 reads only the file that arrived since day 1', () => {
  const log = wm(entry('2026-03-01', [A]));
  expect(selectFiles(log, '2026-03-02', [stat(A), stat(B)])).toEqual({
    read: [B.path],
    skipped: [{ path: A.path, consumedOn: '2026-03-01' }],
  });
});

test('re-running a date reads the same files again (entries of that date do not count)', () => {
  const log = wm(entry('2026-03-01', [A]), entry('2026-03-02', [B]));
  expect(selectFiles(log, '2026-03-02', [stat(A), stat(B)]).read).toEqual([B.path]);
  expect(priorEntries(log, '2026-03-02').map((e) => e.runDate)).toEqual(['2026-03-01']);
  expect(runDateProblem(log, '2026-03-02')).toBeNull();
  expect(runDateProblem(log, '2026-03-03')).toBeNull();
});

test('a date before the latest successful run is refused, naming both dates', () => {
  const log = wm(entry('2026-03-01', [A]), entry('2026-03-02', [B]));
  expect(runDateProblem(log, '2026-03-01')).toMatch(/2026-03-01 is before .*2026-03-02/);
});

test('a touched file is hashed; same digest → skipped, changed digest → new', () => {
  const log = wm(entry('2026-03-01', [A]));
  const touched = { ...stat(A), mtimeMs: 5000 };
  expect(needsDigest(log, '2026-03-02', [touched, stat(B)])).toEqual([A.path]);
  // Unchanged size and mtime are trusted without hashing.
  expect(needsDigest(log, '2026-03-02', [stat(A)])).toEqual([]);
  expect(selectFiles(log, '2026-03-02', [{ ...touched, sha256: 'aaa' }]).read).toEqual([]);
  expect(selectFiles(log, '2026-03-02', [{ ...touched, size: 150, sha256: 'a2' }]).read).toEqual([A.path]);
});

test('a file re-read after a change is compared with its latest record', () => {
  const A2 = { ...A, size: 150, mtimeMs: 3000, sha256: 'a2' };
  const log = wm(entry('2026-03-01', [A]), entry('2026-03-02', [A2]));
  expect(selectFiles(log, '2026-03-03', [stat(A2)]).skipped).toEqual([
    { path: A.path, consumedOn: '2026-03-02' },
  ]);
});

test('committing a date replaces its entry and keeps the log sorted', () => {
  let log = withEntry(wm(), entry('2026-03-02', [B]));
  log = withEntry(log, entry('2026-03-01', [A]));
  log = withEntry(log, { ...entry('2026-03-02', [B]), runId: 'rerun' });
  expect(log.entries.map((e) => [e.runDate, e.runId])).toEqual([
    ['2026-03-01', 'run-2026-03-01'],
    ['2026-03-02', 'rerun'],
  ]);
});

test('the history window ends historyDays before the newest event', () => {
  expect(windowStart('2026-03-31T12:00:00Z', 30)).toBe('2026-03-01T12:00:00.000Z');
  expect(windowStart('2026-03-31T12:00:00Z', 0.5)).toBe('2026-03-31T00:00:00.000Z');
});

test('a malformed or foreign watermark file is refused, not treated as empty', () => {
  expect(() => checkWatermark({ entries: [] }, 'ds')).toThrow(/not a watermark log/);
  expect(() => checkWatermark({ ...emptyWatermark('other') }, 'ds')).toThrow(/dataset 'other'/);
  expect(() => checkWatermark({ ...emptyWatermark('ds'), entries: [{ runDate: 'x' }] }, 'ds')).toThrow(
    /malformed entry/,
  );
  expect(checkWatermark(wm(entry('2026-03-01', [A])), 'ds').entries).toHaveLength(1);
});

test('history partitions wholly older than the window are not read', () => {
  const e = (runDate: string, newestEvent: string | null) => ({ ...entry(runDate, []), newestEvent });
  const entries = [
    e('2026-01-01', '2026-01-01T00:00:00Z'),
    e('2026-02-20', '2026-02-20T00:00:00Z'),
    e('2026-02-21', null),
    e('2026-03-01', '2026-03-01T00:00:00Z'),
  ];
  // 10 days before the newest prior event (2026-03-01): 2026-02-19 onwards.
  expect(entriesInWindow(entries, 10).map((x) => x.runDate)).toEqual([
    '2026-02-20',
    '2026-02-21',
    '2026-03-01',
  ]);
  expect(entriesInWindow(entries, 365)).toHaveLength(4);
  expect(entriesInWindow([], 10)).toEqual([]);
});
