import { withDb } from '../../lib/duckdb';
import { OperationCancelled, runCancellable, throwIfCancelled } from '../../lib/cancellation';

const limits = { memoryLimit: '256MB', threads: 1 };

describe('cancellation of long DuckDB work', () => {
  test('aborting interrupts the statement in flight and surfaces the cancellation reason', async () => {
    const ctl = new AbortController();
    const reason = new OperationCancelled('stop');
    const run = runCancellable(ctl.signal, () =>
      withDb(':memory:', limits, (db) => db.scalar(`SELECT sum(i * i) FROM range(1000000000000) t(i)`)),
    );
    setTimeout(() => ctl.abort(reason), 200);
    await expect(run).rejects.toBe(reason);
  });

  test('a cancelled operation refuses to start its next statement', async () => {
    const ctl = new AbortController();
    ctl.abort(new OperationCancelled('stopped before'));
    await expect(
      runCancellable(ctl.signal, () => withDb(':memory:', limits, (db) => db.run('SELECT 1'))),
    ).rejects.toThrow('stopped before');
  });

  test('without a cancellation scope statements run normally and throwIfCancelled is a no-op', async () => {
    expect(() => throwIfCancelled()).not.toThrow();
    await expect(withDb(':memory:', limits, (db) => db.scalar('SELECT 41 + 1'))).resolves.toBe(42);
  });

  test('an interrupted-by-error statement outside cancellation keeps its own error', async () => {
    const ctl = new AbortController();
    await expect(
      runCancellable(ctl.signal, () => withDb(':memory:', limits, (db) => db.run('SELECT * FROM nope'))),
    ).rejects.toThrow(/nope/);
  });
});
