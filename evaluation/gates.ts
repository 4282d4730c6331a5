import type { GateCheck, GateDecision, ModelMetrics } from '../contracts/evaluation';
import type { Interval } from './bootstrap';

/**
 * The promotion decision, as TFX's Evaluator "blessing": every check has a measured value and a threshold,
 * and the challenger is promoted only if all pass. Pure: evaluation computes the inputs.
 *
 * A check never passes on too little evidence: with fewer evaluated users than `gates.minUsers` every
 * metric check fails (0 ≥ 0 is not a win), and beating the baseline needs a positive NDCG.
 */
export interface GateInputs {
  k: number;
  challenger: string;
  metrics: Record<string, ModelMetrics>;
  /** Users the metrics were measured on (users with relevant holdout items). */
  evaluatedUsers: number;
  /**
   * The baseline every challenger must beat: the *non-private* MostPop on the raw holdout, whatever the
   * challenger is (a DP model that cannot beat exact popularity is noise, and publishing it helps nobody).
   */
  baseline: string;
  /** Paired bootstrap interval of challenger − champion NDCG, when a champion exists. */
  vsChampion?: { version: string; ndcg: number; diff: Interval };
  /**
   * How far the published model (refit on all data) agrees with the evaluated one: mean overlap of their
   * top-k lists over the evaluated users. Bounds the difference between what was judged and what ships.
   */
  refit?: { agreement: number; users: number };
  gates: {
    minimums: Partial<Record<string, number>>;
    maxRegression: number;
    mostPopMargin: number;
    minUsers: number;
    minRefitAgreement?: number;
  };
}

/**
 * With privacy on, evaluation also scores MostPop trained on the exact training counts under this name: the
 * baseline a challenger must beat (the noisy MostPop beside it is weaker, so beating that proves nothing).
 */
export const EXACT_MOSTPOP = 'mostpop-exact';

export function decideGates(i: GateInputs): GateDecision {
  const m = i.metrics[i.challenger] ?? {};
  const at = (name: string) => (name === 'coverage' ? 'coverage' : `${name}@${i.k}`);
  const users = i.evaluatedUsers;
  const enoughUsers = users >= i.gates.minUsers;
  const tooFew = enoughUsers
    ? undefined
    : `only ${users} evaluated users (gates.minUsers ${i.gates.minUsers})`;
  const checks: GateCheck[] = [
    {
      name: 'evaluated users >= minimum',
      value: users,
      threshold: i.gates.minUsers,
      passed: enoughUsers,
      users,
      ...(tooFew ? { reason: `${tooFew}: the holdout is too small to judge any model` } : {}),
    },
  ];
  const check = (c: Omit<GateCheck, 'users'>): GateCheck => ({
    ...c,
    users,
    passed: c.passed && enoughUsers,
    ...(!enoughUsers ? { reason: tooFew } : c.reason ? { reason: c.reason } : {}),
  });
  for (const [name, min] of Object.entries(i.gates.minimums)) {
    const value = m[at(name)] ?? 0;
    checks.push(
      check({
        name: `${i.challenger} ${at(name)} >= minimum`,
        value,
        threshold: min!,
        passed: value >= min!,
      }),
    );
  }
  const ndcg = m[`ndcg@${i.k}`] ?? 0;
  const base = i.metrics[i.baseline]?.[`ndcg@${i.k}`];
  const baseThreshold = (base ?? 0) * (1 + i.gates.mostPopMargin);
  checks.push(
    check({
      name: `${i.challenger} ndcg@${i.k} beats ${i.baseline} by ${(i.gates.mostPopMargin * 100).toFixed(0)}%`,
      value: ndcg,
      threshold: baseThreshold,
      passed: base !== undefined && ndcg > 0 && ndcg >= baseThreshold,
      ...(base === undefined
        ? { reason: `baseline ${i.baseline} was not evaluated` }
        : ndcg <= 0
          ? { reason: 'the challenger found no relevant item for any user' }
          : {}),
    }),
  );
  if (i.vsChampion) {
    // Reject only when the whole interval of the difference lies below the tolerated drop: noise alone
    // must not block a retrain, and a real regression must not slip through.
    const tolerated = -i.gates.maxRegression * i.vsChampion.ndcg;
    checks.push(
      check({
        name: `${i.challenger} ndcg@${i.k} − champion ${i.vsChampion.version} (95% CI upper bound) >= −${(i.gates.maxRegression * 100).toFixed(0)}%`,
        value: i.vsChampion.diff.high,
        threshold: tolerated,
        passed: i.vsChampion.diff.high >= tolerated,
        ci: [i.vsChampion.diff.low, i.vsChampion.diff.high],
      }),
    );
  }
  if (i.refit && i.gates.minRefitAgreement !== undefined) {
    checks.push(
      check({
        name: `published ${i.challenger} (refit on all data) agrees with the evaluated one (mean top-${i.k} overlap)`,
        value: i.refit.agreement,
        threshold: i.gates.minRefitAgreement,
        passed: i.refit.users > 0 && i.refit.agreement >= i.gates.minRefitAgreement,
      }),
    );
  }
  return { decision: checks.every((c) => c.passed) ? 'promote' : 'reject', checks };
}
