import * as dotenv from 'dotenv';
import { loadConfig, findProjectRoot } from '../lib/config';
import { installObservability } from '../lib/observability/runtime';
import { createWorkers, parseRoles } from './workers';
import { ensureSearchAttributes } from '../lib/temporal/dev-server';

export interface WorkerProcessOptions {
  /** Config overlay files (RECFORGE_CONFIG's list applies first). */
  overlays?: string[];
  /** Queue roles; default RECFORGE_WORKER_QUEUES or both. */
  queues?: string;
  /** host:port of the Prometheus endpoint; default RECFORGE_METRICS_ADDRESS; none = no endpoint. */
  metricsAddress?: string;
  logLevel?: string;
  address?: string;
}

/**
 * A long-running worker against TEMPORAL_ADDRESS (or the config's address), with JSON logs and, when asked, a
 * Prometheus endpoint. Stops gracefully on SIGINT/SIGTERM: running activities finish (or are cancelled after
 * the grace period) first. `recforge worker` and the container images (`node dist/worker/main.js`) both run this.
 */
export async function runWorkerProcess(o: WorkerProcessOptions = {}): Promise<void> {
  dotenv.config({ quiet: true });
  const root = findProjectRoot();
  const { config } = loadConfig({ root, overlay: o.overlays });
  const address = o.address ?? (config.temporal.address || `127.0.0.1:${config.temporal.devServer.port}`);
  const roles = parseRoles(o.queues ?? process.env.RECFORGE_WORKER_QUEUES);
  const logger = installObservability({
    logLevel: o.logLevel,
    fallbackLevel: 'INFO',
    metricsAddress: o.metricsAddress,
    shutdownSignals: ['SIGINT', 'SIGTERM'],
    base: { role: `worker:${roles.join('+')}` },
  });
  await ensureSearchAttributes(address, config.temporal.namespace);
  const set = await createWorkers({
    root,
    config,
    address,
    roles,
    workerOptions: { shutdownGraceTime: '30s' },
    // Test harnesses only: lets workflow inputs override protected config keys (privacy, dataDir, temporal).
    allowProtectedOverrides: process.env.RECFORGE_ALLOW_PROTECTED_OVERRIDES === '1',
  });
  const metrics = o.metricsAddress ?? process.env.RECFORGE_METRICS_ADDRESS;
  logger.info('worker started', {
    queues: roles,
    address,
    namespace: config.temporal.namespace,
    metrics: metrics ? `http://${metrics}/metrics` : null,
  });
  await set.run();
  await set.close();
  logger.info('worker stopped');
}

if (require.main === module) {
  runWorkerProcess().catch((err) => {
    console.error(`[worker] ${(err as Error).message}`);
    process.exit(1);
  });
}
