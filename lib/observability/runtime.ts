import { Runtime, makeTelemetryFilterString, type RuntimeOptions } from '@temporalio/worker';
import type { LogLevel } from '@temporalio/common';
import { createJsonLogger, parseLogLevel, type JsonLogger } from './logger';
import { STAGE_SECONDS_BUCKETS, METRIC } from './metrics';

/**
 * Installs the process-wide Temporal runtime once: JSON logs and, when an address is given, the Prometheus
 * endpoint that serves the SDK's metrics and recforge's (lib/observability/metrics.ts) at /metrics.
 */
export interface ObservabilityOptions {
  /** Log level; default RECFORGE_LOG_LEVEL or the caller's fallback. */
  logLevel?: string;
  fallbackLevel: LogLevel;
  /** host:port for /metrics (e.g. 0.0.0.0:9464); default RECFORGE_METRICS_ADDRESS; none = no endpoint. */
  metricsAddress?: string;
  shutdownSignals: NodeJS.Signals[];
  /** Fields on every log line (e.g. the process role). */
  base?: Record<string, unknown>;
  env?: NodeJS.ProcessEnv;
}

export function runtimeOptions(o: ObservabilityOptions): { options: RuntimeOptions; logger: JsonLogger } {
  const env = o.env ?? process.env;
  const level = parseLogLevel(o.logLevel ?? env.RECFORGE_LOG_LEVEL, o.fallbackLevel);
  const logger = createJsonLogger({ level, base: o.base });
  const address = o.metricsAddress ?? env.RECFORGE_METRICS_ADDRESS;
  const options: RuntimeOptions = {
    logger,
    shutdownSignals: o.shutdownSignals,
    telemetryOptions: {
      // The SDK core's (Rust) own log lines go through the same JSON logger, not straight to stderr.
      logging: { forward: {}, filter: makeTelemetryFilterString({ core: 'WARN', other: 'ERROR' }) },
      ...(address
        ? {
            metrics: {
              prometheus: {
                bindAddress: address,
                // Seconds, as Prometheus' conventions and the dashboard's panels expect.
                useSecondsForDurations: true,
                histogramBucketOverrides: { [METRIC.stageSeconds]: STAGE_SECONDS_BUCKETS },
              },
            },
          }
        : {}),
    },
  };
  return { options, logger };
}

/** Installs the runtime; a second call in the same process (tests) keeps the first and says so in the log. */
export function installObservability(o: ObservabilityOptions): JsonLogger {
  const { options, logger } = runtimeOptions(o);
  try {
    Runtime.install(options);
  } catch (err) {
    logger.warn('Temporal runtime already installed; keeping it', { error: (err as Error).message });
  }
  return logger;
}
