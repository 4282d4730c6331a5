import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { findProjectRoot, loadConfig, ConfigError } from '../../lib/config';
import { Db, lit } from '../../lib/duckdb';
import { ContractError, resolveColumns, retypedColumns } from '../../analytics/input-contract';
import { compareSchemas } from '../../analytics/schema-drift';
import { ingest } from '../../activities/ingest';
import { clean } from '../../activities/clean';
import type { IngestedFile } from '../../contracts/stages';
import { directStage, queryArtifacts } from '../helpers/stages';

/** Schema drift: extra, renamed (aliased) and retyped columns follow schema.drift; drift vs the last run. */

const ROOT = findProjectRoot(__dirname);
const FIX = path.join(ROOT, 'test', 'fixtures', 'bad');
let scratch: string;
beforeAll(() => {
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'recforge-drift-'));
});
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

const policy = (p: Partial<{ extraColumns: 'ignore' | 'warn' | 'fail'; renamedColumns: object }>) => ({
  extraColumns: 'ignore' as const,
  renamedColumns: {},
  ...p,
});

describe('resolveColumns under a drift policy', () => {
  const header = ['uid', 'item_id', 'event_type', 'timestamp', 'session'];

  test('an alias stands in for its contract column', () => {
    const r = resolveColumns(header, policy({ renamedColumns: { user_id: ['UID', 'customer_id'] } }));
    expect(r.source.user_id).toBe('uid');
    expect(r.warnings).toEqual([`column 'uid' read as 'user_id' (schema.drift.renamedColumns)`]);
  });

  test('without the alias the renamed column is a missing one, named', () => {
    expect(() => resolveColumns(header)).toThrow(/missing required column 'user_id'/);
  });

  test('an alias and the column itself both present is ambiguous', () => {
    expect(() =>
      resolveColumns(['user_id', ...header], policy({ renamedColumns: { user_id: ['uid'] } })),
    ).toThrow(/'uid' \(column 2\) is an alias of 'user_id'.*also has 'user_id' \(column 1\)/);
  });

  test('extra columns: ignore, warn, fail', () => {
    const aliased = { renamedColumns: { user_id: ['uid'] } };
    expect(resolveColumns(header, policy(aliased)).warnings).toHaveLength(1);
    expect(resolveColumns(header, policy({ ...aliased, extraColumns: 'warn' })).warnings).toContain(
      "extra column 'session' ignored",
    );
    expect(() => resolveColumns(header, policy({ ...aliased, extraColumns: 'fail' }))).toThrow(
      new ContractError(
        "unexpected column 'session' (schema.drift.extraColumns: fail; expected only user_id, item_id, event_type, rating, timestamp)",
      ),
    );
  });

  test('retyped (Parquet) columns are named with their type', () => {
    const source = { user_id: 'user_id', rating: 'Rating', timestamp: 'timestamp' };
    expect(
      retypedColumns(source, [
        { name: 'user_id', type: 'BIGINT' },
        { name: 'Rating', type: 'BOOLEAN' },
        { name: 'timestamp', type: 'TIMESTAMP WITH TIME ZONE' },
      ]),
    ).toEqual(["column 'Rating' has type BOOLEAN, which rating cannot be read from"]);
  });
});

test('config: an alias that is itself a contract column, or listed twice, is refused', () => {
  const load = (renamedColumns: object) =>
    loadConfig({ root: ROOT, env: {}, overrides: { schema: { drift: { renamedColumns } } } });
  expect(() => load({ user_id: ['item_id'] })).toThrow(ConfigError);
  expect(() => load({ user_id: ['uid'], item_id: ['UID'] })).toThrow(/also listed for user_id/);
  expect(() => load({ user_id: ['uid'] })).not.toThrow();
});

let runs = 0;
function planFor(files: string[], drift: object) {
  const dataDir = path.join(scratch, `data-${++runs}`);
  const config = loadConfig({
    root: ROOT,
    env: {},
    overrides: {
      dataDir,
      schema: { drift },
      quality: { minRows: 1, maxQuarantineShare: 1, maxQuarantineShareByReason: {} },
      evaluation: { holdoutDays: 1 },
      privacy: { enabled: false },
    },
  }).config;
  return directStage(config, files, {
    runId: `run-${runs}`,
    datasetId: 'drift',
    startedAt: '2025-06-01T00:00:00.000Z',
  });
}

/** Ingest fails with a Temporal ApplicationFailure (typed, as the workflow sees it). */
async function failure(p: Promise<unknown>): Promise<ApplicationFailure> {
  const err = await p.then(
    () => new Error('expected a failure'),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ApplicationFailure);
  return err as ApplicationFailure;
}

describe('drift actions in ingest (fixtures)', () => {
  const renamed = path.join(FIX, 'structure/renamed-columns.csv');

  test('renamed columns load through configured aliases, with a warning naming file and column', async () => {
    const p = planFor([renamed], { renamedColumns: { user_id: ['customer_id'], timestamp: ['event_time'] } });
    const r = await ingest(p.deps, p.run);
    expect(r.rows).toBe(4);
    expect(r.warnings).toEqual([
      `${renamed}: column 'customer_id' read as 'user_id' (schema.drift.renamedColumns)`,
      `${renamed}: column 'event_time' read as 'timestamp' (schema.drift.renamedColumns)`,
    ]);
    const users = await queryArtifacts<{ user_id: string }>(
      p,
      { raw: r.raw },
      `SELECT user_id FROM raw_events ORDER BY source_line`,
    );
    expect(users.map((u) => u.user_id)).toEqual(['c1', 'c2', 'c1', 'c3']);
  });

  test('without aliases the same file fails naming the file and the missing column', async () => {
    const p = planFor([renamed], {});
    const err = await failure(ingest(p.deps, p.run));
    expect(err.type).toBe('BadInput');
    expect(err.message).toMatch(/renamed-columns\.csv: missing required column 'user_id'/);
  });

  test('extraColumns: fail names the file and the extra columns', async () => {
    const f = path.join(FIX, 'structure/extra-columns.csv');
    const p = planFor([f], { extraColumns: 'fail' });
    const err = await failure(ingest(p.deps, p.run));
    expect(err.message).toMatch(/extra-columns\.csv: unexpected columns .*schema\.drift\.extraColumns: fail/);
  });

  async function boolRating(): Promise<string> {
    const f = path.join(scratch, `${++runs}-bool-rating.parquet`);
    const db = await Db.open(':memory:', { memoryLimit: '256MB', threads: 1 });
    try {
      await db.run(`COPY (SELECT * FROM (VALUES
          ('u1', 'i1', 'rating', true, TIMESTAMP '2025-05-01 10:00:00'),
          ('u2', 'i2', 'rating', false, TIMESTAMP '2025-05-02 10:00:00'))
        AS t(user_id, item_id, event_type, rating, "timestamp")) TO ${lit(f)} (FORMAT parquet)`);
    } finally {
      db.close();
    }
    return f;
  }

  test('retypedColumns: fail refuses the file naming column and type', async () => {
    const f = await boolRating();
    const p = planFor([f], { retypedColumns: 'fail' });
    const err = await failure(ingest(p.deps, p.run));
    expect(err.type).toBe('BadInput');
    expect(err.message).toMatch(
      /bool-rating\.parquet: column 'rating' has type BOOLEAN, which rating cannot be read from/,
    );
  });

  test('retypedColumns: quarantine keeps every row of the file in the quarantine', async () => {
    const f = await boolRating();
    const good = path.join(FIX, 'structure/good.csv');
    const p = planFor([f, good], { retypedColumns: 'quarantine' });
    const r = await ingest(p.deps, p.run);
    expect(r.warnings).toEqual([
      `${f}: column 'rating' has type BOOLEAN, which rating cannot be read from: every row quarantined as retyped_column`,
    ]);
    const c = await clean(p.deps, p.run, r.raw);
    expect(c.byReason.retyped_column).toBe(2);
  });
});

test('column drift against the previous run: same path, else the previous run’s last file', () => {
  const file = (p: string, columns: { name: string; type?: string }[]) =>
    ({ path: p, columns }) as IngestedFile;
  const prev = {
    formatVersion: 1 as const,
    runId: 'r1',
    runDate: '2026-03-01',
    files: [
      {
        path: '/in/a.parquet',
        columns: [
          { name: 'user_id', type: 'VARCHAR' },
          { name: 'rating', type: 'DOUBLE' },
        ],
      },
      { path: '/in/b.csv', columns: [{ name: 'user_id' }, { name: 'item_id' }, { name: 'session' }] },
    ],
  };
  expect(compareSchemas(undefined, [file('/in/a.parquet', [])])).toEqual([]);
  expect(
    compareSchemas(prev, [
      file('/in/a.parquet', [
        { name: 'user_id', type: 'BIGINT' },
        { name: 'rating', type: 'DOUBLE' },
      ]),
      file('/in/c.csv', [{ name: 'User_ID' }, { name: 'item_id' }, { name: 'channel' }]),
      file('/in/b.csv', [{ name: 'user_id' }, { name: 'item_id' }, { name: 'session' }]),
    ]),
  ).toEqual([
    {
      file: '/in/a.parquet',
      comparedWith: '/in/a.parquet',
      added: [],
      removed: [],
      retyped: [{ column: 'user_id', from: 'VARCHAR', to: 'BIGINT' }],
    },
    { file: '/in/c.csv', comparedWith: '/in/b.csv', added: ['channel'], removed: ['session'], retyped: [] },
  ]);
});
