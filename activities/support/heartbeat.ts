import { AsyncLocalStorage } from 'node:async_hooks';
import { Context } from '@temporalio/activity';
import { CancelledFailure } from '@temporalio/common';
import { runCancellable } from '../../lib/cancellation';
import { faultPoint } from '../../lib/faults';
import { ProgressTracker } from '../../lib/observability/progress';
import { asFailure } from './failure';

/**
 * Keeps an activity heartbeating while a long DuckDB statement runs (a single COPY can take minutes without
 * yielding to our code). Heartbeats repeat the latest progress details, so the UI always shows how far it is.
 * Progress is kept per activity execution (a worker runs several at once), not in a module-level variable.
 */
const current = new AsyncLocalStorage<{ latest: Record<string, unknown>; tracker: ProgressTracker }>();

/**
 * Records the activity's latest progress with rate and ETA added (lib/observability/progress.ts documents the
 * shape); returns the enriched details and whether they are worth a heartbeat now, or undefined outside
 * withHeartbeat.
 */
export function setProgress(
  details: Record<string, unknown>,
): { details: Record<string, unknown>; due: boolean } | undefined {
  const store = current.getStore();
  if (!store) return undefined;
  const { details: enriched, due } = store.tracker.update({
    stage: String(details.stage ?? store.latest.stage),
    ...details,
  });
  store.latest = enriched;
  return { details: enriched, due };
}

export function withHeartbeat<A extends unknown[], R>(name: string, fn: (...args: A) => Promise<R>) {
  return async (...args: A): Promise<R> => {
    let ctx: Context | undefined;
    try {
      ctx = Context.current();
    } catch {
      ctx = undefined;
    }
    if (!ctx) return fn(...args);
    faultPoint('activity', name);
    const activity = ctx;
    const started = Date.now();
    // A third of the heartbeat timeout leaves room for two missed beats before Temporal gives up on us.
    const everyMs = Math.max(200, Math.min(10_000, (activity.info.heartbeatTimeoutMs ?? 30_000) / 3));
    const store = { latest: { stage: name } as Record<string, unknown>, tracker: new ProgressTracker() };
    activity.heartbeat({ ...store.latest, elapsedSeconds: 0 });
    const timer = setInterval(() => {
      activity.heartbeat({ ...store.latest, elapsedSeconds: Math.round((Date.now() - started) / 1000) });
    }, everyMs);
    try {
      // Cancellation reaches us through heartbeats; it interrupts DuckDB statements and stops the next
      // progress() call, so the workflow (which waits for cancellation to complete) knows the work has stopped.
      return await runCancellable(activity.cancellationSignal, () => current.run(store, () => fn(...args)));
    } catch (err) {
      if (activity.cancellationSignal.aborted && !(err instanceof CancelledFailure)) {
        const reason: unknown = activity.cancellationSignal.reason;
        throw reason instanceof CancelledFailure ? reason : new CancelledFailure('activity cancelled');
      }
      // Typed domain errors (contracts/errors.ts) keep their type and retryability across the boundary.
      throw asFailure(err);
    } finally {
      clearInterval(timer);
    }
  };
}
