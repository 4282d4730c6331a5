import * as fs from 'node:fs';
import * as path from 'node:path';
import { withDb, type Db } from '../lib/duckdb';
import { fsyncDir, readJsonIfExists, writeFileAtomic, writeJsonAtomic } from '../lib/fs-atomic';
import { INTERACTION_COLUMNS } from '../lib/interactions';
import * as sql from '../analytics/profile.sql';
import { baselineOf, computeDrift, driftSummary, type IdShares } from '../analytics/drift';
import { renderProfileReport } from '../analytics/report';
import {
  PROFILE_FORMAT_VERSION,
  type ColumnProfile,
  type CountDistribution,
  type DriftBaseline,
  type DriftReport,
  type DriftSummary,
  type InteractionProfile,
  type ProfileDocument,
  type Share,
  type TimeProfile,
} from '../analytics/profile-model';
import type { ProfileResult, RunPlan } from '../contracts/stages';
import { limitsOf, log, progress } from './context';

/** What profile() returns: the workflow's ProfileResult plus the report and the drift summary. */
export type ProfileOutput = ProfileResult & { reportPath: string; drift: DriftSummary | null };

/** The pointer to the last successful run's profile of a dataset, written by recordSuccessfulProfile. */
export interface LastProfilePointer {
  formatVersion: 1;
  datasetId: string;
  runId: string;
  modelVersion: string;
  createdAt: string;
  recordedAt: string;
  /** The run's own profile.json (may be pruned later; the baseline below is self-sufficient). */
  profilePath: string;
  /** Copies of the run's distinct ids, kept in the state folder so they outlive the run folder. */
  usersPath: string;
  itemsPath: string;
  baseline: DriftBaseline;
}

const stateDirOf = (plan: Pick<RunPlan, 'config' | 'datasetId'>) =>
  path.join(plan.config.dataDir, 'state', plan.datasetId);
export const lastProfilePath = (plan: Pick<RunPlan, 'config' | 'datasetId'>) =>
  path.join(stateDirOf(plan), 'last_profile.json');
const runFiles = (plan: RunPlan) => ({
  json: path.join(plan.runDir, 'profile.json'),
  html: path.join(plan.runDir, 'profile.html'),
  users: path.join(plan.runDir, 'profile_users.parquet'),
  items: path.join(plan.runDir, 'profile_items.parquet'),
});

const num = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));
const nums = (v: unknown): number[] => (Array.isArray(v) ? v.map(Number) : []);

async function columnProfiles(db: Db): Promise<ColumnProfile[]> {
  const sample = await db.one<Record<string, number>>(sql.NUMERIC_SAMPLE_SQL);
  // Numeric statistics only where (nearly) every present value is a number; ids like 'u000042' are not.
  const numeric = new Set(
    INTERACTION_COLUMNS.filter(
      (c) => sample[`${c}.present`] > 0 && sample[`${c}.numeric`] >= 0.9 * sample[`${c}.present`],
    ),
  );
  await db.run(sql.columnStatsSql(numeric));
  const s = await db.one<Record<string, unknown>>(`SELECT * FROM prof_columns`);
  const exact = new Set(
    INTERACTION_COLUMNS.filter((c) => Number(s[`${c}.distinct`]) <= sql.EXACT_TOP_MAX_DISTINCT),
  );
  const large = INTERACTION_COLUMNS.filter((c) => !exact.has(c));
  if (large.length) await db.run(sql.topCandidatesSql(large));
  const counts = await db.all<{ col: string; value: string; n: number; distinct_values: number | null }>(
    sql.topValueCountsSql(exact),
  );
  const exactDistinct = (c: string) =>
    counts.find((r) => r.col === c && r.distinct_values !== null)?.distinct_values;
  return INTERACTION_COLUMNS.map((c): ColumnProfile => {
    const q = nums(s[`${c}.q`]);
    return {
      name: c,
      count: Number(s.rows) - Number(s[`${c}.nulls`]),
      nulls: Number(s[`${c}.nulls`]),
      // Exact where the GROUP BY ran (a column with no values has no groups: 0); else the estimate.
      distinct: Number(exactDistinct(c) ?? (exact.has(c) ? 0 : s[`${c}.distinct`])),
      distinctExact: exact.has(c),
      numeric: numeric.has(c)
        ? {
            count: Number(s[`${c}.ncount`]),
            min: num(s[`${c}.min`]),
            max: num(s[`${c}.max`]),
            mean: num(s[`${c}.mean`]),
            stddev: num(s[`${c}.stddev`]),
            quantiles: {
              p01: q[0] ?? null,
              p25: q[1] ?? null,
              p50: q[2] ?? null,
              p75: q[3] ?? null,
              p99: q[4] ?? null,
            },
          }
        : null,
      topValues: counts
        .filter((r) => r.col === c)
        .map((r) => ({ value: r.value, n: r.n }))
        .sort((a, b) => b.n - a.n || a.value.localeCompare(b.value)),
    };
  });
}

async function distribution(
  db: Db,
  table: 'prof_users' | 'prof_items',
): Promise<{ ids: number; d: CountDistribution }> {
  const r = await db.one<Record<string, unknown>>(sql.countDistributionSql(table));
  const q = nums(r.q);
  return {
    ids: Number(r.ids),
    d: {
      min: num(r.min) ?? 0,
      p50: q[0] ?? 0,
      p90: q[1] ?? 0,
      p99: q[2] ?? 0,
      max: num(r.max) ?? 0,
      mean: num(r.mean) ?? 0,
    },
  };
}

function dayCount(min: string | null, max: string | null): number {
  if (!min || !max) return 0;
  return Math.round((Date.parse(max.slice(0, 10)) - Date.parse(min.slice(0, 10))) / 86_400_000) + 1;
}

async function timeAndTypes(db: Db, plan: RunPlan): Promise<{ time: TimeProfile; types: Share[] }> {
  const futureLimit = new Date(Date.parse(plan.startedAt) + 86_400_000).toISOString();
  await db.run(sql.timeGroupsSql(plan.config.schema.timestampFloor, futureLimit));
  const groups = await db.all<{
    kind: string;
    key: string;
    n: number;
    tmin: string | null;
    tmax: string | null;
  }>(sql.TIME_GROUPS_SQL);
  const of = (kind: string) => groups.filter((g) => g.kind === kind);
  const cls = (key: string) => of('class').find((g) => g.key === key);
  const finite = of('class').filter((g) => g.tmin !== null);
  const hourOfDay = new Array<number>(24).fill(0);
  for (const g of of('hour')) hourOfDay[Number(g.key)] = g.n;
  const plausible = cls('plausible');
  const total = of('type').reduce((a, g) => a + g.n, 0);
  return {
    time: {
      min: finite.map((g) => g.tmin!).sort()[0] ?? null,
      max:
        finite
          .map((g) => g.tmax!)
          .sort()
          .at(-1) ?? null,
      plausibleMin: plausible?.tmin ?? null,
      plausibleMax: plausible?.tmax ?? null,
      days: dayCount(plausible?.tmin ?? null, plausible?.tmax ?? null),
      unparseable: cls('unparseable')?.n ?? 0,
      beforeFloor: cls('before_floor')?.n ?? 0,
      future: cls('future')?.n ?? 0,
      eventsPerDay: of('day').map((g) => ({ day: g.key, n: g.n })),
      hourOfDay,
    },
    types: of('type')
      .map((g) => ({ key: g.key, n: g.n, share: total ? g.n / total : 0 }))
      .sort((a, b) => b.n - a.n || a.key.localeCompare(b.key)),
  };
}

async function interactionProfile(db: Db, plan: RunPlan, rows: number): Promise<InteractionProfile> {
  await db.run(sql.ID_FREQUENCIES_SQL);
  const users = await distribution(db, 'prof_users');
  const items = await distribution(db, 'prof_items');
  const buckets = new Array<number>(10).fill(0);
  for (const b of await db.all<{ b: number; users: number }>(sql.USER_BUCKETS_SQL)) buckets[b.b] = b.users;
  await db.run(sql.ITEM_CONCENTRATION_SQL);
  const conc = await db.one<{ gini: number; long_tail: number }>(sql.ITEM_GINI_SQL);
  const lorenz = (await db.all<{ x: number; y: number }>(sql.LORENZ_SQL)).map((p): [number, number] => [
    p.x,
    p.y,
  ]);
  const deciles = new Array<number>(10).fill(0);
  for (const d of await db.all<{ d: number; share: number }>(sql.DECILES_SQL)) deciles[9 - d.d] = d.share;
  const { time, types } = await timeAndTypes(db, plan);
  return {
    users: users.ids,
    items: items.ids,
    density: users.ids && items.ids ? rows / (users.ids * items.ids) : 0,
    eventsPerUser: users.d,
    eventsPerItem: items.d,
    userActivityBuckets: buckets,
    longTailShare: conc.long_tail,
    giniItems: conc.gini,
    lorenz: [[0, 0], ...lorenz],
    popularityDeciles: deciles,
    eventTypes: types,
    time,
  };
}

/** Writes a COPY target atomically: to a temporary name first, renamed into place when complete. */
async function copyAtomic(db: Db, sqlFor: (file: string) => string, file: string): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}`;
  await db.run(sqlFor(tmp));
  fs.renameSync(tmp, file);
}

/** The previous successful profile of this dataset, unless it is this very run or it is unreadable. */
function previousPointer(plan: RunPlan): { pointer?: LastProfilePointer; note: string | null } {
  let pointer: LastProfilePointer | undefined;
  try {
    pointer = readJsonIfExists<LastProfilePointer>(lastProfilePath(plan));
  } catch (err) {
    return { note: `previous profile pointer unreadable: ${(err as Error).message}` };
  }
  if (!pointer) return { note: 'no previous successful run of this dataset to compare with' };
  if (pointer.runId === plan.runId) return { note: 'the recorded previous profile is this run' };
  if (pointer.formatVersion !== 1 || !pointer.baseline)
    return { note: 'previous profile pointer has an unknown format' };
  return { pointer, note: null };
}

async function idShares(db: Db, pointer: LastProfilePointer): Promise<IdShares> {
  const share = async (table: 'prof_users' | 'prof_items', prev: string) => {
    if (!fs.existsSync(prev)) return { added: null, gone: null };
    const r = await db.one<{ current: number; previous: number; new_ids: number; vanished: number }>(
      sql.idOverlapSql(table, prev),
    );
    return {
      added: r.current ? r.new_ids / r.current : 0,
      gone: r.previous ? r.vanished / r.previous : 0,
    };
  };
  const u = await share('prof_users', pointer.usersPath);
  const i = await share('prof_items', pointer.itemsPath);
  return {
    newUsersShare: u.added,
    newItemsShare: i.added,
    vanishedUsersShare: u.gone,
    vanishedItemsShare: i.gone,
  };
}

/**
 * Profiles what arrived (before cleaning): per-column statistics, interaction statistics, drift against the
 * previous successful run of the dataset; stores profile.json, profile.html and the run's distinct user and
 * item ids (for the next run's drift) beside the run. Idempotent: every output is rewritten whole.
 */
export async function profile(plan: RunPlan): Promise<ProfileOutput> {
  const started = Date.now();
  const files = runFiles(plan);
  const { pointer, note } = previousPointer(plan);
  const doc = await withDb(plan.dbPath, limitsOf(plan), async (db): Promise<ProfileDocument> => {
    await db.run(`SET TimeZone = 'UTC'`);
    progress({ stage: 'profile', step: 'columns' });
    const columns = await columnProfiles(db);
    const rows = Number(await db.scalar(`SELECT count(*) FROM raw_events`));
    const rejectedLines = Number(await db.scalar(`SELECT count(*) FROM raw_rejects`));
    progress({ stage: 'profile', step: 'interactions' });
    const interactions = await interactionProfile(db, plan, rows);
    await copyAtomic(db, (f) => sql.exportIdsSql('prof_users', f), files.users);
    await copyAtomic(db, (f) => sql.exportIdsSql('prof_items', f), files.items);
    const partial: ProfileDocument = {
      formatVersion: PROFILE_FORMAT_VERSION,
      datasetId: plan.datasetId,
      runId: plan.runId,
      createdAt: plan.startedAt,
      rows,
      rejectedLines,
      columns,
      interactions,
      drift: null,
      driftNote: note,
      seconds: 0,
    };
    let drift: DriftReport | null = null;
    if (pointer) {
      progress({ stage: 'profile', step: 'drift' });
      drift = computeDrift(pointer.baseline, baselineOf(partial), await idShares(db, pointer));
    }
    await db.run(sql.DROP_PROFILE_TABLES);
    return { ...partial, drift };
  });
  doc.seconds = (Date.now() - started) / 1000;
  writeJsonAtomic(files.json, doc);
  writeFileAtomic(files.html, renderProfileReport(doc));
  const nullsOf = (c: string) => doc.columns.find((x) => x.name === c)?.nulls ?? 0;
  const result: ProfileOutput = {
    profilePath: files.json,
    rows: doc.rows,
    users: doc.interactions.users,
    items: doc.interactions.items,
    density: doc.interactions.density,
    minTimestamp: doc.interactions.time.min,
    maxTimestamp: doc.interactions.time.max,
    nulls: Object.fromEntries(INTERACTION_COLUMNS.map((c) => [c, nullsOf(c)])),
    reportPath: files.html,
    drift: driftSummary(doc.drift),
  };
  log('profiled', { rows: doc.rows, seconds: doc.seconds, drift: result.drift?.status ?? 'none' });
  return result;
}

/**
 * Marks this run's profile as the dataset's baseline for drift: copies its id lists into the state folder and
 * then swaps the last_profile.json pointer (the pointer is the commit point, so readers never see a pointer to
 * missing files). Call after the run has published. Idempotent; never moves the baseline back to an older run;
 * returns the pointer now in place, or null (and changes nothing) when this run has no profile to record.
 */
export async function recordSuccessfulProfile(plan: RunPlan): Promise<LastProfilePointer | null> {
  const files = runFiles(plan);
  const doc = readJsonIfExists<ProfileDocument>(files.json);
  // A run that published must not fail over its drift baseline: without a profile, keep the old baseline.
  if (
    !doc ||
    doc.formatVersion !== PROFILE_FORMAT_VERSION ||
    !fs.existsSync(files.users) ||
    !fs.existsSync(files.items)
  ) {
    log('no profile of this run to record as the drift baseline', { profile: files.json });
    return null;
  }
  const current = readJsonIfExists<LastProfilePointer>(lastProfilePath(plan));
  if (current && current.runId !== plan.runId && current.createdAt > plan.startedAt) return current;
  const state = stateDirOf(plan);
  fs.mkdirSync(state, { recursive: true });
  const keep = (kind: string) => path.join(state, `profile-${plan.runId}-${kind}.parquet`);
  for (const [kind, from] of [
    ['users', files.users],
    ['items', files.items],
  ] as const) {
    const tmp = `${keep(kind)}.tmp-${process.pid}`;
    fs.copyFileSync(from, tmp);
    fs.renameSync(tmp, keep(kind));
  }
  fsyncDir(state);
  const pointer: LastProfilePointer = {
    formatVersion: 1,
    datasetId: plan.datasetId,
    runId: plan.runId,
    modelVersion: plan.modelVersion,
    createdAt: plan.startedAt,
    recordedAt: new Date().toISOString(),
    profilePath: files.json,
    usersPath: keep('users'),
    itemsPath: keep('items'),
    baseline: baselineOf(doc),
  };
  writeJsonAtomic(lastProfilePath(plan), pointer);
  // Id lists of earlier baselines are no longer referenced by the pointer.
  for (const name of fs.readdirSync(state)) {
    if (/^profile-.*-(users|items)\.parquet$/.test(name) && !name.startsWith(`profile-${plan.runId}-`)) {
      fs.rmSync(path.join(state, name), { force: true });
    }
  }
  return pointer;
}
