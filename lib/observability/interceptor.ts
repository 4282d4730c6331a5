import type { Context as ActivityContext } from '@temporalio/activity';
import type { MetricMeter } from '@temporalio/common';
import type { ActivityInterceptorsFactory } from '@temporalio/worker';
import { MetricRecorder, metricsOfActivity } from './metrics';

/**
 * Worker interceptor that times every stage activity and turns its inputs and result into recforge metrics
 * (./metrics.ts). Installed by worker/workers.ts; the activities themselves know nothing of it.
 */
export function metricsInterceptor(meter: MetricMeter): ActivityInterceptorsFactory {
  const recorder = new MetricRecorder(meter);
  return (ctx: ActivityContext) => ({
    inbound: {
      async execute(input, next) {
        const started = performance.now();
        const type = ctx.info.activityType;
        const seconds = () => (performance.now() - started) / 1000;
        let result: unknown;
        try {
          result = await next(input);
        } catch (err) {
          safely(() =>
            recorder.record(metricsOfActivity(type, input.args, { ok: false, seconds: seconds() })),
          );
          throw err;
        }
        safely(() =>
          recorder.record(metricsOfActivity(type, input.args, { ok: true, result, seconds: seconds() })),
        );
        return result;
      },
    },
  });
}

/** A metrics problem must never fail the activity whose work is already done. */
function safely(fn: () => void): void {
  try {
    fn();
  } catch {
    // Metrics are best effort.
  }
}
