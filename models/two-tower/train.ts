/**
 * trainTwoTower: validates the data, fixes the architecture from data and config, picks the starting weights
 * (fresh or warm-started) and runs the generic training loop (trainer.ts) over InBatchSoftmaxStep with lazy Adam.
 */
import { Adam } from '../adam';
import { ensureBackend } from '../backend';
import { ParamStore, Weights } from '../params';
import { runTraining, TrainHooks, TrainingState, TrainResult } from '../trainer';
import {
  DEFAULT_TWO_TOWER_CONFIG,
  initTwoTower,
  TwoTowerArch,
  TwoTowerConfig,
  TwoTowerData,
  TwoTowerModel,
  twoTowerParamDefs,
} from './config';
import { validateFeatures } from './features';
import { adoptInitialWeights } from './grow';
import { InBatchSoftmaxStep, StepGradients } from './train-step';

export interface TrainTwoTowerOptions {
  resumeFrom?: TrainingState;
  /** Warm start (shapes must match the data); optimizer starts fresh. */
  initialWeights?: TwoTowerModel;
  /**
   * 'fused' (default): hand-derived gradients in a few ops (fused.ts); 'autograd': tfjs autograd, the reference,
   * which reproduces runs from before the fused step bit for bit. Same maths, so not part of the run identity: a
   * checkpoint resumes under either.
   */
  gradients?: StepGradients;
}

/** The config a checkpoint must match to be resumed: everything but reporting cadence. */
function runIdentity(cfg: TwoTowerConfig): Record<string, unknown> {
  const { progressIntervalMs: _p, checkpointEvery: _c, ...rest } = cfg;
  return rest;
}

function validateInteractions(data: TwoTowerData): void {
  const n = data.userIdx.length;
  if (data.itemIdx.length !== n || (data.weight && data.weight.length !== n)) {
    throw new Error('userIdx, itemIdx and weight must have the same length');
  }
  for (let k = 0; k < n; k++) {
    if (
      data.userIdx[k] < 0 ||
      data.userIdx[k] >= data.numUsers ||
      data.itemIdx[k] < 0 ||
      data.itemIdx[k] >= data.numItems
    ) {
      throw new RangeError(`interaction ${k} out of range`);
    }
  }
}

/** The architecture a run trains: table sizes from the data and its features, widths and options from cfg. */
export function twoTowerArchFor(data: TwoTowerData, cfg: TwoTowerConfig): TwoTowerArch {
  const f = data.items;
  return {
    numUsers: data.numUsers,
    numItems: data.numItems,
    embDim: cfg.embDim,
    outDim: cfg.outDim,
    historyLength: cfg.historyLength,
    numCategories: f.numCategories,
    numPriceBuckets: f.numPriceBuckets,
    numTokenBuckets: f.numTokenBuckets,
    maxTitleTokens: f.maxTitleTokens,
    historyDecay: cfg.historyDecay,
    ...(cfg.recentLength > 0 ? { recentLength: cfg.recentLength } : {}),
    ...(cfg.itemBias ? { itemBias: true, temperature: cfg.temperature } : {}),
  };
}

/** Trains the two-tower model (selects the 'auto' backend if none was selected). */
export async function trainTwoTower(
  data: TwoTowerData,
  config: Partial<TwoTowerConfig> = {},
  hooks: TrainHooks<TwoTowerModel> = {},
  opts: TrainTwoTowerOptions = {},
): Promise<TrainResult<TwoTowerModel>> {
  const cfg: TwoTowerConfig = {
    ...DEFAULT_TWO_TOWER_CONFIG,
    ...config,
    adam: { ...DEFAULT_TWO_TOWER_CONFIG.adam, ...config.adam },
  };
  validateInteractions(data);
  validateFeatures(data.items, data.numItems);
  await ensureBackend();
  const arch = twoTowerArchFor(data, cfg);
  const weights: Weights = opts.initialWeights
    ? adoptInitialWeights(opts.initialWeights, arch, cfg.initStd, cfg.seed)
    : initTwoTower(arch, cfg.initStd, cfg.seed).weights;
  const params = new ParamStore(twoTowerParamDefs(arch), weights);
  const step = new InBatchSoftmaxStep(
    data,
    cfg,
    arch,
    params,
    runIdentity(cfg),
    opts.initialWeights?.itemSeen,
    opts.gradients,
  );
  const adam = new Adam({ lr: cfg.lr, ...cfg.adam }, params);
  return runTraining(
    step,
    adam,
    {
      epochs: cfg.epochs,
      batchSize: cfg.batchSize,
      seed: cfg.seed,
      patience: cfg.patience,
      minDelta: cfg.minDelta,
      checkpointEvery: cfg.checkpointEvery,
      progressIntervalMs: cfg.progressIntervalMs,
    },
    hooks,
    opts.resumeFrom,
  );
}
