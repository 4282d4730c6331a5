/**
 * What a run's noise will leave of the signal, estimated from public parameters only — before any budget is
 * reserved or any data read. Pure arithmetic; the pipeline puts the result in the run summary
 * (`privacy.utility`) and may refuse to spend when the co-occurrence counts would be noise.
 *
 * The signal figures are optimistic upper bounds on a *mean* count, not predictions: after bounding each user
 * touches at most P items, so
 *   - the mean distinct-user count per catalogue item is at most N·P / C (C = public catalogue size);
 *   - the mean count per co-occurrence pair among the K candidate items is at most N·C(P, 2) / C(K, 2), reached
 *     only if every user's P items were all among the candidates.
 * A count whose mean is below the noise's σ cannot be ranked from one release; the real counts are lower still.
 */

export interface UtilityInputs {
  /** Public estimate of the population's users (privacy.expectedUsers), never measured from the data. */
  expectedUsers: number;
  /** Items one user can contribute after bounding (P). */
  maxItemsPerUser: number;
  /** Public catalogue size (rows of the items file), or null when there is no public catalogue. */
  catalogueItems: number | null;
  /** Candidate items whose pairs are released (K). */
  cooccurrenceItems: number;
  popularitySigma: number;
  cooccurrenceSigma: number;
  /** DP partition selection's threshold, when item ids are selected from the data (no public catalogue). */
  partitionSelectionThreshold: number | null;
}

export type UtilityVerdict = 'signal' | 'weak' | 'noise';

export interface UtilityEstimate {
  expectedUsers: number;
  popularitySigma: number;
  cooccurrenceSigma: number;
  /** Upper bound on the mean distinct-user count per catalogue item (null without a public catalogue). */
  expectedPopularitySignal: number | null;
  /** Upper bound on the mean distinct-user count per candidate pair. */
  expectedCooccurrenceSignal: number;
  popularitySignalToNoise: number | null;
  cooccurrenceSignalToNoise: number;
  /** Users an item needs (in expectation of the noisy count) to be released at all, without a catalogue. */
  partitionSelectionThreshold: number | null;
  /** From the co-occurrence signal-to-noise (the item-item model's input): >= 3 signal, >= 1 weak, else noise. */
  verdict: UtilityVerdict;
  note: string;
}

const pairs = (n: number) => (n * (n - 1)) / 2;
const round = (x: number) => Math.round(x * 1000) / 1000;

export function estimateUtility(i: UtilityInputs): UtilityEstimate {
  const P = Math.max(0, i.maxItemsPerUser);
  const popSignal =
    i.catalogueItems && i.catalogueItems > 0 ? (i.expectedUsers * P) / i.catalogueItems : null;
  const coSignal = (i.expectedUsers * pairs(P)) / Math.max(1, pairs(i.cooccurrenceItems));
  const coSnr = coSignal / i.cooccurrenceSigma;
  const verdict: UtilityVerdict = coSnr >= 3 ? 'signal' : coSnr >= 1 ? 'weak' : 'noise';
  const note =
    verdict === 'noise'
      ? `co-occurrence counts average at most ${round(coSignal)} users per pair against noise σ ${round(i.cooccurrenceSigma)}: ` +
        'the item-item lists will be noise; more users (expectedUsers), a larger epsilon or fewer cooccurrenceItems help'
      : verdict === 'weak'
        ? `co-occurrence signal at most ${round(coSnr)}σ per pair: expect a clear loss against non-private item-item`
        : `co-occurrence signal up to ${round(coSnr)}σ per pair`;
  return {
    expectedUsers: i.expectedUsers,
    popularitySigma: round(i.popularitySigma),
    cooccurrenceSigma: round(i.cooccurrenceSigma),
    expectedPopularitySignal: popSignal === null ? null : round(popSignal),
    expectedCooccurrenceSignal: round(coSignal),
    popularitySignalToNoise: popSignal === null ? null : round(popSignal / i.popularitySigma),
    cooccurrenceSignalToNoise: round(coSnr),
    partitionSelectionThreshold: i.partitionSelectionThreshold,
    verdict,
    note,
  };
}
