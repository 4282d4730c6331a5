/**
 * Scoring an EASE model: per block of users, their history rows over the kept items (densified per block by
 * scoreLinear, never users x items) times B. Optionally recency-weighted at scoring time: each history row counts
 * exp(-age / tau), so recent items drive the list; tau = Infinity is plain EASE. The model is unchanged (B is
 * fitted on the unweighted X); only the user rows differ, which on time-ordered holdouts is where knowing
 * timestamps pays.
 *
 * Ages are measured back from each user's latest interaction, not from the run's cutoff: scores are linear in the
 * row (binary and linear transforms), so the two give the same ranking (the cutoff's version only multiplies a
 * user's row by exp(-(cutoff - latest) / tau)), but a user inactive for years would underflow to an all-zero row
 * with a short tau.
 */
import type { EASEInteractions, EASEModel } from './ease';
import { scoreLinear, type LinearScorer, type ScoreOptions, type ScoreStats } from './score';
import { buildCSR, type CSR } from './sparse';

export interface EASEHistory extends EASEInteractions {
  /** Interaction times in seconds (needed when tauDays is finite). */
  timestamps?: ArrayLike<number>;
}

export interface EASEScoringOptions {
  /** Recency time constant in days; Infinity (default) = plain EASE. */
  tauDays?: number;
}

/** exp(-(latest_u - t) / tau) per interaction (latest_u: the user's newest timestamp); ones for tau = Infinity. */
export function recencyDecay(
  userIdx: Int32Array,
  timestamps: ArrayLike<number>,
  numUsers: number,
  tauDays: number,
): Float64Array {
  const n = timestamps.length;
  const out = new Float64Array(n).fill(1);
  if (!Number.isFinite(tauDays)) return out;
  if (!(tauDays > 0)) throw new Error('tauDays must be > 0');
  if (userIdx.length !== n) throw new Error('recencyDecay: one timestamp per interaction');
  const latest = new Float64Array(numUsers).fill(-Infinity);
  for (let k = 0; k < n; k++) latest[userIdx[k]] = Math.max(latest[userIdx[k]], timestamps[k]);
  const tau = tauDays * 86400;
  for (let k = 0; k < n; k++) out[k] = Math.exp(-(latest[userIdx[k]] - timestamps[k]) / tau);
  return out;
}

/** The history as a user x kept-column CSR with the model's value transform (and recency decay). */
export function easeHistoryRows(model: EASEModel, history: EASEHistory, opts: EASEScoringOptions = {}): CSR {
  if (history.numItems !== model.numItems)
    throw new Error(`history has ${history.numItems} items, the model ${model.numItems}`);
  const tau = opts.tauDays ?? Infinity;
  let decay: Float64Array | undefined;
  if (Number.isFinite(tau)) {
    if (!history.timestamps) throw new Error('recency-weighted EASE scoring needs history timestamps');
    decay = recencyDecay(history.userIdx, history.timestamps, history.numUsers, tau);
  }
  const colOf = new Int32Array(model.numItems).fill(-1);
  model.items.forEach((g, c) => (colOf[g] = c));
  return buildCSR(history.userIdx, history.itemIdx, history.weight, history.numUsers, history.numItems, {
    transform: model.transform,
    colOf,
    numCols: model.items.length,
    decay,
  });
}

/** A LinearScorer whose user rows are sliced per block from `rows` (easeHistoryRows). */
export function easeScorer(model: EASEModel, rows: CSR): LinearScorer {
  const k = model.items.length;
  if (rows.numCols !== k) throw new Error(`history rows have ${rows.numCols} columns, the model ${k}`);
  return {
    numUsers: rows.numRows,
    numItems: model.numItems,
    dim: k,
    itemMatrix: model.weights,
    columns: model.items,
    userRows: (users) => {
      const ptr = new Int32Array(users.length + 1);
      for (let r = 0; r < users.length; r++)
        ptr[r + 1] = ptr[r] + rows.ptr[users[r] + 1] - rows.ptr[users[r]];
      const cols = new Int32Array(ptr[users.length]);
      const vals = new Float32Array(ptr[users.length]);
      for (let r = 0; r < users.length; r++) {
        const a = rows.ptr[users[r]];
        const b = rows.ptr[users[r] + 1];
        cols.set(rows.idx.subarray(a, b), ptr[r]);
        vals.set(rows.val.subarray(a, b), ptr[r]);
      }
      return { ptr, cols, vals };
    },
  };
}

/**
 * Top-N EASE recommendations per user (seen items excluded through opts.exclude as for scoreAll). Users without
 * any kept item in their history get -1-padded lists: the caller's popular backfill covers them, as it covers
 * items outside the model.
 */
export async function scoreEASE(
  model: EASEModel,
  history: EASEHistory,
  opts: ScoreOptions & EASEScoringOptions,
): Promise<ScoreStats> {
  return scoreLinear(easeScorer(model, easeHistoryRows(model, history, opts)), opts);
}
