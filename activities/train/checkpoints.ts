import * as fs from 'node:fs';
import * as path from 'node:path';
import { lit } from '../../lib/duckdb';
import {
  saveTrainingState,
  loadTrainingState,
  scoreAll,
  buildUserItemsCSR,
  splitValidation,
  takeRows,
  type BackendSelection,
  type HeldOut,
  type ScoreOptions,
  type ScoringFactors,
  type TrainingState,
  type TrainHooks,
  type TrainResult,
} from '../../models';
import { splitMethodOf, type ModelArtifact } from '../../contracts/stages';
import { progress } from '../support/context';
import type { TrainContext } from '../support/train-context';
import { writeJsonAtomic } from '../../lib/fs-atomic';

/**
 * What the learned challengers (train-mf.ts, train-two-tower.ts) share. Checkpoint/resume and progress: a variant checkpoints under the
 * run folder; a retried activity (worker crash) finds the checkpoint and resumes from it; heartbeats carry
 * epoch, step, loss, speed and where it resumed from.
 */
export interface VariantRun<M> {
  model: M;
  resumedFrom: number | null;
  examplesPerSec: number;
  epochsRun: number;
}

export async function runWithCheckpoints<M>(
  plan: TrainContext,
  name: string,
  train: (hooks: TrainHooks<M>, resumeFrom: TrainingState | undefined) => Promise<TrainResult<M>>,
  evaluate?: TrainHooks<M>['evaluate'],
): Promise<VariantRun<M>> {
  const ckpt = path.join(plan.runDir, 'models', `${name}.ckpt`);
  // Checkpoints live in the run's storage, so a retry on another worker resumes where this one stopped.
  const ckptKey = plan.key(ckpt);
  if (!plan.io.isLocal && !fs.existsSync(ckpt)) await plan.io.fetch([`${ckptKey}/`]).catch(() => undefined);
  let resumeFrom: TrainingState | undefined;
  if (fs.existsSync(ckpt)) {
    try {
      resumeFrom = await loadTrainingState(ckpt);
    } catch {
      resumeFrom = undefined; // A checkpoint cut short by the crash: start over.
    }
  }
  let rate = 0;
  // The latest validation score, carried in the heartbeats that follow it (lib/observability/progress.ts).
  let validation: { epoch: number; value: number } | null = null;
  const result = await train(
    {
      evaluate: evaluate
        ? async (model, epoch) => {
            const value = await evaluate(model, epoch);
            validation = { epoch, value: Number(value.toFixed(5)) };
            return value;
          }
        : undefined,
      onProgress: (p) => {
        rate = p.examplesPerSec;
        progress({
          stage: 'train',
          step: name,
          done: p.step,
          total: p.totalSteps,
          unit: 'steps',
          epoch: p.epoch,
          epochs: Math.round(p.totalSteps / Math.max(1, p.stepsPerEpoch)),
          loss: Number(p.loss.toFixed(5)),
          examplesPerSec: Math.round(p.examplesPerSec),
          validation,
          resumedFrom: resumeFrom?.globalStep ?? null,
        });
      },
      onCheckpoint: async (state) => {
        await saveTrainingState(ckpt, state);
        await plan.io.push([`${ckptKey}/`]);
      },
    },
    resumeFrom,
  );
  fs.rmSync(ckpt, { recursive: true, force: true });
  if (!plan.io.isLocal) await plan.io.store.deletePrefix(ckptKey);
  // Per-epoch loss and validation score, for the run report's training curves (analytics/run-report).
  const history = path.join(plan.runDir, 'models', `${name}.history.json`);
  writeJsonAtomic(history, {
    variant: name,
    bestEpoch: result.bestEpoch,
    stoppedEarly: result.stoppedEarly,
    epochs: result.history,
  });
  await plan.io.push([plan.key(history)]);
  return {
    model: result.model,
    resumedFrom: resumeFrom?.globalStep ?? null,
    examplesPerSec: rate,
    epochsRun: result.epochsRun,
  };
}

/** What a learned challenger's training activity returns (see TrainResult in workflows/types.ts). */
export interface LearnedResult {
  backend: string;
  device: string;
  models: ModelArtifact[];
  /** The champion's eval model re-scored on this run's training history (for a like-for-like comparison). */
  champion: ModelArtifact | null;
  resumed: { variant: string; fromStep: number }[];
  examplesPerSec: number;
  epochs: number;
}

export interface LearnedVariants<M, D extends RecsData> {
  /** Model family, e.g. 'mf' or 'two-tower': names the artifacts (`<family>`, `<family>-full`). */
  family: string;
  backend: BackendSelection;
  eval: { run: VariantRun<M>; data: D };
  full: { run: VariantRun<M>; data: D };
  /** The champion's eval model, already grown to this run's tables (null when the champion is another family). */
  championEval: M | null;
  save: (dir: string, model: M, metadata: Record<string, unknown>) => Promise<void>;
  /** Scoring vectors of a model over a variant's history. */
  factors: (model: M, data: D) => ScoringFactors;
}

/**
 * Saves both variants, scores them into `recs` candidate lists (seen items excluded), re-scores the champion on
 * this run's training history, and assembles the activity result. Shared by every learned challenger.
 */
export async function finishLearned<M, D extends RecsData>(
  plan: TrainContext,
  v: LearnedVariants<M, D>,
): Promise<LearnedResult> {
  const dir = path.join(plan.runDir, 'models');
  const candidates = Math.max(plan.config.evaluation.k, plan.config.publish.topN) * 2;
  const models: ModelArtifact[] = [];
  for (const [name, variant] of [
    [v.family, v.eval],
    [`${v.family}-full`, v.full],
  ] as const) {
    progress({ stage: 'train', model: name, step: 'score' });
    const modelDir = path.join(dir, `${name}.model`);
    await v.save(modelDir, variant.run.model, {
      runId: plan.runId,
      modelVersion: plan.modelVersion,
      backend: v.backend.name,
      variant: name,
    });
    const file = path.join(dir, `${name}.parquet`);
    const rows = await writeRecs(
      plan,
      v.factors(variant.run.model, variant.data),
      variant.data,
      candidates,
      file,
    );
    models.push({ name, kind: 'recs', key: plan.key(file), rows, modelDir: plan.key(modelDir) });
    await plan.io.push([plan.key(file), `${plan.key(modelDir)}/`]);
  }
  let champion: ModelArtifact | null = null;
  if (v.championEval) {
    const file = path.join(dir, 'champion-rescored.parquet');
    const rows = await writeRecs(plan, v.factors(v.championEval, v.eval.data), v.eval.data, candidates, file);
    champion = { name: 'champion', kind: 'recs', key: plan.key(file), rows };
    await plan.io.push([plan.key(file)]);
  }
  const resumed = [
    ...(v.eval.run.resumedFrom !== null ? [{ variant: v.family, fromStep: v.eval.run.resumedFrom }] : []),
    ...(v.full.run.resumedFrom !== null
      ? [{ variant: `${v.family}-full`, fromStep: v.full.run.resumedFrom }]
      : []),
  ];
  return {
    backend: `tfjs-${v.backend.name}`,
    device: v.backend.device,
    models,
    champion,
    resumed,
    examplesPerSec: v.eval.run.examplesPerSec,
    epochs: v.eval.run.epochsRun,
  };
}

/** The arrays scoring needs from a variant's interactions. */
export type RecsData = { userIdx: Int32Array; itemIdx: Int32Array; numUsers: number };

/** Scores users' top-N with their seen items excluded (a model that builds its own exclusions, e.g. linear.ts). */
export type RecsScorer = (opts: Pick<ScoreOptions, 'topN' | 'users' | 'onBlock'>) => Promise<unknown>;

/** Scores every user with history in `data` (seen items excluded) and writes (user_id, item_id, score). */
export async function writeRecs(
  plan: TrainContext,
  model: ScoringFactors | RecsScorer,
  data: RecsData,
  topN: number,
  file: string,
): Promise<number> {
  const score: RecsScorer =
    typeof model === 'function'
      ? model
      : (o) =>
          scoreAll(model, { ...o, exclude: buildUserItemsCSR(data.userIdx, data.itemIdx, data.numUsers) });
  const users = Int32Array.from(new Set(data.userIdx));
  const csv = `${file}.csv`;
  const fd = fs.openSync(csv, 'w');
  try {
    fs.writeSync(fd, 'u,i,score\n');
    await score({
      topN,
      users,
      onBlock: (b) => {
        const lines: string[] = [];
        for (let r = 0; r < b.users.length; r++) {
          for (let c = 0; c < b.topN; c++) {
            const item = b.items[r * b.topN + c];
            if (item >= 0) lines.push(`${b.users[r]},${item},${b.scores[r * b.topN + c]}`);
          }
        }
        fs.writeSync(fd, lines.join('\n') + '\n');
      },
    });
  } finally {
    fs.closeSync(fd);
  }
  const userIds = await plan.local(plan.clean.userIds.key);
  const itemIds = await plan.local(plan.clean.itemIds.key);
  const rows = await plan.io.withDb('recs', async (db) => {
    await db.run(`COPY (
        SELECT u.id AS user_id, i.id AS item_id, r.score
        FROM read_csv(${lit(csv)}, header = true, columns = {'u': 'INTEGER', 'i': 'INTEGER', 'score': 'DOUBLE'}) r
        JOIN read_parquet(${lit(userIds)}) u ON u.idx = r.u
        JOIN read_parquet(${lit(itemIds)}) i ON i.idx = r.i
        ORDER BY user_id, score DESC
      ) TO ${lit(file)} (FORMAT parquet, COMPRESSION zstd)`);
    return db.scalar<number>(`SELECT count(*) FROM read_parquet(${lit(file)})`);
  });
  fs.rmSync(csv, { force: true });
  return rows;
}

/** (user, item) interactions with times (seconds), as both learned challengers read them. */
export type TimedData = RecsData & {
  itemIdx: Int32Array;
  weight: Float32Array;
  /** Latest interaction of the pair (history order). */
  timestamps: Float64Array;
  /** First interaction of the pair (validation split: pairs new in the validation period). */
  firstTimestamps: Float64Array;
};

/**
 * The evaluated model's validation split for early stopping, shaped like this run's evaluation holdout (the split
 * cleaning chose, whatever `evaluation.split` says: the last `holdoutDays` of the training period, or each user's
 * latest `holdoutFraction`), taken from a `userShare` of the users (models/validation.ts).
 */
export function validationSplitFor<D extends TimedData>(
  plan: Pick<TrainContext, 'config' | 'clean'>,
  data: D,
  userShare: number,
  seed: number,
): { train: D; heldOut: HeldOut; rows: Int32Array } {
  const e = plan.config.evaluation;
  const split = splitValidation(
    { userIdx: data.userIdx, itemIdx: data.itemIdx, timestamps: data.firstTimestamps },
    {
      mode: splitMethodOf(plan.clean.split),
      days: e.holdoutDays,
      fraction: e.holdoutFraction,
      userShare,
      seed,
    },
  );
  const rows = split.trainRows;
  return {
    train: {
      ...data,
      userIdx: takeRows(data.userIdx, rows),
      itemIdx: takeRows(data.itemIdx, rows),
      weight: takeRows(data.weight, rows),
      timestamps: takeRows(data.timestamps, rows),
      firstTimestamps: takeRows(data.firstTimestamps, rows),
    },
    heldOut: split.heldOut,
    rows,
  };
}
