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

/** Validates a spend read from outside (e.g. a ledger file or an activity input). */
export function assertValidSpend(s: unknown): asserts s is PrivacySpend {
  const o = s as Partial<PrivacySpend> | null;
  const finiteNonNeg = (v: unknown): boolean => typeof v === 'number' && Number.isFinite(v) && v >= 0;
  if (
    !o ||
    typeof o !== 'object' ||
    typeof o.mechanism !== 'string' ||
    !finiteNonNeg(o.epsilon) ||
    !finiteNonNeg(o.delta) ||
    (o.delta as number) > 1 ||
    (o.rho !== undefined && !finiteNonNeg(o.rho)) ||
    (o.approxDelta !== undefined && (!finiteNonNeg(o.approxDelta) || o.approxDelta > (o.delta as number))) ||
    !o.sensitivity ||
    typeof o.sensitivity.query !== 'string' ||
    !finiteNonNeg(o.sensitivity.value) ||
    !o.params ||
    typeof o.params !== 'object'
  ) {
    throw new TypeError(`invalid privacy spend: ${JSON.stringify(s)}`);
  }
}
