/**
 * The `Sensitivity` type: the L0/L1/L2/L∞ sensitivities of one query under user-level neighbouring datasets.
 *
 * It is *branded* twice so that pipeline code cannot type a sensitivity in by hand:
 *  - at compile time, by a unique symbol that only this module can attach (a plain object literal does not type-check);
 *  - at run time, by a private WeakSet of the objects this module issued: mechanisms reject anything else, including
 *    an object cast with `as Sensitivity` or revived from JSON.
 * Only the bounding module (`bounding.ts`) calls `issueSensitivity`, deriving the numbers from the contribution caps it
 * enforces. `issueSensitivity` is deliberately not re-exported from `privacy/index.ts`.
 */

declare const sensitivityBrand: unique symbol;

export interface SensitivityValues {
  /** Max number of output coordinates one user can change. */
  readonly l0: number;
  /** Max L1 distance between outputs on neighbouring datasets. */
  readonly l1: number;
  /** Max L2 distance. */
  readonly l2: number;
  /** Max change of any single coordinate. */
  readonly linf: number;
}

export type Sensitivity = SensitivityValues & {
  /** Which query this describes (e.g. 'item-event-count'), recorded in the privacy spend. */
  readonly query: string;
  /** True when the query is integer-valued, so the exact discrete mechanisms apply. */
  readonly integer: boolean;
  /** The caps the numbers were derived from, for the audit trail. */
  readonly derivedFrom: Readonly<Record<string, number>>;
  readonly [sensitivityBrand]: true;
};

const issued = new WeakSet<object>();

/** For bounding.ts only: validates and brands sensitivities derived from enforced caps. */
export function issueSensitivity(
  query: string,
  values: SensitivityValues,
  integer: boolean,
  derivedFrom: Record<string, number>,
): Sensitivity {
  const { l0, l1, l2, linf } = values;
  for (const [k, v] of Object.entries({ l0, l1, l2, linf })) {
    if (!Number.isFinite(v) || v < 0)
      throw new RangeError(`sensitivity ${k} must be finite and >= 0, got ${v}`);
  }
  // Norm inequalities every real sensitivity satisfies; a violation means a derivation bug.
  const tol = 1e-9 * Math.max(1, l1);
  if (linf > l2 + tol || l2 > l1 + tol || l1 > l0 * linf + tol || l2 * l2 > l1 * linf + tol) {
    throw new RangeError(`inconsistent sensitivity for ${query}: ${JSON.stringify(values)}`);
  }
  const s = Object.freeze({
    query,
    l0,
    l1,
    l2,
    linf,
    integer,
    derivedFrom: Object.freeze({ ...derivedFrom }),
  });
  issued.add(s);
  return s as unknown as Sensitivity;
}

/** Throws unless `s` was produced by the bounding module in this process. */
export function assertIssuedSensitivity(s: unknown): asserts s is Sensitivity {
  if (typeof s !== 'object' || s === null || !issued.has(s)) {
    throw new TypeError(
      'sensitivity was not derived by privacy/bounding (hand-written or deserialised sensitivities are refused)',
    );
  }
}
