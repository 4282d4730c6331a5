import * as fs from 'node:fs';
import * as path from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { WorkflowFailedError } from '@temporalio/client';
import {
  startTemporal,
  startWorkers,
  tempDir,
  testConfig,
  testOverrides,
  smallDataset,
  rootMessage,
  queryDuckDb,
  stopSuite,
} from '../helpers/env';
import type { RunSummary } from '../../contracts/stages';
import type { Watermark } from '../../analytics/incremental';

const query = (dbFile: string, sql: string) => queryDuckDb(sql, dbFile);

/**
 * Incremental runs on the real Temporal server: day 1 reads file A; day 2, with B added, reads only B and
 * trains on A ∪ B; re-running day 2 gives the same rows; a day with nothing new fails fast and leaves the
 * champion and the published output alone.
 */
jest.setTimeout(300_000);

let env: TestWorkflowEnvironment;
let workers: Awaited<ReturnType<typeof startWorkers>>;
const dataDir = tempDir('incremental');
const drop = path.join(dataDir, 'drop');
let fileA: string;
let fileB: string;
let bodyB: string;

beforeAll(async () => {
  const data = await smallDataset(path.join(dataDir, 'input'));
  // Two nightly drops: the generated log cut in half by line, each with the header.
  const [header, ...lines] = fs.readFileSync(data.interactions, 'utf8').trimEnd().split('\n');
  const half = Math.floor(lines.length / 2);
  fs.mkdirSync(drop);
  fileA = path.join(drop, 'events-a.csv');
  fileB = path.join(drop, 'events-b.csv');
  fs.writeFileSync(fileA, [header, ...lines.slice(0, half)].join('\n') + '\n');
  bodyB = [header, ...lines.slice(half)].join('\n') + '\n';
  env = await startTemporal();
  workers = await startWorkers(env, testConfig(dataDir));
});

afterAll(() => stopSuite(workers, env));

const overrides = testOverrides(dataDir, {
  dataset: { incremental: { enabled: true, historyDays: 365 } },
  privacy: { enabled: false },
  quality: { minRows: 100, maxDriftPsi: 100, maxVolumeChange: 100 },
});

async function run(workflowId: string, runDate: string): Promise<RunSummary> {
  const handle = await env.client.workflow.start('retrainPipeline', {
    taskQueue: 'recforge-cpu',
    workflowId,
    args: [{ datasetId: 'inc', interactions: drop, runDate, overrides }],
  });
  return (await handle.result()) as RunSummary;
}

const watermark = (): Watermark =>
  JSON.parse(fs.readFileSync(path.join(dataDir, 'state', 'inc', 'watermark.json'), 'utf8')) as Watermark;
/** A run's clean events (its training window) and its split's training part: the artifacts, read back. */
const runFolder = (s: RunSummary) => path.join(dataDir, 'runs', 'inc', s.runId);
const eventsOf = (s: RunSummary) => `read_parquet('${path.join(runFolder(s), 'events-window.parquet')}')`;
/** A watermark partition (a storage key) as a file. */
const partitionFile = (key: string) => path.join(dataDir, ...key.split('/'));
const current = () => fs.readlinkSync(path.join(dataDir, 'output', 'recommendations', 'inc', 'current'));

describe('incremental runs', () => {
  let day1: RunSummary;
  let day2: RunSummary;

  beforeAll(async () => {
    day1 = await run('it-inc-day1', '2026-03-01');
    fs.writeFileSync(fileB, bodyB);
    day2 = await run('it-inc-day2', '2026-03-02');
  });

  test('day 1 reads A; day 2 reads only B and says so, with the watermark', () => {
    expect(day1.input!.files).toEqual([fileA]);
    expect(day2.input!.files).toEqual([fileB]);
    expect(day2.input!.skipped).toEqual([{ path: fileA, consumedOn: '2026-03-01' }]);
    expect(day2.input!.watermark).toMatchObject({ runDate: '2026-03-02', historyRunDates: ['2026-03-01'] });
    const wm = watermark();
    expect(wm.entries.map((e) => [e.runDate, e.files.map((f) => f.path)])).toEqual([
      ['2026-03-01', [fileA]],
      ['2026-03-02', [fileB]],
    ]);
    expect(wm.entries[1].files[0].sha256).toMatch(/^[0-9a-f]{64}$/);
    // Day 2 ingested only B's rows.
    expect(day2.rows.ingested).toBe(bodyB.trimEnd().split('\n').length - 1);
  });

  test('day 2 trains on A ∪ B: its training set is both partitions', async () => {
    const wm = watermark();
    const [a, b] = wm.entries;
    const parts = await query(
      ':memory:',
      `SELECT count(*)::INT AS n, count(*) FILTER (WHERE run_date = '2026-03-01')::INT AS from_a
       FROM read_parquet(['${partitionFile(a.partition)}', '${partitionFile(b.partition)}'])`,
    );
    expect(parts[0].from_a).toBe(a.rows);
    expect(day2.rows.kept).toBe(a.rows + b.rows);
    expect(day2.rows.kept).toBeGreaterThan(day1.rows.kept);
    const [events] = await query(':memory:', `SELECT count(*)::INT AS n FROM ${eventsOf(day2)}`);
    expect(events.n).toBe(a.rows + b.rows);
    // Every clean event of day 1 is in day 2's training data.
    const [missing] = await query(
      ':memory:',
      `SELECT count(*)::INT AS n FROM read_parquet('${partitionFile(a.partition)}') p
       ANTI JOIN ${eventsOf(day2)} e USING (user_id, item_id, event_type, ts)`,
    );
    expect(missing.n).toBe(0);
  });

  test('re-running day 2 reads B again and gives the same rows and training set', async () => {
    const before = watermark().entries[1];
    const again = await run('it-inc-day2-again', '2026-03-02');
    expect(again.input!.files).toEqual([fileB]);
    expect(again.rows).toEqual(day2.rows);
    // The training window the re-run cleaned into is the same, row for row (the split is a function of it).
    const trainOf = async (s: RunSummary) =>
      (
        await query(
          ':memory:',
          `SELECT count(*)::INT AS n, sum(hash(user_id, item_id, event_type, ts))::VARCHAR AS h FROM ${eventsOf(s)}`,
        )
      )[0];
    expect(await trainOf(again)).toEqual(await trainOf(day2));
    const wm = watermark();
    expect(wm.entries.map((e) => e.runDate)).toEqual(['2026-03-01', '2026-03-02']);
    expect(wm.entries[1].runId).toBe(again.runId);
    expect(wm.entries[1].rows).toBe(before.rows);
    // The superseded run's partition is gone; only the committed one remains for that date.
    expect(fs.readdirSync(path.dirname(partitionFile(wm.entries[1].partition)))).toEqual([
      `${again.runId}.parquet`,
    ]);
  });

  test('a day with no new files fails fast, non-retryable, and leaves champion and output alone', async () => {
    const champion = fs.readFileSync(
      path.join(dataDir, 'output', 'recommendations', 'inc', '_current.json'),
      'utf8',
    );
    const published = current();
    const handle = await env.client.workflow.start('retrainPipeline', {
      taskQueue: 'recforge-cpu',
      workflowId: 'it-inc-day3',
      args: [{ datasetId: 'inc', interactions: drop, runDate: '2026-03-03', overrides }],
    });
    const err = await handle.result().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    expect(rootMessage(err)).toMatch(/runDate 2026-03-03: no new input files .*\(2026-03-02\)/);
    expect(
      fs.readFileSync(path.join(dataDir, 'output', 'recommendations', 'inc', '_current.json'), 'utf8'),
    ).toBe(champion);
    expect(current()).toBe(published);
    expect(watermark().entries).toHaveLength(2);
    // Refused at input selection, on the first attempt, before anything was read; the saga gave the dataset back.
    const history = await handle.fetchHistory();
    const scheduled = history.events!.filter((e) => e.activityTaskScheduledEventAttributes);
    expect(scheduled.map((e) => e.activityTaskScheduledEventAttributes!.activityType!.name)).toEqual([
      'planRun',
      'prepareInput',
      'acquireDatasetLock',
      'selectIncrementalInput',
      'releaseDatasetLock',
    ]);
  });

  test('an appended file: only its new rows count, the repeats are quarantined as already_ingested', async () => {
    // 300 new events appended to A (new users, so they repeat nothing); the whole of A is read again.
    const appended = fs
      .readFileSync(fileA, 'utf8')
      .trimEnd()
      .split('\n')
      .slice(1, 301)
      .map((l) => `n${l}`);
    const before = watermark();
    fs.appendFileSync(fileA, appended.join('\n') + '\n');
    const day4 = await run('it-inc-day4', '2026-03-04');
    expect(day4.status).toBe('completed');
    expect(day4.input!.files).toEqual([fileA]);
    // Every clean row of A's first delivery is a repeat of history (and more rows of A than that may have been
    // quarantined for other reasons the first time).
    expect(day4.rows.byReason.already_ingested).toBe(before.entries[0].rows);
    const entry = watermark().entries.find((e) => e.runDate === '2026-03-04')!;
    expect(entry.rows).toBeGreaterThan(250);
    expect(entry.rows).toBeLessThanOrEqual(300);
    expect(day4.rows.kept).toBe(before.entries.reduce((n, e) => n + e.rows, 0) + entry.rows);
  });

  test('a date before the latest successful run is refused', async () => {
    const err = await run('it-inc-backfill', '2026-03-01').catch((e: unknown) => e);
    expect(rootMessage(err)).toMatch(/runDate 2026-03-01 is before the latest successful run \(2026-03-04\)/);
  });
});
