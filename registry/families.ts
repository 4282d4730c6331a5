import type { ModelArtifact } from '../contracts/stages';

/**
 * How a registered model family is scored from its artifact: the baselines by their own SQL (MostPop's counts,
 * item-item's neighbour table), learned models from their precomputed candidate lists (`recs`).
 */
export function kindOfFamily(model: string): ModelArtifact['kind'] {
  if (model === 'mostpop' || model === 'itemitem') return model;
  if (LEARNED_FAMILIES.includes(model)) return 'recs';
  throw new Error(`unknown model family '${model}' in the registry`);
}

/** Families trained in TensorFlow.js or typed arrays, scored into candidate lists. */
export const LEARNED_FAMILIES: readonly string[] = ['mf', 'two-tower', 'ease', 'ials', 'blend'];
