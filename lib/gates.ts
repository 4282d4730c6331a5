import type { GateCheck, ModelMetrics } from '../workflows/types';
import type { Interval } from './bootstrap';

/**
 * The promotion decision, as TFX's Evaluator "blessing": every check has a measured value and a threshold,
 * and the challenger is promoted only if all pass. Pure: evaluation computes the inputs.
 */
export interface GateInputs {
  k: number;
  challenger: string;
  metrics: Record<string, ModelMetrics>;
  /** Paired bootstrap interval of challenger − champion NDCG, when a champion exists. */
  vsChampion?: { version: string; ndcg: number; diff: Interval };
  gates: {
    minimums: Partial<Record<string, number>>;
    maxRegression: number;
    mostPopMargin: number;
  };
}

/**
 * With privacy on, evaluation also scores MostPop trained on the exact training counts under this name: the
 * reference a challenger must beat (the noisy MostPop beside it is weaker, so beating that proves nothing).
 */
export const EXACT_MOSTPOP = 'mostpop-exact';

export function decideGates(i: GateInputs): { decision: 'promote' | 'reject'; checks: GateCheck[] } {
  const m = i.metrics[i.challenger] ?? {};
  const at = (name: string) => (name === 'coverage' ? 'coverage' : `${name}@${i.k}`);
  const checks: GateCheck[] = [];
  for (const [name, min] of Object.entries(i.gates.minimums)) {
    const value = m[at(name)] ?? 0;
    checks.push({
      name: `${i.challenger} ${at(name)} >= minimum`,
      value,
      threshold: min!,
      passed: value >= min!,
    });
  }
  const ndcg = m[`ndcg@${i.k}`] ?? 0;
  const exact = i.metrics[EXACT_MOSTPOP];
  const pop = (exact ?? i.metrics['mostpop'])?.[`ndcg@${i.k}`] ?? 0;
  const popThreshold = pop * (1 + i.gates.mostPopMargin);
  checks.push({
    name: `${i.challenger} ndcg@${i.k} beats ${exact ? 'non-private mostpop (exact counts)' : 'mostpop'} by ${(i.gates.mostPopMargin * 100).toFixed(0)}%`,
    value: ndcg,
    threshold: popThreshold,
    passed: ndcg >= popThreshold,
  });
  if (i.vsChampion) {
    // Reject only when the whole interval of the difference lies below the tolerated drop: noise alone
    // must not block a retrain, and a real regression must not slip through.
    const tolerated = -i.gates.maxRegression * i.vsChampion.ndcg;
    checks.push({
      name: `${i.challenger} ndcg@${i.k} − champion ${i.vsChampion.version} (95% CI upper bound) >= −${(i.gates.maxRegression * 100).toFixed(0)}%`,
      value: i.vsChampion.diff.high,
      threshold: tolerated,
      passed: i.vsChampion.diff.high >= tolerated,
      ci: [i.vsChampion.diff.low, i.vsChampion.diff.high],
    });
  }
  return { decision: checks.every((c) => c.passed) ? 'promote' : 'reject', checks };
}
