/** The privacy records that travel between planning, activities, the ledger, summaries and manifests. */

/**
 * The record every mechanism returns and the ledger stores: what was spent, by which mechanism, against which
 * sensitivity. Plain JSON (no bigint, no Infinity) so it can be persisted and passed through Temporal.
 */
export interface PrivacySpend {
  readonly mechanism: string;
  readonly epsilon: number;
  readonly delta: number;
  /** zCDP parameter, when the mechanism has one (Gaussian: Δ²/2σ²; pure ε-DP: ε²/2). Enables zCDP composition. */
  readonly rho?: number;
  /**
   * Approximate zCDP (Bun & Steinke 2016, Def. 8.1): the release is ρ-zCDP except on an event of at most this
   * probability — DP partition selection's threshold (an item only one user has is released with at most this
   * probability). Composition adds it to δ outside ρ: (Σρ, Σ approxDelta) → ε at δ − Σ approxDelta. Included in
   * `delta`.
   */
  readonly approxDelta?: number;
  readonly sensitivity: {
    readonly query: string;
    readonly norm: 'L0' | 'L1' | 'L2' | 'Linf';
    readonly value: number;
  };
  /** Mechanism parameters for the audit trail (noise scale, grid, order…). */
  readonly params: Readonly<Record<string, number | string | boolean>>;
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

export interface PrivacyReservation {
  /** The privacy unit the spend is charged to (config privacy.unit). */
  unit: string;
  window: string;
  spend: PrivacySpend;
  ledgerPath: string;
  /** The input locations the reservation binds to the unit. */
  inputs: string[];
  /** The plan's estimate of signal against noise (from public parameters). */
  utility: UtilityEstimate;
}
