import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadRunConfig, ConfigError, type RecforgeConfig } from '../lib/config';
import { RecforgeError, badInput, configError } from '../contracts/errors';
import { faultPoint } from '../lib/faults';
import type { ModelRecord } from '../contracts/registry';
import type {
  AliasInput,
  AliasResult,
  CleanResult,
  EvaluateResult,
  IngestResult,
  ProfileResult,
  RunPlan,
  StageRun,
  TrainResult,
} from '../contracts/stages';
import { itemItemLimitsOf } from '../contracts/stages';
import { RegistryError, type ModelRegistry } from '../registry/registry';
import { PointerConflict } from '../registry/pointer';
import type { ActivityDeps } from './support/context';
import { registryOf } from './support/storage';
import { RunIO } from './support/run-io';
import {
  discardUnpublishedVersion,
  manifestPrivacy,
  pruneVersions,
  republishVersion,
} from './support/publishing';
import { kindOfFamily } from '../registry/families';
import { idMapKeys } from './support/layout';
import { recordSuccessfulProfile, writeSchemaRecord } from './support/dataset-state';

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

/** Registry and pointer refusals as the error types workflows know (contracts/errors.ts). */
function asRecforgeError(err: unknown): never {
  if (err instanceof PointerConflict)
    throw new RecforgeError(
      err.code === 'NothingToRollBack' ? 'NothingToRollBack' : 'RegistryConflict',
      err.message,
    );
  if (err instanceof RegistryError) throw new RecforgeError(`Registry${err.code}`, err.message);
  throw err;
}

/** The dataset's champion as the retrain judges and warm-starts against it (null for a first run). */
export async function currentChampion(plan: RunPlan): Promise<ModelRecord | null> {
  const registry = registryOf(plan.config, plan.run.datasetId);
  const version = await registry.champion();
  return version ? ((await registry.get(version)) ?? null) : null;
}

/** Registers this run's challenger (with lineage) whatever the gate decided: rejected models stay inspectable. */
export async function registerCandidate(
  deps: ActivityDeps,
  run: StageRun,
  ingested: IngestResult,
  profiled: ProfileResult,
  cleaned: CleanResult,
  trained: TrainResult,
  evaluation: EvaluateResult,
): Promise<void> {
  const { plan } = run;
  const registry = registryOf(plan.config, plan.run.datasetId);
  const name = evaluation.chosenModel;
  const model = (n: string) => trained.models.find((m) => m.name === n)!;
  const e = model(name).modelDir;
  const f = model(`${name}-full`).modelDir;
  try {
    await registry.register({
      version: plan.run.modelVersion,
      datasetId: plan.run.datasetId,
      model: name,
      createdAt: new Date().toISOString(),
      runId: plan.run.runId,
      workflowId: plan.run.workflowId,
      parentVersion: evaluation.championVersion,
      configHash: configHash(plan.config),
      codeVersion: codeVersion(deps.root),
      backend: trained.backend,
      data: {
        files: ingested.files.map((x) => ({ path: x.path, sha256: x.sha256, rows: x.rows })),
        rows: ingested.rows,
        profile: profiled.profile,
      },
      metrics: evaluation.metrics,
      gate: evaluation.gate,
      privacy: manifestPrivacy(run.privacy),
      artifacts: {
        eval: model(name).key,
        full: model(`${name}-full`).key,
        mostPopEval: model('mostpop').key,
        mostPopFull: model('mostpop-full').key,
      },
      ...(e && f ? { modelDirs: { eval: e, full: f } } : {}),
      ...(trained.tuning
        ? {
            params: trained.tuning.params,
            tuning: {
              trials: trained.tuning.trials,
              seconds: trained.tuning.seconds,
              validationScore: trained.tuning.validationScore,
              metric: trained.tuning.metric,
              report: trained.tuning.report,
            },
          }
        : {}),
      inputs: { events: cleaned.artifacts.events.key, items: ingested.raw.items.key },
      scoring: { maxHistory: itemItemLimitsOf(plan.config, cleaned.artifacts).maxHistoryPerUser },
    });
  } catch (err) {
    asRecforgeError(err);
  }
}

/**
 * The commit point of a retrain: the challenger goes live (and becomes champion) in one compare-and-swap of the
 * live pointer, against the champion it was evaluated against. Idempotent on retry; old versions pruned after.
 */
export async function promoteCandidate(
  plan: RunPlan,
  evaluation: EvaluateResult,
): Promise<{ champion: string | null; previous: string | null }> {
  const registry = registryOf(plan.config, plan.run.datasetId);
  try {
    faultPoint('promote:before-move');
    const p = await registry.promoteChallenger(plan.run.modelVersion, evaluation.championVersion, {
      at: new Date().toISOString(),
      reason: `promoted by run ${plan.run.runId}: all ${evaluation.gate.checks.length} gate checks passed`,
      by: plan.run.workflowId,
    });
    faultPoint('promote:before-prune');
    await pruneVersions(registry, plan.config.publish.keepVersions);
    faultPoint('promote:after-prune');
    return { champion: p.version, previous: p.previous };
  } catch (err) {
    asRecforgeError(err);
  }
}

/** Compensation of a failed run: its version folder goes, unless it went live. Idempotent. */
export async function discardVersion(plan: RunPlan): Promise<boolean> {
  return discardUnpublishedVersion(registryOf(plan.config, plan.run.datasetId), plan.run.modelVersion);
}

/**
 * What only a published run may move: its stable id maps become the dataset's (so the next run's indices line
 * up with this champion's), its profile the drift baseline, its file columns the schema reference.
 */
export async function commitDatasetState(
  deps: ActivityDeps,
  run: StageRun,
  ingested: IngestResult,
  cleaned: CleanResult,
): Promise<void> {
  const io = new RunIO(run.plan.run, deps.dataDir);
  const state = idMapKeys(run.plan.run.datasetId);
  for (const [from, to] of [
    [cleaned.artifacts.userIds.key, state.users],
    [cleaned.artifacts.itemIds.key, state.items],
  ] as const) {
    const obj = await io.store.get(from);
    if (obj) await io.store.put(to, obj.body);
  }
  await recordSuccessfulProfile(io);
  await writeSchemaRecord(io.store, run, ingested);
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
    if (err instanceof ConfigError) throw configError(err.message);
    throw err;
  }
}

/**
 * Makes sure a version's output folder exists before the pointer names it: its kept folder, or its
 * recommendations scored again from the registry's artifacts (no retraining).
 */
async function ensurePublished(
  deps: ActivityDeps,
  registry: ModelRegistry,
  record: ModelRecord,
  config: RecforgeConfig,
): Promise<void> {
  if (await registry.store.exists(`${registry.versionKey(record.version)}/_manifest.json`)) return;
  const needed = [
    record.artifacts.full,
    record.artifacts.mostPopFull,
    record.inputs.events,
    record.inputs.items,
  ];
  for (const k of needed) {
    if (!(await registry.store.exists(k))) {
      throw new RecforgeError(
        'VersionNotPublished',
        `cannot republish ${record.version}: its output was pruned and its artifact ${registry.store.uri(k)} is gone`,
      );
    }
  }
  const io = new RunIO(
    {
      runId: record.runId,
      workflowId: record.workflowId,
      datasetId: record.datasetId,
      storage: registry.store.root,
      runKey: `runs/${record.datasetId}/${record.runId}`,
      startedAt: record.createdAt,
      modelVersion: record.version,
      duckdb: { memoryLimit: config.duckdb.memoryLimit, threads: config.duckdb.threads },
    },
    deps.dataDir,
  );
  await republishVersion(registry, io, record, {
    datasetId: record.datasetId,
    version: record.version,
    generatedAt: record.createdAt,
    kind: kindOfFamily(record.model),
    model: record.model,
    modelKey: record.artifacts.full,
    mostPopKey: record.artifacts.mostPopFull,
    eventsKey: record.inputs.events,
    itemsKey: record.inputs.items,
    topN: config.publish.topN,
    maxHistory: record.scoring?.maxHistory ?? itemItemLimitsOf(config, null).maxHistoryPerUser,
    shards: config.publish.shards,
    coldStart: { ...config.publish.coldStart, privacy: config.privacy.enabled },
  });
}

function currentPathOf(registry: ModelRegistry): string {
  return registry.store.kind === 'local'
    ? path.join(registry.store.uri(registry.where.outputPrefix), 'current')
    : registry.store.uri(registry.pointerKey);
}

/**
 * `promoteModel`: makes a registered version live and champion (the old champion becomes `previous`), without
 * retraining. Rejected versions need `force`.
 */
export async function setChampion(deps: ActivityDeps, input: AliasInput, by: string): Promise<AliasResult> {
  const { registry, config } = loadForAlias(deps, input);
  if (!input.version) throw badInput('promoteModel needs a version');
  try {
    const record = await registry.require(input.version);
    if (record.gate?.decision === 'reject' && !input.force) {
      throw new RecforgeError(
        'VersionRejected',
        `${record.version} was rejected by its gates; pass "force": true to promote it anyway`,
      );
    }
    await ensurePublished(deps, registry, record, config);
    const p = await registry.setLive(record.version, {
      at: new Date().toISOString(),
      reason: input.reason ?? 'manual promotion',
      by,
    });
    return { champion: p.version, previous: p.previous, currentPath: currentPathOf(registry) };
  } catch (err) {
    asRecforgeError(err);
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
    if (before?.previous)
      await ensurePublished(deps, registry, await registry.require(before.previous), config);
    const p = await registry.rollBack({
      at: new Date().toISOString(),
      reason: input.reason ?? 'rollback',
      by,
    });
    return { champion: p.version, previous: p.previous, currentPath: currentPathOf(registry) };
  } catch (err) {
    asRecforgeError(err);
  }
}
