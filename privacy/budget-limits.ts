import type { RecforgeConfig } from '../lib/config';
import type { BudgetLimits } from './budget';

/** The ledger limits from config: per window and over the unit's lifetime. */
export function budgetLimits(config: RecforgeConfig): BudgetLimits {
  const b = config.privacy.budget;
  return {
    window: { kind: b.window, epsilon: b.epsilon, delta: b.delta },
    lifetime: { epsilon: b.lifetime.epsilon, delta: b.lifetime.delta },
  };
}
