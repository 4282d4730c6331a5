/**
 * Budgeted tuning of the linear family (linear.ts) on a validation split carved from the training period, in three
 * phases that share one wall-clock budget:
 *
 * 1. EASE: a local search over the lambda grid from a starting value (the champion's, else the configured start),
 *    moving while the validation score improves (EASE's validation curve over log lambda is unimodal in practice,
 *    so 3-4 fits usually find the grid's best; a closed form has no partial budget to halve). Each fit is rescored
 *    at every recency tau (scoring only). The signal (all pairs / positives only) is searched the same way when the
 *    data has non-positive pairs.
 * 2. iALS: successive halving (tuning.ts) over factors x regularization x alpha, the budget being the share of the
 *    iterations; on the signal EASE chose (both signals when EASE is not part of the family).
 * 3. Blend: the two best models fitted once and rescored for every beta (and tau): beta 0 is EASE alone, and iALS
 *    alone competes with its phase-2 score.
 *
 * A nightly run passes the champion's parameters as `first`: the EASE search starts there and iALS only tries the
 * champion's grid neighbours, so a settled dataset costs a few fits. Every trial is recorded (phase, params, budget,
 * score, seconds) for the registry and the run report. Phases past the budget are skipped (the result says so);
 * the first EASE or iALS trial always runs, so there is always a model.
 */
import { userMetrics } from '../evaluation/ranking-metrics';
import type { HeldOut } from './metrics';
import { fitLinear, scoreLinearModel, type LinearData, type LinearModel, type LinearParams } from './linear';
import type { EaseParams, IalsParams, Signal } from './linear';
import { grid, successiveHalving } from './tuning';

export type LinearFamily = 'ease' | 'ials' | 'blend';

export interface LinearSearchSpace {
  family: LinearFamily;
  signals: Signal[];
  ease: { lambdas: number[]; startLambda: number; tauDays: number[]; maxItems: number };
  ials: { factors: number[]; regularization: number[]; alpha: number[]; iterations: number };
  betas: number[];
}

export interface LinearTrial {
  phase: 'ease' | 'ials' | 'blend';
  params: LinearParams;
  /** Share of the full training budget (iALS iterations); 1 for EASE and the blend. */
  budget: number;
  /** Validation metric; NaN when the trial failed. */
  score: number;
  seconds: number;
  error?: string;
}

export interface TuneLinearInput {
  /** Training rows of the validation split. */
  fit: LinearData;
  /** Validation targets: the held-out positive pairs. */
  heldOut: HeldOut;
  space: LinearSearchSpace;
  k: number;
  metric: 'ndcg' | 'recall';
  timeBudgetMs: number;
  /** The champion's parameters (a nightly run), tried first. */
  first?: LinearParams;
  seed: number;
  onTrial?: (trial: LinearTrial, trials: number) => void | Promise<void>;
  signal?: AbortSignal;
  now?: () => number;
}

export interface TuneLinearResult {
  best: LinearParams;
  bestScore: number;
  trials: LinearTrial[];
  /** A phase was cut short or skipped by the time budget. */
  stoppedByTime: boolean;
  seconds: number;
}

/** Mean validation metric of a model's top-k lists over the held-out users. */
export async function validationScore(
  model: LinearModel,
  fit: LinearData,
  heldOut: HeldOut,
  k: number,
  metric: 'ndcg' | 'recall',
): Promise<number> {
  const sets = new Map<number, Set<number>>();
  for (let q = 0; q < heldOut.userIdx.length; q++) {
    const u = heldOut.userIdx[q];
    let s = sets.get(u);
    if (!s) sets.set(u, (s = new Set()));
    s.add(heldOut.itemIdx[q]);
  }
  if (sets.size === 0) return 0;
  const users = Int32Array.from([...sets.keys()].sort((a, b) => a - b));
  let total = 0;
  await scoreLinearModel(model, fit, {
    topN: k,
    users,
    onBlock: (b) => {
      for (let r = 0; r < b.users.length; r++) {
        const list = Array.from(b.items.subarray(r * k, (r + 1) * k)).filter((i) => i >= 0);
        const m = userMetrics(list, sets.get(b.users[r]) as Set<number>, k, fit.numItems);
        total += metric === 'recall' ? m.recall : m.ndcg;
      }
    },
  });
  return total / users.length;
}

/** The grid values next to `v` (and v's nearest grid value itself). */
export function neighbours(values: readonly number[], v: number): number[] {
  const sorted = [...values].sort((a, b) => a - b);
  let at = 0;
  for (let i = 1; i < sorted.length; i++)
    if (Math.abs(Math.log(sorted[i] / v)) < Math.abs(Math.log(sorted[at] / v))) at = i;
  return sorted.slice(Math.max(0, at - 1), at + 2);
}

const nearestIndex = (values: readonly number[], v: number) =>
  values.reduce(
    (best, x, i) =>
      Math.abs(Math.log(Math.max(x, 1e-12) / v)) < Math.abs(Math.log(Math.max(values[best], 1e-12) / v))
        ? i
        : best,
    0,
  );

/**
 * The parameters used without a search: the champion's, else the search's starting point (EASE at startLambda
 * without recency, iALS at the grids' middle values, beta from the middle of its grid).
 */
export function defaultParams(space: LinearSearchSpace, first?: LinearParams): LinearParams {
  if (first) return first;
  const mid = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor((v.length - 1) / 2)];
  const ease: EaseParams = {
    signal: space.signals[0],
    lambda: space.ease.lambdas[nearestIndex(space.ease.lambdas, space.ease.startLambda)],
    tauDays: 0,
    maxItems: space.ease.maxItems,
  };
  const ials: IalsParams = {
    signal: space.signals[0],
    factors: mid(space.ials.factors),
    regularization: mid(space.ials.regularization),
    alpha: mid(space.ials.alpha),
    iterations: space.ials.iterations,
  };
  if (space.family === 'ease') return { ease, ials: null, beta: 0 };
  if (space.family === 'ials') return { ease: null, ials, beta: 0 };
  return { ease, ials, beta: mid(space.betas) };
}

export async function tuneLinear(input: TuneLinearInput): Promise<TuneLinearResult> {
  const now = input.now ?? (() => performance.now());
  const start = now();
  if (input.heldOut.userIdx.length === 0) {
    // Nothing to validate on (e.g. no user has a positive in the validation period): searching would compare
    // zeros. The champion's settings, else the search's starting point, stand.
    return {
      best: defaultParams(input.space, input.first),
      bestScore: NaN,
      trials: [],
      stoppedByTime: false,
      seconds: 0,
    };
  }
  const { space, fit, heldOut, k, metric } = input;
  const trials: LinearTrial[] = [];
  let stoppedByTime = false;
  const elapsed = () => now() - start;
  const record = async (t: LinearTrial) => {
    trials.push(t);
    await input.onTrial?.(t, trials.length);
  };
  const score = (m: LinearModel) => validationScore(m, fit, heldOut, k, metric);
  const useEase = space.family !== 'ials';
  const useIals = space.family !== 'ease';
  // Phase deadlines: EASE may take ~45% of the budget, iALS until 90%, the blend the rest.
  const easeDeadline = space.family === 'ease' ? 1 : 0.45;
  const ialsDeadline = space.family === 'ials' ? 1 : 0.9;

  // --- 1. EASE
  // Bests so far, in a holder (assigned inside the trial closures).
  const best: {
    ease: { params: EaseParams; score: number; model: LinearModel } | null;
    ials: { params: IalsParams; score: number; model: LinearModel } | null;
  } = { ease: null, ials: null };
  if (useEase) {
    const lambdas = [...space.ease.lambdas].sort((a, b) => a - b);
    const fitted = new Map<string, number>(); // signal:lambda -> best score over tau
    const tryLambda = async (signal: Signal, li: number): Promise<number> => {
      const key = `${signal}:${lambdas[li]}`;
      const known = fitted.get(key);
      if (known !== undefined) return known;
      if (best.ease && elapsed() >= easeDeadline * input.timeBudgetMs) {
        stoppedByTime = true;
        return -Infinity;
      }
      const t0 = now();
      const base: EaseParams = {
        signal,
        lambda: lambdas[li],
        tauDays: 0,
        maxItems: space.ease.maxItems,
      };
      let model: LinearModel;
      try {
        model = await fitLinear(fit, { ease: base, ials: null, beta: 0 }, { signal: input.signal });
      } catch (e) {
        await record(failed('ease', { ease: base, ials: null, beta: 0 }, e, now() - t0));
        fitted.set(key, -Infinity);
        return -Infinity;
      }
      let bestHere = -Infinity;
      const taus = [...new Set([input.first?.ease?.tauDays ?? 0, ...space.ease.tauDays])];
      for (const [ti, tauDays] of taus.entries()) {
        const t1 = ti === 0 ? t0 : now();
        const params: EaseParams = { ...base, tauDays };
        const m: LinearModel = { ...model, params: { ease: params, ials: null, beta: 0 } };
        const s = await score(m);
        await record({
          phase: 'ease',
          params: m.params,
          budget: 1,
          score: s,
          seconds: (now() - t1) / 1000,
        });
        bestHere = Math.max(bestHere, s);
        if (!best.ease || s > best.ease.score) best.ease = { params, score: s, model: m };
      }
      fitted.set(key, bestHere);
      return bestHere;
    };
    const localSearch = async (signal: Signal, from: number): Promise<void> => {
      let at = from;
      let here = await tryLambda(signal, at);
      for (;;) {
        const down = at > 0 ? await tryLambda(signal, at - 1) : -Infinity;
        const up = at < lambdas.length - 1 ? await tryLambda(signal, at + 1) : -Infinity;
        if (down <= here && up <= here) return;
        at = up > down ? at + 1 : at - 1;
        here = Math.max(up, down);
      }
    };
    const signals = orderSignals(space.signals, input.first?.ease?.signal);
    const startAt = nearestIndex(lambdas, input.first?.ease?.lambda ?? space.ease.startLambda);
    await localSearch(signals[0], startAt);
    for (const other of signals.slice(1)) {
      // The other signal at the best lambda so far; searched further only if it wins there.
      const at = nearestIndex(lambdas, best.ease?.params.lambda ?? lambdas[startAt]);
      const before = best.ease?.score ?? -Infinity;
      const s = await tryLambda(other, at);
      if (s > before) await localSearch(other, at);
    }
  }

  // --- 2. iALS
  if (useIals && (!useEase || elapsed() < ialsDeadline * input.timeBudgetMs || best.ease === null)) {
    const firstIals = input.first?.ials ?? undefined;
    const axis = (values: number[], v: number | undefined) =>
      v === undefined ? values : neighbours(values, v);
    const signals = useEase && best.ease ? [best.ease.params.signal] : space.signals;
    const candidates = grid<IalsParams>({
      signal: signals,
      factors: firstIals ? [firstIals.factors] : space.ials.factors,
      regularization: axis(space.ials.regularization, firstIals?.regularization),
      alpha: axis(space.ials.alpha, firstIals?.alpha),
      iterations: [space.ials.iterations],
    });
    const deadline = ialsDeadline * input.timeBudgetMs - elapsed();
    const halving = await successiveHalving<IalsParams>({
      candidates,
      first:
        firstIals && signals.includes(firstIals.signal)
          ? [{ ...firstIals, iterations: space.ials.iterations }]
          : [],
      seed: input.seed,
      // At least one trial, however little time is left (a family without EASE needs a model).
      timeBudgetMs: Math.max(1, deadline),
      now,
      trial: async (params, budget) => {
        const iterations = Math.max(1, Math.round(params.iterations * budget));
        const p: LinearParams = { ease: null, ials: { ...params, iterations }, beta: 0 };
        const t0 = now();
        try {
          const model = await fitLinear(fit, p, { seed: input.seed, signal: input.signal });
          const s = await score(model);
          await record({ phase: 'ials', params: p, budget, score: s, seconds: (now() - t0) / 1000 });
          if (budget >= 1 && (!best.ials || s > best.ials.score))
            best.ials = { params: p.ials as IalsParams, score: s, model };
          return s;
        } catch (e) {
          await record(failed('ials', p, e, now() - t0, budget));
          throw e;
        }
      },
    });
    if (halving.stoppedByTime) stoppedByTime = true;
  } else if (useIals) {
    stoppedByTime = true;
  }

  // --- 3. Blend
  type Choice = { params: LinearParams; score: number };
  const choices: Choice[] = [];
  const { ease: e, ials: i } = best;
  if (e) choices.push({ params: { ease: e.params, ials: null, beta: 0 }, score: e.score });
  if (i) choices.push({ params: { ease: null, ials: i.params, beta: 0 }, score: i.score });
  if (space.family === 'blend' && e && i) {
    const betas = [...new Set([input.first?.beta ?? 0, ...space.betas])].filter((b) => b > 0);
    // EASE's tuned recency, and none: the iALS part already carries long-term taste, so the blend may want less.
    const taus = [...new Set([e.params.tauDays, 0])];
    for (const beta of betas) {
      for (const tauDays of taus) {
        if (elapsed() >= input.timeBudgetMs) {
          stoppedByTime = true;
          break;
        }
        const params: LinearParams = { ease: { ...e.params, tauDays }, ials: i.params, beta };
        const t0 = now();
        const s = await score({ params, ease: e.model.ease, ials: i.model.ials });
        await record({ phase: 'blend', params, budget: 1, score: s, seconds: (now() - t0) / 1000 });
        choices.push({ params, score: s });
      }
    }
  }
  if (choices.length === 0) throw new Error('tuning produced no model: every trial failed');
  // The best score; ties go to the simpler model (the earlier choice).
  const chosen = choices.reduce((a, b) => (b.score > a.score ? b : a));
  return {
    best: chosen.params,
    bestScore: chosen.score,
    trials,
    stoppedByTime,
    seconds: elapsed() / 1000,
  };
}

function orderSignals(signals: Signal[], first: Signal | undefined): Signal[] {
  if (!first || !signals.includes(first)) return signals;
  return [first, ...signals.filter((s) => s !== first)];
}

function failed(
  phase: LinearTrial['phase'],
  params: LinearParams,
  e: unknown,
  ms: number,
  budget = 1,
): LinearTrial {
  return {
    phase,
    params,
    budget,
    score: NaN,
    seconds: ms / 1000,
    error: e instanceof Error ? e.message : String(e),
  };
}
