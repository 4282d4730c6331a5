import * as fs from 'node:fs';
import * as path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { loadRunConfig, dataPath, ConfigError, type RecforgeConfig } from '../lib/config';
import type { RetrainInput, RunPlan } from '../workflows/types';
import { resolveInputFiles } from './files';
import { acquireDatasetLock, releaseDatasetLock } from './lock';
import type { ActivityDeps } from './context';
import { ledger, reserveBudget } from './privacy';
import { planIncremental } from './incremental';
import { runDateOf } from '../lib/incremental';
import { log } from './context';

export interface PlanContext {
  workflowId: string;
  runId: string;
  /** Workflow start time (deterministic in the workflow) — names the model version. */
  startedAt: string;
}

function compactTime(iso: string): string {
  return iso.replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
}

/**
 * Resolves the run: config (defaults + overlay + overrides), input files, run folder, model version, and the
 * dataset lock. Input and config errors are non-retryable: retrying cannot fix them.
 */
/**
 * The run's config: the worker's own config (configs/default.yaml + RECFORGE_CONFIG + environment) with the
 * input's config file (under configs/) and overrides merged on top; a run layer that changes a protected key
 * (privacy, dataDir, …) is refused. Throws ConfigError.
 */
function runConfig(deps: ActivityDeps, input: RetrainInput): RecforgeConfig {
  return loadRunConfig({
    root: deps.root,
    config: input.config,
    overrides: input.overrides,
    allowProtected: deps.allowProtectedOverrides,
    env: deps.env,
  }).config;
}

/** Rows of a CSV items file (lines after the header): the public catalogue's size for the utility estimate. */
function catalogueSize(file: string | undefined): number | null {
  if (!file || !/\.csv$/i.test(file)) return null;
  try {
    const text = fs.readFileSync(file);
    let lines = 0;
    for (const b of text) if (b === 10) lines++;
    if (text.length > 0 && text[text.length - 1] !== 10) lines++;
    return Math.max(0, lines - 1);
  } catch {
    return null;
  }
}

/** Dataset ids name folders and lock files: letters, digits, dot, dash, underscore. */
const DATASET_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

export async function planRun(deps: ActivityDeps, input: RetrainInput, ctx: PlanContext): Promise<RunPlan> {
  let config: RecforgeConfig;
  try {
    config = runConfig(deps, input);
  } catch (err) {
    if (err instanceof ConfigError) throw ApplicationFailure.nonRetryable(err.message, 'ConfigError');
    throw err;
  }
  const datasetId = input.datasetId ?? config.dataset.id;
  if (!DATASET_ID.test(datasetId)) {
    throw ApplicationFailure.nonRetryable(
      `datasetId '${datasetId}': expected letters, digits, dot, dash or underscore`,
      'BadInput',
    );
  }
  let runDate: string;
  try {
    runDate = runDateOf(input.runDate, ctx.startedAt);
  } catch (err) {
    throw ApplicationFailure.nonRetryable((err as Error).message, 'BadInput');
  }
  const interactionsSpec = dataPath(config, input.interactions ?? config.dataset.interactions);
  const itemsSpec = input.items ?? config.dataset.items;

  // The bundled dataset is generated (deterministically) when the default input is missing or incomplete
  // (e.g. a crash during generation); its manifest records the options, so a config change regenerates it.
  let generatedData = false;
  const usingDefault = input.interactions === undefined;
  if (usingDefault && config.dataset.source === 'synthetic') {
    const { generateDataset, isGeneratedDatasetComplete } = await import('../lib/datagen');
    const g = config.dataset.generate;
    const out = path.dirname(interactionsSpec);
    const want = {
      users: g.users,
      items: g.items,
      events: g.events,
      seed: g.seed,
      dirtyRate: g.dirtyRate,
      botUsers: g.botUsers,
    };
    if (
      !fs.existsSync(interactionsSpec) ||
      (fs.existsSync(path.join(out, 'generation.json')) && !isGeneratedDatasetComplete(out, want))
    ) {
      log('generating the bundled synthetic dataset', { out });
      await generateDataset({ ...want, out });
      generatedData = true;
    }
  }

  let interactionFiles: string[];
  try {
    interactionFiles = await resolveInputFiles(interactionsSpec);
  } catch (err) {
    const hint =
      usingDefault && datasetId === 'movielens'
        ? ' (fetch it first: npm run datasets -- fetch movielens)'
        : '';
    throw ApplicationFailure.nonRetryable((err as Error).message + hint, 'BadInput');
  }
  let itemsFile: string | undefined;
  if (itemsSpec) {
    const p = dataPath(config, itemsSpec);
    if (fs.existsSync(p)) itemsFile = p;
    else if (input.items !== undefined)
      throw ApplicationFailure.nonRetryable(`items '${p}': no such file`, 'BadInput');
  }

  const runDir = path.join(config.dataDir, 'runs', datasetId, ctx.runId);
  fs.mkdirSync(runDir, { recursive: true });
  await acquireDatasetLock(
    config.dataDir,
    datasetId,
    { workflowId: ctx.workflowId, runId: ctx.runId, acquiredAt: ctx.startedAt },
    deps.client,
  );

  // Incremental selection reads the watermark under the lock (no other run of the dataset can commit
  // meanwhile); the privacy budget is checked before any data is read (ingest is the next stage).
  let privacy: RunPlan['privacy'] = null;
  let incremental: RunPlan['incremental'] = null;
  try {
    if (config.dataset.incremental.enabled) {
      const sel = await planIncremental(config, datasetId, ctx.runId, runDate, interactionFiles);
      interactionFiles = sel.files;
      incremental = sel.incremental;
    }
    // Charged to the worker's privacy unit (never the dataset label), binding the real paths it reads to it.
    privacy = config.privacy.enabled
      ? await reserveBudget(config, {
          runId: ctx.runId,
          label: datasetId,
          inputs: interactionFiles.map((f) => fs.realpathSync(f)),
          startedAt: ctx.startedAt,
          items: itemsFile ? 'public-catalogue' : 'dp-partition-selection',
          catalogueItems: catalogueSize(itemsFile),
        })
      : null;
    if (privacy)
      log('privacy plan', { unit: privacy.unit, spend: privacy.spend.epsilon, utility: privacy.utility });
  } catch (err) {
    // The workflow only releases the lock of a run that finished planning: give it back here.
    await releaseDatasetLock(config.dataDir, datasetId, { workflowId: ctx.workflowId, runId: ctx.runId });
    throw err;
  }

  const plan: RunPlan = {
    workflowId: ctx.workflowId,
    runId: ctx.runId,
    datasetId,
    runDir,
    dbPath: path.join(runDir, 'run.duckdb'),
    interactionFiles,
    itemsFile,
    // The run id's tail: UUIDv7 run ids share their (time-based) head.
    modelVersion: `${datasetId}-${compactTime(ctx.startedAt)}-${ctx.runId.replace(/-/g, '').slice(-8)}`,
    config,
    startedAt: ctx.startedAt,
    generatedData,
    privacy,
    incremental,
  };
  fs.writeFileSync(path.join(runDir, 'plan.json'), JSON.stringify(plan, null, 2));
  return plan;
}

export async function releaseLock(
  plan: Pick<RunPlan, 'config' | 'datasetId' | 'workflowId' | 'runId'>,
): Promise<boolean> {
  return releaseDatasetLock(plan.config.dataDir, plan.datasetId, plan);
}

/**
 * Undoes what a planRun cancelled mid-way may have done before the workflow stopped waiting for it: gives back
 * the run's privacy reservation and its dataset lock (both only if this run holds them). Idempotent.
 */
export async function abandonPlan(
  deps: ActivityDeps,
  input: RetrainInput,
  me: { workflowId: string; runId: string },
): Promise<void> {
  let config: RecforgeConfig;
  try {
    config = runConfig(deps, input);
  } catch {
    return; // planning could not have got past its config either: it reserved and locked nothing
  }
  const datasetId = input.datasetId ?? config.dataset.id;
  if (config.privacy.enabled) {
    const l = ledger(config);
    if ((await l.entries()).some((e) => e.runId === me.runId && e.status === 'reserved'))
      await l.release(me.runId);
  }
  if (DATASET_ID.test(datasetId)) await releaseDatasetLock(config.dataDir, datasetId, me);
}
