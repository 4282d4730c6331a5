import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { loadRunConfig, ConfigError, dataPath } from '../lib/config';
import { Registry, RegistryError, type Aliases, type ModelRecord } from '../lib/registry';
import type {
  EvaluateResult,
  IngestResult,
  ProfileResult,
  PublishResult,
  RunPlan,
  TrainResult,
  AliasInput,
  AliasResult,
} from '../workflows/types';
import type { ActivityDeps } from './context';
import { registryFor, kindOfFamily } from './evaluate';
import { switchCurrent, writeVersion, manifestPrivacy, type ManifestPrivacy } from './publish';
import type { RecforgeConfig } from '../lib/config';

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
  if (err instanceof RegistryError) {
    throw ApplicationFailure.nonRetryable(
      err.message,
      err.code === 'Locked' ? 'RegistryLocked' : `Registry${err.code}`,
    );
  }
  throw err;
}

function learnedDirs(trained: TrainResult, name: string): { eval: string; full: string } | undefined {
  const e = trained.models.find((m) => m.name === name)?.modelDir;
  const f = trained.models.find((m) => m.name === `${name}-full`)?.modelDir;
  return e && f ? { eval: e, full: f } : undefined;
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
  const registry = registryFor(plan);
  const name = evaluation.chosenModel;
  const file = (n: string) => trained.models.find((m) => m.name === n)!.path;
  try {
    return registry.register(
      {
        version: plan.modelVersion,
        datasetId: plan.datasetId,
        model: name,
        status: evaluation.gate.decision === 'promote' ? 'candidate' : 'rejected',
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
        publishedVersionDir: null,
        runDbPath: plan.dbPath,
      },
      {
        eval: file(name),
        full: file(`${name}-full`),
        mostPopEval: file('mostpop'),
        mostPopFull: file('mostpop-full'),
      },
      learnedDirs(trained, name),
    );
  } catch (err) {
    asFailure(err);
  }
}

/**
 * After publishing: the challenger becomes champion and the old champion `previous`, as a compare-and-swap
 * against the champion the challenger was evaluated against. Idempotent on retry.
 */
export async function promoteCandidate(
  plan: RunPlan,
  evaluation: EvaluateResult,
  published: PublishResult,
): Promise<Aliases> {
  const registry = registryFor(plan);
  const outputRoot = path.dirname(published.currentPath);
  try {
    let previous: string | null = null;
    // Alias and output pointer move together under the registry lock, as a compare-and-swap against the
    // champion this challenger was evaluated against: a concurrent promote/rollback makes this run fail
    // (RegistryConflict) with nothing switched, instead of leaving `current` and `champion` apart.
    const aliases = await registry.updateAliases(
      (now) => {
        if (now.champion === plan.modelVersion) {
          switchCurrent(outputRoot, plan.modelVersion); // Retry after a successful move: idempotent.
          return null;
        }
        if (now.champion !== evaluation.championVersion) {
          throw new RegistryError(
            `champion changed while this run was evaluated (expected ${evaluation.championVersion ?? 'none'}, found ${now.champion ?? 'none'})`,
            'Conflict',
          );
        }
        previous = now.champion;
        switchCurrent(outputRoot, plan.modelVersion);
        return { champion: plan.modelVersion, previous: now.champion };
      },
      `promoted by run ${plan.runId}: all ${evaluation.gate.checks.length} gate checks passed`,
      plan.workflowId,
    );
    registry.update(plan.modelVersion, { status: 'champion', publishedVersionDir: published.versionDir });
    if (previous && registry.get(previous)) registry.update(previous, { status: 'retired' });
    return aliases;
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
    const registry = new Registry(path.join(dataPath(config, config.registry.dir), datasetId));
    const outputRoot = path.join(dataPath(config, config.publish.outputDir), datasetId);
    return { config, datasetId, registry, outputRoot };
  } catch (err) {
    if (err instanceof ConfigError) throw ApplicationFailure.nonRetryable(err.message, 'ConfigError');
    throw err;
  }
}

/**
 * Points the published output at a version: its kept folder if still there, otherwise its recommendations
 * are rebuilt from the registry artifacts and the run's database (no retraining), then switched in.
 */
async function repoint(
  outputRoot: string,
  registry: Registry,
  record: ModelRecord,
  config: RecforgeConfig,
): Promise<string> {
  const kept =
    record.publishedVersionDir && fs.existsSync(path.join(record.publishedVersionDir, '_manifest.json'));
  if (!kept) {
    if (!fs.existsSync(record.runDbPath)) {
      throw ApplicationFailure.nonRetryable(
        `cannot republish ${record.version}: its output was pruned and its run database ${record.runDbPath} is gone`,
        'VersionNotPublished',
      );
    }
    const { dir } = await writeVersion({
      root: outputRoot,
      dbPath: record.runDbPath,
      limits: { memoryLimit: config.duckdb.memoryLimit, threads: config.duckdb.threads },
      datasetId: record.datasetId,
      version: record.version,
      runId: record.runId,
      workflowId: record.workflowId,
      model: record.model,
      kind: kindOfFamily(record.model),
      modelFile: registry.artifactPath(record, 'full'),
      mostPopFile: registry.artifactPath(record, 'mostPopFull'),
      topN: config.publish.topN,
      maxHistory: config.training.itemItem.maxHistoryPerUser,
      generatedAt: record.createdAt,
      metrics: record.metrics[record.model] ?? {},
      privacy: record.privacy as ManifestPrivacy | null,
    });
    registry.update(record.version, { publishedVersionDir: dir });
  }
  return switchCurrent(outputRoot, record.version);
}

/**
 * `promoteModel`: makes a registered version champion (the old champion becomes `previous`) and points the
 * published output at its recommendations, without retraining. Rejected versions need `force`.
 */
export async function setChampion(deps: ActivityDeps, input: AliasInput, by: string): Promise<AliasResult> {
  const { registry, outputRoot, config } = loadForAlias(deps, input);
  if (!input.version) throw ApplicationFailure.nonRetryable('promoteModel needs a version', 'BadInput');
  try {
    const record = registry.require(input.version);
    if (record.status === 'rejected' && !input.force) {
      throw ApplicationFailure.nonRetryable(
        `${record.version} was rejected by its gates; pass "force": true to promote it anyway`,
        'VersionRejected',
      );
    }
    // Output pointer and aliases move together under the registry lock, so concurrent promotions cannot
    // leave `current` pointing at one version and `champion` at another.
    let before: Aliases | undefined;
    let currentPath = '';
    const aliases = await registry.updateAliases(
      async (now) => {
        before = now;
        currentPath = await repoint(outputRoot, registry, record, config);
        return now.champion === record.version ? null : { champion: record.version, previous: now.champion };
      },
      input.reason ?? 'manual promotion',
      by,
    );
    registry.update(record.version, { status: 'champion' });
    if (before?.champion && before.champion !== record.version && registry.get(before.champion)) {
      registry.update(before.champion, { status: 'retired' });
    }
    return { champion: aliases.champion, previous: aliases.previous, currentPath };
  } catch (err) {
    asFailure(err);
  }
}

/** `rollbackModel`: `previous` becomes champion again (and the rolled-back one `previous`); output re-pointed. */
export async function rollbackChampion(
  deps: ActivityDeps,
  input: AliasInput,
  by: string,
): Promise<AliasResult> {
  const { registry, outputRoot, config } = loadForAlias(deps, input);
  try {
    let before: Aliases | undefined;
    let currentPath = '';
    const aliases = await registry.updateAliases(
      async (now) => {
        before = now;
        // A retry of a rollback whose first attempt completed (its result was lost) must not swap back.
        const last = now.history.at(-1);
        if (last && last.by === by && last.reason === (input.reason ?? 'rollback') && now.champion) {
          currentPath = await repoint(outputRoot, registry, registry.require(now.champion), config);
          return null;
        }
        if (!now.previous) {
          throw new RegistryError(`${registry.dir} has no previous champion to roll back to`, 'NotFound');
        }
        currentPath = await repoint(outputRoot, registry, registry.require(now.previous), config);
        return { champion: now.previous, previous: now.champion };
      },
      input.reason ?? 'rollback',
      by,
    );
    const target = registry.require(aliases.champion!);
    registry.update(target.version, { status: 'champion' });
    if (before?.champion && registry.get(before.champion))
      registry.update(before.champion, { status: 'retired' });
    return { champion: aliases.champion, previous: aliases.previous, currentPath };
  } catch (err) {
    asFailure(err);
  }
}
