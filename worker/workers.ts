import { NativeConnection, Runtime, Worker, type WorkerOptions } from '@temporalio/worker';
import { Client, Connection } from '@temporalio/client';
import { CPU_ACTIVITY_SLOTS, TRAINING_ACTIVITY_SLOTS, type RecforgeConfig } from '../lib/config';
import { createCpuActivities, createTrainingActivities } from '../activities';
import { metricsInterceptor } from '../lib/observability/interceptor';
import { temporalSecurity } from '../lib/temporal/security';
import { sweepStaleScratch } from '../activities/support/scratch';

export type QueueRole = 'cpu' | 'training';

export interface WorkerSetOptions {
  root: string;
  config: RecforgeConfig;
  address: string;
  roles: QueueRole[];
  /** Prebuilt workflow bundle (tests share one); otherwise bundled from workflows/. */
  workflowBundle?: WorkerOptions['workflowBundle'];
  /** Extra options per worker (e.g. a smaller concurrency in tests). */
  workerOptions?: Partial<WorkerOptions>;
  /** Let workflow inputs override protected config keys (tests only; see activities/support/context.ts). */
  allowProtectedOverrides?: boolean;
}

export interface WorkerSet {
  workers: Worker[];
  run(): Promise<void>;
  shutdown(): void;
  close(): Promise<void>;
}

/**
 * Builds the workers one process serves: the CPU queue (workflows + data activities) and/or the training
 * queue. Production runs them as separate pools (RECFORGE_WORKER_QUEUES); development runs both in one process.
 */
export async function createWorkers(o: WorkerSetOptions): Promise<WorkerSet> {
  // mTLS / API key for a remote server (TEMPORAL_TLS_CERT, TEMPORAL_TLS_KEY, TEMPORAL_API_KEY; .env.example).
  const security = temporalSecurity();
  const nativeConnection = await NativeConnection.connect({ address: o.address, ...security });
  const clientConnection = await Connection.connect({ address: o.address, ...security });
  const client = new Client({ connection: clientConnection, namespace: o.config.temporal.namespace });
  const deps = {
    root: o.root,
    client,
    allowProtectedOverrides: o.allowProtectedOverrides ?? false,
    dataDir: o.config.dataDir,
  };
  // What workers killed mid-activity on this host left in the scratch folder (a spill can be gigabytes).
  const swept = sweepStaleScratch();
  if (swept.length) Runtime.instance().logger.info('removed stale scratch folders', { runs: swept.length });
  const workers: Worker[] = [];
  const workflowSource = o.workflowBundle
    ? { workflowBundle: o.workflowBundle }
    : { workflowsPath: require.resolve('../workflows') };
  const common: Partial<WorkerOptions> = {
    // recforge's stage metrics, on the runtime's meter (its Prometheus endpoint, when one is configured).
    interceptors: { activity: [metricsInterceptor(Runtime.instance().metricMeter)] },
    // The SDK sends heartbeats at most every 0.8 × heartbeatTimeout (48 s at 1m): progress details in the UI
    // and `recforge run --follow` were that stale. A few seconds keeps them live at one small RPC per beat.
    maxHeartbeatThrottleInterval: '3s',
  };
  if (o.roles.includes('cpu')) {
    workers.push(
      await Worker.create({
        connection: nativeConnection,
        namespace: o.config.temporal.namespace,
        taskQueue: o.config.temporal.taskQueues.cpu,
        ...common,
        ...workflowSource,
        activities: createCpuActivities(deps),
        // DuckDB already uses every core for one query; parallel activities would only contend.
        maxConcurrentActivityTaskExecutions: CPU_ACTIVITY_SLOTS,
        ...o.workerOptions,
      }),
    );
  }
  if (o.roles.includes('training')) {
    workers.push(
      await Worker.create({
        connection: nativeConnection,
        namespace: o.config.temporal.namespace,
        taskQueue: o.config.temporal.taskQueues.training,
        ...common,
        activities: createTrainingActivities(deps),
        maxConcurrentActivityTaskExecutions: TRAINING_ACTIVITY_SLOTS,
        ...o.workerOptions,
      }),
    );
  }
  return {
    workers,
    run: async () => {
      await Promise.all(workers.map((w) => w.run()));
    },
    shutdown: () => {
      for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
    },
    close: async () => {
      await nativeConnection.close();
      await clientConnection.close();
    },
  };
}

export function parseRoles(value: string | undefined): QueueRole[] {
  if (!value) return ['cpu', 'training'];
  const roles = value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const r of roles) {
    if (r !== 'cpu' && r !== 'training')
      throw new Error(`RECFORGE_WORKER_QUEUES: unknown queue role '${r}' (expected cpu, training)`);
  }
  return roles as QueueRole[];
}
