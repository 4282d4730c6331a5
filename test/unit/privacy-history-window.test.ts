import { Db } from '../../lib/duckdb';
import { windowSql } from '../../analytics/history.sql';
import { entriesInWindow, type WatermarkEntry } from '../../analytics/incremental';

/**
 * Incremental runs with privacy on: which history rows (and which stored partitions) are trained on must not depend
 * on other users. The window starts at the run date − historyDays; with the data's newest event instead, one user's
 * far-future event moved every other user's window.
 */
describe('the incremental history window with privacy on', () => {
  let db: Db;
  beforeAll(async () => {
    db = await Db.open(':memory:', { memoryLimit: '256MB', threads: 1 });
    await db.run(`SET TimeZone = 'UTC'`);
  });
  afterAll(() => db.close());

  const kept = async (withFuture: boolean, start?: string) => {
    await db.run(`CREATE OR REPLACE TEMP TABLE ev_all AS
      SELECT 'u' || (i % 20) AS user_id, 'i' || (i % 7) AS item_id, TIMESTAMP '2026-08-01' + to_hours(i * 7) AS ts
      FROM range(400) t(i)
      ${withFuture ? `UNION ALL SELECT 'far-future', 'i1', TIMESTAMP '2026-11-30 20:00:00'` : ''}`);
    await db.run(windowSql(30, start));
    return (
      await db.all<{ r: string }>(
        `SELECT user_id || '|' || item_id || '|' || CAST(ts AS VARCHAR) AS r FROM ev_src WHERE user_id <> 'far-future' ORDER BY 1`,
      )
    ).map((x) => x.r);
  };

  test('public start: adding a far-future user changes no other user’s rows', async () => {
    const start = '2026-08-20T00:00:00.000Z'; // run date 2026-09-19 − 30 days
    expect(await kept(true, start)).toEqual(await kept(false, start));
    expect((await kept(false, start)).length).toBeGreaterThan(0);
  });

  test('the data-dependent window (privacy off) is what that user could move', async () => {
    expect(await kept(true)).not.toEqual(await kept(false));
  });

  test('stored partitions are pruned by the public start too', () => {
    const e = (runDate: string, newestEvent: string | null): WatermarkEntry => ({
      runDate,
      runId: runDate,
      committedAt: runDate,
      files: [],
      newestEvent,
      partition: `/p/${runDate}`,
      rows: 1,
    });
    const entries = [e('2026-07-01', '2026-07-01T10:00:00Z'), e('2026-08-25', '2026-08-25T10:00:00Z')];
    // With one far-future entry the data-dependent rule drops both older partitions …
    const withFuture = [...entries, e('2026-09-18', '2026-12-31T00:00:00Z')];
    expect(entriesInWindow(withFuture, 30).map((x) => x.runDate)).toEqual(['2026-09-18']);
    // … the public start keeps what is inside the window whatever the newest event is.
    expect(entriesInWindow(withFuture, 30, '2026-08-20T00:00:00Z').map((x) => x.runDate)).toEqual([
      '2026-08-25',
      '2026-09-18',
    ]);
  });
});
