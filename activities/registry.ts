import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { loadRunConfig, ConfigError } from '../lib/config';
import type { ModelRecord } from '../contracts/registry';
import { RegistryError, type ModelRegistry } from '../registry/registry';
import { PointerConflict } from '../registry/pointer';
import type {
  EvaluateResult,
  IngestResult,
  ProfileResult,
  PublishResult,
  RunPlan,
  TrainResult,
  AliasInput,
  AliasResult,
} from '../contracts/stages';
import type { ActivityDeps } from './context';
import { kindOfFamily } from './evaluate';
import { writeVersion, manifestPrivacy, pruneVersions } from './publish';
import type { RecforgeConfig } from '../lib/config';
import { keyOfPath, registryOf } from './support/storage';

let codeVersionCache: string | undefined;
/** package version + git commit when available: enough to find the code that trained a model. */
export function codeVersion(root: string): string {
  if (codeVersionCache) return codeVersionCache;
  const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string };
  let sha = 'unknown';
  try {
    sha = execFileSync('git', ['rev-parse', '--short=12', 'HEAD'], {
      cwd: root,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
  } catch {
    // Not a git checkout (e.g. a container image): the package version still identifies the release.
  }
  codeVersionCache = `${pkg.version}+${sha}`;
  return codeVersionCache;
}

export function configHash(config: unknown): string {
  return createHash('sha256').update(JSON.stringify(config)).digest('hex').slice(0, 16);
}

function asFailure(err: unknown): never {
  if (err instanceof PointerConflict) {
    throw ApplicationFailure.nonRetryable(
      err.message,
      err.code === 'NothingToRollBack' ? 'NothingToRollBack' : 'RegistryConflict',
    );
  }
  if (err instanceof RegistryError) throw ApplicationFailure.nonRetryable(err.message, `Registry${err.code}`);
  throw err;
}

/** Registers this run's challenger (with lineage) whatever the gate decided: rejected models stay inspectable. */
export async function registerCandidate(
  deps: ActivityDeps,
  plan: RunPlan,
  ingested: IngestResult,
  profiled: ProfileResult,
  trained: TrainResult,
  evaluation: EvaluateResult,
): Promise<ModelRecord> {
  const registry = registryOf(plan.config, plan.datasetId);
  const key = (file: string) => keyOfPath(registry.store, file);
  const name = evaluation.chosenModel;
  const model = (n: string) => trained.models.find((m) => m.name === n)!;
  const dirs = (() => {
    const e = model(name).modelDir;
    const f = model(`${name}-full`).modelDir;
    return e && f ? { eval: key(e), full: key(f) } : undefined;
  })();
  try {
    return await registry.register({
      version: plan.modelVersion,
      datasetId: plan.datasetId,
      model: name,
      createdAt: new Date().toISOString(),
      runId: plan.runId,
      workflowId: plan.workflowId,
      parentVersion: evaluation.championVersion,
      configHash: configHash(plan.config),
      codeVersion: codeVersion(deps.root),
      backend: trained.backend,
      data: {
        files: ingested.files.map((f) => ({ path: f.path, sha256: f.sha256, rows: f.rows })),
        rows: ingested.rows,
        profilePath: profiled.profilePath,
      },
      metrics: evaluation.metrics,
      gate: evaluation.gate,
      privacy: manifestPrivacy(plan),
      artifacts: {
        eval: key(model(name).path),
        full: key(model(`${name}-full`).path),
        mostPopEval: key(model('mostpop').path),
        mostPopFull: key(model('mostpop-full').path),
      },
      ...(dirs ? { modelDirs: dirs } : {}),
      runDb: key(plan.dbPath),
    });
  } catch (err) {
    asFailure(err);
  }
}

/**
 * After publishing: the challenger goes live (and becomes champion) in one compare-and-swap of the live
 * pointer, against the champion it was evaluated against. Idempotent on retry; old versions pruned after.
 */
export async function promoteCandidate(
  plan: RunPlan,
  evaluation: EvaluateResult,
  _published: PublishResult,
): Promise<{ champion: string | null; previous: string | null }> {
  const registry = registryOf(plan.config, plan.datasetId);
  try {
    const p = await registry.promoteChallenger(plan.modelVersion, evaluation.championVersion, {
      at: new Date().toISOString(),
      reason: `promoted by run ${plan.runId}: all ${evaluation.gate.checks.length} gate checks passed`,
      by: plan.workflowId,
    });
    await pruneVersions(registry, plan.config.publish.keepVersions);
    return { champion: p.version, previous: p.previous };
  } catch (err) {
    asFailure(err);
  }
}

function loadForAlias(deps: ActivityDeps, input: AliasInput) {
  try {
    const { config } = loadRunConfig({
      root: deps.root,
      config: input.config,
      overrides: input.overrides,
      allowProtected: deps.allowProtectedOverrides,
      env: deps.env,
    });
    const datasetId = input.datasetId ?? config.dataset.id;
    return { config, registry: registryOf(config, datasetId) };
  } catch (err) {
    if (err instanceof ConfigError) throw ApplicationFailure.nonRetryable(err.message, 'ConfigError');
    throw err;
  }
}

/**
 * Makes sure a version's output folder exists before the pointer names it: its kept folder, or its
 * recommendations rebuilt from the registry artifacts and the run's database (no retraining).
 */
async function ensurePublished(
  registry: ModelRegistry,
  record: ModelRecord,
  config: RecforgeConfig,
): Promise<void> {
  const store = registry.store;
  if (await store.exists(`${registry.versionKey(record.version)}/_manifest.json`)) return;
  const runDb = store.uri(record.runDb);
  if (!fs.existsSync(runDb)) {
    throw ApplicationFailure.nonRetryable(
      `cannot republish ${record.version}: its output was pruned and its run database ${runDb} is gone`,
      'VersionNotPublished',
    );
  }
  await writeVersion({
    root: store.uri(registry.where.outputPrefix),
    dbPath: runDb,
    limits: { memoryLimit: config.duckdb.memoryLimit, threads: config.duckdb.threads },
    datasetId: record.datasetId,
    version: record.version,
    runId: record.runId,
    workflowId: record.workflowId,
    model: record.model,
    kind: kindOfFamily(record.model),
    modelFile: store.uri(record.artifacts.full),
    mostPopFile: store.uri(record.artifacts.mostPopFull),
    topN: config.publish.topN,
    maxHistory: config.training.itemItem.maxHistoryPerUser,
    generatedAt: record.createdAt,
    metrics: record.metrics[record.model] ?? {},
    privacy: record.privacy,
  });
}

/**
 * `promoteModel`: makes a registered version live and champion (the old champion becomes `previous`), without
 * retraining. Rejected versions need `force`.
 */
export async function setChampion(deps: ActivityDeps, input: AliasInput, by: string): Promise<AliasResult> {
  const { registry, config } = loadForAlias(deps, input);
  if (!input.version) throw ApplicationFailure.nonRetryable('promoteModel needs a version', 'BadInput');
  try {
    const record = await registry.require(input.version);
    if (record.gate?.decision === 'reject' && !input.force) {
      throw ApplicationFailure.nonRetryable(
        `${record.version} was rejected by its gates; pass "force": true to promote it anyway`,
        'VersionRejected',
      );
    }
    await ensurePublished(registry, record, config);
    const p = await registry.setLive(record.version, {
      at: new Date().toISOString(),
      reason: input.reason ?? 'manual promotion',
      by,
    });
    return { champion: p.version, previous: p.previous, currentPath: currentPathOf(registry) };
  } catch (err) {
    asFailure(err);
  }
}

/** `rollbackModel`: `previous` goes live again (and the rolled-back one becomes `previous`). */
export async function rollbackChampion(
  deps: ActivityDeps,
  input: AliasInput,
  by: string,
): Promise<AliasResult> {
  const { registry, config } = loadForAlias(deps, input);
  try {
    const before = await registry.pointer();
    if (before?.previous) await ensurePublished(registry, await registry.require(before.previous), config);
    const p = await registry.rollBack({
      at: new Date().toISOString(),
      reason: input.reason ?? 'rollback',
      by,
    });
    return { champion: p.version, previous: p.previous, currentPath: currentPathOf(registry) };
  } catch (err) {
    asFailure(err);
  }
}

function currentPathOf(registry: ModelRegistry): string {
  return registry.store.kind === 'local'
    ? path.join(registry.store.uri(registry.where.outputPrefix), 'current')
    : registry.store.uri(registry.pointerKey);
}
