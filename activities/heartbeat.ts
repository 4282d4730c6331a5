import { Context } from '@temporalio/activity';

/**
 * Keeps an activity heartbeating while a long DuckDB statement runs (a single COPY can take minutes without
 * yielding to our code). Heartbeats repeat the latest progress details, so the UI always shows how far it is.
 */
let latest: Record<string, unknown> = {};

export function setProgress(details: Record<string, unknown>): void {
  latest = details;
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
    const started = Date.now();
    // A third of the heartbeat timeout leaves room for two missed beats before Temporal gives up on us.
    const everyMs = Math.max(200, Math.min(10_000, (ctx.info.heartbeatTimeoutMs ?? 30_000) / 3));
    latest = { stage: name };
    ctx.heartbeat({ ...latest, elapsedSeconds: 0 });
    const timer = setInterval(() => {
      ctx!.heartbeat({ ...latest, elapsedSeconds: Math.round((Date.now() - started) / 1000) });
    }, everyMs);
    try {
      return await fn(...args);
    } finally {
      clearInterval(timer);
    }
  };
}
