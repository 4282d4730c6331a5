import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { lit, type Db } from '../../lib/duckdb';
import { readJsonIfExists, writeJsonAtomic } from '../../lib/fs-atomic';
import type { ModelRecord } from '../../contracts/registry';
import type { TrainContext } from '../support/train-context';
import {
  loadMFModel,
  mixSeed,
  Rng,
  saveMFModel,
  selectBackend,
  trainMFDp,
  type DpNoise,
  type MFModel,
} from '../../models';
import { createSecureRng, secureDpSgdRandomness } from '../../privacy';
import { finishLearned, runWithCheckpoints, type LearnedResult, type VariantRun } from './checkpoints';
import { log } from '../support/context';
import { assertDpSgdWithinReservation, reservedDpSgd, type DpSgdPlan } from '../../privacy/run-plan';
import { fit, mfConfig, readInteractions, type Data } from './mf';
import type { ReleasedKeys } from './dp';

/**
 * The learned challenger `mf` with privacy on: BPR-MF trained with user-level DP-SGD (models/mf-dp.ts).
 *
 * - Reads only the contribution-bounded tables (train_bounded, all_bounded), like the DP count releases.
 * - Trains with the σ, q, steps and C the run RESERVED (plan.privacy), after re-checking that they compose with
 *   the count releases within the reservation; never with values recomputed from a possibly different config.
 * - No validation split and no early stopping: picking an epoch by a metric on private data is a release the
 *   accountant does not cover. Both variants run their full, fixed step counts (eval, then full fine-tuned
 *   from it), and both are in the accounting.
 * - The item table holds the run's released item ids only (public catalogue or DP partition selection), and every
 *   row starts from a vector seeded by its entity's id (never its dense index, which depends on other users); no
 *   warm start. The trained model is then laid out on the run's dense ids for scoring, with unreleased rows that
 *   never rank, and the candidate lists are filtered to released ids.
 * - Retry safety: a finished variant is saved with a marker (`dp-sgd-release-<variant>.json`, the same pattern
 *   as train-dp.ts) before its checkpoint is removed, so a retried activity reuses it instead of drawing new
 *   noise; an interrupted variant resumes from its checkpoint and runs only the remaining steps.
 */

interface ReleasedVariant {
  /** Storage key of the released model (inside the run's folder). */
  modelDir: string;
  steps: number;
  epochsRun: number;
  examplesPerSec: number;
}

async function trainVariant(
  plan: TrainContext,
  name: string,
  data: Data,
  dp: DpSgdPlan,
  epochs: number,
  steps: number,
  noise: DpNoise,
  warm: MFModel | undefined,
): Promise<VariantRun<MFModel>> {
  const dir = path.join(plan.runDir, 'models');
  const marker = path.join(dir, `dp-sgd-release-${name}.json`);
  // The release lives in the run's storage: a retry on another worker finds it there, never draws noise again.
  await plan.recall([plan.key(marker)]);
  const released = readJsonIfExists<ReleasedVariant>(marker);
  if (released && (await plan.io.store.exists(`${released.modelDir}/model.json`))) {
    log('dp-sgd: reusing the released model of an earlier attempt', { variant: name, steps: released.steps });
    return {
      model: (await loadMFModel(await plan.localDir(released.modelDir))).model,
      resumedFrom: released.steps,
      examplesPerSec: released.examplesPerSec,
      epochsRun: released.epochsRun,
    };
  }
  const modelDir = path.join(dir, `${name}.dp-release.model`);
  const m = plan.config.training.mf;
  const cfg = {
    ...mfConfig(plan, epochs),
    lr: plan.config.privacy.dpSgd.lr,
    negativeSampling: 'uniform' as const,
  };
  // The loop counts one "example" per step; report examples as steps/s times the expected examples per step.
  const perStep = dp.samplingRate * data.userIdx.length;
  let examplesPerSec = 0;
  const run = await runWithCheckpoints<MFModel>(plan, name, async (hooks, resumeFrom) => {
    const res = await trainMFDp(
      {
        userIdx: data.userIdx,
        itemIdx: data.itemIdx,
        weight: data.weight,
        numUsers: data.numUsers,
        numItems: data.numItems,
      },
      cfg,
      { clipNorm: dp.clipNorm, noiseMultiplier: dp.noiseMultiplier, samplingRate: dp.samplingRate, epochs },
      noise,
      {
        ...hooks,
        onProgress: (p) => {
          examplesPerSec = p.examplesPerSec * perStep;
          return hooks.onProgress?.(p);
        },
      },
      resumeFrom ? { resumeFrom } : warm ? { initialWeights: fit(warm, data, m.seed) } : {},
    );
    if (res.globalStep !== steps) {
      throw new Error(
        `dp-sgd ran ${res.globalStep} steps for ${name}, the reservation accounts for ${steps}`,
      );
    }
    // Released (model + marker) before runWithCheckpoints removes the checkpoint: whenever an attempt dies, the
    // next finds the marker or the checkpoint, never neither.
    await saveMFModel(modelDir, res.model, { runId: plan.runId, variant: name, dpSgd: { ...dp } });
    writeJsonAtomic(marker, {
      modelDir: plan.key(modelDir),
      steps,
      epochsRun: res.epochsRun,
      examplesPerSec,
    } satisfies ReleasedVariant);
    await plan.persist([`${plan.key(modelDir)}/`, plan.key(marker)]);
    return res;
  });
  return { ...run, examplesPerSec };
}

/** N(0, std²) values from a seed (Box-Muller over the models' xoshiro generator): an entity's own initial row. */
function normalRow(dim: number, std: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  const out = new Float32Array(dim);
  for (let k = 0; k < dim; k += 2) {
    const u1 = Math.max(rng.nextFloat(), 1e-12);
    const r = std * Math.sqrt(-2 * Math.log(u1));
    const t = 2 * Math.PI * rng.nextFloat();
    out[k] = r * Math.cos(t);
    if (k + 1 < dim) out[k + 1] = r * Math.sin(t);
  }
  return out;
}

/** A seed from an id's own bytes: an entity's initial row depends on nothing but its id and the config seed. */
const idSeed = (seed: number, tag: number, id: string) =>
  mixSeed(seed, tag, createHash('sha256').update(id).digest().readUInt32LE(0));

/**
 * The data DP-SGD trains on: the bounded (user, item) pairs restricted to the run's released item ids
 * (models/dp-keys.csv: the public catalogue, or the DP partition selection), items re-indexed 0…K-1 in id order.
 * The item table's size and rows are thereby public or DP — an item only the data knows never gets a row, and
 * uniform negatives are drawn over released items only.
 */
async function releasedData(
  db: Db,
  source: string,
  keysCsv: string,
  eventWeights: boolean,
): Promise<{ data: Data; itemIds: string[]; userIds: string[] }> {
  const sizes = await db.one<{ users: number }>(`SELECT max(idx) + 1 AS users FROM user_ids`);
  const itemIds = (
    await db.all<{ item_id: string }>(
      `SELECT item_id FROM read_csv(${lit(keysCsv)}, header = true, columns = {'item_id': 'VARCHAR'}) ORDER BY item_id`,
    )
  ).map((r) => r.item_id);
  const rows = await db.all<{ u: number; i: number; w: number; t: number; t0: number }>(`
    WITH k AS (SELECT item_id, CAST(row_number() OVER (ORDER BY item_id) - 1 AS INTEGER) AS pos
               FROM read_csv(${lit(keysCsv)}, header = true, columns = {'item_id': 'VARCHAR'}))
    SELECT u.idx AS u, k.pos AS i, max(${eventWeights ? 'e.weight' : '1'}) AS w,
           epoch(max(e.ts)) AS t, epoch(min(e.ts)) AS t0
    FROM ${source} e JOIN user_ids u ON u.id = e.user_id JOIN k ON k.item_id = e.item_id
    GROUP BY ALL ORDER BY u, i`);
  const users = await db.all<{ idx: number; id: string }>(`SELECT idx, id FROM user_ids ORDER BY idx`);
  const userIds = new Array<string>(sizes.users).fill('');
  for (const r of users) userIds[r.idx] = r.id;
  return {
    data: {
      userIdx: Int32Array.from(rows, (r) => r.u),
      itemIdx: Int32Array.from(rows, (r) => r.i),
      weight: Float32Array.from(rows, (r) => r.w),
      timestamps: Float64Array.from(rows, (r) => r.t),
      firstTimestamps: Float64Array.from(rows, (r) => r.t0),
      numUsers: sizes.users,
      numItems: itemIds.length,
      // Categories play no part in DP-SGD (no warm start grows tables here).
      itemCategory: new Int32Array(itemIds.length),
    },
    itemIds,
    userIds,
  };
}

/**
 * A fresh model whose rows are seeded by their entity's id: user v's and item i's initial vectors depend on v's or
 * i's id alone, not on their dense index (which counts everyone sorted before them). DP-SGD's analysis needs a
 * data-independent start for the released item table; the user rows stay each user's own.
 */
function idSeededModel(userIds: string[], itemIds: string[], dim: number, seed: number): MFModel {
  const std = 0.1;
  const userFactors = new Float32Array(userIds.length * dim);
  userIds.forEach((id, u) => userFactors.set(normalRow(dim, std, idSeed(seed, 1, id)), u * dim));
  const itemFactors = new Float32Array(itemIds.length * dim);
  itemIds.forEach((id, i) => itemFactors.set(normalRow(dim, std, idSeed(seed, 2, id)), i * dim));
  return {
    kind: 'mf',
    numUsers: userIds.length,
    numItems: itemIds.length,
    dim,
    userFactors,
    itemFactors,
    itemBias: new Float32Array(itemIds.length),
  };
}

/** Bias of item rows outside the released ids once the model is laid out on the run's dense ids: never ranked. */
const NOT_RELEASED_BIAS = -1e9;

/**
 * The trained model (released items only) laid out on the run's dense item ids, which scoring and the registry
 * use: released items get their trained rows, every other row zero factors and a bias that never ranks. Post-
 * processing of the DP item table; the recommendation files are then also filtered to released ids.
 */
async function onDenseItems(db: Db, model: MFModel, itemIds: string[]): Promise<MFModel> {
  const dense = await db.all<{ idx: number; id: string }>(`SELECT idx, id FROM item_ids`);
  const n = dense.reduce((m, r) => Math.max(m, r.idx + 1), 0);
  const pos = new Map(itemIds.map((id, i) => [id, i]));
  const itemFactors = new Float32Array(n * model.dim);
  const itemBias = new Float32Array(n).fill(NOT_RELEASED_BIAS);
  for (const r of dense) {
    const p = pos.get(r.id);
    if (p === undefined) continue;
    itemFactors.set(model.itemFactors.subarray(p * model.dim, (p + 1) * model.dim), r.idx * model.dim);
    itemBias[r.idx] = model.itemBias ? model.itemBias[p] : 0;
  }
  return { ...model, numItems: n, itemFactors, itemBias };
}

export async function trainLearnedDp(
  plan: TrainContext,
  champion: ModelRecord | null,
): Promise<LearnedResult> {
  if (!plan.privacy) throw new Error('DP-SGD training needs the run privacy reservation (plan.privacy)');
  const dp = reservedDpSgd(plan.privacy.spend);
  const epsilon = assertDpSgdWithinReservation(plan.config, plan.privacy.spend, dp);
  log('dp-sgd', { ...dp, runEpsilon: epsilon, reserved: plan.privacy.spend.epsilon });
  const selection = await selectBackend(plan.config.training.backend);
  const dir = path.join(plan.runDir, 'models');
  fs.mkdirSync(dir, { recursive: true });
  const keys = readJsonIfExists<ReleasedKeys>(path.join(dir, 'dp-keys.json'));
  if (!keys || !fs.existsSync(keys.keysCsv)) {
    throw new Error('DP-SGD needs the run’s released item ids (models/dp-keys.json from trainBaselines)');
  }
  const mf = plan.config.training.mf;
  const loaded = await plan.withViews('train', async (db) => ({
    train: await releasedData(db, 'train_bounded', keys.keysCsv, mf.eventWeights),
    all: await releasedData(db, 'all_bounded', keys.keysCsv, mf.eventWeights),
    // Seen-item exclusion and scoring run on the dense ids (each user's own history, all of it).
    trainDense: await readInteractions(db, 'train_bounded', 0, mf.eventWeights),
    allDense: await readInteractions(db, 'all_bounded', 0, mf.eventWeights),
  }));
  // Re-scoring the champion only feeds the evaluation report (like the other models' metrics), not a release.
  const championEval =
    champion?.model === 'mf' && champion.modelDirs
      ? (await loadMFModel(await plan.localDir(champion.modelDirs.eval))).model
      : undefined;
  // Fresh secure randomness per attempt: the sample of users and the noise must be unpredictable. No warm start
  // from the champion: its item table is laid out on its own released ids, and every run starts from rows seeded
  // by their ids (data-independent).
  const noise = secureDpSgdRandomness(createSecureRng(), dp.samplingRate);
  const init = idSeededModel(loaded.train.userIds, loaded.train.itemIds, mf.dim, mf.seed);
  const evalRun = await trainVariant(plan, 'mf', loaded.train.data, dp, dp.epochs, dp.stepsEval, noise, init);
  const fullRun =
    dp.fullEpochs > 0
      ? await trainVariant(
          plan,
          'mf-full',
          loaded.all.data,
          dp,
          dp.fullEpochs,
          dp.stepsFull,
          noise,
          evalRun.model,
        )
      : { ...evalRun, resumedFrom: null };
  const itemIdsFile = await plan.local(plan.clean.itemIds.key);
  const [evalDense, fullDense] = await plan.io.withDb('train-dense', async (db) => {
    await db.run(`CREATE TABLE item_ids AS SELECT * FROM read_parquet(${lit(itemIdsFile)})`);
    return [
      await onDenseItems(db, evalRun.model, loaded.train.itemIds),
      await onDenseItems(db, fullRun.model, loaded.all.itemIds),
    ];
  });
  const result = await finishLearned<MFModel, Data>(plan, {
    family: 'mf',
    backend: selection,
    eval: { run: { ...evalRun, model: evalDense }, data: loaded.trainDense },
    full: { run: { ...fullRun, model: fullDense }, data: loaded.allDense },
    championEval: championEval ? fit(championEval, loaded.trainDense, mf.seed) : null,
    save: saveMFModel,
    factors: (model) => model,
  });
  // Only released item ids may reach a list: drop any other row (they rank last already; this makes it certain).
  await plan.io.withDb('train-released', async (db) => {
    for (const m of result.models) {
      const file = plan.io.local(m.key);
      const tmp = `${file}.released.tmp`;
      await db.run(`COPY (
          SELECT r.* FROM read_parquet(${lit(file)}) r
          SEMI JOIN read_csv(${lit(keys.keysCsv)}, header = true, columns = {'item_id': 'VARCHAR'}) k ON k.item_id = r.item_id
          ORDER BY r.user_id, r.score DESC
        ) TO ${lit(tmp)} (FORMAT parquet, COMPRESSION zstd)`);
      fs.renameSync(tmp, file);
      m.rows = await db.scalar<number>(`SELECT count(*) FROM read_parquet(${lit(file)})`);
    }
  });
  await plan.persist(result.models.map((m) => m.key));
  return result;
}
