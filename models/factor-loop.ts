/**
 * The epoch loop of the trainers that update their factor tables in place without an optimizer state (iALS sweeps,
 * hogwild BPR): per epoch, the model's own update, then the validation metric, early stopping with best-weight
 * restore, an epoch-end checkpoint and a progress report, through the same hooks and state format as
 * trainer.ts (so the training activity's checkpoint, resume and heartbeat plumbing applies unchanged).
 * Checkpoints are taken at epoch ends only: an epoch of these models is seconds, not minutes.
 */
import { cloneWeights, copyWeightsInto, type Weights } from './params';
import { Rng } from './rng';
import {
  earlyStopping,
  type EpochRecord,
  type TrainHooks,
  type TrainingState,
  type TrainResult,
} from './trainer';

export interface FactorLoopConfig {
  kind: string;
  epochs: number;
  patience: number;
  minDelta: number;
  seed: number;
  /** The run-defining config, compared on resume. */
  config: unknown;
  dataFingerprint: string;
}

export interface EpochOutcome {
  /** The model's training loss or quality figure for the epoch (reported, not used for stopping). */
  loss: number;
  examples: number;
}

/**
 * Runs epochs [start, cfg.epochs) of `epoch(e)` over `weights` (the live tables the epoch updates), with hooks.
 * `view` returns the public model over the live tables.
 */
export async function runFactorEpochs<M>(
  weights: Weights,
  epoch: (e: number) => Promise<EpochOutcome>,
  view: () => M,
  cfg: FactorLoopConfig,
  hooks: TrainHooks<M> = {},
  resumeFrom?: TrainingState,
): Promise<TrainResult<M>> {
  let best: TrainingState['best'] = { metric: null, epoch: -1, weights: null };
  let sinceImprovement = 0;
  const history: EpochRecord[] = [];
  let e = 0;
  if (resumeFrom) {
    if (resumeFrom.kind !== cfg.kind) throw new Error(`resume: state is for '${resumeFrom.kind}'`);
    if (resumeFrom.dataFingerprint !== cfg.dataFingerprint)
      throw new Error('resume: training data differs from the checkpointed run (fingerprint mismatch)');
    if (JSON.stringify(resumeFrom.config) !== JSON.stringify(cfg.config))
      throw new Error('resume: model/training config differs from the checkpointed run');
    copyWeightsInto(weights, resumeFrom.weights);
    e = resumeFrom.epoch;
    best = {
      metric: resumeFrom.best.metric,
      epoch: resumeFrom.best.epoch,
      weights: resumeFrom.best.weights ? cloneWeights(resumeFrom.best.weights) : null,
    };
    sinceImprovement = resumeFrom.epochsWithoutImprovement;
    history.push(...resumeFrom.history);
  }
  const snapshot = (next: number): TrainingState => ({
    format: 'recforge-training-state',
    version: 1,
    kind: cfg.kind,
    epoch: next,
    stepInEpoch: 0,
    globalStep: next,
    totalSteps: cfg.epochs,
    weights: cloneWeights(weights),
    optimizer: { step: 0, m: {}, v: {} },
    rng: new Rng(cfg.seed).getState(),
    best: {
      metric: best.metric,
      epoch: best.epoch,
      weights: best.weights ? cloneWeights(best.weights) : null,
    },
    epochsWithoutImprovement: sinceImprovement,
    epochPartial: { lossSum: 0, steps: 0, examples: 0 },
    history: history.map((h) => ({ ...h })),
    dataFingerprint: cfg.dataFingerprint,
    config: cfg.config,
  });

  const t0 = performance.now();
  let stoppedEarly = sinceImprovement >= cfg.patience;
  for (; e < cfg.epochs && !stoppedEarly; e++) {
    if (hooks.signal?.aborted) throw hooks.signal.reason ?? new Error('training aborted');
    const start = performance.now();
    const out = await epoch(e);
    const ms = performance.now() - start;
    const record: EpochRecord = {
      epoch: e,
      loss: out.loss,
      examplesPerSec: (out.examples * 1000) / Math.max(1e-3, ms),
      ms,
    };
    if (hooks.evaluate) {
      const metric = await hooks.evaluate(view(), e);
      record.metric = metric;
      const d = earlyStopping({ best: best.metric, sinceImprovement }, metric, cfg.patience, cfg.minDelta);
      sinceImprovement = d.sinceImprovement;
      if (d.improved) best = { metric, epoch: e, weights: cloneWeights(weights) };
      if (d.stop) stoppedEarly = true;
    }
    history.push(record);
    await hooks.onProgress?.({
      epoch: e,
      step: e + 1,
      stepInEpoch: 1,
      stepsPerEpoch: 1,
      totalSteps: cfg.epochs,
      loss: out.loss,
      examplesPerSec: record.examplesPerSec,
      elapsedMs: performance.now() - t0,
    });
    if (hooks.onCheckpoint) await hooks.onCheckpoint(snapshot(e + 1));
  }
  if (best.weights && best.epoch !== history[history.length - 1]?.epoch)
    copyWeightsInto(weights, best.weights);
  return {
    model: view(),
    epochsRun: history.length,
    stoppedEarly,
    bestMetric: best.metric,
    bestEpoch: best.epoch,
    history,
    globalStep: e,
    state: snapshot(e),
  };
}

/** A Float32Array on a SharedArrayBuffer (worker threads write it in place), holding a copy of `init` if given. */
export function sharedFloat32(n: number, init?: Float32Array): Float32Array {
  const a = new Float32Array(new SharedArrayBuffer(Math.max(1, n) * 4)).subarray(0, n);
  if (init) a.set(init);
  return a;
}
