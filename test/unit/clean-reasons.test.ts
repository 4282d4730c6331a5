import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { loadConfig } from '../../lib/config';
import { ingest } from '../../activities/ingest';
import { clean } from '../../activities/clean';
import { ROOT } from '../helpers/env';
import { artifactFile, directStage } from '../helpers/stages';

/** The catalogue and near-duplicate rules of cleaning, on a tiny hand-made log. */
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'recforge-reasons-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function plan(name: string, cleaning: Record<string, unknown>) {
  const dataDir = path.join(dir, name);
  fs.mkdirSync(dataDir, { recursive: true });
  const interactions = path.join(dataDir, 'events.csv');
  const items = path.join(dataDir, 'items.csv');
  const lines = ['user_id,item_id,event_type,rating,timestamp'];
  // u1 views i1 three times: at 0 s, 1 s (a double click) and 60 s (a real repeat).
  lines.push(
    'u1,i1,view,,2026-10-01T00:00:00Z',
    'u1,i1,view,,2026-10-01T00:00:01Z',
    'u1,i1,view,,2026-10-01T00:01:00Z',
  );
  // An item that is not in the catalogue.
  lines.push('u2,i404,view,,2026-10-02T00:00:00Z');
  for (let d = 1; d <= 20; d++)
    lines.push(`u${d % 5},i${d % 3},click,,2026-10-${String(d).padStart(2, '0')}T12:00:00Z`);
  fs.writeFileSync(interactions, lines.join('\n') + '\n');
  fs.writeFileSync(
    items,
    'item_id,category,price,title,in_stock\ni0,a,1,x,true\ni1,a,1,y,true\ni2,b,2,z,true\n',
  );
  const config = loadConfig({
    root: ROOT,
    env: {},
    overrides: {
      dataDir,
      cleaning,
      quality: { minRows: 1, maxQuarantineShare: 1 },
      evaluation: { holdoutDays: 3 },
      privacy: { enabled: false },
    },
  }).config;
  return directStage(config, [interactions], {
    runId: name,
    datasetId: 'reasons',
    itemsFile: items,
    startedAt: '2026-11-01T00:00:00.000Z',
  });
}

async function quarantined(file: string): Promise<{ reason: string; source_line: number }[]> {
  const db = await DuckDBInstance.create(':memory:');
  const c = await db.connect();
  const rows = (
    await c.runAndReadAll(
      `SELECT reason, source_line::INT AS source_line FROM read_parquet('${file}') ORDER BY source_line`,
    )
  ).getRowObjectsJS();
  c.closeSync();
  db.closeSync();
  return rows as { reason: string; source_line: number }[];
}

test('items missing from the catalogue and near-duplicates are quarantined with their lines', async () => {
  const p = plan('on', { nearDuplicateSeconds: 2, requireKnownItems: true });
  const { raw } = await ingest(p.deps, p.run);
  const r = await clean(p.deps, p.run, raw);
  expect(r.byReason).toEqual({ near_duplicate: 1, unknown_item: 1 });
  expect(await quarantined(artifactFile(p, r.artifacts.quarantine))).toEqual([
    { reason: 'near_duplicate', source_line: 3 },
    { reason: 'unknown_item', source_line: 5 },
  ]);
});

test('both rules can be switched off', async () => {
  const p = plan('off', { nearDuplicateSeconds: 0, requireKnownItems: false });
  const { raw } = await ingest(p.deps, p.run);
  const r = await clean(p.deps, p.run, raw);
  expect(r.byReason).toEqual({});
  expect(r.kept).toBe(24);
});

/**
 * Stages share nothing but their artifacts (the earlier layout's shared run database is gone, and with it the
 * adoption of raw_events tables without row ids): cleaning again from the same raw artifacts, after its outputs
 * were removed (a retry on another worker), gives the same reasons and lines.
 */
test('cleaning again from the same raw artifacts alone gives the same quarantine', async () => {
  const p = plan('again', { nearDuplicateSeconds: 2, requireKnownItems: true });
  const { raw } = await ingest(p.deps, p.run);
  const first = await clean(p.deps, p.run, raw);
  for (const name of fs.readdirSync(p.runDir))
    if (name !== 'raw') fs.rmSync(path.join(p.runDir, name), { recursive: true, force: true });
  const r = await clean(p.deps, p.run, raw);
  expect(r.byReason).toEqual({ near_duplicate: 1, unknown_item: 1 });
  expect({ ...r, artifacts: undefined }).toEqual({ ...first, artifacts: undefined });
  expect(await quarantined(artifactFile(p, r.artifacts.quarantine))).toEqual([
    { reason: 'near_duplicate', source_line: 3 },
    { reason: 'unknown_item', source_line: 5 },
  ]);
});
