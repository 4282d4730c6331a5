import { apportion } from './users';
import { MALFORMED_VARIANTS, type RawRow, type RowFormat } from './format';
import type { Rng } from './prng';

/** The kinds of dirty rows, in the order their counts are reported. Bot traffic is reported separately. */
export const DIRTY_KINDS = [
  'duplicate',
  'nullId',
  'unknownEventType',
  'badTimestamp',
  'futureTimestamp',
  'malformed',
] as const;
export type DirtyKind = (typeof DIRTY_KINDS)[number];
export type DirtyCounts = Record<DirtyKind, number>;

/** How the dirty budget splits across kinds: duplicates are the most common defect in real event logs. */
export const DIRTY_SHARES: Readonly<Record<DirtyKind, number>> = {
  duplicate: 0.3,
  nullId: 0.15,
  unknownEventType: 0.15,
  badTimestamp: 0.15,
  futureTimestamp: 0.1,
  malformed: 0.15,
};

export const UNKNOWN_EVENT_TYPES = ['wishlist', 'share', 'compare'] as const;
export const BAD_TIMESTAMPS = ['not-a-date', 'N/A', '2026-13-45T25:61:00Z', '31/02/2026 25:61'] as const;
export const FUTURE_YEAR = 2099;

/** Exact per-kind counts for a dirty rate; they sum to round(cleanEvents · rate). */
export function planDirtyCounts(cleanEvents: number, rate: number): DirtyCounts {
  const total = Math.round(cleanEvents * rate);
  const parts = apportion(Float64Array.from(DIRTY_KINDS.map((k) => DIRTY_SHARES[k])), total);
  const out = {} as DirtyCounts;
  DIRTY_KINDS.forEach((k, i) => (out[k] = parts[i]));
  return out;
}

/**
 * Decides, one clean row at a time, whether a dirty row follows it and of which kind. Selection sampling
 * (Knuth's Algorithm S) scatters exactly the planned number of dirty rows uniformly over the stream without
 * knowing positions in advance, so the counts in generation.json are exact and nothing is buffered.
 */
export class DirtyInjector {
  private readonly remaining: number[];
  private remainingTotal: number;
  private cleanLeft: number;

  constructor(
    counts: DirtyCounts,
    cleanEvents: number,
    private readonly rng: Rng,
  ) {
    this.remaining = DIRTY_KINDS.map((k) => counts[k]);
    this.remainingTotal = this.remaining.reduce((a, b) => a + b, 0);
    if (this.remainingTotal > cleanEvents)
      throw new Error('more dirty rows than clean rows to attach them to');
    this.cleanLeft = cleanEvents;
  }

  /** Call once per clean row; returns the kind of dirty row to emit after it, if any. */
  next(): DirtyKind | undefined {
    const left = this.cleanLeft--;
    if (this.remainingTotal === 0 || this.rng.next() * left >= this.remainingTotal) return undefined;
    let r = this.rng.int(this.remainingTotal);
    for (let k = 0; k < this.remaining.length; k++) {
      if (r < this.remaining[k]) {
        this.remaining[k]--;
        this.remainingTotal--;
        return DIRTY_KINDS[k];
      }
      r -= this.remaining[k];
    }
    throw new Error('unreachable: dirty kind selection out of range');
  }
}

/** Moves an ISO timestamp to 2099, keeping it a valid date (29 February does not exist in 2099). */
export function toFutureYear(ts: string): string {
  const rest = ts.slice(4);
  return `${FUTURE_YEAR}${rest.startsWith('-02-29') ? '-02-28' + rest.slice(6) : rest}`;
}

/** Builds the dirty line derived from the clean row just written, so it looks like a plausible corruption. */
export function dirtyLine(
  kind: DirtyKind,
  clean: RawRow,
  cleanLine: string,
  format: RowFormat,
  rng: Rng,
): string {
  switch (kind) {
    case 'duplicate':
      return cleanLine;
    case 'nullId':
      return format.row(rng.next() < 0.5 ? { ...clean, user: '' } : { ...clean, item: '' });
    case 'unknownEventType':
      return format.row({ ...clean, type: UNKNOWN_EVENT_TYPES[rng.int(UNKNOWN_EVENT_TYPES.length)] });
    case 'badTimestamp':
      return format.row({ ...clean, ts: BAD_TIMESTAMPS[rng.int(BAD_TIMESTAMPS.length)] });
    case 'futureTimestamp':
      return format.row({ ...clean, ts: toFutureYear(clean.ts) });
    case 'malformed':
      return format.malformed(clean, rng.int(MALFORMED_VARIANTS));
  }
}
