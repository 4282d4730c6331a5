import * as fs from 'node:fs';
import * as path from 'node:path';
import { readTypedColumns } from '../../lib/typed-columns';
import { Db } from '../../lib/duckdb';
import {
  selectBackend,
  trainMF,
  trainBPR,
  type BPRConfig,
  growEmbeddings,
  saveMFModel,
  loadMFModel,
  rankingMetricAtK,
  buildUserItemsCSR,
  type HeldOut,
  type MFModel,
  type MFConfig,
} from '../../models';
import type { ModelRecord } from '../../contracts/registry';
import type { TrainContext } from '../support/train-context';
import { log } from '../support/context';
import {
  finishLearned,
  runWithCheckpoints,
  validationSplitFor,
  type LearnedResult,
  type VariantRun,
} from './checkpoints';

/**
 * The learned challenger: BPR matrix factorisation in TensorFlow.js, on the training task queue.
 *
 * - Indices are the stable dense ids from cleaning (user_ids / item_ids), so a champion's rows line up with
 *   this run's and new users/items are appended rows (warm start grows the tables; growEmbeddings documents
 *   the init: N(0, 0.01) for users, the category/global mean plus noise for items).
 * - `eval` variant: trained on the training split, early-stopped on `validationMetric` over a validation split
 *   shaped like the evaluation holdout (validationSplitFor), warm-started from the champion's eval model. `full` variant: the eval model fine-tuned on all clean
 *   events for `fullEpochs`, warm-started from it; this is what gets published.
 * - Checkpoints every `checkpointEvery` steps under the run folder; a retried activity (worker crash)
 *   resumes from the last checkpoint and reports it.
 * - Scores all users in blocks (seen items excluded) into a `recs` Parquet the ranking SQL consumes.
 */

export interface Data {
  userIdx: Int32Array;
  itemIdx: Int32Array;
  weight: Float32Array;
  /** Latest event time of each (user, item), epoch seconds (for the validation split). */
  timestamps: Float64Array;
  firstTimestamps: Float64Array;
  numUsers: number;
  numItems: number;
  itemCategory: Int32Array;
}

export async function readInteractions(
  db: Db,
  source: string,
  halfLifeDays: number,
  eventWeights: boolean,
): Promise<Data> {
  const sizes = await db.one<{ users: number; items: number }>(
    `SELECT (SELECT max(idx) + 1 FROM user_ids) AS users, (SELECT max(idx) + 1 FROM item_ids) AS items`,
  );
  // Exponential recency decay relative to the newest event of the source.
  const recency =
    halfLifeDays > 0
      ? `pow(0.5, epoch(( SELECT max(ts) FROM ${source}) - e.ts) / ${halfLifeDays * 86400})`
      : '1';
  const { columns: c } = await readTypedColumns(
    db,
    `
    SELECT u.idx AS u, i.idx AS i, max(${eventWeights ? 'e.weight' : '1'} * ${recency}) AS w,
           epoch(max(e.ts)) AS t, epoch(min(e.ts)) AS t0
    FROM ${source} e JOIN user_ids u ON u.id = e.user_id JOIN item_ids i ON i.id = e.item_id
    GROUP BY ALL ORDER BY u, i`,
    { u: 'i32', i: 'i32', w: 'f32', t: 'f64', t0: 'f64' },
  );
  const cats = await db.all<{ idx: number; c: number }>(`
    SELECT i.idx, dense_rank() OVER (ORDER BY coalesce(r.category, '')) - 1 AS c
    FROM item_ids i LEFT JOIN (SELECT item_id, any_value(category) AS category FROM raw_items GROUP BY item_id) r ON r.item_id = i.id`);
  const itemCategory = new Int32Array(sizes.items);
  for (const r of cats) itemCategory[r.idx] = r.c;
  return {
    userIdx: c.u,
    itemIdx: c.i,
    weight: c.w,
    timestamps: c.t,
    firstTimestamps: c.t0,
    numUsers: sizes.users,
    numItems: sizes.items,
    itemCategory,
  };
}

export function mfConfig(plan: TrainContext, epochs: number): Partial<MFConfig> {
  const m = plan.config.training.mf;
  return {
    dim: m.dim,
    epochs,
    batchSize: m.batchSize,
    lr: m.lr,
    l2: m.l2,
    negatives: m.negatives,
    negativeSampling: m.negativeSampling,
    patience: m.patience,
    seed: m.seed,
    checkpointEvery: m.checkpointEvery,
  };
}

/** The hogwild trainer's settings (models/bpr-fast.ts) from training.mf. */
export function bprConfig(plan: TrainContext, epochs: number): Partial<BPRConfig> {
  const m = plan.config.training.mf;
  return {
    factors: m.dim,
    epochs,
    lr: m.hogwild.lr,
    reg: m.hogwild.reg,
    threads: m.hogwild.threads,
    // Each positive counts once, with popularity negatives: the setting measured on MovieLens (bench quality-models).
    patience: m.patience,
    seed: m.seed,
  };
}

export function fit(model: MFModel, data: Data, seed: number): MFModel {
  if (model.numUsers === data.numUsers && model.numItems === data.numItems) return model;
  return growEmbeddings(model, data.numUsers, data.numItems, seed, { itemCategory: data.itemCategory });
}

/** Trains one variant with checkpoint/resume; returns the model and whether it resumed. */
async function trainVariant(
  plan: TrainContext,
  name: string,
  data: Data,
  epochs: number,
  warm: MFModel | undefined,
  validation: HeldOut | undefined,
): Promise<VariantRun<MFModel>> {
  const exclude = validation ? buildUserItemsCSR(data.userIdx, data.itemIdx, data.numUsers) : undefined;
  return runWithCheckpoints<MFModel>(
    plan,
    name,
    (hooks, resumeFrom) => {
      const interactions = {
        userIdx: data.userIdx,
        itemIdx: data.itemIdx,
        weight: data.weight,
        numUsers: data.numUsers,
        numItems: data.numItems,
      };
      const start = resumeFrom
        ? { resumeFrom }
        : warm
          ? { initialWeights: fit(warm, data, plan.config.training.mf.seed) }
          : {};
      return plan.config.training.mf.trainer === 'hogwild'
        ? trainBPR(interactions, bprConfig(plan, epochs), hooks, start)
        : trainMF(interactions, mfConfig(plan, epochs), hooks, start);
    },
    validation
      ? (m) =>
          rankingMetricAtK(
            plan.config.training.mf.validationMetric,
            m,
            validation,
            plan.config.evaluation.k,
            exclude,
          )
      : undefined,
  );
}

export async function trainLearned(plan: TrainContext, champion: ModelRecord | null): Promise<LearnedResult> {
  const selection = await selectBackend(plan.config.training.backend);
  log('tfjs backend', { backend: selection.name, device: selection.device });
  const dir = path.join(plan.runDir, 'models');
  fs.mkdirSync(dir, { recursive: true });
  const mf = plan.config.training.mf;
  // Read everything first and close the run database: training holds no DuckDB lock.
  const { trainData, allData } = await plan.withViews('train', async (db) => ({
    trainData: await readInteractions(db, 'train_events', mf.recencyHalfLifeDays, mf.eventWeights),
    allData: await readInteractions(db, 'events', mf.recencyHalfLifeDays, mf.eventWeights),
  }));
  const championModels =
    champion?.model === 'mf' && champion.modelDirs
      ? {
          eval: (await loadMFModel(await plan.localDir(champion.modelDirs.eval))).model,
          full: (await loadMFModel(await plan.localDir(champion.modelDirs.full))).model,
        }
      : undefined;

  const { train, heldOut } = validationSplitFor(plan, trainData, mf.validationUsers, mf.seed);
  const evalRun = await trainVariant(
    plan,
    'mf',
    train,
    mf.epochs,
    championModels?.eval,
    heldOut.userIdx.length > 0 ? heldOut : undefined,
  );
  const fullRun = await trainVariant(plan, 'mf-full', allData, mf.fullEpochs, evalRun.model, undefined);
  return finishLearned<MFModel, Data>(plan, {
    family: 'mf',
    backend: selection,
    eval: { run: evalRun, data: trainData },
    full: { run: fullRun, data: allData },
    championEval: championModels ? fit(championModels.eval, trainData, mf.seed) : null,
    save: saveMFModel,
    factors: (model) => model,
  });
}
