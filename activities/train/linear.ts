import * as fs from 'node:fs';
import * as path from 'node:path';
import { readTypedColumns } from '../../lib/typed-columns';
import type { Db } from '../../lib/duckdb';
import { positiveRuleOf, positiveSql } from '../../analytics/positive.sql';
import { selectBackend, saveMFModel, loadMFModel, type MFModel } from '../../models';
import {
  describeParams,
  fitLinear,
  hasNegatives,
  scoreLinearModel,
  type LinearData,
  type LinearModel,
  type LinearParams,
} from '../../models/linear';
import {
  tuneLinear,
  type LinearFamily,
  type LinearSearchSpace,
  type TuneLinearResult,
} from '../../models/linear-tuning';
import type { ModelRecord } from '../../contracts/registry';
import type { ModelArtifact, TrainResult } from '../../contracts/stages';
import { writeJsonAtomic } from '../../lib/fs-atomic';
import { log, progress } from '../support/context';
import type { TrainContext } from '../support/train-context';
import { validationSplitFor, writeRecs } from './checkpoints';

/**
 * The linear challengers (`ease`, `ials`, `blend`: models/linear.ts), tuned inside the run:
 *
 * 1. Reads the (user, item) pairs of the training split and of all clean events, with the pair's first and latest
 *    time and whether any of its events is a positive (analytics/positive.sql.ts).
 * 2. Carves a validation split from the training split shaped like the evaluation's holdout (validationSplitFor;
 *    only positive pairs are validation targets) and tunes on it within `training.tuning.budgetSeconds`
 *    (models/linear-tuning.ts), starting from the champion's parameters when the champion is of this family.
 * 3. Fits the chosen parameters on the training split (the evaluated model, `<family>`) and on all clean events
 *    (the published one, `<family>-full`; its iALS part warm-started from the champion's), and scores both into
 *    `recs` candidate lists. The evaluation compares the two lists per user (refit agreement).
 *
 * What is saved: the parameters and the trials (tuning.json) and the iALS factors (for the next warm start). EASE's
 * weights are not kept: they are a closed form of the data and the parameters, k^2 floats (~140 MB at 6k items).
 */

async function readPairs(db: Db, source: string, positive: string): Promise<LinearData> {
  const sizes = await db.one<{ users: number; items: number }>(
    `SELECT (SELECT max(idx) + 1 FROM user_ids) AS users, (SELECT max(idx) + 1 FROM item_ids) AS items`,
  );
  const { columns: c } = await readTypedColumns(
    db,
    `
    SELECT u.idx::INTEGER AS u, i.idx::INTEGER AS i, epoch(max(e.ts))::DOUBLE AS t, epoch(min(e.ts))::DOUBLE AS t0,
           bool_or(${positive})::INTEGER AS p
    FROM ${source} e JOIN user_ids u ON u.id = e.user_id JOIN item_ids i ON i.id = e.item_id
    GROUP BY ALL ORDER BY u, i`,
    { u: 'i32', i: 'i32', t: 'f64', t0: 'f64', p: 'u8' },
  );
  return {
    userIdx: c.u,
    itemIdx: c.i,
    timestamps: c.t,
    firstTimestamps: c.t0,
    positive: c.p,
    numUsers: Number(sizes.users ?? 0),
    numItems: Number(sizes.items ?? 0),
  };
}

/** The search space of a family from the run's configuration. */
export function searchSpace(
  plan: Pick<TrainContext, 'config'>,
  family: LinearFamily,
  data: LinearData,
): LinearSearchSpace {
  const t = plan.config.training;
  return {
    family,
    // Positives-only is a distinct signal only where some pairs are not positives (ratings below the threshold);
    // it goes first there, since positives are what the evaluation counts.
    signals: hasNegatives(data) ? ['positive', 'all'] : ['all'],
    ease: {
      lambdas: t.ease.lambdas,
      startLambda: t.ease.startLambda,
      tauDays: t.ease.tauDays,
      maxItems: t.ease.maxItems,
    },
    ials: {
      factors: t.ials.factors,
      regularization: t.ials.regularization,
      alpha: t.ials.alpha,
      iterations: t.ials.iterations,
    },
    betas: t.blend.betas,
  };
}

/** The champion's tuned parameters, when it is of this family (a nightly run starts its search there). */
export function championParams(champion: ModelRecord | null, family: string): LinearParams | undefined {
  if (!champion || champion.model !== family || !champion.params) return undefined;
  return champion.params as unknown as LinearParams;
}

/** Pairs whose first event is in the validation period are the targets only when they are positives. */
function positiveTargets(
  heldOut: { userIdx: Int32Array; itemIdx: Int32Array },
  data: LinearData,
): { userIdx: Int32Array; itemIdx: Int32Array } {
  // `data` is ordered by (user, item) (readPairs): each user's rows are one run, searched by bisection. A Set of
  // every pair took ~1 GB and seconds of a blocked event loop at 16M pairs.
  const start = new Int32Array(data.numUsers + 1);
  for (let k = 0; k < data.userIdx.length; k++) start[data.userIdx[k] + 1]++;
  for (let u = 0; u < data.numUsers; u++) start[u + 1] += start[u];
  const isPositive = (u: number, i: number): boolean => {
    let lo = start[u];
    let hi = start[u + 1] - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const m = data.itemIdx[mid];
      if (m === i) return data.positive[mid] === 1;
      if (m < i) lo = mid + 1;
      else hi = mid - 1;
    }
    return false;
  };
  const keep: number[] = [];
  for (let q = 0; q < heldOut.userIdx.length; q++)
    if (isPositive(heldOut.userIdx[q], heldOut.itemIdx[q])) keep.push(q);
  return {
    userIdx: Int32Array.from(keep, (q) => heldOut.userIdx[q]),
    itemIdx: Int32Array.from(keep, (q) => heldOut.itemIdx[q]),
  };
}

export async function trainLinearChallenger(
  plan: TrainContext,
  family: LinearFamily,
  champion: ModelRecord | null,
): Promise<TrainResult> {
  const selection = await selectBackend(plan.config.training.backend);
  log('tfjs backend', { backend: selection.name, device: selection.device });
  const dir = path.join(plan.runDir, 'models');
  fs.mkdirSync(dir, { recursive: true });
  const positive = positiveSql(positiveRuleOf(plan.config), 'e');
  progress({ stage: 'train', model: family, step: 'read' });
  const { train, all } = await plan.withViews('train-linear', async (db) => ({
    train: await readPairs(db, 'train_events', positive),
    all: await readPairs(db, 'events', positive),
  }));
  const tuning = plan.config.training.tuning;
  // Validation users: a share of the users, at most maxValidationUsers of them (scoring is per trial).
  const share = Math.min(tuning.validationUsers, tuning.maxValidationUsers / Math.max(1, train.numUsers));
  const split = validationSplitFor(
    plan,
    { ...train, weight: new Float32Array(train.userIdx.length) },
    share,
    tuning.seed,
  );
  const fitData: LinearData = {
    userIdx: split.train.userIdx,
    itemIdx: split.train.itemIdx,
    timestamps: split.train.timestamps,
    firstTimestamps: split.train.firstTimestamps,
    positive: Uint8Array.from(split.rows, (r) => train.positive[r]),
    numUsers: train.numUsers,
    numItems: train.numItems,
  };
  const heldOut = positiveTargets(split.heldOut, train);
  const first = championParams(champion, family);
  const space = searchSpace(plan, family, train);
  const tuneStarted = Date.now();
  progress({
    stage: 'train',
    model: family,
    step: 'tune',
    done: 0,
    unit: 'trials',
    etaSeconds: tuning.budgetSeconds,
    etaBound: 'budget',
    budgetSeconds: tuning.budgetSeconds,
  });
  const tuned: TuneLinearResult = await tuneLinear({
    fit: fitData,
    heldOut,
    space,
    k: plan.config.evaluation.k,
    metric: tuning.metric,
    timeBudgetMs: tuning.budgetSeconds * 1000,
    first,
    seed: tuning.seed,
    onTrial: (t, n) => {
      const left = tuning.budgetSeconds - (Date.now() - tuneStarted) / 1000;
      progress({
        stage: 'train',
        model: family,
        step: 'tune',
        done: n,
        unit: 'trials',
        phase: t.phase,
        score: Number.isNaN(t.score) ? null : Number(t.score.toFixed(5)),
        // The search stops at its time budget at the latest (often sooner): an upper bound, not a forecast.
        etaSeconds: Math.max(0, Math.round(left)),
        etaBound: 'budget',
        budgetSeconds: tuning.budgetSeconds,
      });
    },
  });
  log('tuned', {
    family,
    chosen: describeParams(tuned.best),
    validation: tuned.bestScore,
    trials: tuned.trials.length,
    seconds: tuned.seconds,
    stoppedByTime: tuned.stoppedByTime,
  });

  const championIals = await championFactors(plan, champion, family);
  const candidates = Math.max(plan.config.evaluation.k, plan.config.publish.topN) * 2;
  const models: ModelArtifact[] = [];
  let evalIals: MFModel | null = null;
  for (const [name, data, warm] of [
    [family, train, championIals?.eval],
    [`${family}-full`, all, championIals?.full],
  ] as const) {
    progress({ stage: 'train', model: name, step: 'fit' });
    const model: LinearModel = await fitLinear(data, tuned.best, {
      warmIals: warm ?? (name !== family ? (evalIals ?? undefined) : undefined),
      seed: tuning.seed,
      onPhase: (phase) => progress({ stage: 'train', model: name, step: `fit ${phase}` }),
      onProgress: (p) =>
        progress({
          stage: 'train',
          model: name,
          step: `fit ${p.part} ${p.phase}`,
          done: p.done,
          total: p.total,
          unit: p.unit,
          ...(p.loss !== undefined && Number.isFinite(p.loss) ? { loss: Number(p.loss.toFixed(5)) } : {}),
        }),
    });
    if (name === family) evalIals = model.ials;
    progress({ stage: 'train', model: name, step: 'score' });
    const modelDir = path.join(dir, `${name}.model`);
    fs.mkdirSync(modelDir, { recursive: true });
    writeJsonAtomic(path.join(modelDir, 'params.json'), { family, params: tuned.best });
    if (model.ials) {
      await saveMFModel(path.join(modelDir, 'ials'), model.ials, {
        runId: plan.runId,
        modelVersion: plan.modelVersion,
        variant: name,
      });
    }
    const file = path.join(dir, `${name}.parquet`);
    const rows = await writeRecs(plan, (o) => scoreLinearModel(model, data, o), data, candidates, file);
    models.push({ name, kind: 'recs', key: plan.key(file), rows, modelDir: plan.key(modelDir) });
    await plan.persist([plan.key(file), `${plan.key(modelDir)}/`]);
  }
  const tuningFile = path.join(dir, 'tuning.json');
  writeJsonAtomic(tuningFile, {
    family,
    chosen: tuned.best,
    description: describeParams(tuned.best),
    validationScore: tuned.bestScore,
    metric: tuning.metric,
    startedFrom: first ?? null,
    validationUsers: new Set(heldOut.userIdx).size,
    seconds: tuned.seconds,
    stoppedByTime: tuned.stoppedByTime,
    trials: tuned.trials,
  });
  await plan.persist([plan.key(tuningFile)]);
  return {
    backend: `tfjs-${selection.name}`,
    device: selection.device,
    models,
    champion: null,
    resumed: [],
    tuning: {
      family,
      params: tuned.best as unknown as Record<string, unknown>,
      description: describeParams(tuned.best),
      validationScore: tuned.bestScore,
      metric: tuning.metric,
      trials: tuned.trials.length,
      seconds: tuned.seconds,
      stoppedByTime: tuned.stoppedByTime,
      warmStarted: first !== undefined,
      report: plan.key(tuningFile),
    },
  };
}

/** The champion's iALS factors (eval and full variants), when it is of this family and has them. */
async function championFactors(
  plan: TrainContext,
  champion: ModelRecord | null,
  family: string,
): Promise<{ eval: MFModel; full: MFModel } | undefined> {
  if (!champion || champion.model !== family || !champion.modelDirs) return undefined;
  const load = async (key: string) => {
    const dir = path.join(await plan.localDir(key), 'ials');
    return fs.existsSync(dir) ? (await loadMFModel(dir)).model : undefined;
  };
  try {
    const [e, f] = [await load(champion.modelDirs.eval), await load(champion.modelDirs.full)];
    return e && f ? { eval: e, full: f } : undefined;
  } catch (err) {
    // A champion's factors that cannot be read only cost the warm start.
    log('champion factors not loaded', { error: (err as Error).message });
    return undefined;
  }
}
