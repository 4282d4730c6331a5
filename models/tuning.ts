/**
 * Budgeted hyperparameter search by successive halving (Jamieson & Talwalkar 2016): every candidate of a discrete
 * grid is tried at a small budget, the best 1/eta go on at eta times the budget, and so on until one candidate has
 * run at the full budget. The caller's `trial(params, budgetFraction)` decides what a budget means (epochs, ALS
 * sweeps, a share of the validation users) and returns a validation score, higher is better.
 *
 * Pure and deterministic given the seed (the evaluation order and any sampling of a large grid come from it) and the
 * trial's scores; a wall-clock budget stops it between trials (the clock is injectable for tests). Every trial is
 * recorded with its params, budget, score and seconds, for the registry and the run report. A trial repeated at a
 * budget it already ran at (e.g. minBudget = 1: a plain grid search) is not run again.
 */
import { Rng } from './rng';

export interface TrialRecord<P> {
  params: P;
  /** Budget fraction in (0, 1]. */
  budget: number;
  /** Rung index (0 = smallest budget). */
  rung: number;
  /** Validation score (higher is better); NaN when the trial failed. */
  score: number;
  seconds: number;
  error?: string;
}

export interface HalvingOptions<P> {
  /** The discrete grid (see grid()). */
  candidates: readonly P[];
  trial: (params: P, budgetFraction: number) => Promise<number>;
  /** Keep the best 1/eta of each rung (default 3). */
  eta?: number;
  /** The first rung's budget fraction (default: eta^-(rungs - 1), so the last rung runs at 1). */
  minBudget?: number;
  /** Try at most this many candidates: `first` plus a seeded sample of the rest. */
  maxCandidates?: number;
  /** Start no trial after this many milliseconds (the running one finishes). */
  timeBudgetMs?: number;
  seed?: number;
  /** Candidates always tried, ahead of the rest (e.g. the champion's settings on a nightly run). */
  first?: readonly P[];
  /**
   * Evaluation order: 'seeded' (default) shuffles the candidates with the seed; 'given' keeps the grid's order, so
   * neighbours that share an expensive part (an EASE fit shared by several scoring-time settings) run back to back.
   */
  order?: 'seeded' | 'given';
  now?: () => number;
}

export interface HalvingResult<P> {
  /** The best trial at the largest budget reached (ties: the earlier trial); undefined if none succeeded. */
  best: TrialRecord<P> | undefined;
  trials: TrialRecord<P>[];
  stoppedByTime: boolean;
  rungs: number;
}

/** The cartesian product of the axes, in axis order (the last axis varies fastest). */
export function grid<P extends Record<string, unknown>>(axes: { [K in keyof P]: readonly P[K][] }): P[] {
  let out: Record<string, unknown>[] = [{}];
  for (const [key, values] of Object.entries(axes) as [string, readonly unknown[]][]) {
    if (values.length === 0) throw new Error(`grid: axis '${key}' has no values`);
    out = out.flatMap((p) => values.map((v) => ({ ...p, [key]: v })));
  }
  return out as P[];
}

const keyOf = (p: unknown): string => JSON.stringify(p);

function candidateList<P>(opts: HalvingOptions<P>, rng: Rng): P[] {
  const seen = new Set<string>();
  const first: P[] = [];
  const rest: P[] = [];
  const add = (p: P, to: P[]): void => {
    if (seen.has(keyOf(p))) return;
    seen.add(keyOf(p));
    to.push(p);
  };
  for (const p of opts.first ?? []) add(p, first);
  for (const p of opts.candidates) add(p, rest);
  for (let i = opts.order === 'given' ? 0 : rest.length - 1; i > 0; i--) {
    const j = rng.nextInt(i + 1);
    [rest[i], rest[j]] = [rest[j], rest[i]];
  }
  const max = Math.max(first.length, opts.maxCandidates ?? Infinity);
  return [...first, ...rest].slice(0, max);
}

export async function successiveHalving<P>(opts: HalvingOptions<P>): Promise<HalvingResult<P>> {
  const eta = opts.eta ?? 3;
  if (!(eta > 1)) throw new Error('successiveHalving: eta must be > 1');
  const now = opts.now ?? (() => performance.now());
  const start = now();
  const candidates = candidateList(opts, new Rng(opts.seed ?? 1));
  const rungs =
    candidates.length <= 1 ? 1 : Math.ceil(Math.log(candidates.length) / Math.log(eta) - 1e-9) + 1;
  const minBudget = opts.minBudget ?? Math.pow(eta, -(rungs - 1));
  if (!(minBudget > 0 && minBudget <= 1)) throw new Error('successiveHalving: minBudget must be in (0, 1]');
  const trials: TrialRecord<P>[] = [];
  const done = new Map<string, TrialRecord<P>>();
  let stoppedByTime = false;
  let best: TrialRecord<P> | undefined;
  let alive = candidates.map((params, order) => ({ params, order }));

  for (let rung = 0; rung < rungs && alive.length > 0 && !stoppedByTime; rung++) {
    const budget = rung === rungs - 1 ? 1 : Math.min(1, minBudget * Math.pow(eta, rung));
    const scored: { params: P; order: number; score: number; rec: TrialRecord<P> }[] = [];
    for (const c of alive) {
      const key = `${keyOf(c.params)}@${budget}`;
      let rec = done.get(key);
      if (!rec) {
        if (opts.timeBudgetMs !== undefined && now() - start >= opts.timeBudgetMs) {
          stoppedByTime = true;
          break;
        }
        const t0 = now();
        let score = NaN;
        let error: string | undefined;
        try {
          score = await opts.trial(c.params, budget);
        } catch (e) {
          error = e instanceof Error ? e.message : String(e);
        }
        rec = {
          params: c.params,
          budget,
          rung,
          score,
          seconds: (now() - t0) / 1000,
          ...(error ? { error } : {}),
        };
        done.set(key, rec);
        trials.push(rec);
      }
      scored.push({ ...c, score: Number.isNaN(rec.score) ? -Infinity : rec.score, rec });
    }
    if (scored.length === 0) break;
    scored.sort((a, b) => b.score - a.score || a.order - b.order);
    // The best of the highest rung that produced a score; a rung cut short by time still counts what it ran.
    if (scored[0].score > -Infinity && (!best || budget >= best.budget)) best = scored[0].rec;
    alive = scored
      .slice(0, Math.max(1, Math.ceil(scored.length / eta)))
      .map(({ params, order }) => ({ params, order }));
  }
  return { best, trials, stoppedByTime, rungs };
}
