import type { Context } from '@temporalio/activity';
import type { Client } from '@temporalio/client';
import { STAGE_PROGRESS_SIGNAL, type StageProgressReport } from '../../contracts/stages';
import type { ProgressSink } from './heartbeat';

/**
 * Sends an activity's in-stage progress to its retrainPipeline as a signal, so that the workflow's `progress`
 * query answers with the current stage's {step, done, total, unit, etaSeconds} (heartbeat details are only
 * visible through describe()). Signals are history events, so they are throttled: a new step at most once a
 * second (so is a step's first report with an ETA), otherwise at most once every EVERY_MS; one in flight at a time; failures are ignored (progress is
 * advisory, and a run that has moved on drops late reports itself).
 */
const EVERY_MS = 5_000;
const NEW_STEP_MS = 1_000;

interface SinkState {
  lastAt: number;
  lastKey: string;
  inFlight: boolean;
}

export function workflowProgressSink(client: Client | undefined): ProgressSink | undefined {
  if (!client) return undefined;
  const states = new WeakMap<Context, SinkState>();
  return (ctx, details) => {
    const info = ctx.info;
    if (info.workflowType !== 'retrainPipeline' || !info.workflowExecution) return true;
    let st = states.get(ctx);
    if (!st) states.set(ctx, (st = { lastAt: -Infinity, lastKey: '', inFlight: false }));
    const now = Date.now();
    // A new step, or the first report of a step with an ETA (a step's first report cannot have one), is news.
    const eta = typeof details.etaSeconds === 'number' ? 'eta' : '';
    const key = [details.stage, details.step, details.model, details.unit, eta]
      .map((x) => String(x ?? ''))
      .join('\u0000');
    const wait = key === st.lastKey ? EVERY_MS : NEW_STEP_MS;
    if (st.inFlight || now - st.lastAt < wait) return false;
    st.lastAt = now;
    st.lastKey = key;
    st.inFlight = true;
    const report: StageProgressReport = {
      activity: info.activityType,
      attempt: info.attempt,
      details,
      at: new Date(now).toISOString(),
    };
    const state = st;
    const { workflowId, runId } = info.workflowExecution;
    client.workflow
      .getHandle(workflowId, runId)
      .signal(STAGE_PROGRESS_SIGNAL, report)
      .catch(() => undefined)
      .finally(() => {
        state.inFlight = false;
      });
    return true;
  };
}
