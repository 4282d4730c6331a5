import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import { ROOT, testOverrides } from './env';

/**
 * Worker processes as production runs them (`node dist/worker/main.js`, configured by environment only), each
 * with its own data folder and working directory: on a bucket they share nothing but the Temporal server and
 * the storage. Run `npm run build` first (the tests spawn the compiled worker).
 */
export interface WorkerProcess {
  child: ChildProcess;
  dataDir: string;
  log: string[];
  /** Resolves when the process has exited (at once if it already has). */
  exited(): Promise<void>;
}

export function startWorkerProcess(o: {
  address: string;
  dataDir: string;
  /** Working directory (default: the data folder, so no two workers share one). */
  cwd?: string;
  env?: Record<string, string>;
}): WorkerProcess {
  const main = path.join(ROOT, 'dist', 'worker', 'main.js');
  if (!fs.existsSync(main)) throw new Error(`${main} is missing: run \`npm run build\` first`);
  fs.mkdirSync(o.dataDir, { recursive: true });
  const child = spawn(process.execPath, [main], {
    cwd: o.cwd ?? o.dataDir,
    env: {
      ...process.env,
      TEMPORAL_ADDRESS: o.address,
      RECFORGE_DATA_DIR: o.dataDir,
      // Tests shorten timeouts through workflow-input overrides (temporal.* is protected).
      RECFORGE_ALLOW_PROTECTED_OVERRIDES: '1',
      RECFORGE_LOG_LEVEL: 'WARN',
      ...o.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const log: string[] = [];
  // Kept for failure messages only: worker logs are noise when a test passes.
  child.stderr!.on('data', (d) => log.push(String(d)));
  child.stdout!.on('data', (d) => log.push(String(d)));
  const exit = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    child,
    dataDir: o.dataDir,
    log,
    exited: () => (child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : exit),
  };
}

export async function stopWorkerProcess(w: WorkerProcess | undefined): Promise<void> {
  if (!w || w.child.exitCode !== null || w.child.signalCode !== null) return;
  w.child.kill('SIGTERM');
  await w.exited();
}

/**
 * testOverrides for workers configured by environment: short timeouts and open gates, but neither `dataDir`
 * nor `storage` — each worker keeps its own data folder, and the bucket comes from its RECFORGE_STORAGE_ROOT.
 */
export function processOverrides(extra: Record<string, unknown> = {}): Record<string, unknown> {
  const { dataDir: _ignored, ...o } = testOverrides('unused', extra);
  return o;
}

/** Each started activity of a workflow: its type, attempt, the worker identity that ran it, and its input. */
export async function activityStarts(
  handle: WorkflowHandle,
): Promise<{ type: string; attempt: number; identity: string; input: unknown[] }[]> {
  const { defaultPayloadConverter } = await import('@temporalio/common');
  const events = (await handle.fetchHistory()).events ?? [];
  const scheduled = new Map<string, { type: string; input: unknown[] }>();
  for (const e of events) {
    const a = e.activityTaskScheduledEventAttributes;
    if (!a) continue;
    scheduled.set(String(e.eventId), {
      type: a.activityType?.name ?? '',
      input: (a.input?.payloads ?? []).map((p) => defaultPayloadConverter.fromPayload(p)),
    });
  }
  return events.flatMap((e) => {
    const a = e.activityTaskStartedEventAttributes;
    if (!a) return [];
    const s = scheduled.get(String(a.scheduledEventId));
    return [
      { type: s?.type ?? '', attempt: a.attempt ?? 1, identity: a.identity ?? '', input: s?.input ?? [] },
    ];
  });
}
