import { MockActivityEnvironment } from '@temporalio/testing';
import { Db } from '../../lib/duckdb';
import { withHeartbeat } from '../../activities/support/heartbeat';
import { progress } from '../../activities/support/context';

/**
 * A DuckDB statement that runs for seconds moves the heartbeat's counters (lib/duckdb.ts polls DuckDB's query
 * progress once a second; activities/support/heartbeat.ts folds it into the step): a step without counts shows
 * the statement's percent, a step with `statementSpan` advances `done` through the span.
 */

jest.setTimeout(120_000);

test('a long statement’s progress reaches the heartbeats, as percent or within the step’s span', async () => {
  const env = new MockActivityEnvironment();
  const beats: Array<Record<string, unknown>> = [];
  env.on('heartbeat', (d: unknown) => beats.push(d as Record<string, unknown>));
  const slow = `SELECT k, count(DISTINCT v) FROM t GROUP BY k`;
  await env.run(
    withHeartbeat('clean', async () => {
      const db = await Db.open(':memory:', { memoryLimit: '1GB', threads: 1 });
      try {
        await db.run(`CREATE TABLE t AS SELECT i % 1000 AS k, i * random() AS v FROM range(12000000) r(i)`);
        progress({ stage: 'clean', step: 'classify' });
        await db.all(slow);
        progress({
          stage: 'clean',
          step: 'history',
          done: 10,
          total: 20,
          unit: 'partitions',
          statementSpan: 10,
        });
        await db.all(slow);
      } finally {
        db.close();
      }
    }),
  );
  const percent = beats.filter((b) => b.step === 'classify' && b.unit === '%');
  expect(percent.length).toBeGreaterThan(0);
  for (const b of percent) {
    expect(b.total).toBe(100);
    expect(b.done as number).toBeGreaterThanOrEqual(0);
    expect(b.done as number).toBeLessThanOrEqual(100);
  }
  const spanned = beats.filter((b) => b.step === 'history' && b.unit === 'partitions');
  expect(spanned.some((b) => (b.done as number) > 10 && (b.done as number) <= 20)).toBe(true);
});
