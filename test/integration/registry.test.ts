import * as fs from 'node:fs';
import * as path from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { WorkflowFailedError } from '@temporalio/client';
import {
  startTemporal,
  startWorkers,
  stopWorkers,
  tempDir,
  testConfig,
  testOverrides,
  smallDataset,
  rootMessage,
  recordHistory,
} from '../helpers/env';
import type { AliasResult, RunSummary } from '../../workflows/types';
import { Registry } from '../../lib/registry';
import { pruneVersions } from '../../activities/publish';

jest.setTimeout(300_000);

/** Gates, registry aliases, promote/rollback workflows and the pointer's crash safety on the real server. */
let env: TestWorkflowEnvironment;
let workers: Awaited<ReturnType<typeof startWorkers>>;
const dataDir = tempDir('registry');
let data: { interactions: string; items: string };
const outputRoot = path.join(dataDir, 'output', 'recommendations', 'synthetic');
const registry = new Registry(path.join(dataDir, 'registry', 'synthetic'));
const current = () => path.basename(fs.readlinkSync(path.join(outputRoot, 'current')));

beforeAll(async () => {
  data = await smallDataset(path.join(dataDir, 'input'));
  env = await startTemporal();
  workers = await startWorkers(env, testConfig(dataDir));
});
afterAll(async () => {
  if (workers) await stopWorkers(workers);
  if (env) await env.teardown();
});

let n = 0;
async function retrain(extra: Record<string, unknown> = {}): Promise<RunSummary> {
  const handle = await env.client.workflow.start('retrainPipeline', {
    taskQueue: 'recforge-cpu',
    workflowId: `reg-retrain-${++n}`,
    // Without DP noise, runs on the same data are identical: the champion comparison is then exact.
    args: [
      {
        interactions: data.interactions,
        items: data.items,
        overrides: testOverrides(dataDir, { privacy: { enabled: false }, ...extra }),
      },
    ],
  });
  return (await handle.result()) as RunSummary;
}

function aliasWorkflow(type: 'promoteModel' | 'rollbackModel', input: Record<string, unknown>) {
  return env.client.workflow.start(type, {
    taskQueue: 'recforge-cpu',
    workflowId: `reg-${type}-${++n}`,
    args: [{ overrides: testOverrides(dataDir), ...input }],
  });
}

const versions: string[] = [];

test('first run becomes champion; the second is evaluated against it and replaces it', async () => {
  const first = await retrain();
  expect(first.status).toBe('completed');
  expect(first.registry).toEqual({ champion: first.modelVersion, previous: null });
  const second = await retrain();
  expect(second.metrics.champion).toBeDefined();
  expect(second.gate.checks.some((c) => c.name.includes(`champion ${first.modelVersion}`) && c.ci)).toBe(
    true,
  );
  expect(second.registry).toEqual({ champion: second.modelVersion, previous: first.modelVersion });
  expect(current()).toBe(second.modelVersion);
  versions.push(first.modelVersion, second.modelVersion);
  const record = registry.require(second.modelVersion);
  expect(record.parentVersion).toBe(first.modelVersion);
  expect(record.status).toBe('champion');
  expect(record.data.files[0].sha256).toMatch(/^[0-9a-f]{64}$/);
  expect(registry.require(first.modelVersion).status).toBe('retired');
});

test('a failing gate publishes nothing: champion and current output stay', async () => {
  const rejected = await retrain({ gates: { minimums: { ndcg: 0.99 } } });
  expect(rejected.status).toBe('rejected');
  expect(rejected.gate.decision).toBe('reject');
  const failed = rejected.gate.checks.find((c) => !c.passed)!;
  expect(failed).toMatchObject({ threshold: 0.99, passed: false });
  expect(rejected.published).toBeNull();
  expect(current()).toBe(versions[1]);
  expect(registry.aliases().champion).toBe(versions[1]);
  expect(registry.require(rejected.modelVersion).status).toBe('rejected');
  const d = await env.client.workflow.getHandle(`reg-retrain-${n}`).describe();
  expect(d.searchAttributes.RecforgeGateDecision).toEqual(['reject']);
  versions.push(rejected.modelVersion);
});

test('rollbackModel re-points champion and output to the previous version without retraining', async () => {
  const handle = await aliasWorkflow('rollbackModel', { reason: 'bad metrics in production' });
  const r = (await handle.result()) as AliasResult;
  recordHistory(env.address, handle.workflowId, 'rollback-completed');
  expect(r.champion).toBe(versions[0]);
  expect(r.previous).toBe(versions[1]);
  expect(current()).toBe(versions[0]);
  expect(registry.aliases().history.at(-1)!.reason).toBe('bad metrics in production');
});

test('promoteModel makes a version champion; a rejected one needs force', async () => {
  const handle = await aliasWorkflow('promoteModel', { version: versions[1] });
  const r = (await handle.result()) as AliasResult;
  recordHistory(env.address, handle.workflowId, 'promote-completed');
  expect(r.champion).toBe(versions[1]);
  expect(current()).toBe(versions[1]);
  const err = await (await aliasWorkflow('promoteModel', { version: versions[2] })).result().catch((e) => e);
  expect(err).toBeInstanceOf(WorkflowFailedError);
  expect(rootMessage(err)).toMatch(/rejected by its gates.*force/);
  const missing = await (await aliasWorkflow('promoteModel', { version: 'nope-1' })).result().catch((e) => e);
  expect(rootMessage(missing)).toMatch(/nope-1.*not in the registry/);
});

test('concurrent promotions serialise: aliases stay consistent and both moves are recorded', async () => {
  const before = registry.aliases().history.length;
  const [a, b] = await Promise.all([
    aliasWorkflow('promoteModel', { version: versions[0], reason: 'a' }),
    aliasWorkflow('promoteModel', { version: versions[2], reason: 'b', force: true }),
  ]);
  await Promise.all([a.result(), b.result()]);
  const aliases = registry.aliases();
  expect(aliases.history.length).toBe(before + 2);
  const last = aliases.history.at(-1)!;
  expect(aliases.champion).toBe(last.champion);
  expect(current()).toBe(aliases.champion);
  // Each move saw the state left by the other: the last one's `previous` is the first one's champion.
  expect(last.previous).toBe(aliases.history.at(-2)!.champion);
});

test('a crash between writing a version and switching the pointer leaves the previous version current', async () => {
  const before = current();
  // What a publish that died after writing files but before the rename/switch leaves behind.
  const partial = path.join(outputRoot, 'versions', '.tmp-crashed-version-123');
  fs.mkdirSync(partial, { recursive: true });
  fs.writeFileSync(path.join(partial, 'part-00000.parquet'), 'PAR1 half written');
  expect(current()).toBe(before);
  const manifest = JSON.parse(fs.readFileSync(path.join(outputRoot, 'current', '_manifest.json'), 'utf8'));
  expect(manifest.modelVersion).toBe(before);
  // Stale leftovers are pruned once old enough; the current version never is.
  const old = new Date(Date.now() - 2 * 3_600_000);
  fs.utimesSync(partial, old, old);
  const removed = pruneVersions(outputRoot, 1);
  expect(removed).toContain('.tmp-crashed-version-123');
  expect(removed).not.toContain(before);
  expect(fs.existsSync(path.join(outputRoot, 'current', '_manifest.json'))).toBe(true);
});
