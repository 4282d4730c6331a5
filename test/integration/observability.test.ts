import * as fs from 'node:fs';
import * as net from 'node:net';
import { Writable } from 'node:stream';
import { Runtime } from '@temporalio/worker';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { runtimeOptions } from '../../lib/observability/runtime';
import { createJsonLogger } from '../../lib/observability/logger';
import { main as cli } from '../../cli/main';
import type { RunRow } from '../../cli/render/runs';
import type { RunSummary } from '../../contracts/stages';
import {
  smallDataset,
  startTemporal,
  startWorkers,
  tempDir,
  testConfig,
  testPrivateOverrides,
  stopSuite,
} from '../helpers/env';

/**
 * A worker with the Prometheus endpoint and JSON logs, as `recforge worker --metrics` runs it: two small runs
 * (one promoted, one rejected by its gates), then the endpoint is scraped for the SDK's metrics and recforge's,
 * the log lines are checked for run and activity fields, the memo for the gate decision and the report, and
 * `recforge runs` for the rejected run shown as rejected.
 */

jest.setTimeout(300_000);

const logLines: Array<Record<string, unknown>> = [];
let port: number;
let env: TestWorkflowEnvironment;
let workers: Awaited<ReturnType<typeof startWorkers>>;
const dataDir = tempDir('observability');
let data: { interactions: string; items: string };
let promoted: RunSummary;
let rejected: RunSummary;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const p = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(p));
    });
    srv.on('error', reject);
  });
}

beforeAll(async () => {
  port = await freePort();
  // The runtime is installed once per process: install ours (metrics endpoint, JSON logs into memory) before the
  // test helpers would install their quiet one.
  const sink = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split('\n').filter(Boolean)) logLines.push(JSON.parse(line));
      done();
    },
  });
  const { options } = runtimeOptions({
    fallbackLevel: 'INFO',
    metricsAddress: `127.0.0.1:${port}`,
    shutdownSignals: [],
    env: {},
  });
  Runtime.install({ ...options, logger: createJsonLogger({ level: 'INFO', destination: sink }) });
  data = await smallDataset(tempDir('observability-input'));
  env = await startTemporal();
  workers = await startWorkers(env, testConfig(dataDir));
  const run = async (workflowId: string, extra: Record<string, unknown>) =>
    (
      await env.client.workflow.start('retrainPipeline', {
        taskQueue: 'recforge-cpu',
        workflowId,
        args: [
          {
            interactions: data.interactions,
            items: data.items,
            // Privacy on, so the spend metric has a value to check.
            overrides: testPrivateOverrides(dataDir, 'obs-users', extra),
          },
        ],
      })
    ).result() as Promise<RunSummary>;
  promoted = await run('obs-promote', {});
  // Same data, a minimum no model reaches: evaluated, then rejected.
  rejected = await run('obs-reject', {
    gates: { minimums: { ndcg: 0.99, coverage: 0 }, mostPopMargin: -1, maxRegression: 1 },
  });
});

afterAll(() => stopSuite(workers, env));

async function scrape(): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  expect(res.status).toBe(200);
  return res.text();
}

/** Value of one sample line, e.g. sample(text, 'recforge_rows', { kind: 'kept' }). */
function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`)))
      return Number(line.split(' ').at(-1));
  }
  return undefined;
}

test('the endpoint serves the SDK’s metrics and recforge’s stage, row, quarantine, privacy and NDCG metrics', async () => {
  const text = await scrape();
  // The SDK's own (worker and activity metrics from the Rust core).
  expect(text).toMatch(/^temporal_activity_execution_latency(_seconds)?_bucket\{/m);
  expect(text).toMatch(/^temporal_worker_task_slots_available\{/m);
  // recforge's, with the values of the last run of the dataset.
  expect(sample(text, 'recforge_stage_seconds_count', { stage: 'ingest', outcome: 'ok' })).toBe(2);
  expect(sample(text, 'recforge_stage_seconds_count', { stage: 'train', activity: 'trainBaselines' })).toBe(
    2,
  );
  expect(sample(text, 'recforge_rows', { kind: 'ingested', dataset: 'synthetic' })).toBe(
    rejected.rows.ingested,
  );
  expect(sample(text, 'recforge_rows', { kind: 'kept' })).toBe(rejected.rows.kept);
  expect(sample(text, 'recforge_rows', { kind: 'quarantined' })).toBe(rejected.rows.quarantined);
  expect(sample(text, 'recforge_quarantine_share', { dataset: 'synthetic' })).toBeCloseTo(
    rejected.rows.quarantined / rejected.rows.ingested,
    9,
  );
  expect(sample(text, 'recforge_quarantined_rows', { reason: 'duplicate' })).toBe(
    rejected.rows.byReason.duplicate,
  );
  expect(sample(text, 'recforge_privacy_epsilon_spent', { dataset: 'synthetic' })).toBe(
    rejected.privacy!.epsilon,
  );
  expect(sample(text, 'recforge_ndcg', { model: 'itemitem', role: 'challenger' })).toBeCloseTo(
    rejected.metrics.itemitem['ndcg@10'],
    9,
  );
  expect(sample(text, 'recforge_gate_decisions', { decision: 'promote' })).toBe(1);
  expect(sample(text, 'recforge_gate_decisions', { decision: 'reject' })).toBe(1);
  expect(sample(text, 'recforge_published_rows', { dataset: 'synthetic' })).toBe(promoted.published!.rows);
});

test('log lines are JSON with runId, workflowId, activity and attempt', () => {
  const profiled = logLines.find((l) => l.msg === 'profiled' && l.workflowId === 'obs-promote');
  expect(profiled).toMatchObject({
    level: 'info',
    workflowId: 'obs-promote',
    runId: promoted.runId,
    activity: 'profile',
    attempt: 1,
    component: 'activity',
  });
  expect(profiled).not.toHaveProperty('taskToken');
  const stage = logLines.find((l) => l.msg === 'stage finished' && l.workflowId === 'obs-reject');
  expect(stage).toMatchObject({ runId: rejected.runId, component: 'workflow' });
  // The training worker serves no workflows by design: not a warning.
  expect(logLines.filter((l) => l.level === 'warn' && /No workflows registered/.test(String(l.msg)))).toEqual(
    [],
  );
});

test('memo and summary carry the gate decision and the report; the report and index exist', async () => {
  for (const [id, s, decision] of [
    ['obs-promote', promoted, 'promote'],
    ['obs-reject', rejected, 'reject'],
  ] as const) {
    const d = await env.client.workflow.getHandle(id).describe();
    const memo = d.memo as {
      summary: { gate: { decision: string; checks: unknown[] }; report: string; status: string };
    };
    expect(memo.summary.gate.decision).toBe(decision);
    expect(memo.summary.gate.checks.length).toBeGreaterThan(0);
    expect(memo.summary.report).toBe(s.report!.html);
    expect(fs.readFileSync(s.report!.html, 'utf8')).toContain(`<h1>Run report — synthetic`);
  }
  expect(rejected.status).toBe('rejected');
  const index = fs.readFileSync(promoted.report!.index, 'utf8');
  expect(index).toContain(promoted.modelVersion);
  expect(fs.readFileSync(rejected.report!.index, 'utf8')).toContain(rejected.modelVersion);
});

test('`recforge runs --json` lists the rejected run as rejected and the promoted one as completed', async () => {
  let out = '';
  const spy = jest.spyOn(process.stdout, 'write').mockImplementation((s) => ((out += String(s)), true));
  let code: number;
  try {
    code = await cli(['--address', env.address, '--json', 'runs', '--dataset', 'synthetic']);
  } finally {
    spy.mockRestore();
  }
  expect(code).toBe(0);
  const rows = JSON.parse(out) as RunRow[];
  const byId = Object.fromEntries(rows.map((r) => [r.workflowId, r]));
  expect(byId['obs-reject']).toMatchObject({
    outcome: 'rejected',
    decision: 'reject',
    challenger: 'itemitem',
  });
  expect(byId['obs-promote']).toMatchObject({
    outcome: 'completed',
    decision: 'promote',
    report: promoted.report!.html,
  });
  expect(byId['obs-promote'].metric).toBeCloseTo(promoted.metrics.itemitem['ndcg@10'], 9);
});
