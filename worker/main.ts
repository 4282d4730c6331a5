import * as dotenv from 'dotenv';
import { Runtime } from '@temporalio/worker';
import { loadConfig, findProjectRoot } from '../lib/config';
import { createWorkers, parseRoles } from './workers';
import { ensureSearchAttributes } from '../lib/temporal/dev-server';

/**
 * `npm run worker`: a long-running worker against TEMPORAL_ADDRESS (or the config's address). Stops
 * gracefully on SIGINT/SIGTERM: running activities finish (or are cancelled after the grace period) first.
 */
async function main(): Promise<void> {
  dotenv.config({ quiet: true });
  const root = findProjectRoot();
  const { config } = loadConfig({ root });
  const address = config.temporal.address || `127.0.0.1:${config.temporal.devServer.port}`;
  const roles = parseRoles(process.env.RECFORGE_WORKER_QUEUES);
  Runtime.install({ shutdownSignals: ['SIGINT', 'SIGTERM'] });
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
  console.log(`[worker] serving ${roles.join(' + ')} on ${address} (namespace ${config.temporal.namespace})`);
  await set.run();
  await set.close();
  console.log('[worker] stopped');
}

main().catch((err) => {
  console.error(`[worker] ${(err as Error).message}`);
  process.exit(1);
});
