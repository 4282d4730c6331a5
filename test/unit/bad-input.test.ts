import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { ApplicationFailure } from '@temporalio/common';
import { findProjectRoot, loadConfig } from '../../lib/config';
import { Db, lit } from '../../lib/duckdb';
import { ingest } from '../../activities/ingest';
import { clean } from '../../activities/clean';
import { resolveInputFiles } from '../../activities/support/files';
import type { CleanArtifacts, CleanResult, IngestResult, RawArtifacts } from '../../contracts/stages';
import { artifactFile, directStage, queryArtifacts } from '../helpers/stages';

/**
 * The bad-input corpus: every case must end in a clear error naming the file (and line/field where it
 * applies) or in quarantined rows with the right reason — never a crash, a hang or a half-loaded table.
 * Small cases are committed under test/fixtures/bad/; binary and large ones are generated here.
 * Each case has a 5 s budget: bad input must fail fast.
 */

const ROOT = findProjectRoot(__dirname);
const FIX = path.join(ROOT, 'test', 'fixtures', 'bad');
const FAST = 5000;
const fixture = (name: string) => path.join(FIX, name);

let scratch: string;
beforeAll(() => {
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'recforge-bad-'));
});
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

let runs = 0;

/** A run over `files` called directly, and the artifacts its stages have produced so far. */
type Plan = ReturnType<typeof directStage> & { raw?: RawArtifacts; clean?: CleanArtifacts };

/** A run over `files` in its own folder; thresholds relaxed so that clean() reaches its quarantine. */
function planFor(files: string[]): Plan {
  const dataDir = path.join(scratch, `data-${++runs}`);
  const config = loadConfig({
    root: ROOT,
    env: {},
    overrides: {
      dataDir,
      duckdb: { memoryLimit: '1GB', threads: 2 },
      quality: {
        minRows: 1,
        maxQuarantineShare: 1,
        maxQuarantineShareByReason: { malformed_line: 1, bad_timestamp: 1 },
      },
      evaluation: { holdoutDays: 1, k: 10 },
    },
  }).config;
  // The run folder is runs/bad/run-<n> under the data folder, as the plan activity would name it.
  return directStage(config, files, {
    runId: `run-${runs}`,
    datasetId: 'bad',
    startedAt: '2025-06-01T00:00:00.000Z',
  });
}

/** Ingest, keeping the raw artifacts for the queries below. */
async function ingestRun(plan: Plan): Promise<IngestResult> {
  const r = await ingest(plan.deps, plan.run);
  plan.raw = r.raw;
  return r;
}

/** Clean over what ingestRun landed, keeping the clean artifacts for the queries below. */
async function cleanRun(plan: Plan): Promise<CleanResult> {
  if (!plan.raw) throw new Error('ingest first');
  const r = await clean(plan.deps, plan.run, plan.raw);
  plan.clean = r.artifacts;
  return r;
}

/** A file in the scratch folder (generated cases). */
function scratchFile(name: string, content: string | Buffer): string {
  const f = path.join(scratch, `${runs}-${name}`);
  fs.mkdirSync(path.dirname(f), { recursive: true });
  fs.writeFileSync(f, content);
  return f;
}

/** SQL over the run's artifacts: raw_events, raw_rejects, raw_items and (after cleaning) events, user_ids, … */
async function query<T extends Record<string, unknown>>(plan: Plan, sql: string): Promise<T[]> {
  if (!plan.raw) throw new Error('no raw artifacts: the ingest did not succeed');
  return queryArtifacts<T>(plan, { raw: plan.raw, clean: plan.clean }, sql);
}

/** Every file under the run's raw/ folder (what ingest lands), relative to it. */
function rawFiles(plan: Plan): string[] {
  const dir = path.join(plan.runDir, 'raw');
  if (!fs.existsSync(dir)) return [];
  return (fs.readdirSync(dir, { recursive: true }) as string[]).filter((f) =>
    fs.statSync(path.join(dir, f)).isFile(),
  );
}

/** The ApplicationFailure a call ends with (fails the test if it succeeds or throws something else). */
async function failure(p: Promise<unknown>): Promise<ApplicationFailure> {
  const err = await p.then(
    () => new Error('expected a failure, got success'),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ApplicationFailure);
  return err as ApplicationFailure;
}

async function badInput(files: string[], message: RegExp): Promise<Plan> {
  const plan = planFor(files);
  const err = await failure(ingestRun(plan));
  expect(err.type).toBe('BadInput');
  expect(err.nonRetryable).toBe(true);
  expect(err.message).toMatch(message);
  // A failed ingest leaves no half-landed raw artifacts in the run folder for a later stage to pick up.
  expect(rawFiles(plan)).toEqual([]);
  return plan;
}

interface RawRow extends Record<string, unknown> {
  source_line: number;
  user_id: string | null;
  item_id: string | null;
  event_type: string | null;
  timestamp: string | null;
}
const rawEvents = (plan: Plan) =>
  query<RawRow>(
    plan,
    `SELECT source_line, user_id, item_id, event_type, "timestamp" FROM raw_events ORDER BY 1`,
  );
const rawRejects = (plan: Plan) =>
  query<{ source_line: number; reason: string; detail: string; raw: string }>(
    plan,
    `SELECT source_line, reason, detail, raw FROM raw_rejects ORDER BY 1`,
  );
const quarantine = (plan: Plan) =>
  query<{
    reason: string;
    user_id: string;
    item_id: string;
    rating: string;
    timestamp: string;
    source_line: number;
  }>(
    plan,
    `SELECT reason, user_id, item_id, rating, "timestamp", source_line
     FROM read_parquet(${lit(artifactFile(plan, plan.clean!.quarantine))}) ORDER BY source_line`,
  );

/** Deterministic pseudo-random bytes (a fixed LCG), so the garbage case is the same on every run. */
function garbage(n: number): Buffer {
  const b = Buffer.alloc(n);
  let x = 12345;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

/** A CSV body of n valid rows (for compressed cases that need more than one deflate block). */
function manyRows(n: number): string {
  const lines = ['user_id,item_id,event_type,timestamp'];
  for (let i = 0; i < n; i++) lines.push(`u${i % 97},i${i % 89},view,${1746093600 + i * 60}`);
  return lines.join('\n') + '\n';
}

describe('truncated and empty files', () => {
  test(
    'a file cut mid-line keeps the good rows and quarantines the cut line',
    async () => {
      const plan = planFor([fixture('structure/truncated-mid-line.csv')]);
      const r = await ingestRun(plan);
      expect(r.rows).toBe(2);
      expect(r.rejectedLines).toBe(1);
      const [rej] = await rawRejects(plan);
      expect(rej).toMatchObject({ source_line: 4, reason: 'malformed_line', raw: 'u3,i3,vi' });
      expect(rej.detail).toMatch(/MISSING COLUMNS.*Expected Number of Columns: 4 Found: 3/);
    },
    FAST,
  );

  test(
    'a file cut inside a quoted field quarantines the line with the unterminated quote',
    async () => {
      const plan = planFor([fixture('structure/truncated-mid-quote.csv')]);
      const r = await ingestRun(plan);
      expect(r.rows).toBe(2);
      const [rej] = await rawRejects(plan);
      expect(rej.source_line).toBe(4);
      expect(rej.detail).toMatch(/UNQUOTED VALUE in column item_id: Value with unterminated quote/);
      expect((await rawEvents(plan)).map((e) => e.source_line)).toEqual([2, 3]);
    },
    FAST,
  );

  test(
    'an empty (0-byte) file is refused, naming the file',
    async () => {
      await badInput([fixture('structure/empty.csv')], /empty\.csv: the file is empty \(0 bytes/);
    },
    FAST,
  );

  test(
    'a header-only file is refused: no data rows',
    async () => {
      await badInput(
        [fixture('structure/header-only.csv')],
        /no readable interaction rows: .*header-only\.csv: no data rows/,
      );
    },
    FAST,
  );

  test(
    'a header-only file next to a good one is fine (it contributes no rows)',
    async () => {
      const r = await ingestRun(
        planFor([fixture('structure/good.csv'), fixture('structure/header-only.csv')]),
      );
      expect(r.files.map((f) => f.rows)).toEqual([10, 0]);
    },
    FAST,
  );
});

describe('header and schema contract', () => {
  test(
    'a missing header line (data in the first line) is named as such',
    async () => {
      await badInput(
        [fixture('structure/no-header.csv')],
        /no-header\.csv: missing required column .*is the header line missing\?/,
      );
    },
    FAST,
  );

  test(
    'a missing required column is named with the columns found',
    async () => {
      await badInput(
        [fixture('structure/missing-column.csv')],
        /missing-column\.csv: missing required column 'timestamp' \(found: user_id, item_id, event_type\)/,
      );
    },
    FAST,
  );

  test(
    'a file with neither event_type nor rating is refused',
    async () => {
      await badInput(
        [fixture('structure/no-type-column.csv')],
        /no-type-column\.csv: needs an 'event_type' or a 'rating' column/,
      );
    },
    FAST,
  );

  test(
    'a semicolon-separated file is recognised as the wrong delimiter',
    async () => {
      await badInput([fixture('structure/semicolon.csv')], /semicolon\.csv: .*looks ';'-separated/);
    },
    FAST,
  );

  test(
    'duplicate contract columns are refused (case-insensitively), naming both positions',
    async () => {
      await badInput(
        [fixture('structure/duplicate-header.csv')],
        /duplicate-header\.csv: duplicate column 'user_id' \(columns 1 and 3\)/,
      );
    },
    FAST,
  );

  test(
    'extra unknown, repeated and unnamed columns are ignored',
    async () => {
      const plan = planFor([fixture('structure/extra-columns.csv')]);
      expect((await ingestRun(plan)).rows).toBe(2);
      expect(await rawEvents(plan)).toEqual([
        {
          source_line: 2,
          user_id: 'u1',
          item_id: 'i1',
          event_type: 'view',
          timestamp: '2025-05-01T10:00:00Z',
        },
        {
          source_line: 3,
          user_id: 'u2',
          item_id: 'i2',
          event_type: 'click',
          timestamp: '2025-05-02T10:00:00Z',
        },
      ]);
    },
    FAST,
  );

  test(
    'a .tsv file is read tab-separated, with header names matched case-insensitively',
    async () => {
      const plan = planFor([fixture('structure/tabs.tsv')]);
      expect((await ingestRun(plan)).rows).toBe(2);
      expect((await rawEvents(plan)).map((e) => [e.user_id, e.event_type])).toEqual([
        ['u1', 'view'],
        ['u2', 'click'],
      ]);
    },
    FAST,
  );
});

describe('encodings, line endings and binary data', () => {
  test(
    'binary garbage named .csv is refused as binary, naming the file',
    async () => {
      const f = scratchFile('garbage.csv', garbage(64 * 1024));
      await badInput([f], /garbage\.csv: .*(binary|not valid UTF-8|control characters)/);
    },
    FAST,
  );

  test(
    'gzip data under a .csv name (and plain text under .csv.gz) is recognised and named',
    async () => {
      const f = scratchFile('packed.csv', zlib.gzipSync(fs.readFileSync(fixture('structure/good.csv'))));
      await badInput([f], /packed\.csv: the file holds gzip-compressed data \(name it \.csv\.gz\)/);
      const plain = scratchFile('plain.csv.gz', fs.readFileSync(fixture('structure/good.csv')));
      await badInput([plain], /plain\.csv\.gz: not a readable gzip file \(incorrect header check\)/);
    },
    FAST,
  );

  test(
    'invalid UTF-8 inside a field quarantines that line, naming the column',
    async () => {
      const f = scratchFile(
        'latin1.csv',
        Buffer.concat([
          Buffer.from('user_id,item_id,event_type,timestamp\nu1,i1,view,2025-05-01T10:00:00Z\nu2,caf'),
          Buffer.from([0xe9, 0xff]),
          Buffer.from(',view,2025-05-02T10:00:00Z\nu3,i3,view,2025-05-03T10:00:00Z\n'),
        ]),
      );
      const plan = planFor([f]);
      expect((await ingestRun(plan)).rows).toBe(2);
      const [rej] = await rawRejects(plan);
      expect(rej.source_line).toBe(3);
      expect(rej.detail).toMatch(/INVALID ENCODING in column item_id/);
      expect((await rawEvents(plan)).map((e) => e.source_line)).toEqual([2, 4]);
    },
    FAST,
  );

  test(
    'a 10 MB field quarantines its line (bounded) and the file still loads',
    async () => {
      const f = scratchFile(
        'huge-field.csv',
        `user_id,item_id,event_type,timestamp\nu1,i1,view,2025-05-01T10:00:00Z\nu2,${'x'.repeat(10 * 1024 * 1024)},view,2025-05-02T10:00:00Z\nu3,i3,view,2025-05-03T10:00:00Z\n`,
      );
      const plan = planFor([f]);
      const r = await ingestRun(plan);
      expect(r.rows).toBe(2);
      const [rej] = await rawRejects(plan);
      expect(rej.source_line).toBe(3);
      expect(rej.reason).toBe('line_too_long');
      expect(rej.detail).toMatch(/line of \d+ bytes, longer than the 2097152-byte limit/);
      expect(rej.raw.length).toBeLessThanOrEqual(4096);
      expect((await rawEvents(plan)).map((e) => e.source_line)).toEqual([2, 4]);
    },
    FAST,
  );

  test(
    'CRLF line endings: no carriage returns in values, exact line numbers',
    async () => {
      const plan = planFor([fixture('encoding/crlf.csv')]);
      expect((await ingestRun(plan)).rows).toBe(3);
      const rows = await rawEvents(plan);
      expect(rows.map((e) => e.source_line)).toEqual([2, 3, 4]);
      expect(rows.every((e) => !/\r/.test(String(e.timestamp)))).toBe(true);
    },
    FAST,
  );

  test(
    'a UTF-8 byte-order mark does not hide the first column name (also with CRLF)',
    async () => {
      for (const name of ['encoding/bom.csv', 'encoding/bom-crlf.csv']) {
        const plan = planFor([fixture(name)]);
        await ingestRun(plan);
        expect((await rawEvents(plan))[0]).toMatchObject({ source_line: 2, user_id: 'u1' });
      }
    },
    FAST,
  );

  test(
    'old-Mac CR-only line endings load with exact line numbers',
    async () => {
      const f = scratchFile(
        'cr-only.csv',
        fs.readFileSync(fixture('encoding/crlf.csv'), 'latin1').replace(/\r\n/g, '\r'),
      );
      const plan = planFor([f]);
      expect((await ingestRun(plan)).rows).toBe(3);
      expect((await rawEvents(plan)).map((e) => [e.source_line, e.user_id])).toEqual([
        [2, 'u1'],
        [3, 'u2'],
        [4, 'u3'],
      ]);
    },
    FAST,
  );

  test(
    'mixed CRLF and LF line endings load (DuckDB strict mode would fail the whole file)',
    async () => {
      const plan = planFor([fixture('encoding/mixed-newlines.csv')]);
      expect((await ingestRun(plan)).rows).toBe(3);
      const rows = await rawEvents(plan);
      expect(rows.map((e) => [e.source_line, e.user_id])).toEqual([
        [2, 'u1'],
        [3, 'u2'],
        [5, 'u4'],
      ]);
      expect(rows.every((e) => !/\r/.test(String(e.timestamp)))).toBe(true);
      expect((await rawRejects(plan)).map((r) => r.source_line)).toEqual([4]);
    },
    FAST,
  );

  test(
    'quoted fields spanning lines (CRLF, escaped quotes, blank lines around them) keep physical line numbers',
    async () => {
      const plan = planFor([fixture('structure/multiline-quoted.csv')]);
      expect((await ingestRun(plan)).rows).toBe(3);
      expect((await rawEvents(plan)).map((e) => [e.source_line, e.user_id])).toEqual([
        [2, 'u1'],
        [7, 'u3'],
        [12, 'u6'],
      ]);
      // The ids that span lines hold line breaks: not printable, so quarantined (at the line where they start).
      expect((await rawRejects(plan)).map((r) => [r.source_line, r.reason])).toEqual([
        [4, 'bad_id'],
        [9, 'malformed_line'],
        [10, 'bad_id'],
      ]);
      expect((await rawRejects(plan))[0].detail).toBe(
        'item_id: holds a control or invisible character (U+000D)',
      );
    },
    FAST,
  );

  test(
    'a stray quote inside unquoted fields is literal and shifts nothing (blank lines and rejects after it too)',
    async () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'recforge-stray-'));
      const f = path.join(dir, 'stray.csv');
      fs.writeFileSync(
        f,
        'user_id,item_id,event_type,rating,timestamp\nu1,i"1,view,,2026-01-01T00:00:00Z\nu2,i2,view,,2026-01-01T00:00:00Z\nu3,i"3,view,,2026-01-01T00:00:00Z\n\nu4,i4,view,,2026-01-01T00:00:00Z\nu5,i5,view\nu6,i6,view,,2026-01-01T00:00:00Z\n',
      );
      const plan = planFor([f]);
      await ingestRun(plan);
      expect((await rawEvents(plan)).map((e) => [e.source_line, e.user_id])).toEqual([
        [2, 'u1'],
        [3, 'u2'],
        [4, 'u3'],
        [6, 'u4'],
        [8, 'u6'],
      ]);
      expect((await rawRejects(plan)).map((r) => r.source_line)).toEqual([7]);
    },
    FAST,
  );

  test(
    'line numbers stay physical across thousands of rows: malformed lines on and around line-map bucket edges, with and without blank lines; row ids unique across files',
    async () => {
      // Rows are tagged with the physical line they are written on, so every landed row checks its own number.
      const build = (n: number, bad: Set<number>, blank: Set<number>) => {
        const lines = ['user_id,item_id,event_type,rating,timestamp'];
        for (let line = 2; lines.length < n; line++) {
          if (blank.has(line)) lines.push('');
          else if (bad.has(line)) lines.push(`bad${line},i1`);
          else lines.push(`L${line},i${line % 7},view,,2026-01-01T00:00:00Z`);
        }
        return `${lines.join('\n')}\n`;
      };
      const bad = [2, 3, 4097, 4098, 4099, 4100, 8194, 8195, 9000, 12_001];
      const blank = [5, 4096, 8193, 9999];
      const a = scratchFile('buckets-rejects.csv', build(12_001, new Set(bad), new Set()));
      const b = scratchFile('buckets-blanks.csv', build(10_000, new Set(bad), new Set(blank)));
      const jsonBad = [2, 4097, 4098, 8999];
      const c = scratchFile(
        'buckets.jsonl',
        Array.from({ length: 9000 }, (_, i) =>
          jsonBad.includes(i + 1)
            ? '{not json'
            : JSON.stringify({
                user_id: `L${i + 1}`,
                item_id: 'i1',
                event_type: 'view',
                timestamp: '2026-01-01T00:00:00Z',
              }),
        ).join('\n') + '\n',
      );
      // Dense and consecutive rejects (narrow buckets, runs of rejected lines sharing one shift point) and rejects on
      // the edges of 64..512-wide buckets.
      const dense = [66, 67, 130, 258, 514, 515];
      for (let l = 1000; l < 2000; l += 2) dense.push(l);
      for (let l = 3000; l < 3100; l++) dense.push(l);
      const d = scratchFile('buckets-dense.csv', build(5000, new Set(dense), new Set()));
      const plan = planFor([a, b, c, d]);
      await ingestRun(plan);
      const rows = await query<{ rid: number; source_file: string; source_line: number; user_id: string }>(
        plan,
        `SELECT rid, source_file, source_line, user_id FROM raw_events`,
      );
      const badInB = bad.filter((l) => l <= 10_000);
      expect(rows.length).toBe(
        12_000 -
          bad.length +
          (9999 - blank.length - badInB.length) +
          9000 -
          jsonBad.length +
          4999 -
          dense.length,
      );
      expect(rows.filter((r) => r.user_id !== `L${r.source_line}`).slice(0, 5)).toEqual([]);
      expect(new Set(rows.map((r) => r.rid)).size).toBe(rows.length);
      const rejects = await query<{ source_file: string; source_line: number }>(
        plan,
        `SELECT source_file, source_line FROM raw_rejects ORDER BY source_line`,
      );
      const linesOf = (f: string) => rejects.filter((r) => r.source_file === f).map((r) => r.source_line);
      expect(linesOf(a)).toEqual(bad);
      expect(linesOf(b)).toEqual(badInB);
      expect(linesOf(c)).toEqual(jsonBad);
      expect(linesOf(d)).toEqual([...dense].sort((x, y) => x - y));
    },
    FAST * 2,
  );

  test(
    'blank lines are skipped without shifting the line numbers of later rows',
    async () => {
      const plan = planFor([fixture('structure/blank-lines.csv')]);
      expect((await ingestRun(plan)).rows).toBe(3);
      expect((await rawEvents(plan)).map((e) => [e.source_line, e.user_id])).toEqual([
        [2, 'u1'],
        [6, 'u3'],
        [8, 'u4'],
      ]);
      expect((await rawRejects(plan)).map((r) => r.source_line)).toEqual([5]);
    },
    FAST,
  );
});

describe('compressed input', () => {
  test(
    'a gzip CSV loads like the plain file, checksummed over the compressed bytes',
    async () => {
      const gz = zlib.gzipSync(fs.readFileSync(fixture('structure/good.csv')));
      const f = scratchFile('good.csv.gz', gz);
      const plan = planFor([f]);
      const r = await ingestRun(plan);
      expect(r.rows).toBe(10);
      expect(r.files[0]).toMatchObject({ format: 'csv', bytes: gz.length });
      expect((await rawEvents(plan)).map((e) => e.source_line)).toEqual([2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    },
    FAST,
  );

  test(
    'a corrupt gzip stream is refused (DuckDB alone would load part of it silently)',
    async () => {
      const gz = Buffer.from(zlib.gzipSync(manyRows(50_000)));
      for (let i = 4000; i < 4100; i++) gz[i] ^= 0x5a;
      await badInput([scratchFile('corrupt.csv.gz', gz)], /corrupt\.csv\.gz: corrupt or truncated gzip data/);
    },
    FAST,
  );

  test(
    'a truncated gzip file is refused, not loaded short',
    async () => {
      const gz = zlib.gzipSync(manyRows(50_000));
      const f = scratchFile('cut.csv.gz', gz.subarray(0, Math.floor(gz.length * 0.7)));
      await badInput([f], /cut\.csv\.gz: corrupt or truncated gzip data.*unexpected end of file/);
    },
    FAST,
  );
});

describe('JSON Lines', () => {
  test(
    'malformed lines are quarantined with their numbers; good lines keep theirs',
    async () => {
      const plan = planFor([fixture('jsonl/malformed.jsonl')]);
      const r = await ingestRun(plan);
      expect(r.rows).toBe(3);
      expect((await rawEvents(plan)).map((e) => [e.source_line, e.user_id, e.timestamp])).toEqual([
        [1, 'u1', '2025-05-01T10:00:00Z'],
        [4, '3', '1746180000'],
        [7, 'u5', '2025-05-04T10:00:00Z'],
      ]);
      expect((await rawRejects(plan)).map((x) => [x.source_line, x.detail])).toEqual([
        [2, 'invalid JSON'],
        [5, 'not a JSON object: ARRAY'],
        [6, 'invalid JSON'],
      ]);
    },
    FAST,
  );

  test(
    'invalid UTF-8 and over-long lines are quarantined without shifting later line numbers',
    async () => {
      const row = (u: string) =>
        `{"user_id":"${u}","item_id":"i1","event_type":"view","timestamp":"2025-05-01T10:00:00Z"}\n`;
      const f = scratchFile(
        'dirty.jsonl',
        Buffer.concat([
          Buffer.from(row('u1')),
          Buffer.from('{"user_id":"'),
          Buffer.from([0xc3, 0x28]),
          Buffer.from('"}\n'),
          Buffer.from(row('u3')),
          Buffer.from(`{"user_id":"${'y'.repeat(3 * 1024 * 1024)}"}\n`),
          Buffer.from(row('u5')),
        ]),
      );
      const plan = planFor([f]);
      expect((await ingestRun(plan)).rows).toBe(3);
      expect((await rawEvents(plan)).map((e) => [e.source_line, e.user_id])).toEqual([
        [1, 'u1'],
        [3, 'u3'],
        [5, 'u5'],
      ]);
      const rej = await rawRejects(plan);
      expect(rej.map((x) => x.source_line)).toEqual([2, 4]);
      expect(rej[0].detail).toMatch(/INVALID ENCODING/);
      expect(rej[1]).toMatchObject({ reason: 'line_too_long' });
    },
    FAST,
  );

  test(
    'a JSON Lines file where no line has user_id is refused like a missing column',
    async () => {
      await badInput([fixture('jsonl/no-user.jsonl')], /no-user\.jsonl: missing required field 'user_id'/);
    },
    FAST,
  );
});

describe('Parquet', () => {
  async function writeParquet(name: string, select: string): Promise<string> {
    const f = path.join(scratch, `${++runs}-${name}`);
    const db = await Db.open(':memory:', { memoryLimit: '256MB', threads: 1 });
    try {
      await db.run(`COPY (${select}) TO ${lit(f)} (FORMAT parquet)`);
    } finally {
      db.close();
    }
    return f;
  }

  test(
    'wrong column types (INT ids, TIMESTAMP / TIMESTAMPTZ / DATE times) load and clean correctly',
    async () => {
      const f = await writeParquet(
        'typed.parquet',
        `SELECT * FROM (VALUES
           (42, 7::BIGINT, 'view', NULL::DOUBLE, TIMESTAMP '2025-05-01 10:00:00', TIMESTAMPTZ '2025-05-01 10:00:00+02'),
           (43, 8::BIGINT, 'rating', 4.5, TIMESTAMP '2025-05-05 12:30:00', TIMESTAMPTZ '2025-05-05 12:30:00+00'))
         AS t(user_id, item_id, event_type, rating, "timestamp", tz)`,
      );
      const g = await writeParquet(
        'tz.parquet',
        `SELECT 44::INT AS USER_ID, 'i9' AS item_id, 'click' AS event_type,
                TIMESTAMPTZ '2025-05-03 10:00:00+02' AS "timestamp"`,
      );
      const plan = planFor([f, g]);
      expect((await ingestRun(plan)).rows).toBe(3);
      await cleanRun(plan);
      const events = await query<{ user_id: string; item_id: string; rating: number | null; ts: string }>(
        plan,
        `SELECT user_id, item_id, rating, strftime(ts, '%Y-%m-%dT%H:%M:%SZ') AS ts FROM events ORDER BY ts`,
      );
      expect(events).toEqual([
        { user_id: '42', item_id: '7', rating: null, ts: '2025-05-01T10:00:00Z' },
        // A zone-aware time is converted to UTC, not read as local wall-clock time.
        { user_id: '44', item_id: 'i9', rating: null, ts: '2025-05-03T08:00:00Z' },
        { user_id: '43', item_id: '8', rating: 4.5, ts: '2025-05-05T12:30:00Z' },
      ]);
    },
    FAST,
  );

  test(
    'a truncated Parquet file is refused, naming the file',
    async () => {
      const f = await writeParquet(
        'whole.parquet',
        `SELECT 'u' || i AS user_id, 'i1' AS item_id, 'view' AS event_type, '2025-05-01T00:00:00Z' AS "timestamp"
         FROM range(1000) t(i)`,
      );
      const cut = scratchFile('cut.parquet', fs.readFileSync(f).subarray(0, 300));
      await badInput([cut], /cut\.parquet: cannot read as parquet: .*(magic bytes|too small)/i);
    },
    FAST,
  );

  test(
    'a Parquet file without a required column is refused like a CSV one',
    async () => {
      const f = await writeParquet(
        'noitem.parquet',
        `SELECT 'u1' AS user_id, 'view' AS event_type, now() AS "timestamp"`,
      );
      await badInput([f], /noitem\.parquet: missing required column 'item_id'/);
    },
    FAST,
  );
});

describe('values the cleaner must quarantine', () => {
  test(
    'NaN and Infinity ratings are quarantined as bad_rating',
    async () => {
      const plan = planFor([fixture('numbers/bad-ratings.csv')]);
      await ingestRun(plan);
      const r = await cleanRun(plan);
      expect(r.kept).toBe(2);
      expect((await quarantine(plan)).map((q) => [q.source_line, q.reason, q.rating])).toEqual([
        [3, 'bad_rating', 'NaN'],
        [4, 'bad_rating', 'Infinity'],
        [5, 'bad_rating', '-inf'],
        [6, 'bad_rating', 'nan'],
        [8, 'bad_rating', 'NaN'],
      ]);
    },
    FAST,
  );

  test(
    'negative epochs, far-future and infinite timestamps get their reasons',
    async () => {
      const plan = planFor([fixture('timestamps/epochs.csv')]);
      await ingestRun(plan);
      const r = await cleanRun(plan);
      expect(r.kept).toBe(2);
      expect((await quarantine(plan)).map((q) => [q.timestamp, q.reason])).toEqual([
        ['-86400', 'timestamp_before_floor'],
        ['-99999999999', 'timestamp_before_floor'],
        ['99999999999', 'future_timestamp'],
        ['9999-12-31T23:59:59Z', 'future_timestamp'],
        ['infinity', 'future_timestamp'],
        ['-infinity', 'timestamp_before_floor'],
        ['99999999999999999999', 'bad_timestamp'],
        ['2100-01-01T00:00:00Z', 'future_timestamp'],
      ]);
    },
    FAST,
  );

  test(
    'ids with quotes, semicolons and SQL fragments round-trip verbatim; nothing is executed',
    async () => {
      const plan = planFor([fixture('ids/sql-ids.csv')]);
      await ingestRun(plan);
      await cleanRun(plan);
      const evil = "u1'); DROP TABLE raw_events; --";
      const events = await query<{ user_id: string; item_id: string }>(
        plan,
        `SELECT user_id, item_id FROM events ORDER BY user_id, item_id`,
      );
      expect(events).toEqual([
        { user_id: evil, item_id: 'i1' },
        { user_id: 'u2";DROP TABLE raw_rejects;--', item_id: "i'2; SELECT 1" },
        { user_id: 'u3', item_id: "i3'',''x'')--" },
        { user_id: 'u4', item_id: '$$; DROP TABLE events; $$' },
      ]);
      expect(await quarantine(plan)).toEqual([
        expect.objectContaining({ user_id: evil, item_id: 'i2', reason: 'bad_rating', source_line: 5 }),
      ]);
      // Nothing was dropped: every artifact is still there and readable as its view.
      for (const ref of [...plan.raw!.landed, plan.raw!.rejects, plan.clean!.events, plan.clean!.userIds])
        expect(fs.existsSync(artifactFile(plan, ref))).toBe(true);
      const counts = await query<{ raw: number; rejects: number; events: number }>(
        plan,
        `SELECT (SELECT count(*) FROM raw_events)::INT AS raw, (SELECT count(*) FROM raw_rejects)::INT AS rejects,
                (SELECT count(*) FROM events)::INT AS events`,
      );
      expect(counts).toEqual([{ raw: 5, rejects: 0, events: 4 }]);
      const ids = await query<{ id: string }>(plan, `SELECT id FROM user_ids ORDER BY id`);
      expect(ids.map((i) => i.id)).toContain(evil);
    },
    FAST,
  );
});

describe('paths, folders and globs', () => {
  test(
    'paths with spaces, quotes and non-ASCII characters work as file, folder and glob',
    async () => {
      const dir = path.join(scratch, `${++runs}`, 'dir with spaces');
      fs.mkdirSync(dir, { recursive: true });
      const a = path.join(dir, 'данные ✓.csv');
      const b = path.join(dir, "it's [1].csv");
      fs.copyFileSync(fixture('structure/good.csv'), a);
      fs.copyFileSync(fixture('encoding/crlf.csv'), b);
      expect(await resolveInputFiles(dir)).toEqual([a, b].sort());
      expect(await resolveInputFiles(path.join(dir, '*.csv'))).toEqual([a, b].sort());
      // An existing path is literal even though `[1]` is glob syntax.
      expect(await resolveInputFiles(b)).toEqual([b]);
      const plan = planFor(await resolveInputFiles(dir));
      expect((await ingestRun(plan)).rows).toBe(13);
      const files = await query<{ f: string }>(
        plan,
        `SELECT DISTINCT source_file AS f FROM raw_events ORDER BY 1`,
      );
      expect(files.map((x) => x.f)).toEqual([a, b].sort());
    },
    FAST,
  );

  test(
    'a folder with no data files is refused, naming the folder',
    async () => {
      const dir = path.join(scratch, `${++runs}-empty folder`);
      fs.mkdirSync(path.join(dir, 'sub.csv'), { recursive: true });
      fs.writeFileSync(path.join(dir, 'notes.txt'), 'x');
      fs.writeFileSync(path.join(dir, '.hidden.csv'), 'x');
      fs.writeFileSync(path.join(dir, '_SUCCESS.csv'), 'x');
      await expect(resolveInputFiles(dir)).rejects.toThrow(/empty folder': the folder holds no \.csv/);
    },
    FAST,
  );

  test(
    'a glob that matches nothing is refused, naming the glob',
    async () => {
      const spec = path.join(scratch, 'nowhere', '*.csv');
      await expect(resolveInputFiles(spec)).rejects.toThrow(`input '${spec}': the glob matches no files`);
    },
    FAST,
  );

  test(
    'a FIFO is refused instead of blocking the reader forever',
    async () => {
      const dir = path.join(scratch, `${++runs}-fifo`);
      fs.mkdirSync(dir);
      const fifo = path.join(dir, 'pipe.csv');
      execFileSync('mkfifo', [fifo]);
      await expect(resolveInputFiles(fifo)).rejects.toThrow(/pipe\.csv': not a regular file/);
      await expect(resolveInputFiles(dir)).rejects.toThrow(/the folder holds no/);
      await badInput([fifo], /pipe\.csv: not a regular file/);
    },
    FAST,
  );

  test(
    'a file that vanishes between plan and ingest is a retryable InputVanished',
    async () => {
      const f = scratchFile('vanishing.csv', fs.readFileSync(fixture('structure/good.csv')));
      const plan = planFor([fixture('structure/good.csv'), f]);
      fs.unlinkSync(f);
      const err = await failure(ingestRun(plan));
      expect(err.type).toBe('InputVanished');
      expect(err.nonRetryable).toBe(false);
      expect(err.message).toMatch(/vanishing\.csv: the file disappeared/);
      // The first file had landed; the failure removes it again rather than leaving half the input.
      expect(rawFiles(plan)).toEqual([]);
    },
    FAST,
  );

  test(
    'a bad second file fails the ingest without leaving the first file loaded',
    async () => {
      await badInput([fixture('structure/good.csv'), fixture('structure/semicolon.csv')], /semicolon\.csv/);
    },
    FAST,
  );
});
