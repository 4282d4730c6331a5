import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadConfig } from '../../lib/config';
import { ingest } from '../../activities/ingest';
import { clean } from '../../activities/clean';
import { ROOT, queryDuckDb } from '../helpers/env';
import { artifactFile, directStage, stageFailure } from '../helpers/stages';

const rows = (sql: string) => queryDuckDb(sql);

/** The k-core filter and the id-format contract, through ingest + clean on hand-made logs. */
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'recforge-kcore-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function plan(name: string, lines: string[], overrides: Record<string, unknown>) {
  const dataDir = path.join(dir, name);
  fs.mkdirSync(dataDir, { recursive: true });
  const interactions = path.join(dataDir, 'events.csv');
  fs.writeFileSync(interactions, ['user_id,item_id,event_type,timestamp', ...lines].join('\n') + '\n');
  const config = loadConfig({
    root: ROOT,
    env: {},
    overrides: {
      dataDir,
      quality: { minRows: 1, maxQuarantineShare: 1 },
      evaluation: { holdoutDays: 1 },
      privacy: { enabled: false },
      cleaning: { detectBots: false, nearDuplicateSeconds: 0 },
      ...overrides,
    },
  }).config;
  return directStage(config, [interactions], {
    runId: name,
    datasetId: 'kcore',
    startedAt: '2026-11-01T00:00:00.000Z',
  });
}

/** Ingest then clean, as the workflow chains them. */
async function ingestAndClean(p: ReturnType<typeof plan>) {
  const { raw } = await ingest(p.deps, p.run);
  return clean(p.deps, p.run, raw);
}

/**
 * users ≥ 2 items, items ≥ 2 users. Pass 1 removes only u4 (one item). That leaves i3 with one user (u3):
 * pass 2 removes (u3, i3). That leaves u3 with one item: pass 3 removes (u3, i2). Pass 4 removes nothing.
 * The 2-core is u1, u2 × i1, i2. u1 and u2 see their items on two days so the time split has both sides.
 */
const CHAIN = [
  'u1,i1,view,2026-10-01T10:00:00Z',
  'u1,i2,view,2026-10-05T10:00:00Z',
  'u2,i1,view,2026-10-01T11:00:00Z',
  'u2,i2,view,2026-10-05T11:00:00Z',
  'u3,i2,view,2026-10-02T10:00:00Z', // line 6
  'u3,i3,view,2026-10-02T11:00:00Z', // line 7
  'u4,i3,view,2026-10-03T10:00:00Z', // line 8
  'u4,i3,click,2026-10-03T10:05:00Z', // line 9: a second event, still one distinct item
];

test('k-core peels until nothing changes, quarantining each removed row with its file and line', async () => {
  const p = plan('chain', CHAIN, { cleaning: { kCore: { users: 2, items: 2, maxIterations: 10 } } });
  const r = await ingestAndClean(p);
  expect(r.kept).toBe(4);
  expect(r.byReason).toEqual({ k_core: 4 });
  expect(r.kCore).toEqual({ removed: 4, iterations: 4, converged: true });
  expect(r.kept + r.quarantined).toBe(CHAIN.length);
  const q = await rows(
    `SELECT source_line::INT AS line, reason, detail, user_id, item_id, source_file
     FROM read_parquet('${artifactFile(p, r.artifacts.quarantine)}') ORDER BY source_line`,
  );
  expect(q.map((x) => [x.line, x.user_id, x.item_id])).toEqual([
    [6, 'u3', 'i2'],
    [7, 'u3', 'i3'],
    [8, 'u4', 'i3'],
    [9, 'u4', 'i3'],
  ]);
  expect(q.every((x) => x.reason === 'k_core' && x.source_file === p.run.input.interactionFiles[0])).toBe(
    true,
  );
  // The pass numbers show that one pass was not enough.
  expect(q.map((x) => String(x.detail).match(/pass (\d+)/)![1])).toEqual(['3', '2', '1', '1']);
});

test('a bound on the passes stops early and says it did not converge', async () => {
  const p = plan('bounded', CHAIN, { cleaning: { kCore: { users: 2, items: 2, maxIterations: 1 } } });
  const r = await ingestAndClean(p);
  expect(r.kCore).toEqual({ removed: 2, iterations: 1, converged: false });
  expect(r.byReason).toEqual({ k_core: 2 });
});

test('k-core off (0) keeps everything and leaves events as they were', async () => {
  const p = plan('off', CHAIN, {});
  const r = await ingestAndClean(p);
  expect(r.kept).toBe(CHAIN.length);
  expect(r.kCore).toBeNull();
});

describe('id format contract', () => {
  const LINES = [
    'u1,i1,view,2026-10-01T10:00:00Z',
    'u2,i1,view,2026-10-05T10:00:00Z',
    "x'; DROP TABLE events; --,i1,view,2026-10-02T10:00:00Z", // line 4: not a user id
    'u3,item-9,view,2026-10-03T10:00:00Z', // line 5: not an item id
    'u4,i2,view,2026-10-05T11:00:00Z',
  ];

  test('ids that do not match the configured pattern are quarantined as bad_id_format', async () => {
    const p = plan('ids', LINES, { schema: { idFormat: { user: '^u[0-9]+$', item: "^i[0-9]+$|^it'em$" } } });
    const r = await ingestAndClean(p);
    expect(r.byReason).toEqual({ bad_id_format: 2 });
    const q = await rows(
      `SELECT source_line::INT AS line, user_id FROM read_parquet('${artifactFile(p, r.artifacts.quarantine)}') ORDER BY 1`,
    );
    expect(q).toEqual([
      { line: 4, user_id: "x'; DROP TABLE events; --" },
      { line: 5, user_id: 'u3' },
    ]);
  });

  test('a pattern DuckDB cannot compile is a non-retryable config error', async () => {
    // Valid in JavaScript, not in RE2 (no lookahead).
    const p = plan('re2', LINES, { schema: { idFormat: { user: '^(?=u)u[0-9]+$' } } });
    const { raw } = await ingest(p.deps, p.run);
    const err = await stageFailure(clean(p.deps, p.run, raw));
    expect(err).toMatchObject({ type: 'ConfigError', nonRetryable: true });
    expect(err.message).toMatch(/schema\.idFormat/);
  });
});
