import { AsyncLocalStorage } from 'node:async_hooks';
import { Context } from '@temporalio/activity';
import { CancelledFailure } from '@temporalio/common';
import { runCancellable } from '../../lib/cancellation';
import { onStatementProgress } from '../../lib/duckdb';
import { faultPoint } from '../../lib/faults';
import { ProgressTracker } from '../../lib/observability/progress';
import { asFailure } from './failure';

/**
 * Keeps an activity heartbeating while a long DuckDB statement runs (a single COPY can take minutes without
 * yielding to our code). Heartbeats repeat the latest progress details, so the UI always shows how far it is.
 * Progress is kept per activity execution (a worker runs several at once), not in a module-level variable.
 */
interface ProgressStore {
  /** What the activity last reported itself (progress()). */
  own: Record<string, unknown>;
  /** What the heartbeats carry: `own` enriched with rate and ETA, or a long statement's progress within it. */
  latest: Record<string, unknown>;
  tracker: ProgressTracker;
  /** Called with every enriched report that is worth sending now (heartbeat, and the workflow's progress). */
  send: (details: Record<string, unknown>) => void;
  /** `latest` has changed since the sink last took it (the sink throttles; the timer offers it again). */
  unsent: boolean;
}
const current = new AsyncLocalStorage<ProgressStore>();

/**
 * A DuckDB statement that runs for seconds (lib/duckdb.ts polls its query progress) moves the step's counter:
 * with `statementSpan` (units of `unit` that this statement covers, e.g. the bytes of the file being read) the
 * count goes from `done` towards `done + statementSpan`; a step without counts shows the statement's percent.
 */
onStatementProgress((fraction) => {
  const store = current.getStore();
  if (!store) return;
  const own = store.own;
  const span = typeof own.statementSpan === 'number' ? own.statementSpan : null;
  const done = typeof own.done === 'number' ? own.done : null;
  const total = typeof own.total === 'number' ? own.total : null;
  const overlay =
    span !== null && done !== null && total !== null
      ? { ...own, done: Math.min(total, done + fraction * span) }
      : done === null && total === null
        ? { ...own, done: Math.round(1000 * fraction) / 10, total: 100, unit: '%' }
        : null;
  if (!overlay) return;
  const { details, due } = store.tracker.update(overlay as never);
  store.latest = details;
  store.unsent = true;
  if (due) store.send(details);
});

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
  const own = { stage: String(details.stage ?? store.latest.stage), ...details };
  const { details: enriched, due } = store.tracker.update(own);
  store.own = own;
  store.latest = enriched;
  store.unsent = true;
  return { details: enriched, due };
}

/** Where in-stage progress goes besides the heartbeat (the workflow's `progress` query; activities/index.ts). */
export type ProgressSink = (ctx: Context, details: Record<string, unknown>) => boolean;

export function withHeartbeat<A extends unknown[], R>(
  name: string,
  fn: (...args: A) => Promise<R>,
  sink?: ProgressSink,
) {
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
    const store: ProgressStore = {
      own: { stage: name },
      latest: { stage: name },
      tracker: new ProgressTracker(),
      unsent: false,
      send: (details) => {
        activity.heartbeat(details);
        if (sink?.(activity, details)) store.unsent = false;
      },
    };
    activity.heartbeat({ ...store.latest, elapsedSeconds: 0 });
    const timer = setInterval(() => {
      const beat = { ...store.latest, elapsedSeconds: Math.round((Date.now() - started) / 1000) };
      activity.heartbeat(beat);
      // A report the sink's throttle held back goes out now.
      if (store.unsent && sink?.(activity, beat)) store.unsent = false;
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

/** Sends enriched progress now (heartbeat and sink) from inside withHeartbeat; a no-op elsewhere. */
export function sendProgress(details: Record<string, unknown>): void {
  current.getStore()?.send(details);
}
