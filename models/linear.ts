/**
 * The linear model family the pipeline tunes by default: EASE (a closed-form item-item model), iALS (implicit
 * matrix factorisation) and their blend, score = x_u B + beta (p_u . q_i) (blend.ts). One parameter record says
 * which parts a model has; fitting and scoring follow it, so a tuned choice of "EASE alone", "iALS alone" or "a
 * blend" is one type that the registry stores and a nightly run starts its search from.
 *
 * The interactions are (user, item) pairs with the latest and first time of the pair and whether any of its events
 * is a positive (analytics/positive.sql.ts). Each part learns from a `signal`: every pair, or the positive pairs
 * only (ratings at or above the dataset's threshold); which one wins is for validation to say.
 */
import { fitEASE, type EASEModel } from './ease';
import { easeHistoryRows, easeScorer } from './ease-score';
import { easeBlendScorer } from './blend';
import { trainIALS } from './ials';
import { buildUserItemsCSR, type MFModel } from './mf';
import { scoreAll, scoreLinear, type ScoreOptions, type ScoreStats } from './score';
import { growEmbeddings } from './warm-start';
import type { TrainHooks } from './trainer';

export type Signal = 'all' | 'positive';

export type EaseParams = {
  signal: Signal;
  lambda: number;
  /** Scoring-time recency constant in days; 0: every history item counts the same (plain EASE). */
  tauDays: number;
  /** The most popular items the model covers. */
  maxItems: number;
};

export type IalsParams = {
  signal: Signal;
  factors: number;
  regularization: number;
  alpha: number;
  iterations: number;
};

/** A linear model's parts: EASE, iALS or both (then `beta` weighs iALS against EASE). */
export interface LinearParams {
  ease: EaseParams | null;
  ials: IalsParams | null;
  /** Weight of the iALS score beside EASE's; only meaningful when both parts are present. */
  beta: number;
}

export interface LinearData {
  userIdx: Int32Array;
  itemIdx: Int32Array;
  /** Latest event of the pair, epoch seconds (recency weighting, history order). */
  timestamps: Float64Array;
  /** First event of the pair (validation split: pairs new in the validation period). */
  firstTimestamps: Float64Array;
  /** 1 when any event of the pair is a positive. */
  positive: Uint8Array;
  numUsers: number;
  numItems: number;
}

export interface LinearModel {
  params: LinearParams;
  ease: EASEModel | null;
  ials: MFModel | null;
}

/** Whether the data has pairs that are not positives (explicit ratings below the threshold). */
export function hasNegatives(d: LinearData): boolean {
  for (let k = 0; k < d.positive.length; k++) if (d.positive[k] === 0) return true;
  return false;
}

/** The pairs a signal learns from (every pair, or the positives), as the models' interaction arrays. */
export function signalRows(d: LinearData, signal: Signal) {
  if (signal === 'all') {
    return {
      userIdx: d.userIdx,
      itemIdx: d.itemIdx,
      timestamps: d.timestamps,
      numUsers: d.numUsers,
      numItems: d.numItems,
    };
  }
  const keep: number[] = [];
  for (let k = 0; k < d.positive.length; k++) if (d.positive[k]) keep.push(k);
  return {
    userIdx: Int32Array.from(keep, (k) => d.userIdx[k]),
    itemIdx: Int32Array.from(keep, (k) => d.itemIdx[k]),
    timestamps: Float64Array.from(keep, (k) => d.timestamps[k]),
    numUsers: d.numUsers,
    numItems: d.numItems,
  };
}

/** A short readable name of the parameters (run summary, logs). */
export function describeParams(p: LinearParams): string {
  const parts: string[] = [];
  if (p.ease)
    parts.push(
      `EASE(${p.ease.signal}, lambda ${p.ease.lambda}${p.ease.tauDays > 0 ? `, tau ${p.ease.tauDays}d` : ''})`,
    );
  if (p.ials)
    parts.push(
      `${p.ease ? `${p.beta} x ` : ''}iALS(${p.ials.signal}, ${p.ials.factors} factors, lambda ${p.ials.regularization}, alpha ${p.ials.alpha})`,
    );
  return parts.join(' + ');
}

export interface FitLinearOptions {
  /** Warm start of the iALS part (a champion's factors), grown to this data's tables when it is smaller. */
  warmIals?: MFModel;
  seed?: number;
  hooks?: TrainHooks<MFModel>;
  /** Between the parts' expensive steps. */
  onPhase?: (phase: 'ease' | 'ials') => void | Promise<void>;
  /**
   * Within a part: EASE's Gram matrix and inverse (percent of the inverse's work), iALS' iterations (with the
   * loss). Called from the fitting loops, so often enough for heartbeats.
   */
  onProgress?: (p: LinearFitProgress) => void | Promise<void>;
  signal?: AbortSignal;
}

export interface LinearFitProgress {
  part: 'ease' | 'ials';
  phase: string;
  done: number;
  total: number;
  unit: string;
  loss?: number;
}

/** Fits the parts the params name on the data. */
export async function fitLinear(
  data: LinearData,
  params: LinearParams,
  opts: FitLinearOptions = {},
): Promise<LinearModel> {
  if (!params.ease && !params.ials) throw new Error('a linear model needs EASE, iALS or both');
  let ease: EASEModel | null = null;
  if (params.ease) {
    await opts.onPhase?.('ease');
    ease = (
      await fitEASE(
        signalRows(data, params.ease.signal),
        { lambda: params.ease.lambda, maxItems: params.ease.maxItems },
        {
          signal: opts.signal,
          onProgress: opts.onProgress
            ? (p) =>
                opts.onProgress?.({
                  part: 'ease',
                  phase: p.phase,
                  done: Math.round(1000 * p.fraction) / 10,
                  total: 100,
                  unit: '%',
                })
            : undefined,
        },
      )
    ).model;
  }
  let ials: MFModel | null = null;
  if (params.ials) {
    await opts.onPhase?.('ials');
    const rows = signalRows(data, params.ials.signal);
    const warm = opts.warmIals && usableWarmStart(opts.warmIals, data, params.ials);
    const result = await trainIALS(
      { ...rows, weight: undefined },
      {
        factors: params.ials.factors,
        regularization: params.ials.regularization,
        alpha: params.ials.alpha,
        iterations: params.ials.iterations,
        transform: 'binary',
        seed: opts.seed ?? 7,
      },
      opts.onProgress
        ? {
            ...opts.hooks,
            onProgress: async (p) => {
              await opts.hooks?.onProgress?.(p);
              await opts.onProgress?.({
                part: 'ials',
                phase: 'iterations',
                done: p.step,
                total: p.totalSteps,
                unit: 'iterations',
                loss: p.loss,
              });
            },
          }
        : (opts.hooks ?? {}),
      warm ? { initialWeights: warm } : {},
    );
    ials = result.model;
  }
  return { params, ease, ials };
}

/** The champion's factors grown to this data's users and items, or undefined when they cannot be reused. */
function usableWarmStart(m: MFModel, data: LinearData, p: IalsParams): MFModel | undefined {
  if (m.dim !== p.factors || m.numUsers > data.numUsers || m.numItems > data.numItems) return undefined;
  const grown =
    m.numUsers === data.numUsers && m.numItems === data.numItems
      ? m
      : growEmbeddings(m, data.numUsers, data.numItems, 7);
  // iALS has no item bias: a bias grown onto the table would be ignored, so drop it.
  return { ...grown, itemBias: undefined };
}

/**
 * Top-N lists of a fitted model for `users` (default: every user with history), from the users' history in
 * `history` (the EASE part reads the history of its own signal; seen items of any signal are excluded).
 */
export async function scoreLinearModel(
  model: LinearModel,
  history: LinearData,
  opts: Omit<ScoreOptions, 'exclude'>,
): Promise<ScoreStats> {
  const exclude = buildUserItemsCSR(history.userIdx, history.itemIdx, history.numUsers);
  const p = model.params;
  if (model.ease && p.ease) {
    const rows = easeHistoryRows(model.ease, signalRows(history, p.ease.signal), {
      tauDays: p.ease.tauDays > 0 ? p.ease.tauDays : Infinity,
    });
    const scorer =
      model.ials && p.beta > 0
        ? easeBlendScorer(model.ease, rows, model.ials, p.beta)
        : easeScorer(model.ease, rows);
    return scoreLinear(scorer, { ...opts, exclude });
  }
  if (model.ials) return scoreAll(model.ials, { ...opts, exclude });
  throw new Error('a linear model needs EASE, iALS or both');
}
