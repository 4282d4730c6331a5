import type {
  DriftBaseline,
  DriftCheck,
  DriftReport,
  DriftStatus,
  DriftSummary,
  ProfileDocument,
  Share,
} from './profile-model';

/**
 * Drift of a run's input against the previous successful run's profile: pure functions over profiles, so the
 * thresholds and the arithmetic are unit-tested without data.
 */

/** Conventional PSI bands: < 0.1 no real shift, 0.1–0.25 moderate, > 0.25 significant. */
export const PSI_WARN = 0.1;
export const PSI_ALERT = 0.25;
/** Relative change in row count worth a look / an alarm. */
export const VOLUME_WARN = 0.3;
export const VOLUME_ALERT = 0.6;
/** Share of ids not seen in the previous run. */
export const NEW_IDS_WARN = 0.3;
export const NEW_IDS_ALERT = 0.6;

/** Shares below this are floored, so that an empty bucket on one side gives a large but finite PSI. */
const EPSILON = 1e-4;

function normalise(counts: number[]): number[] {
  const total = counts.reduce((a, b) => a + b, 0);
  return counts.map((c) => (total > 0 ? c / total : 0));
}

/**
 * Population Stability Index between two histograms over the same buckets (counts or shares):
 * sum over buckets of (a - e) * ln(a / e), with shares floored at EPSILON.
 */
export function psi(expected: number[], actual: number[]): number {
  if (expected.length !== actual.length) throw new Error('psi: histograms differ in length');
  const e = normalise(expected);
  const a = normalise(actual);
  let sum = 0;
  for (let k = 0; k < e.length; k++) {
    const x = Math.max(e[k], EPSILON);
    const y = Math.max(a[k], EPSILON);
    sum += (y - x) * Math.log(y / x);
  }
  return sum;
}

/** PSI over categorical shares (event types): the union of categories, missing ones at zero. */
export function psiCategorical(expected: Share[], actual: Share[]): number {
  const keys = [...new Set([...expected.map((s) => s.key), ...actual.map((s) => s.key)])].sort();
  const get = (xs: Share[], k: string) => xs.find((s) => s.key === k)?.n ?? 0;
  return psi(
    keys.map((k) => get(expected, k)),
    keys.map((k) => get(actual, k)),
  );
}

function status(value: number | null, warn: number, alert: number): DriftStatus {
  if (value === null || !Number.isFinite(value)) return 'ok';
  const v = Math.abs(value);
  return v > alert ? 'alert' : v > warn ? 'warn' : 'ok';
}

const worst = (xs: DriftStatus[]): DriftStatus =>
  xs.includes('alert') ? 'alert' : xs.includes('warn') ? 'warn' : 'ok';

/** The fields of a profile that a later run compares against. */
export function baselineOf(doc: ProfileDocument): DriftBaseline {
  const i = doc.interactions;
  return {
    runId: doc.runId,
    createdAt: doc.createdAt,
    rows: doc.rows,
    users: i.users,
    items: i.items,
    userActivityBuckets: i.userActivityBuckets,
    popularityDeciles: i.popularityDeciles,
    eventTypes: i.eventTypes,
    hourOfDay: i.time.hourOfDay,
  };
}

export interface IdShares {
  newUsersShare: number | null;
  newItemsShare: number | null;
  vanishedUsersShare: number | null;
  vanishedItemsShare: number | null;
}

/** The drift report of `current` against `previous`, with each check's thresholds and status. */
export function computeDrift(previous: DriftBaseline, current: DriftBaseline, ids: IdShares): DriftReport {
  const volumeChange = previous.rows > 0 ? (current.rows - previous.rows) / previous.rows : 0;
  const psiValues: Record<string, number> = {
    events_per_user: psi(previous.userActivityBuckets, current.userActivityBuckets),
    item_popularity_deciles: psi(previous.popularityDeciles, current.popularityDeciles),
    event_type_mix: psiCategorical(previous.eventTypes, current.eventTypes),
    hour_of_day: psi(previous.hourOfDay, current.hourOfDay),
  };
  const notes: Record<string, string> = {
    events_per_user: 'users per events-per-user bucket (powers of two)',
    item_popularity_deciles: 'share of events per item-popularity decile',
    event_type_mix: 'share of events per event type',
    hour_of_day: 'share of events per UTC hour',
  };
  const checks: DriftCheck[] = [
    {
      name: 'volume_change',
      kind: 'volume',
      value: volumeChange,
      warn: VOLUME_WARN,
      alert: VOLUME_ALERT,
      status: status(volumeChange, VOLUME_WARN, VOLUME_ALERT),
      note: `rows ${previous.rows.toLocaleString('en-US')} → ${current.rows.toLocaleString('en-US')}`,
    },
    ...Object.entries(psiValues).map(([name, value]): DriftCheck => ({
      name: `psi_${name}`,
      kind: 'psi',
      value,
      warn: PSI_WARN,
      alert: PSI_ALERT,
      status: status(value, PSI_WARN, PSI_ALERT),
      note: notes[name],
    })),
    ...(
      [
        ['new_users_share', ids.newUsersShare, 'users not in the previous run'],
        ['new_items_share', ids.newItemsShare, 'items not in the previous run'],
        ['vanished_users_share', ids.vanishedUsersShare, "previous run's users absent now"],
        ['vanished_items_share', ids.vanishedItemsShare, "previous run's items absent now"],
      ] as const
    ).map(([name, value, note]): DriftCheck => ({
      name,
      kind: 'ids',
      value,
      warn: NEW_IDS_WARN,
      alert: NEW_IDS_ALERT,
      status: status(value, NEW_IDS_WARN, NEW_IDS_ALERT),
      note: value === null ? `${note} (id lists unavailable)` : note,
    })),
  ];
  return {
    previousRunId: previous.runId,
    previousCreatedAt: previous.createdAt,
    previousRows: previous.rows,
    volumeChange,
    psi: psiValues,
    maxPsi: Math.max(...Object.values(psiValues)),
    ...ids,
    checks,
    status: worst(checks.map((c) => c.status)),
  };
}

export function driftSummary(d: DriftReport | null): DriftSummary | null {
  if (!d) return null;
  return {
    previousRunId: d.previousRunId,
    volumeChange: d.volumeChange,
    maxPsi: d.maxPsi,
    newUsersShare: d.newUsersShare,
    newItemsShare: d.newItemsShare,
    status: d.status,
  };
}
