import type { PayloadConverter } from '@temporalio/common';
import type { WorkflowHandle } from '@temporalio/client';
import { asProgressDetails } from '../lib/observability/progress';
import { renderProgress, type LiveRunState, type PendingActivityView } from './render/progress';

/**
 * Watches a running retrainPipeline: the `progress` query gives the stage, the finished stages and the current
 * stage's in-stage progress (throttled reports from its activities), `describe()` the pending activity with its
 * latest heartbeat details (rate, ETA, epoch, loss…). On a terminal the block of
 * stage lines is redrawn in place; otherwise a line is printed when something changed, at most every few seconds.
 */

interface ProgressQueryState {
  stage: string;
  stages: Array<{ name: string; seconds: number }>;
  /** The current stage's in-stage progress by activity (workflows/retrain.ts ProgressState.current). */
  current?: LiveRunState['current'];
}

function decodeDetails(converter: PayloadConverter, raw: unknown): PendingActivityView['details'] {
  const payload = (raw as { payloads?: unknown[] } | null | undefined)?.payloads?.[0];
  if (!payload) return null;
  try {
    return asProgressDetails(converter.fromPayload(payload as never));
  } catch {
    return null;
  }
}

export async function liveState(
  handle: WorkflowHandle,
  previous?: ProgressQueryState,
): Promise<LiveRunState> {
  const { defaultPayloadConverter } = await import('@temporalio/common');
  const d = await handle.describe();
  let q: ProgressQueryState | undefined = previous;
  if (d.status.name === 'RUNNING') {
    // The query may fail while the workflow is between tasks; the previous answer stands until the next poll.
    q = (await handle.query<ProgressQueryState>('progress').catch(() => undefined)) ?? previous;
  }
  const pending = (d.raw.pendingActivities ?? []).map((a): PendingActivityView => ({
    activity: a.activityType?.name ?? '?',
    attempt: a.attempt ?? 1,
    details: decodeDetails(defaultPayloadConverter, a.heartbeatDetails),
    lastFailure: a.lastFailure?.message ?? null,
  }));
  return {
    stage: q?.stage ?? 'plan',
    stages: q?.stages ?? [],
    current: q?.current,
    pending,
    status: d.status.name,
    elapsedSeconds: ((d.closeTime ?? new Date()).getTime() - d.startTime.getTime()) / 1000,
  };
}

export interface FollowOptions {
  out: NodeJS.WriteStream;
  /** Redraw in place (a terminal) or append lines (a log, CI). */
  tty: boolean;
  intervalMs?: number;
  /** Stops the loop early (the run's result arrived through another path). */
  signal?: AbortSignal;
}

export async function follow(handle: WorkflowHandle, o: FollowOptions): Promise<LiveRunState | undefined> {
  const every = o.intervalMs ?? 1000;
  let drawn = 0;
  let last: LiveRunState | undefined;
  let lastText = '';
  let lastPrinted = 0;
  let query: ProgressQueryState | undefined;
  for (;;) {
    if (o.signal?.aborted) return last;
    try {
      last = await liveState(handle, query);
      query = { stage: last.stage, stages: last.stages, current: last.current };
    } catch {
      // A transient RPC failure: keep the last picture and try again.
    }
    if (last) {
      const lines = renderProgress(last, { barWidth: o.tty ? 24 : 16 });
      const text = lines.join('\n');
      if (o.tty) {
        if (drawn) o.out.write(`\x1b[${drawn}A`);
        o.out.write(lines.map((l) => `\x1b[2K${l}`).join('\n') + '\n');
        drawn = lines.length;
      } else if (last.status !== 'RUNNING') {
        // The end: every stage with its time, and the outcome.
        o.out.write(`${text}\n`);
      } else if (text !== lastText && Date.now() - lastPrinted > 5000) {
        o.out.write(`${lines.filter((l) => l.includes('▶')).join('\n') || lines[lines.length - 1]}\n`);
        lastPrinted = Date.now();
        lastText = text;
      }
      if (last.status !== 'RUNNING') return last;
    }
    await new Promise((r) => setTimeout(r, every));
  }
}
