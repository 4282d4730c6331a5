import * as fs from 'node:fs';
import * as path from 'node:path';
import { readTypedColumns } from '../../lib/typed-columns';
import { type Db } from '../../lib/duckdb';
import {
  selectBackend,
  trainTwoTower,
  growTwoTower,
  twoTowerEmbeddings,
  buildUserHistory,
  hashTitleTokens,
  priceBuckets,
  saveTwoTowerModel,
  loadTwoTowerModel,
  buildUserItemsCSR,
  rankingMetricAtK,
  type HeldOut,
  type ItemFeatures,
  type TwoTowerModel,
  type TwoTowerConfig,
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
 * The two-tower challenger (models/two-tower.ts): user tower = id embedding + mean of the last
 * `historyLength` items; item tower = id embedding + category + price bucket + hashed title tokens, so items
 * without interactions still get a vector from their metadata. Trained with in-batch softmax; same variants,
 * warm start, checkpoints and scoring as the MF challenger (see train-mf.ts). The evaluated variant is
 * early-stopped on `validationMetric` over a validation split shaped like the evaluation holdout
 * (validationSplitFor); the best epoch's weights are kept.
 */
const PRICE_BUCKETS = 8;
const TOKEN_BUCKETS = 4096;
const MAX_TITLE_TOKENS = 8;

interface TTData {
  userIdx: Int32Array;
  itemIdx: Int32Array;
  weight: Float32Array;
  timestamps: Float64Array;
  firstTimestamps: Float64Array;
  numUsers: number;
  numItems: number;
}

async function readData(db: Db, source: string, eventWeights: boolean): Promise<TTData> {
  const sizes = await db.one<{ users: number; items: number }>(
    `SELECT (SELECT max(idx) + 1 FROM user_ids) AS users, (SELECT max(idx) + 1 FROM item_ids) AS items`,
  );
  const { columns: c } = await readTypedColumns(
    db,
    `
    SELECT u.idx AS u, i.idx AS i, ${eventWeights ? 'max(e.weight)' : '1'} AS w, epoch(max(e.ts)) AS t, epoch(min(e.ts)) AS t0
    FROM ${source} e JOIN user_ids u ON u.id = e.user_id JOIN item_ids i ON i.id = e.item_id
    GROUP BY ALL ORDER BY u, t, i`,
    { u: 'i32', i: 'i32', w: 'f32', t: 'f64', t0: 'f64' },
  );
  return {
    userIdx: c.u,
    itemIdx: c.i,
    weight: c.w,
    timestamps: c.t,
    firstTimestamps: c.t0,
    numUsers: sizes.users,
    numItems: sizes.items,
  };
}

/** Item metadata by dense item index; items absent from the items file get "unknown" features. */
async function readItemFeatures(db: Db, numItems: number): Promise<ItemFeatures> {
  const rows = await db.all<{ idx: number; c: number; price: number | null; title: string | null }>(`
    SELECT i.idx, dense_rank() OVER (ORDER BY coalesce(r.category, '')) - 1 AS c,
           TRY_CAST(r.price AS DOUBLE) AS price, r.title
    FROM item_ids i LEFT JOIN (
      SELECT trim(item_id) AS item_id, any_value(category) AS category, any_value(price) AS price, any_value(title) AS title
      FROM raw_items GROUP BY 1) r ON r.item_id = i.id`);
  const category = new Int32Array(numItems);
  const prices = new Float64Array(numItems);
  const titles: (string | null)[] = new Array(numItems).fill(null);
  let numCategories = 1;
  for (const r of rows) {
    category[r.idx] = r.c;
    numCategories = Math.max(numCategories, r.c + 1);
    prices[r.idx] = r.price ?? NaN;
    titles[r.idx] = r.title;
  }
  return {
    category,
    numCategories,
    priceBucket: priceBuckets(prices, PRICE_BUCKETS).bucket,
    numPriceBuckets: PRICE_BUCKETS,
    titleTokens: hashTitleTokens(titles, TOKEN_BUCKETS, MAX_TITLE_TOKENS),
    maxTitleTokens: MAX_TITLE_TOKENS,
    numTokenBuckets: TOKEN_BUCKETS,
  };
}

function ttConfig(plan: TrainContext, epochs: number): Partial<TwoTowerConfig> {
  const t = plan.config.training.twoTower;
  return {
    embDim: t.embDim,
    outDim: t.outDim,
    historyLength: t.historyLength,
    temperature: t.temperature,
    epochs,
    batchSize: t.batchSize,
    lr: t.lr,
    l2: t.l2,
    idDropout: t.idDropout,
    userDropout: t.userDropout,
    historyDecay: t.historyDecay,
    recentLength: t.recentLength,
    historyGapSeconds: t.historyGapHours * 3600,
    itemBias: t.itemBias,
    logQScale: t.logQScale,
    patience: t.patience,
    seed: t.seed,
    checkpointEvery: t.checkpointEvery,
  };
}

function fit(model: TwoTowerModel, data: TTData, seed: number): TwoTowerModel {
  const a = model.arch;
  return a.numUsers === data.numUsers && a.numItems === data.numItems
    ? model
    : growTwoTower(model, data.numUsers, data.numItems, seed);
}

async function trainVariant(
  plan: TrainContext,
  name: string,
  data: TTData,
  items: ItemFeatures,
  epochs: number,
  warm: TwoTowerModel | undefined,
  validation?: HeldOut,
): Promise<VariantRun<TwoTowerModel>> {
  const t = plan.config.training.twoTower;
  const exclude = validation ? buildUserItemsCSR(data.userIdx, data.itemIdx, data.numUsers) : undefined;
  return runWithCheckpoints<TwoTowerModel>(
    plan,
    name,
    (hooks, resumeFrom) =>
      trainTwoTower(
        { ...data, items },
        ttConfig(plan, epochs),
        hooks,
        resumeFrom ? { resumeFrom } : warm ? { initialWeights: fit(warm, data, t.seed) } : {},
      ),
    validation
      ? (model) =>
          rankingMetricAtK(
            t.validationMetric,
            embeddings(model, data, items),
            validation,
            plan.config.evaluation.k,
            exclude,
          )
      : undefined,
  );
}

function embeddings(model: TwoTowerModel, data: TTData, items: ItemFeatures) {
  const history = buildUserHistory(
    data.userIdx,
    data.itemIdx,
    data.numUsers,
    model.arch.historyLength,
    data.timestamps,
  );
  return twoTowerEmbeddings(model, history, items);
}

export async function trainTwoTowerChallenger(
  plan: TrainContext,
  champion: ModelRecord | null,
): Promise<LearnedResult> {
  const selection = await selectBackend(plan.config.training.backend);
  log('tfjs backend', { backend: selection.name, device: selection.device });
  const dir = path.join(plan.runDir, 'models');
  fs.mkdirSync(dir, { recursive: true });
  const { trainData, allData, items } = await plan.withViews('train', async (db) => {
    const weights = plan.config.training.twoTower.eventWeights;
    const trainData = await readData(db, 'train_events', weights);
    return {
      trainData,
      allData: await readData(db, 'events', weights),
      items: await readItemFeatures(db, trainData.numItems),
    };
  });
  const t = plan.config.training.twoTower;
  const championModels =
    champion?.model === 'two-tower' && champion.modelDirs
      ? {
          eval: (await loadTwoTowerModel(await plan.localDir(champion.modelDirs.eval))).model,
          full: (await loadTwoTowerModel(await plan.localDir(champion.modelDirs.full))).model,
        }
      : undefined;
  const { train, heldOut } = validationSplitFor(plan, trainData, t.validationUsers, t.seed);
  const evalRun = await trainVariant(
    plan,
    'two-tower',
    train,
    items,
    t.epochs,
    championModels?.eval,
    heldOut.userIdx.length > 0 ? heldOut : undefined,
  );
  const fullRun = await trainVariant(plan, 'two-tower-full', allData, items, t.fullEpochs, evalRun.model);
  return finishLearned<TwoTowerModel, TTData>(plan, {
    family: 'two-tower',
    backend: selection,
    eval: { run: evalRun, data: trainData },
    full: { run: fullRun, data: allData },
    championEval: championModels ? fit(championModels.eval, trainData, t.seed) : null,
    save: saveTwoTowerModel,
    factors: (model, data) => embeddings(model, data, items),
  });
}
