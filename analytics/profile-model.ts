/**
 * The data profile of one run's raw input, as stored in profile.json and rendered into profile.html. Plain JSON
 * (no Dates, no bigints) so that it round-trips through files and Temporal payloads unchanged.
 */

export const PROFILE_FORMAT_VERSION = 2;

export interface NumericStats {
  /** Values that cast to a finite number. */
  count: number;
  min: number | null;
  max: number | null;
  mean: number | null;
  stddev: number | null;
  /** Approximate quantiles p01, p25, p50, p75, p99. */
  quantiles: Record<'p01' | 'p25' | 'p50' | 'p75' | 'p99', number | null>;
}

export interface TopValue {
  value: string;
  n: number;
}

export interface ColumnProfile {
  name: string;
  /** Non-empty values. */
  count: number;
  /** Missing or blank values. */
  nulls: number;
  /** Distinct non-empty values: exact up to EXACT_TOP_MAX_DISTINCT (profile.sql.ts), else a HyperLogLog estimate. */
  distinct: number;
  /** Whether `distinct` is exact (absent in profiles written before it was). */
  distinctExact?: boolean;
  /** Present when the column's values are numbers (judged on a sample). */
  numeric: NumericStats | null;
  /** Most frequent raw values, most frequent first. */
  topValues: TopValue[];
}

export interface CountDistribution {
  min: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

export interface Share {
  key: string;
  n: number;
  share: number;
}

export interface TimeProfile {
  /** Earliest / latest parseable finite timestamp, plausible or not. */
  min: string | null;
  max: string | null;
  /** Earliest / latest timestamp inside [timestampFloor, run start + 1 day], the range the cleaner keeps. */
  plausibleMin: string | null;
  plausibleMax: string | null;
  /** Calendar days from plausibleMin to plausibleMax, inclusive. */
  days: number;
  unparseable: number;
  beforeFloor: number;
  future: number;
  /** Events per UTC day within the plausible range. */
  eventsPerDay: Array<{ day: string; n: number }>;
  /** Events per UTC hour of day (24 entries) within the plausible range. */
  hourOfDay: number[];
}

/** Bucket labels of the events-per-user histogram (powers of two). */
export const USER_BUCKET_LABELS = [
  '1',
  '2–3',
  '4–7',
  '8–15',
  '16–31',
  '32–63',
  '64–127',
  '128–255',
  '256–511',
  '512+',
];

export interface InteractionProfile {
  users: number;
  items: number;
  /** Rows / (users × items). */
  density: number;
  eventsPerUser: CountDistribution;
  eventsPerItem: CountDistribution;
  /** Users per bucket of USER_BUCKET_LABELS. */
  userActivityBuckets: number[];
  /** Share of events on the least popular 80% of items. */
  longTailShare: number;
  /** Gini coefficient of events over items (0 = all equal, → 1 = all on one item). */
  giniItems: number;
  /** Lorenz curve of item popularity: (share of items, least popular first; share of their events). */
  lorenz: Array<[number, number]>;
  /** Share of events per decile of items ranked by popularity, most popular decile first. */
  popularityDeciles: number[];
  eventTypes: Share[];
  time: TimeProfile;
}

export type { DriftStatus, DriftSummary } from '../contracts/profile';
import type { DriftStatus } from '../contracts/profile';

export interface DriftCheck {
  name: string;
  kind: 'psi' | 'volume' | 'ids';
  value: number | null;
  warn: number;
  alert: number;
  status: DriftStatus;
  note: string;
}

export interface DriftReport {
  previousRunId: string;
  previousCreatedAt: string;
  previousRows: number;
  volumeChange: number;
  psi: Record<string, number>;
  maxPsi: number;
  newUsersShare: number | null;
  newItemsShare: number | null;
  vanishedUsersShare: number | null;
  vanishedItemsShare: number | null;
  checks: DriftCheck[];
  status: DriftStatus;
}

/** What drift needs from a previous profile; stored in the last_profile.json pointer. */
export interface DriftBaseline {
  runId: string;
  createdAt: string;
  rows: number;
  users: number;
  items: number;
  userActivityBuckets: number[];
  popularityDeciles: number[];
  eventTypes: Share[];
  hourOfDay: number[];
}

export interface ProfileDocument {
  formatVersion: number;
  datasetId: string;
  runId: string;
  createdAt: string;
  rows: number;
  /** Bad lines the reader could not parse (kept as rejects, not in `rows`). */
  rejectedLines: number;
  columns: ColumnProfile[];
  interactions: InteractionProfile;
  drift: DriftReport | null;
  /** Why there is no drift report (first run, previous profile missing, ...). */
  driftNote: string | null;
  /** Seconds spent profiling (so regressions show up in the report itself). */
  seconds: number;
}
