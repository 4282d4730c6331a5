/**
 * Public API of the recforge model package (pure tfjs; no Temporal/DuckDB).
 * Typical use from a training activity:
 *   const sel = await selectBackend('auto');            // once per process
 *   const res = await trainMF(data, cfg, { evaluate, onProgress, onCheckpoint });
 *   await saveMFModel(dir, res.model, { metrics: res.history });
 *   await scoreAll(res.model, { topN, exclude, onBlock });
 * The closed-form and matmul-bound families (no tfjs autograd):
 *   const { model } = await fitEASE(data, { lambda, maxItems });  await scoreEASE(model, history, { topN, tauDays, ... });
 *   const res = await trainIALS(data, { factors, regularization, alpha }, hooks);   // MFModel: scoreAll applies
 *   const res = await trainBPR(data, { factors, lr, reg }, hooks);                  // MFModel: scoreAll applies
 *   const search = await successiveHalving({ candidates: grid({...}), trial, timeBudgetMs });
 */
export {
  selectBackend,
  ensureBackend,
  getTf,
  currentBackend,
  BackendUnavailableError,
  type BackendName,
  type BackendPreference,
  type BackendSelection,
  type BackendAttempt,
  type SelectBackendOptions,
  type Tf,
} from './backend';
export { registerTrainingKernels, restoreOriginalGather } from './wasm-kernels';
export { registerMissingGradients } from './gradients';
export { Rng, type RngState, mixSeed, epochPermutation, AliasSampler } from './rng';
export { type Weights, type NamedArray, cloneWeights } from './params';
export { Adam, type AdamConfig, type AdamState } from './adam';
export {
  type TrainHooks,
  type TrainProgress,
  type TrainResult,
  type TrainingState,
  type EpochRecord,
  type TrainLoopConfig,
  earlyStopping,
} from './trainer';
export {
  trainMF,
  resumeMF,
  initMF,
  eventTypeWeights,
  buildUserItemsCSR,
  mfToWeights,
  mfFromWeights,
  DEFAULT_MF_CONFIG,
  type MFConfig,
  type MFModel,
  type Interactions,
  type TrainMFOptions,
  type UserItemsCSR,
} from './mf';
export {
  trainTwoTower,
  twoTowerEmbeddings,
  growTwoTower,
  initTwoTower,
  buildUserHistory,
  historyWeights,
  hasHistory,
  hashTitleTokens,
  hashToken,
  priceBuckets,
  applyPriceBuckets,
  DEFAULT_TWO_TOWER_CONFIG,
  type TwoTowerConfig,
  type TwoTowerModel,
  type TwoTowerArch,
  type TwoTowerData,
  type TwoTowerEmbeddings,
  type ItemFeatures,
  type UserHistory,
  type TrainTwoTowerOptions,
  type StepGradients,
} from './two-tower';
export { growEmbeddings, growTable, type GrowOptions } from './warm-start';
export {
  scoreAll,
  scoreLinear,
  chooseBlockSize,
  matmulGflops,
  type LinearScorer,
  type SparseRows,
  type UserRowProvider,
  type ScoringFactors,
  type ScoreOptions,
  type ScoreBlock,
  type ScoreStats,
  type ExcludeCSR,
  type ExcludeFn,
} from './score';
export {
  recallAtK,
  ndcgAtK,
  rankingMetricAtK,
  popularityRecallAtK,
  popularityRanking,
  type HeldOut,
  type RankingMetric,
} from './metrics';
export {
  splitValidation,
  takeRows,
  userDraw,
  type ValidationSplit,
  type ValidationSplitConfig,
} from './validation';
export { plantedClusters, randomInteractions, type PlantedDataset } from './synthetic';
export {
  saveModel,
  loadModel,
  saveMFModel,
  loadMFModel,
  saveEASEModel,
  loadEASEModel,
  saveTwoTowerModel,
  loadTwoTowerModel,
  saveTrainingState,
  loadTrainingState,
  writeBundle,
  readBundle,
  type SavedModel,
} from './serialize';
export {
  clipAndSumByUser,
  noisyDenseGradient,
  pairIndex,
  type DpNoise,
  type SlotIndex,
  type ClippedSum,
} from './dp-sgd';
export {
  trainMFDp,
  createDpBprStep,
  dpSgdSteps,
  validateDpSgd,
  DpBprStep,
  type DpSgdParams,
  type DpBatchGradients,
  type TrainMFDpOptions,
} from './mf-dp';
export {
  fitEASE,
  selectItems,
  DEFAULT_EASE_CONFIG,
  type EASEConfig,
  type EASEModel,
  type EASEInteractions,
  type EASEFitStats,
  type FitEASEHooks,
} from './ease';
export {
  scoreEASE,
  easeScorer,
  easeHistoryRows,
  recencyDecay,
  type EASEHistory,
  type EASEScoringOptions,
} from './ease-score';
export { spdInverse, spdInverseF64, NotPositiveDefiniteError, type SpdInverseOptions } from './linalg';
export { trainIALS, DEFAULT_IALS_CONFIG, type IALSConfig, type TrainIALSOptions } from './ials';
export { trainBPR, DEFAULT_BPR_CONFIG, type BPRConfig, type TrainBPROptions } from './bpr-fast';
export { buildCSR, transposeCSR, type CSR, type ValueTransform } from './sparse';
export { concentration, headItems, itemCounts, type Concentration } from './concentration';
export { successiveHalving, grid, type HalvingOptions, type HalvingResult, type TrialRecord } from './tuning';
export { KernelPool, defaultKernelWorker } from './kernel-pool';
