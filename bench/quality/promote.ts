/**
 * `node dist/bench/quality/promote.js --version V --dataset D --config overlay.yaml` (RECFORGE_DATA_DIR set):
 * force-promotes a version the gates rejected, through recforge's own `promoteModel` workflow on the run's
 * embedded Temporal server and data folder, so that the quality bench can score the lists the challenger would
 * have published. Only for measurement: the bench labels those lists "not published".
 */
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import { findProjectRoot, loadConfig } from '../../lib/config';
import { createWorkers } from '../../worker/workers';
import { ensureServer, installQuietRuntime } from '../../scripts/runtime';
import type { AliasInput, AliasResult } from '../../workflows/types';

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: { version: { type: 'string' }, dataset: { type: 'string' }, config: { type: 'string' } },
    strict: true,
  });
  if (!values.version || !values.dataset || !values.config)
    throw new Error('usage: promote.js --version V --dataset D --config overlay.yaml');
  const root = findProjectRoot();
  const overlay = path.resolve(values.config);
  const { config } = loadConfig({ root, overlay });
  installQuietRuntime();
  const log = (s: string) => console.log(`[promote] ${s}`);
  const server = await ensureServer(root, config, log);
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
        config: overlay,
      };
      const r = (await client.workflow.execute('promoteModel', {
        taskQueue: config.temporal.taskQueues.cpu,
        workflowId: `bench-promote-${values.dataset}-${Date.now()}`,
        args: [input],
      })) as AliasResult;
      log(`champion ${r.champion}, current ${r.currentPath}`);
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
