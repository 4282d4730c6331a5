/**
 * Which clean events are positives (a user liked the item): every implicit event, and an explicit rating at or
 * above `schema.rating.positive`. A rating of 1 out of 5 is an interaction but not a recommendation target, so the
 * evaluation's relevant items and the models' positive-only signal both use this one rule.
 */
export interface PositiveRule {
  /** schema.rating.positive; undefined: every rating is positive. */
  ratingAtLeast?: number;
}

/** A SQL predicate over a clean event row (columns event_type, rating); `alias` qualifies them. */
export function positiveSql(rule: PositiveRule, alias = ''): string {
  if (rule.ratingAtLeast === undefined) return 'true';
  const a = alias ? `${alias}.` : '';
  const at = Number(rule.ratingAtLeast);
  if (!Number.isFinite(at)) throw new Error(`rating threshold ${rule.ratingAtLeast} is not a number`);
  return `(${a}event_type <> 'rating' OR ${a}rating >= ${at})`;
}

/** The rule of a run's configuration. */
export function positiveRuleOf(config: { schema: { rating: { positive?: number } } }): PositiveRule {
  return { ratingAtLeast: config.schema.rating.positive };
}
