import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadRunConfig, dataPath, ConfigError, type RecforgeConfig } from '../lib/config';
import { RecforgeError, configError, badInput } from '../contracts/errors';
import type { RetrainInput, RunPlan, PreparedInput } from '../contracts/stages';
import type { RunRef } from '../contracts/run';
import { resolveInputFiles } from './support/files';
import type { ActivityDeps } from './support/context';
import { runDateOf } from '../analytics/incremental';
import { log } from './support/context';
import { openStorage } from '../lib/storage';

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
 * The run's config: the worker's own config (configs/default.yaml + RECFORGE_CONFIG + environment) with the
 * input's config file(s) (under configs/) and overrides merged on top; a run layer that changes a protected key
 * (privacy, dataDir, storage, …) is refused. Throws ConfigError.
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

/** Dataset ids name folders and state documents: letters, digits, dot, dash, underscore. */
export const DATASET_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

/**
 * Folders a run may read its input from: the data folder, the project, the OS temp folder and
 * `dataset.inputRoots` (a protected key). A workflow input naming anything else (`{"items": "/etc/passwd"}`) is
 * refused before it is opened, and symlinks are resolved first so a link cannot lead out.
 */
export function inputRoots(config: RecforgeConfig, root: string): string[] {
  return [
    config.dataDir,
    root,
    os.tmpdir(),
    ...config.dataset.inputRoots.map((r) => path.resolve(root, r)),
  ].map((r) => {
    try {
      return fs.realpathSync(r);
    } catch {
      return path.resolve(r);
    }
  });
}

export function checkInputLocation(file: string, roots: readonly string[], what: string): void {
  let real: string;
  try {
    real = fs.realpathSync(file);
  } catch {
    real = path.resolve(file);
  }
  if (roots.some((r) => real === r || real.startsWith(r + path.sep))) return;
  throw badInput(
    `${what} '${String(file).slice(0, 200)}' is outside the folders runs may read (${roots.join(', ')}); ` +
      'add its folder to dataset.inputRoots in the workers’ config',
  );
}

/**
 * Resolves the run without side effects: config (worker config + the input's layers), dataset id, run date,
 * where its artifacts go (storage root, run folder key), the model version, and what input it reads — the
 * bundled dataset to generate when the default input is used, or the given files. Config and input errors are
 * non-retryable: retrying cannot fix them.
 */
export async function planRun(deps: ActivityDeps, input: RetrainInput, ctx: PlanContext): Promise<RunPlan> {
  let config: RecforgeConfig;
  try {
    config = runConfig(deps, input);
  } catch (err) {
    if (err instanceof ConfigError) throw configError(err.message);
    throw err;
  }
  const datasetId = input.datasetId ?? config.dataset.id;
  if (!DATASET_ID.test(datasetId))
    throw badInput(
      `datasetId '${String(datasetId).slice(0, 100)}': expected letters, digits, dot, dash or underscore`,
    );
  let runDate: string;
  try {
    runDate = runDateOf(input.runDate, ctx.startedAt);
  } catch (err) {
    throw badInput((err as Error).message);
  }
  const run: RunRef = {
    runId: ctx.runId,
    workflowId: ctx.workflowId,
    datasetId,
    storage: config.storage.root || config.dataDir,
    runKey: `runs/${datasetId}/${ctx.runId}`,
    startedAt: ctx.startedAt,
    // The run id's tail: UUIDv7 run ids share their (time-based) head.
    modelVersion: `${datasetId}-${compactTime(ctx.startedAt)}-${ctx.runId.replace(/-/g, '').slice(-8)}`,
    duckdb: { memoryLimit: config.duckdb.memoryLimit, threads: config.duckdb.threads },
  };
  const interactions = dataPath(config, input.interactions ?? config.dataset.interactions);
  const itemsSpec = input.items ?? config.dataset.items;
  const items = itemsSpec ? dataPath(config, itemsSpec) : null;
  const roots = inputRoots(config, deps.root);
  checkInputLocation(interactions, roots, 'input');
  if (items) checkInputLocation(items, roots, 'items');
  const usingDefault = input.interactions === undefined;
  const g = config.dataset.generate;
  return {
    run,
    config,
    runDate,
    interactions,
    items,
    itemsRequired: input.items !== undefined,
    generate:
      usingDefault && config.dataset.source === 'synthetic'
        ? {
            out: path.dirname(interactions),
            users: g.users,
            items: g.items,
            events: g.events,
            seed: g.seed,
            dirtyRate: g.dirtyRate,
            botUsers: g.botUsers,
          }
        : null,
  };
}

/**
 * The input the run reads: the bundled dataset verified (options and checksums) or generated exclusively
 * when the plan asks for it, then the interactions file/folder/glob resolved to files and the items file
 * checked. Idempotent.
 */
export async function prepareInput(deps: ActivityDeps, plan: RunPlan): Promise<PreparedInput> {
  let generatedData = false;
  if (plan.generate) {
    const { ensureGeneratedDataset } = await import('../datasets/synthetic');
    generatedData = (await ensureGeneratedDataset(plan.generate)).generated;
    if (generatedData) log('generated the bundled synthetic dataset', { out: plan.generate.out });
  }
  let interactionFiles: string[];
  try {
    interactionFiles = await resolveInputFiles(plan.interactions);
  } catch (err) {
    const hint =
      !plan.generate && plan.run.datasetId === 'movielens'
        ? ' (fetch it first: npm run datasets -- fetch movielens)'
        : '';
    throw badInput((err as Error).message + hint);
  }
  const roots = inputRoots(plan.config, deps.root);
  for (const f of interactionFiles) checkInputLocation(f, roots, 'input');
  let itemsFile: string | null = null;
  if (plan.items) {
    if (fs.existsSync(plan.items)) itemsFile = plan.items;
    else if (plan.itemsRequired) throw badInput(`items '${plan.items}': no such file`);
  }
  // The plan beside the run's artifacts: what the run report and `recforge report` read back later.
  await openStorage(plan.run.storage).put(
    `${plan.run.runKey}/plan.json`,
    JSON.stringify(plan, null, 2) + '\n',
  );
  return { interactionFiles, itemsFile, generatedData };
}

export { RecforgeError };
