import * as fs from 'node:fs';
import * as path from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { WorkflowFailedError } from '@temporalio/client';
import {
  startWorkers,
  tempDir,
  testOverrides,
  rootMessage,
  recordHistory,
  startSuite,
  stopSuite,
} from '../helpers/env';
import type { AliasResult, RunSummary } from '../../contracts/stages';
import { ModelRegistry } from '../../registry/registry';
import { LocalStorage } from '../../lib/storage';
import { pruneVersions } from '../../activities/support/publishing';

jest.setTimeout(300_000);

/** Gates, registry aliases, promote/rollback workflows and the pointer's crash safety on the real server. */
let env: TestWorkflowEnvironment;
let workers: Awaited<ReturnType<typeof startWorkers>>;
const dataDir = tempDir('registry');
let data: { interactions: string; items: string };
const outputRoot = path.join(dataDir, 'output', 'recommendations', 'synthetic');
const registry = new ModelRegistry(new LocalStorage(dataDir), {
  datasetId: 'synthetic',
  registryPrefix: 'registry/synthetic',
  outputPrefix: 'output/recommendations/synthetic',
});
const pointerFile = () => JSON.parse(fs.readFileSync(path.join(outputRoot, '_current.json'), 'utf8'));
const current = () => path.basename(fs.readlinkSync(path.join(outputRoot, 'current')));

beforeAll(async () => {
  ({ data, env, workers } = await startSuite(dataDir));
});
afterAll(() => stopSuite(workers, env));

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
  const record = await registry.require(second.modelVersion);
  expect(record.parentVersion).toBe(first.modelVersion);
  expect(await registry.status(record)).toBe('champion');
  expect(record.data.files[0].sha256).toMatch(/^[0-9a-f]{64}$/);
  expect(await registry.status(await registry.require(first.modelVersion))).toBe('previous');
  // One document names the live version and the champion: readers' copy, symlink and registry agree.
  expect(pointerFile()).toMatchObject({ version: second.modelVersion, previous: first.modelVersion });
});

test('a failing gate publishes nothing: champion and current output stay', async () => {
  const rejected = await retrain({ gates: { minimums: { ndcg: 0.99 } } });
  expect(rejected.status).toBe('rejected');
  expect(rejected.gate.decision).toBe('reject');
  const failed = rejected.gate.checks.find((c) => !c.passed)!;
  expect(failed).toMatchObject({ threshold: 0.99, passed: false });
  expect(rejected.published).toBeNull();
  expect(current()).toBe(versions[1]);
  expect(await registry.champion()).toBe(versions[1]);
  expect(await registry.status(await registry.require(rejected.modelVersion))).toBe('rejected');
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
  expect((await registry.pointer())!.history.at(-1)!.reason).toBe('bad metrics in production');
  expect(pointerFile().version).toBe(versions[0]);
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
  const before = (await registry.pointer())!.history.length;
  const [a, b] = await Promise.all([
    aliasWorkflow('promoteModel', { version: versions[0], reason: 'a' }),
    aliasWorkflow('promoteModel', { version: versions[2], reason: 'b', force: true }),
  ]);
  await Promise.all([a.result(), b.result()]);
  const p = (await registry.pointer())!;
  expect(p.history.length).toBe(before + 2);
  const last = p.history.at(-1)!;
  expect(p.version).toBe(last.version);
  expect(current()).toBe(p.version);
  expect(pointerFile().version).toBe(p.version);
  // Each move saw the state left by the other: the last one's `previous` is the first one's version.
  expect(last.previous).toBe(p.history.at(-2)!.version);
});

test('a version folder that never went live is not current, and retention removes it once old', async () => {
  const before = current();
  // What a publish killed after writing its version folder, before the pointer moved, leaves behind.
  const orphan = path.join(outputRoot, 'versions', 'synthetic-orphan-123');
  fs.mkdirSync(orphan, { recursive: true });
  fs.writeFileSync(path.join(orphan, 'part-00000.parquet'), 'PAR1 half written');
  expect(current()).toBe(before);
  expect(pointerFile().version).toBe(before);
  const manifest = JSON.parse(fs.readFileSync(path.join(outputRoot, 'current', '_manifest.json'), 'utf8'));
  expect(manifest.modelVersion).toBe(before);
  // Young orphans may belong to a run still publishing: kept. Old ones go; the live version never does.
  expect(await pruneVersions(registry, 1)).not.toContain('synthetic-orphan-123');
  const old = new Date(Date.now() - 2 * 3_600_000);
  fs.utimesSync(orphan, old, old);
  const removed = await pruneVersions(registry, 1);
  expect(removed).toContain('synthetic-orphan-123');
  expect(removed).not.toContain(before);
  expect(fs.existsSync(path.join(outputRoot, 'current', '_manifest.json'))).toBe(true);
});
