/**
 * The record every mechanism returns and the ledger stores: what was spent, by which mechanism, against which
 * sensitivity. Plain JSON (no bigint, no Infinity) so it can be persisted and passed through Temporal.
 */
export type { PrivacySpend } from '../contracts/privacy';
import type { PrivacySpend } from '../contracts/privacy';

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
