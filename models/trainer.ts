/**
 * Generic epoch/step loop shared by mf.ts and two-tower.ts: shuffling, progress heartbeats, checkpoints, resume,
 * early stopping with best-weight restore, cancellation.
 *
 * Determinism: the example order of epoch e is a pure function of (seed, e) (rng.epochPermutation), and everything
 * else that is random (negatives, dropout) draws from one Rng whose state is checkpointed. Weights and Adam moments
 * are restored bit-exactly, so a resumed run replays the same float operations as an uninterrupted one.
 */
import { Adam, AdamState } from './adam';
import { cloneWeights, copyWeightsInto, Grad, ParamStore, Weights } from './params';
import { epochPermutation, Rng, RngState } from './rng';
import { turnEvery } from './turns';

export interface TrainLoopConfig {
  epochs: number;
  batchSize: number;
  seed: number;
  /** Early stopping: stop after this many evaluated epochs without improvement (needs hooks.evaluate). */
  patience?: number;
  /** Improvement must exceed this to reset patience. */
  minDelta?: number;
  /** Call hooks.onCheckpoint every N optimizer steps (0 = only at epoch ends). */
  checkpointEvery?: number;
  /** Also checkpoint at the end of every epoch (after evaluation). Default true when onCheckpoint is given. */
  checkpointEachEpoch?: boolean;
  /** Heartbeat cadence: onProgress at most every this many ms (default 1000) and at each epoch end. */
  progressIntervalMs?: number;
}

export interface TrainProgress {
  epoch: number;
  /** Global optimizer step (1-based count of completed steps). */
  step: number;
  stepInEpoch: number;
  stepsPerEpoch: number;
  totalSteps: number;
  /** Mean training loss over the steps since the previous report. */
  loss: number;
  examplesPerSec: number;
  elapsedMs: number;
}

export interface EpochRecord {
  epoch: number;
  loss: number;
  metric?: number;
  examplesPerSec: number;
  ms: number;
}

/** Everything needed to continue a run; JSON + Float32Arrays (serialize.ts writes it to disk). */
export interface TrainingState {
  format: 'recforge-training-state';
  version: 1;
  kind: string;
  /** Epoch to continue in and the number of its steps already done. */
  epoch: number;
  stepInEpoch: number;
  globalStep: number;
  totalSteps: number;
  weights: Weights;
  optimizer: AdamState;
  rng: RngState;
  best: { metric: number | null; epoch: number; weights: Weights | null };
  epochsWithoutImprovement: number;
  /** Partial sums of the epoch in progress, so a mid-epoch resume reports the same epoch loss. */
  epochPartial: { lossSum: number; steps: number; examples: number };
  history: EpochRecord[];
  /** Cheap hash of the training arrays; resume refuses different data. */
  dataFingerprint: string;
  /** The model config the run was started with (resume refuses a different one). */
  config: unknown;
  /** Free-form, model-specific, JSON-serialisable extras. */
  extra?: Record<string, unknown>;
}

export interface TrainHooks<M> {
  /** Validation metric, higher is better (e.g. recall@K). Called once per epoch with a read-only view of the model. */
  evaluate?: (model: M, epoch: number) => number | Promise<number>;
  onProgress?: (p: TrainProgress) => void | Promise<void>;
  onCheckpoint?: (state: TrainingState) => void | Promise<void>;
  /** Cancels between steps (e.g. Temporal activity cancellation); the loop throws signal.reason. */
  signal?: AbortSignal;
}

export interface TrainResult<M> {
  model: M;
  epochsRun: number;
  stoppedEarly: boolean;
  bestMetric: number | null;
  bestEpoch: number;
  history: EpochRecord[];
  globalStep: number;
  /** Final state (after best-weight restore); can seed a later resume or be saved. */
  state: TrainingState;
}

/** What a model supplies to the loop: one training step over a batch of example ids. */
export interface StepProvider<M> {
  kind: string;
  numExamples: number;
  params: ParamStore;
  config: unknown;
  dataFingerprint: string;
  /** Forward + backward for these example ids; returns the batch loss and gradients. */
  computeGradients(batch: Int32Array, rng: Rng): { loss: number; grads: Map<string, Grad> };
  /** A view of the current weights as the public model type. */
  view(): M;
  extraState?(): Record<string, unknown>;
}

function stableStringify(v: unknown): string {
  return JSON.stringify(v, (_k, val: unknown) =>
    val && typeof val === 'object' && !Array.isArray(val)
      ? Object.fromEntries(
          Object.entries(val as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1)),
        )
      : val,
  );
}

export async function runTraining<M>(
  provider: StepProvider<M>,
  optimizer: Adam,
  cfg: TrainLoopConfig,
  hooks: TrainHooks<M> = {},
  resumeFrom?: TrainingState,
): Promise<TrainResult<M>> {
  const n = provider.numExamples;
  if (n <= 0) throw new Error('training data is empty');
  if (!(cfg.batchSize >= 1)) throw new Error('batchSize must be >= 1');
  const stepsPerEpoch = Math.ceil(n / cfg.batchSize);
  const totalSteps = stepsPerEpoch * cfg.epochs;
  const patience = cfg.patience ?? Infinity;
  const minDelta = cfg.minDelta ?? 0;
  const progressInterval = cfg.progressIntervalMs ?? 1000;
  const checkpointEachEpoch = cfg.checkpointEachEpoch ?? true;
  const weights = provider.params.weights;

  let epoch = 0;
  let stepInEpoch = 0;
  let globalStep = 0;
  const rng = new Rng(cfg.seed);
  let best: TrainingState['best'] = { metric: null, epoch: -1, weights: null };
  let sinceImprovement = 0;
  const history: EpochRecord[] = [];

  if (resumeFrom) {
    if (resumeFrom.kind !== provider.kind) throw new Error(`resume: state is for '${resumeFrom.kind}'`);
    if (resumeFrom.dataFingerprint !== provider.dataFingerprint) {
      throw new Error('resume: training data differs from the checkpointed run (fingerprint mismatch)');
    }
    if (stableStringify(resumeFrom.config) !== stableStringify(provider.config)) {
      throw new Error('resume: model/training config differs from the checkpointed run');
    }
    copyWeightsInto(weights, resumeFrom.weights);
    optimizer.setState(resumeFrom.optimizer);
    rng.setState(resumeFrom.rng);
    epoch = resumeFrom.epoch;
    stepInEpoch = resumeFrom.stepInEpoch;
    globalStep = resumeFrom.globalStep;
    best = {
      metric: resumeFrom.best.metric,
      epoch: resumeFrom.best.epoch,
      weights: resumeFrom.best.weights ? cloneWeights(resumeFrom.best.weights) : null,
    };
    sinceImprovement = resumeFrom.epochsWithoutImprovement;
    history.push(...resumeFrom.history);
  }

  let epochLoss = 0;
  let epochSteps = 0;
  let epochExamples = 0;
  if (resumeFrom && resumeFrom.stepInEpoch > 0 && resumeFrom.epochPartial) {
    epochLoss = resumeFrom.epochPartial.lossSum;
    epochSteps = resumeFrom.epochPartial.steps;
    epochExamples = resumeFrom.epochPartial.examples;
  }

  const snapshot = (e: number, s: number): TrainingState => ({
    format: 'recforge-training-state',
    version: 1,
    kind: provider.kind,
    epoch: e,
    stepInEpoch: s,
    globalStep,
    totalSteps,
    weights: cloneWeights(weights),
    optimizer: optimizer.getState(),
    rng: rng.getState(),
    best: {
      metric: best.metric,
      epoch: best.epoch,
      weights: best.weights ? cloneWeights(best.weights) : null,
    },
    epochsWithoutImprovement: sinceImprovement,
    epochPartial:
      s > 0
        ? { lossSum: epochLoss, steps: epochSteps, examples: epochExamples }
        : { lossSum: 0, steps: 0, examples: 0 },
    history: history.map((h) => ({ ...h })),
    dataFingerprint: provider.dataFingerprint,
    config: provider.config,
    extra: provider.extraState?.(),
  });

  const t0 = performance.now();
  let stoppedEarly = sinceImprovement >= patience;
  let lastReport = performance.now();
  let lossSinceReport = 0;
  let stepsSinceReport = 0;
  let examplesSinceReport = 0;
  const turn = turnEvery(200);

  for (; epoch < cfg.epochs && !stoppedEarly; epoch++, stepInEpoch = 0) {
    const perm = epochPermutation(n, cfg.seed, epoch);
    const epochStart = performance.now();
    for (; stepInEpoch < stepsPerEpoch; stepInEpoch++) {
      if (hooks.signal?.aborted) throw hooks.signal.reason ?? new Error('training aborted');
      const batch = perm.subarray(
        stepInEpoch * cfg.batchSize,
        Math.min(n, (stepInEpoch + 1) * cfg.batchSize),
      );
      const { loss, grads } = provider.computeGradients(batch, rng);
      optimizer.apply(grads);
      globalStep++;
      epochLoss += loss;
      epochSteps++;
      epochExamples += batch.length;
      lossSinceReport += loss;
      stepsSinceReport++;
      examplesSinceReport += batch.length;

      const now = performance.now();
      if (hooks.onProgress && (now - lastReport >= progressInterval || stepInEpoch === stepsPerEpoch - 1)) {
        await hooks.onProgress({
          epoch,
          step: globalStep,
          stepInEpoch: stepInEpoch + 1,
          stepsPerEpoch,
          totalSteps,
          loss: lossSinceReport / stepsSinceReport,
          examplesPerSec: (examplesSinceReport * 1000) / Math.max(1e-3, now - lastReport),
          elapsedMs: now - t0,
        });
        lastReport = performance.now();
        lossSinceReport = 0;
        stepsSinceReport = 0;
        examplesSinceReport = 0;
      }
      if (hooks.onCheckpoint && cfg.checkpointEvery && globalStep % cfg.checkpointEvery === 0) {
        await hooks.onCheckpoint(snapshot(epoch, stepInEpoch + 1));
      }
      // Give the event loop a turn now and then (heartbeats, cancellation) without paying a tick per step.
      await turn();
    }

    const ms = performance.now() - epochStart;
    const record: EpochRecord = {
      epoch,
      loss: epochSteps > 0 ? epochLoss / epochSteps : NaN,
      examplesPerSec: (epochExamples * 1000) / Math.max(1e-3, ms),
      ms,
    };
    if (hooks.evaluate) {
      const metric = await hooks.evaluate(provider.view(), epoch);
      record.metric = metric;
      const decision = earlyStopping({ best: best.metric, sinceImprovement }, metric, patience, minDelta);
      sinceImprovement = decision.sinceImprovement;
      if (decision.improved) best = { metric, epoch, weights: cloneWeights(weights) };
      if (decision.stop) stoppedEarly = true;
    }
    history.push(record);
    epochLoss = 0;
    epochSteps = 0;
    epochExamples = 0;
    if (hooks.onCheckpoint && checkpointEachEpoch) await hooks.onCheckpoint(snapshot(epoch + 1, 0));
  }

  // Keep the best evaluated weights, not the last ones.
  if (best.weights && best.epoch !== history[history.length - 1]?.epoch)
    copyWeightsInto(weights, best.weights);
  const finalState = snapshot(epoch, 0);
  return {
    model: provider.view(),
    epochsRun: history.length,
    stoppedEarly,
    bestMetric: best.metric,
    bestEpoch: best.epoch,
    history,
    globalStep,
    state: finalState,
  };
}

/**
 * One early-stopping decision after an evaluated epoch (higher metric is better): the epoch improves on the best
 * so far when it beats it by more than `minDelta` (the first evaluated epoch always does); after `patience`
 * evaluated epochs in a row without improvement, training stops (the loop then restores the best weights).
 */
export function earlyStopping(
  prev: { best: number | null; sinceImprovement: number },
  metric: number,
  patience: number,
  minDelta: number,
): { improved: boolean; sinceImprovement: number; stop: boolean } {
  if (Number.isFinite(metric) && (prev.best === null || metric > prev.best + minDelta)) {
    return { improved: true, sinceImprovement: 0, stop: false };
  }
  const sinceImprovement = prev.sinceImprovement + 1;
  return { improved: false, sinceImprovement, stop: sinceImprovement >= patience };
}

/** 32-bit FNV-1a-style hash over typed arrays (all words), to detect resuming on different data. */
export function fingerprintArrays(
  ...arrays: Array<Int32Array | Float32Array | Uint8Array | undefined>
): string {
  let h = 0x811c9dc5;
  for (const a of arrays) {
    if (!a) {
      h = Math.imul(h ^ 0xff, 0x01000193);
      continue;
    }
    const words = a instanceof Uint8Array ? a : new Int32Array(a.buffer, a.byteOffset, a.length);
    h = Math.imul(h ^ words.length, 0x01000193);
    for (let i = 0; i < words.length; i++) h = Math.imul(h ^ words[i], 0x01000193);
  }
  return (h >>> 0).toString(16).padStart(8, '0');
}
