import {
  Client,
  ScheduleOverlapPolicy,
  ScheduleNotFoundError,
  type ScheduleOptions,
} from '@temporalio/client';
import type { RecforgeConfig } from '../config';
import type { RetrainInput } from '../../contracts/stages';

/** The nightly retrain as a Temporal Schedule, built from config (cron, timezone, overlap, catch-up window). */
export function scheduleOptions(config: RecforgeConfig, input: RetrainInput = {}): ScheduleOptions {
  const s = config.schedule;
  return {
    scheduleId: s.id,
    spec: { cronExpressions: [s.cron], timezone: s.timezone },
    action: {
      type: 'startWorkflow',
      workflowType: 'retrainPipeline',
      taskQueue: config.temporal.taskQueues.cpu,
      workflowId: `${s.id}-retrain`,
      args: [input],
    },
    policies: {
      overlap: ScheduleOverlapPolicy[s.overlap],
      catchupWindow: s.catchupWindow as `${number}${'ms' | 's' | 'm' | 'h' | 'd'}`,
    },
    memo: { description: 'recforge nightly retrain (npm run schedule -- apply)' },
  };
}

export type ApplyResult = 'created' | 'updated';

/** Creates the schedule or updates it in place: running it twice changes nothing the second time. */
export async function applySchedule(
  client: Client,
  config: RecforgeConfig,
  input: RetrainInput = {},
): Promise<ApplyResult> {
  const options = scheduleOptions(config, input);
  const handle = client.schedule.getHandle(options.scheduleId);
  try {
    await handle.describe();
  } catch (err) {
    if (!(err instanceof ScheduleNotFoundError)) throw err;
    await client.schedule.create(options);
    return 'created';
  }
  await handle.update((prev) => ({
    ...prev,
    spec: options.spec,
    action: { ...options.action, workflowType: 'retrainPipeline' } as typeof prev.action,
    policies: { ...prev.policies, ...options.policies },
  }));
  return 'updated';
}
