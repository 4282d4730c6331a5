import pino from 'pino';
import type { Logger, LogLevel, LogMetadata } from '@temporalio/common';

/**
 * Structured JSON logs (one object per line, pino) for the Temporal SDK's logger: every workflow and activity
 * log line carries runId, workflowId, activity and attempt under the same names, whichever SDK component wrote
 * it, so `jq 'select(.runId == "…")'` or a log store's filter follows one run across workers.
 */

export type LogFormat = 'json' | 'pretty';

/** SDK messages that are expected in this deployment: logged at debug instead of their own level. */
const EXPECTED: RegExp[] = [
  // The training pool serves activities only; its worker has no workflows by design.
  /^No workflows registered, not polling for workflow tasks/,
];

/** Maps the SDK's log metadata onto recforge's field names (pure; exported for tests). */
export function logFields(meta: LogMetadata | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (!meta) return out;
  for (const [k, v] of Object.entries(meta)) {
    switch (k) {
      // Activity task tokens authorise completing the task: they have no place in a log store.
      case 'taskToken':
        break;
      case 'workflowRunId':
        out.runId = v;
        break;
      case 'activityType':
        out.activity = v;
        break;
      case 'sdkComponent':
        out.component = v;
        break;
      case 'error':
      case 'failure':
        out.err = v;
        break;
      default:
        out[k] = v;
    }
  }
  return out;
}

export function isExpectedNoise(message: string): boolean {
  return EXPECTED.some((re) => re.test(message));
}

const PINO_LEVEL: Record<LogLevel, pino.Level> = {
  TRACE: 'trace',
  DEBUG: 'debug',
  INFO: 'info',
  WARN: 'warn',
  ERROR: 'error',
};

export function parseLogLevel(value: string | undefined, fallback: LogLevel): LogLevel {
  if (!value) return fallback;
  const v = value.toUpperCase();
  if (v in PINO_LEVEL) return v as LogLevel;
  throw new Error(`unknown log level '${value}' (expected trace, debug, info, warn, error)`);
}

/** The Temporal SDK's Logger interface over a pino logger. */
export class JsonLogger implements Logger {
  constructor(readonly pino: pino.Logger) {}

  log(level: LogLevel, message: string, meta?: LogMetadata): void {
    const target = isExpectedNoise(message) ? 'debug' : PINO_LEVEL[level];
    this.pino[target](logFields(meta), message);
  }
  trace(message: string, meta?: LogMetadata): void {
    this.log('TRACE', message, meta);
  }
  debug(message: string, meta?: LogMetadata): void {
    this.log('DEBUG', message, meta);
  }
  info(message: string, meta?: LogMetadata): void {
    this.log('INFO', message, meta);
  }
  warn(message: string, meta?: LogMetadata): void {
    this.log('WARN', message, meta);
  }
  error(message: string, meta?: LogMetadata): void {
    this.log('ERROR', message, meta);
  }
}

export interface LoggerOptions {
  level: LogLevel;
  /** Where lines go; default stderr (stdout stays for a command's own output, e.g. --json). */
  destination?: pino.DestinationStream;
  /** Fields on every line, e.g. the process role. */
  base?: Record<string, unknown>;
}

export function createJsonLogger(o: LoggerOptions): JsonLogger {
  const p = pino(
    {
      level: PINO_LEVEL[o.level],
      base: { pid: process.pid, ...o.base },
      timestamp: pino.stdTimeFunctions.isoTime,
      // Level names, not numbers: people read these too.
      formatters: { level: (label) => ({ level: label }) },
    },
    // Synchronous: a CLI exits with process.exit(), which would drop an asynchronous buffer's last lines.
    o.destination ?? pino.destination({ dest: 2, sync: true }),
  );
  return new JsonLogger(p);
}
