import * as dotenv from 'dotenv';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import {
  Client,
  Connection,
  WorkflowFailedError,
  WorkflowExecutionAlreadyStartedError,
} from '@temporalio/client';
import { WorkflowIdConflictPolicy } from '@temporalio/common';
import { loadRunConfig, findProjectRoot, ConfigError } from '../lib/config';
import { createWorkers } from '../worker/workers';
import { ensureServer, installQuietRuntime } from './runtime';
import type { RetrainInput, RunSummary } from '../workflows/types';
import type { ProgressState } from '../workflows/retrain';
import { writeJsonAtomic } from '../lib/fs-atomic';

const USAGE = `usage: npm run pipeline -- [--input <file|folder|glob>] [--items <file>] [--config <configs/file>]
                             [--dataset <id>] [--summary-json <file>]
  --config names the run's config layer: a file under configs/, merged over the worker's config
  (configs/default.yaml + RECFORGE_CONFIG + environment); it may not change protected keys (privacy, dataDir, ...).`;

function fmt(n: number): string {
  return Number.isInteger(n) ? String(n) : n.toFixed(4);
}

/** Walks the failure chain to the root cause: that is the message an operator needs. */
function rootCause(err: unknown): string {
  let e = err as { message?: string; cause?: unknown };
  const parts: string[] = [];
  while (e) {
    if (e.message) parts.push(e.message);
    e = e.cause as typeof e;
  }
  return parts[parts.length - 1] ?? String(err);
}

function printSummary(s: RunSummary): void {
  console.log(`\n[pipeline] ${s.status.toUpperCase()}  model ${s.modelVersion}  (${s.backend})`);
  console.log(`  rows: ${s.rows.ingested} ingested, ${s.rows.kept} kept, ${s.rows.quarantined} quarantined`);
  for (const [reason, n] of Object.entries(s.rows.byReason)) console.log(`    ${reason}: ${n}`);
  for (const [model, m] of Object.entries(s.metrics)) {
    console.log(
      `  ${model.padEnd(10)} ${Object.entries(m)
        .map(([k, v]) => `${k}=${fmt(v)}`)
        .join('  ')}`,
    );
  }
  if (s.privacy) {
    const u = s.privacy.utility;
    console.log(
      `  privacy: unit ${s.privacy.unit ?? '?'}, ε=${fmt(s.privacy.epsilon)} δ=${s.privacy.delta} (${s.privacy.mechanism}), window ${s.privacy.window}`,
    );
    if (u) console.log(`    planned utility: ${u.verdict} — ${u.note}`);
  }
  console.log(`  gate: ${s.gate.decision}`);
  for (const c of s.gate.checks)
    console.log(
      `    ${c.passed ? 'ok  ' : 'FAIL'} ${c.name}: ${fmt(c.value)} (threshold ${fmt(c.threshold)})`,
    );
  if (s.published) {
    console.log(`  published ${s.published.rows} rows for ${s.published.users} users`);
    console.log(`  output: ${s.published.currentPath} -> ${s.published.versionDir}`);
  }
}

async function main(): Promise<number> {
  dotenv.config({ quiet: true });
  const { values } = parseArgs({
    options: {
      input: { type: 'string' },
      items: { type: 'string' },
      config: { type: 'string' },
      dataset: { type: 'string' },
      'summary-json': { type: 'string' },
      help: { type: 'boolean' },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const root = findProjectRoot();
  // --config is the *run's* layer, exactly as a workflow input's `config`: a file under configs/ merged over the
  // worker's config, which may not change protected keys (privacy, dataDir, …). The worker's own config comes only
  // from configs/default.yaml, RECFORGE_CONFIG and the environment (.env). Checked here first to fail fast.
  const runFile = values.config ? path.resolve(values.config) : undefined;
  const { config: runConfig, worker: config } = loadRunConfig({ root, config: runFile });
  const input: RetrainInput = {
    ...(values.input ? { interactions: path.resolve(values.input) } : {}),
    ...(values.items ? { items: path.resolve(values.items) } : {}),
    ...(runFile ? { config: runFile } : {}),
    ...(values.dataset ? { datasetId: values.dataset } : {}),
  };
  const datasetId = values.dataset ?? runConfig.dataset.id;
  const summaryFile = values['summary-json'] ? path.resolve(values['summary-json']) : undefined;

  installQuietRuntime();
  const log = (s: string) => console.log(`[pipeline] ${s}`);
  const server = await ensureServer(root, config, log);
  log(`Temporal at ${server.address}; Web UI ${server.uiUrl}`);
  let workers: Awaited<ReturnType<typeof createWorkers>>;
  let connection: Connection;
  try {
    workers = await createWorkers({ root, config, address: server.address, roles: ['cpu', 'training'] });
    connection = await Connection.connect({ address: server.address });
  } catch (err) {
    // Never leave the dev server this process started holding the port.
    await server.stop();
    throw err;
  }
  const running = workers.run();
  const client = new Client({ connection, namespace: config.temporal.namespace });
  const t0 = Date.now();
  let exitCode = 0;
  try {
    const workflowId = `retrain-${datasetId}`;
    let handle;
    try {
      handle = await client.workflow.start('retrainPipeline', {
        taskQueue: config.temporal.taskQueues.cpu,
        workflowId,
        args: [input],
        workflowIdConflictPolicy: WorkflowIdConflictPolicy.FAIL,
      });
    } catch (err) {
      if (err instanceof WorkflowExecutionAlreadyStartedError) {
        throw new Error(
          `a retrain of dataset '${datasetId}' is already running (workflow ${workflowId}); wait for it or cancel it in the Temporal UI`,
        );
      }
      throw err;
    }
    log(`started workflow ${workflowId} run ${handle.firstExecutionRunId}`);
    let printed = 0;
    let inflight: Promise<void> = Promise.resolve();
    const poll = setInterval(() => {
      inflight = pollOnce();
    }, 500);
    const pollOnce = async () => {
      try {
        const p = await handle.query<ProgressState>('progress');
        for (; printed < p.stages.length; printed++) {
          log(`stage ${p.stages[printed].name.padEnd(9)} done in ${p.stages[printed].seconds.toFixed(1)}s`);
        }
      } catch {
        // The workflow may be between tasks; the next poll catches up.
      }
    };
    try {
      const summary = (await handle.result()) as RunSummary;
      clearInterval(poll);
      for (; printed < summary.stages.length; printed++) {
        log(
          `stage ${summary.stages[printed].name.padEnd(9)} done in ${summary.stages[printed].seconds.toFixed(1)}s`,
        );
      }
      printSummary(summary);
      log(`wall time ${((Date.now() - t0) / 1000).toFixed(1)}s`);
      if (summaryFile) writeJsonAtomic(summaryFile, summary);
      exitCode = summary.status === 'completed' ? 0 : 2;
    } finally {
      clearInterval(poll);
      await inflight; // Never close the connection under a query still in flight.
    }
  } catch (err) {
    const message = err instanceof WorkflowFailedError ? rootCause(err) : (err as Error).message;
    console.error(`[pipeline] FAILED: ${message}`);
    if (summaryFile) writeJsonAtomic(summaryFile, { status: 'failed', error: message });
    exitCode = 1;
  } finally {
    workers.shutdown();
    await running.catch(() => undefined);
    await workers.close();
    await connection.close();
    await server.stop();
  }
  return exitCode;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(`[pipeline] ${err instanceof ConfigError ? err.message : ((err as Error).stack ?? err)}`);
    process.exit(1);
  },
);
