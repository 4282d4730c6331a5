import * as dotenv from 'dotenv';
import { Runtime, DefaultLogger } from '@temporalio/worker';
import { loadConfig, findProjectRoot } from '../lib/config';
import { createWorkers } from '../worker/workers';
import { ensureServer } from './runtime';

/**
 * `npm run dev`: the embedded Temporal dev server (SQLite under the data dir, Web UI on :8233, the project's
 * search attributes) plus a worker serving both task queues. Stays up until Ctrl-C.
 */
async function main(): Promise<void> {
  dotenv.config({ quiet: true });
  const root = findProjectRoot();
  const { config } = loadConfig({ root });
  Runtime.install({ logger: new DefaultLogger('WARN'), shutdownSignals: ['SIGINT', 'SIGTERM'] });
  const log = (s: string) => console.log(`[dev] ${s}`);
  const server = await ensureServer(root, config, log);
  const workers = await createWorkers({ root, config, address: server.address, roles: ['cpu', 'training'] });
  log(`Temporal ${server.address} — Web UI ${server.uiUrl}`);
  log(
    `worker serving ${config.temporal.taskQueues.cpu} + ${config.temporal.taskQueues.training}; start retrainPipeline from the UI or \`npm run pipeline\``,
  );
  log('Ctrl-C to stop');
  await workers.run();
  await workers.close();
  await server.stop();
  log('stopped');
}

main().catch((err) => {
  console.error(`[dev] ${(err as Error).message}`);
  process.exit(1);
});
