/**
 * `node dist/bench/quality/promote.js --version V --dataset D` (RECFORGE_DATA_DIR and RECFORGE_CONFIG set):
 * force-promotes a version the gates rejected, through recforge's own `promoteModel` workflow on the run's
 * embedded Temporal server and data folder, so that the quality bench can score the lists the challenger would
 * have published. Only for measurement: the bench labels those lists "not published".
 */
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import { dataPath, findProjectRoot, loadWorkerConfig } from '../../lib/config';
import { createWorkers } from '../../worker/workers';
import { startDevServer } from '../../lib/temporal/dev-server';
import { installObservability } from '../../lib/observability/runtime';
import type { AliasInput, AliasResult } from '../../contracts/stages';

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: { version: { type: 'string' }, dataset: { type: 'string' } },
    strict: true,
  });
  if (!values.version || !values.dataset) throw new Error('usage: promote.js --version V --dataset D');
  const root = findProjectRoot();
  // The worker's config (RECFORGE_CONFIG: the bench's overlay with this run's ports and settings).
  const { config } = loadWorkerConfig({ root });
  installObservability({ fallbackLevel: 'WARN', shutdownSignals: [], base: { role: 'bench' } });
  const log = (s: string) => console.log(`[promote] ${s}`);
  const server = await startDevServer({
    root,
    dbFile: dataPath(config, config.temporal.devServer.dbFile),
    port: config.temporal.devServer.port,
    uiPort: config.temporal.devServer.uiPort,
    namespace: config.temporal.namespace,
    log,
  });
  try {
    const workers = await createWorkers({ root, config, address: server.address, roles: ['cpu'] });
    const running = workers.run();
    const connection = await Connection.connect({ address: server.address });
    try {
      const client = new Client({ connection, namespace: config.temporal.namespace });
      const input: AliasInput = {
        version: values.version,
        datasetId: values.dataset,
        force: true,
        reason: 'quality bench: scoring a rejected challenger (not published)',
      };
      const r = (await client.workflow.execute('promoteModel', {
        taskQueue: config.temporal.taskQueues.cpu,
        workflowId: `bench-promote-${values.dataset}-${Date.now()}`,
        args: [input],
      })) as AliasResult;
      log(`champion ${r.champion}, current ${r.currentPath} (${path.basename(r.currentPath)})`);
    } finally {
      workers.shutdown();
      await running.catch(() => undefined);
      await workers.close();
      await connection.close();
    }
  } finally {
    await server.stop();
  }
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(`[promote] FAILED: ${(err as Error).stack ?? err}`);
    process.exit(1);
  },
);
