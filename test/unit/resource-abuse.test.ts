import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { ApplicationFailure } from '@temporalio/common';
import { ConfigError, findProjectRoot, loadConfig } from '../../lib/config';
import { Db, withDb } from '../../lib/duckdb';
import { runCancellable } from '../../lib/cancellation';
import { isRecforgeError } from '../../contracts/errors';
import { asFailure } from '../../activities/support/failure';
import { ingest } from '../../activities/ingest';
import type { RawArtifacts } from '../../contracts/stages';
import { directStage, queryArtifacts } from '../helpers/stages';

/**
 * Issue #16, item 4: resource abuse from the workflow input. Sizes and durations are bounded in the config
 * schema, DuckDB running out of memory under its fixed limit is a non-retryable OutOfMemory, a cancelled
 * ingest stops promptly, and a folder of many small files is read in a few scans instead of one file at a time.
 */

const ROOT = findProjectRoot(__dirname);
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'recforge-abuse-'));
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

function configError(overrides: Record<string, unknown>): string {
  try {
    loadConfig({ root: ROOT, env: {}, overrides });
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error(`accepted: ${JSON.stringify(overrides)}`);
}

describe('config bounds', () => {
  test('generation sizes have upper bounds (5 GB were written in 3 minutes from one workflow input)', () => {
    expect(configError({ dataset: { generate: { events: 10_000_000_000 } } })).toMatch(
      /dataset\.generate\.events/,
    );
    expect(configError({ dataset: { generate: { users: 1e9 } } })).toMatch(/dataset\.generate\.users/);
    expect(configError({ dataset: { generate: { items: 1e8 } } })).toMatch(/dataset\.generate\.items/);
    expect(configError({ dataset: { generate: { botUsers: 1e6 } } })).toMatch(/dataset\.generate\.botUsers/);
    // The 20M-event scale run stays possible.
    expect(() =>
      loadConfig({ root: ROOT, env: {}, overrides: { dataset: { generate: { events: 20_000_000 } } } }),
    ).not.toThrow();
  });

  test('0s timeouts are refused (they failed the workflow task in a loop while it held the dataset lock)', () => {
    const activities = (a: Record<string, string>) => ({ temporal: { activities: a } });
    expect(configError(activities({ startToCloseTimeout: '0s' }))).toMatch(/startToCloseTimeout.*from 1m/);
    expect(configError(activities({ heartbeatTimeout: '0s' }))).toMatch(/heartbeatTimeout.*from 1s/);
    expect(configError(activities({ trainingStartToCloseTimeout: '0ms' }))).toMatch(
      /trainingStartToCloseTimeout/,
    );
    expect(configError(activities({ heartbeatTimeout: '2h' }))).toMatch(/heartbeatTimeout/);
    expect(configError(activities({ heartbeatTimeout: '10m', startToCloseTimeout: '5m' }))).toMatch(
      /heartbeatTimeout: must be shorter than startToCloseTimeout/,
    );
    expect(configError({ schedule: { catchupWindow: '0s' } })).toMatch(/schedule\.catchupWindow/);
  });

  test('duckdb.memoryLimit is parsed and bounded by the machine; threads at least 1', () => {
    expect(configError({ duckdb: { memoryLimit: '999TB' } })).toMatch(
      /duckdb\.memoryLimit.*this machine's memory/,
    );
    expect(configError({ duckdb: { memoryLimit: '1KB' } })).toMatch(/duckdb\.memoryLimit.*at least 128MiB/);
    expect(configError({ duckdb: { threads: 0 } })).toMatch(/duckdb\.threads/);
    expect(() =>
      loadConfig({ root: ROOT, env: {}, overrides: { duckdb: { memoryLimit: '512MiB' } } }),
    ).not.toThrow();
  });
});

describe('DuckDB out of memory under a fixed limit', () => {
  test('is a non-retryable OutOfMemory naming the limit, not a generic (retried) failure', async () => {
    const err = await withDb(':memory:', { memoryLimit: '128MB', threads: 1 }, (db) =>
      // One list of ~650 MB in one row: nothing to spill, so a 128 MB limit cannot hold it.
      db.run(`SELECT len(list(md5(i::VARCHAR) || repeat('x', 200))) FROM range(3000000) r(i)`),
    ).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isRecforgeError(err, 'OutOfMemory')).toBe(true);
    expect((err as Error).message).toMatch(/duckdb\.memoryLimit 128MB/);
    const failure = asFailure(err) as ApplicationFailure;
    expect(failure).toBeInstanceOf(ApplicationFailure);
    expect(failure).toMatchObject({ type: 'OutOfMemory', nonRetryable: true });
  }, 30_000);

  test('a setting DuckDB refuses is a ConfigError, not retried', async () => {
    const err = await Db.open(':memory:', { memoryLimit: 'lots', threads: 1 }).then(
      (db) => db.close(),
      (e: unknown) => e,
    );
    expect(isRecforgeError(err, 'ConfigError')).toBe(true);
  });
});

let runs = 0;
function planFor(files: string[]) {
  const dataDir = path.join(scratch, `data-${++runs}`);
  const config = loadConfig({
    root: ROOT,
    env: {},
    overrides: { dataDir, duckdb: { memoryLimit: '1GB', threads: 2 } },
  }).config;
  return directStage(config, files, {
    runId: `run-${runs}`,
    datasetId: 'abuse',
    startedAt: '2026-06-01T00:00:00.000Z',
  });
}

/** SQL over what ingest landed (the raw_events / raw_rejects views). */
const query = <T extends Record<string, unknown>>(
  plan: ReturnType<typeof planFor>,
  raw: RawArtifacts,
  q: string,
) => queryArtifacts<T>(plan, { raw }, q);

/** Every file under the run's raw/ folder (what ingest lands), relative to it. */
function rawFiles(runDir: string): string[] {
  const dir = path.join(runDir, 'raw');
  if (!fs.existsSync(dir)) return [];
  return (fs.readdirSync(dir, { recursive: true }) as string[])
    .filter((f) => fs.statSync(path.join(dir, f)).isFile())
    .sort();
}

test('a cancelled ingest stops promptly and leaves nothing loaded', async () => {
  const f = path.join(scratch, 'big.csv');
  const out = fs.openSync(f, 'w');
  fs.writeSync(out, 'user_id,item_id,event_type,timestamp\n');
  const block =
    Array.from({ length: 100_000 }, (_, i) => `u${i % 5000},i${i % 900},view,2026-01-01T00:00:00Z`).join(
      '\n',
    ) + '\n';
  for (let k = 0; k < 30; k++) fs.writeSync(out, block); // 3M rows, ~110 MB
  fs.closeSync(out);
  const plan = planFor([f]);
  const ctl = new AbortController();
  setTimeout(() => ctl.abort(), 300);
  const t0 = Date.now();
  await expect(runCancellable(ctl.signal, () => ingest(plan.deps, plan.run))).rejects.toThrow();
  expect(Date.now() - t0).toBeLessThan(3000);
  // Nothing half-landed is left in the run folder for a later stage to read as raw_events.
  expect(rawFiles(plan.runDir)).toEqual([]);
}, 60_000);

describe('a folder of many small files', () => {
  /** Row k of file f sits on physical line k + 1 and says so (user_id L<line>), so every row checks its number. */
  function write(dir: string, name: string, body: string | Buffer): string {
    const p = path.join(dir, name);
    fs.writeFileSync(p, body);
    return p;
  }
  const rowsOf = (n: number, from = 2) =>
    Array.from({ length: n }, (_, k) => `L${k + from},i${k % 7},view,2026-01-01T00:00:00Z`).join('\n');
  const HEADER = 'user_id,item_id,event_type,timestamp';

  test('2,000 files are read in a few scans (>100 files/s; one by one went ~20 files/s)', async () => {
    const dir = path.join(scratch, 'many');
    fs.mkdirSync(dir);
    const files: string[] = [];
    for (let i = 0; i < 2000; i++)
      files.push(write(dir, `part-${String(i).padStart(5, '0')}.csv`, `${HEADER}\n${rowsOf(5)}\n`));
    const plan = planFor(files);
    const t0 = Date.now();
    const r = await ingest(plan.deps, plan.run);
    const seconds = (Date.now() - t0) / 1000;
    expect(r.rows).toBe(10_000);
    expect(files.length / seconds).toBeGreaterThan(100);
    // One landed file per scan of up to 1,000 files, not one per input file (beside the run's four small tables).
    expect(r.raw.landed).toHaveLength(2);
    expect(rawFiles(plan.runDir)).toEqual(
      [
        ...r.raw.landed.map((l) => l.key.slice(l.key.lastIndexOf('/') + 1)),
        'batch-files.parquet',
        'items.parquet',
        'line-shifts.parquet',
        'rejects.parquet',
      ].sort(),
    );
    expect(r.files.every((f) => f.lines === 1 + f.rows + f.rejectedLines)).toBe(true);
    const wrong = await query<{ n: number }>(
      plan,
      r.raw,
      `SELECT count(*) AS n FROM raw_events WHERE user_id <> 'L' || source_line OR source_line NOT BETWEEN 2 AND 6`,
    );
    expect(wrong[0].n).toBe(0);
  }, 120_000);

  test('per-file line numbers, rejects and quarantine survive the batch; odd files are loaded on their own', async () => {
    const dir = path.join(scratch, 'mixed');
    fs.mkdirSync(dir);
    const files: string[] = [];
    for (let i = 0; i < 20; i++) files.push(write(dir, `ok-${i}.csv`, `${HEADER}\n${rowsOf(3 + (i % 4))}\n`));
    const gz = Array.from({ length: 10 }, (_, i) =>
      write(dir, `gz-${i}.csv.gz`, zlib.gzipSync(`${HEADER}\n${rowsOf(4)}\n`)),
    );
    // A malformed line, a blank line, a bad id (NUL byte) and a header-only file among batch-mates.
    const malformed = write(dir, 'ok-malformed.csv', `${HEADER}\n${rowsOf(2)}\nL4,i1\n${rowsOf(2, 5)}\n`);
    const blank = write(dir, 'ok-blank.csv', `${HEADER}\n${rowsOf(2)}\n\n${rowsOf(2, 5)}\n`);
    const badId = write(
      dir,
      'ok-badid.csv',
      `${HEADER}\n${rowsOf(2)}\nL4\u0000x,i1,view,2026-01-01T00:00:00Z\n${rowsOf(1, 5)}\n`,
    );
    const headerOnly = write(dir, 'ok-empty.csv', `${HEADER}\n`);
    // Another header (column order) is its own group, too small for a batch.
    const other = write(
      dir,
      'other.csv',
      `item_id,user_id,event_type,timestamp\ni1,L2,view,2026-01-01T00:00:00Z\n`,
    );
    const all = [...files, ...gz, malformed, blank, badId, headerOnly, other].sort();
    const plan = planFor(all);
    const r = await ingest(plan.deps, plan.run);
    const rows = await query<{ rid: number; source_file: string; source_line: number; user_id: string }>(
      plan,
      r.raw,
      `SELECT rid, source_file, source_line, user_id FROM raw_events`,
    );
    expect(rows.filter((x) => x.user_id !== `L${x.source_line}`)).toEqual([]);
    expect(new Set(rows.map((x) => x.rid)).size).toBe(rows.length);
    const rejects = await query<{ source_file: string; source_line: number; reason: string }>(
      plan,
      r.raw,
      `SELECT source_file, source_line, reason FROM raw_rejects ORDER BY source_file`,
    );
    expect(rejects.map((x) => [path.basename(x.source_file), x.source_line, x.reason])).toEqual([
      ['ok-badid.csv', 4, 'bad_id'],
      ['ok-malformed.csv', 4, 'malformed_line'],
    ]);
    const byName = new Map(r.files.map((f) => [path.basename(f.path), f]));
    expect(byName.get('ok-blank.csv')).toMatchObject({ rows: 4, rejectedLines: 0, lines: 6 });
    expect(byName.get('ok-badid.csv')).toMatchObject({ rows: 3, rejectedLines: 1, lines: 5 });
    expect(byName.get('ok-empty.csv')).toMatchObject({ rows: 0, lines: 1 });
    expect(byName.get('other.csv')).toMatchObject({ rows: 1 });
    for (const f of r.files) expect(f.sha256).toMatch(/^[0-9a-f]{64}$/);
    // Every file's lines are the header, its rows, its rejects and (one file) a blank line.
    const blanks = (f: { path: string }) => (path.basename(f.path) === 'ok-blank.csv' ? 1 : 0);
    expect(r.files.filter((f) => f.lines !== 1 + f.rows + f.rejectedLines + blanks(f))).toEqual([]);
  }, 60_000);
});
