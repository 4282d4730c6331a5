import * as fs from 'node:fs';
import * as path from 'node:path';
import { type Db } from '../lib/duckdb';
import { writeFileAtomic, writeJsonAtomic } from '../lib/fs-atomic';
import { readDocument } from '../lib/storage';
import { RunIO } from './support/run-io';
import { lastProfileKey } from './support/layout';
import type { LastProfilePointer } from './support/dataset-state';
import { openRawViews } from './support/artifacts';
import type { ActivityDeps } from './support/context';
import { INTERACTION_COLUMNS } from '../lib/interactions';
import * as sql from '../analytics/profile.sql';
import { baselineOf, computeDrift, driftSummary, type IdShares } from '../analytics/drift';
import { renderProfileReport } from '../analytics/report';
import {
  PROFILE_FORMAT_VERSION,
  type ColumnProfile,
  type CountDistribution,
  type DriftReport,
  type InteractionProfile,
  type ProfileDocument,
  type Share,
  type TimeProfile,
} from '../analytics/profile-model';
import type { ProfileResult, RawArtifacts, StageRun } from '../contracts/stages';
import { log, progress } from './support/context';

/** The keys of a run's profile outputs. */
export const profileKeys = (io: RunIO) => ({
  json: io.key('profile.json'),
  html: io.key('profile.html'),
  users: io.key('profile_users.parquet'),
  items: io.key('profile_items.parquet'),
});

/** What profiling needs of the run: its start (future timestamps) and the schema's timestamp floor. */
interface ProfileRun {
  startedAt: string;
  timestampFloor: string;
}

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

async function timeAndTypes(db: Db, r: ProfileRun): Promise<{ time: TimeProfile; types: Share[] }> {
  const futureLimit = new Date(Date.parse(r.startedAt) + 86_400_000).toISOString();
  await db.run(sql.timeGroupsSql(r.timestampFloor, futureLimit));
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

async function interactionProfile(db: Db, r: ProfileRun, rows: number): Promise<InteractionProfile> {
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
  const { time, types } = await timeAndTypes(db, r);
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

/** The previous published profile of this dataset, unless it is this very run or it is unreadable. */
async function previousPointer(io: RunIO): Promise<{ pointer?: LastProfilePointer; note: string | null }> {
  let pointer: LastProfilePointer | undefined;
  try {
    pointer = (await readDocument<LastProfilePointer>(io.store, lastProfileKey(io.run.datasetId)))?.value;
  } catch (err) {
    return { note: `previous profile pointer unreadable: ${(err as Error).message}` };
  }
  if (!pointer) return { note: 'no previous successful run of this dataset to compare with' };
  if (pointer.runId === io.run.runId) return { note: 'the recorded previous profile is this run' };
  if (pointer.formatVersion !== 1 || !pointer.baseline)
    return { note: 'previous profile pointer has an unknown format' };
  return { pointer, note: null };
}

/** A pointer's id list on this worker: a storage key fetched into the mirror (older pointers hold a path). */
async function localIds(io: RunIO, ref: string): Promise<string> {
  if (path.isAbsolute(ref)) return ref;
  await io.fetch([ref]).catch(() => undefined);
  return io.local(ref);
}

async function idShares(db: Db, io: RunIO, pointer: LastProfilePointer): Promise<IdShares> {
  const share = async (table: 'prof_users' | 'prof_items', ref: string) => {
    const prev = await localIds(io, ref);
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
 * previous published run of the dataset; stores profile.json, profile.html and the run's distinct user and
 * item ids (for the next run's drift) in the run's folder. Idempotent: every output is rewritten whole.
 */
export async function profile(deps: ActivityDeps, run: StageRun, raw: RawArtifacts): Promise<ProfileResult> {
  const started = Date.now();
  const io = new RunIO(run.plan.run, deps.dataDir);
  const keys = profileKeys(io);
  const files = {
    json: io.local(keys.json),
    html: io.local(keys.html),
    users: io.local(keys.users),
    items: io.local(keys.items),
  };
  fs.mkdirSync(io.runDir, { recursive: true });
  const { pointer, note } = await previousPointer(io);
  const r: ProfileRun = {
    startedAt: run.plan.run.startedAt,
    timestampFloor: run.plan.config.schema.timestampFloor,
  };
  const doc = await io.withDb('profile', async (db): Promise<ProfileDocument> => {
    await openRawViews(db, io, raw);
    progress({ stage: 'profile', step: 'columns' });
    const columns = await columnProfiles(db);
    const rows = Number(await db.scalar(`SELECT count(*) FROM raw_events`));
    const rejectedLines = Number(await db.scalar(`SELECT count(*) FROM raw_rejects`));
    progress({ stage: 'profile', step: 'interactions' });
    const interactions = await interactionProfile(db, r, rows);
    await copyAtomic(db, (f) => sql.exportIdsSql('prof_users', f), files.users);
    await copyAtomic(db, (f) => sql.exportIdsSql('prof_items', f), files.items);
    const partial: ProfileDocument = {
      formatVersion: PROFILE_FORMAT_VERSION,
      datasetId: run.plan.run.datasetId,
      runId: run.plan.run.runId,
      createdAt: run.plan.run.startedAt,
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
      drift = computeDrift(pointer.baseline, baselineOf(partial), await idShares(db, io, pointer));
    }
    await db.run(sql.DROP_PROFILE_TABLES);
    return { ...partial, drift };
  });
  doc.seconds = (Date.now() - started) / 1000;
  writeJsonAtomic(files.json, doc);
  writeFileAtomic(files.html, renderProfileReport(doc));
  await io.push(Object.values(keys));
  const nullsOf = (c: string) => doc.columns.find((x) => x.name === c)?.nulls ?? 0;
  const result: ProfileResult = {
    profile: keys.json,
    rows: doc.rows,
    users: doc.interactions.users,
    items: doc.interactions.items,
    density: doc.interactions.density,
    minTimestamp: doc.interactions.time.min,
    maxTimestamp: doc.interactions.time.max,
    nulls: Object.fromEntries(INTERACTION_COLUMNS.map((c) => [c, nullsOf(c)])),
    report: keys.html,
    drift: driftSummary(doc.drift),
  };
  log('profiled', { rows: doc.rows, seconds: doc.seconds, drift: result.drift?.status ?? 'none' });
  return result;
}
