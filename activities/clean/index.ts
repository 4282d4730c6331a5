import * as fs from 'node:fs';
import * as path from 'node:path';
import { RecforgeError, configError } from '../../contracts/errors';
import { dropRelation, lit, type Db } from '../../lib/duckdb';
import * as sql from '../../analytics/clean.sql';
import type {
  CleanArtifacts,
  CleanResult,
  DataChoices,
  IncrementalPlan,
  ProfileResult,
  RawArtifacts,
  SplitRef,
  StageRun,
} from '../../contracts/stages';
import { splitMethodOf } from '../../contracts/stages';
import type { RecforgeConfig } from '../../lib/config';
import { log, progress, type ActivityDeps } from '../support/context';
import { RunIO } from '../support/run-io';
import { idMapKeys, WINDOWED_EVENTS } from '../support/layout';
import { openRawViews, parquetArtifact } from '../support/artifacts';
import { buildBoundingSql, createSecureRng } from '../../privacy';
import { buildTrainingSet, needsSources, type HistoryOutcome } from './history';
import { newLineCountsSql } from '../../analytics/history.sql';
import {
  chooseItemItemLimits,
  chooseSplit,
  historyHistogramSql,
  timeCutIsEnough,
  publicItemItemLimits,
  timeCutUsersSql,
  type ItemItemDecision,
} from '../../analytics/adaptive';
import { positiveRuleOf } from '../../analytics/positive.sql';

/**
 * What cleaning needs of the run: its config, dates and identity, the local folder it writes into, and the
 * incremental plan. The neighbour harness (test/unit/privacy-neighbours.test.ts) builds one by hand.
 */
export interface CleanContext {
  config: RecforgeConfig;
  startedAt: string;
  /** The run's logical date (incremental runs: the watermark's date). */
  runDate: string;
  datasetId: string;
  runId: string;
  /** Local folder the clean artifacts are written into (the run's folder on this worker). */
  runDir: string;
  incremental: IncrementalPlan | null;
  /** Makes a storage key present locally and returns its path (store partitions of incremental runs). */
  local?: (key: string) => Promise<string>;
}

export interface QualityCheck {
  name: string;
  value: number;
  threshold: number;
  passed: boolean;
}

/** Pure: the quality gate over the cleaning counts, the drift against the last good run and freshness. */
export function qualityChecks(
  plan: Pick<CleanContext, 'config' | 'startedAt'>,
  counts: { kept: number; total: number; byReason: Record<string, number>; newest: string | null },
  drift: ProfileResult['drift'],
): QualityCheck[] {
  const q = plan.config.quality;
  const { kept, total } = counts;
  const share = total === 0 ? 1 : (total - kept) / total;
  const checks: QualityCheck[] = [
    { name: 'min_rows', value: kept, threshold: q.minRows, passed: kept >= q.minRows },
    {
      name: 'max_quarantine_share',
      value: share,
      threshold: q.maxQuarantineShare,
      passed: share <= q.maxQuarantineShare,
    },
  ];
  for (const [reason, max] of Object.entries(q.maxQuarantineShareByReason)) {
    const v = total === 0 ? 0 : (counts.byReason[reason] ?? 0) / total;
    checks.push({ name: `max_quarantine_share[${reason}]`, value: v, threshold: max, passed: v <= max });
  }
  if (drift) {
    checks.push({
      name: 'max_drift_psi',
      value: drift.maxPsi,
      threshold: q.maxDriftPsi,
      passed: drift.maxPsi <= q.maxDriftPsi,
    });
    const change = Math.abs(drift.volumeChange);
    checks.push({
      name: 'max_volume_change',
      value: change,
      threshold: q.maxVolumeChange,
      passed: change <= q.maxVolumeChange,
    });
  }
  if (q.maxStalenessDays !== undefined) {
    const age = counts.newest
      ? (Date.parse(plan.startedAt) - Date.parse(counts.newest)) / 86_400_000
      : Infinity;
    checks.push({
      name: 'max_staleness_days',
      value: age,
      threshold: q.maxStalenessDays,
      passed: age <= q.maxStalenessDays,
    });
  }
  return checks;
}

/** Compiles the id patterns in DuckDB first: RE2 rejects some patterns JS accepts (config, not retryable). */
async function checkIdPatterns(db: Db, f: RecforgeConfig['schema']['idFormat']): Promise<void> {
  for (const [key, pattern] of Object.entries(f ?? {})) {
    if (pattern === undefined) continue;
    try {
      await db.run(`SELECT regexp_full_match('', ${lit(pattern)})`);
    } catch (err) {
      throw configError(
        `schema.idFormat.${key} '${pattern}': ${String((err as Error).message).split('\n')[0]}`,
      );
    }
  }
}

/**
 * What the quality gates judge: this run's new lines as cleaning left them. Pure, over `counts` from
 * newLineCountsSql ('*': all new lines, raw and rejected; otherwise quarantine rows by reason). Rows the k-core
 * filter removed are a modelling choice over the whole training window, and rows an earlier run already
 * ingested (an appended or re-sent file) are not defects of this run's data: both are left out of the gate
 * (they are still quarantined and counted in the run's byReason).
 */
export function gateCounts(
  counts: Record<string, number>,
  newestKept: string | null,
): { kept: number; total: number; byReason: Record<string, number>; newest: string | null } {
  const { '*': all = 0, k_core: _k, already_ingested: repeats = 0, ...reasons } = counts;
  const total = all - repeats;
  const quarantined = Object.values(reasons).reduce((a, n) => a + n, 0);
  return { kept: total - quarantined, total, byReason: reasons, newest: newestKept };
}

/** The run date's instant (00:00 UTC). */
export function runDateInstant(plan: Pick<CleanContext, 'runDate'>): number {
  return Date.parse(`${plan.runDate}T00:00:00Z`);
}

/**
 * Where the `time` split cuts: `evaluation.cutoff` when set; with privacy on, otherwise the run date minus
 * holdoutDays — public instants, so one user's events cannot move anyone else's rows across the cut. Undefined
 * (privacy off, no cutoff): the newest clean event minus holdoutDays, taken from the data.
 */
export function splitCutoff(plan: Pick<CleanContext, 'config' | 'runDate'>): string | undefined {
  const e = plan.config.evaluation;
  if (e.cutoff !== undefined) return new Date(e.cutoff).toISOString();
  if (!plan.config.privacy.enabled) return undefined;
  return new Date(runDateInstant(plan) - e.holdoutDays * 86_400_000).toISOString();
}

/**
 * Classifies, deduplicates and de-bots the raw rows into `events` (and the quarantine table), then, for incremental
 * runs or the k-core filter, builds the training set. With privacy on every step here is per-user or public
 * (the bot threshold is the public cleaning.botMaxEventsPerDay; k-core is refused by config validation).
 * `detectBots: auto` counts implicit events only toward the rate (heavy raters are not bots).
 */
export async function cleanRows(db: Db, plan: CleanContext): Promise<HistoryOutcome | null> {
  await db.run(`SET TimeZone = 'UTC'`);
  progress({ stage: 'clean', step: 'classify' });
  await checkIdPatterns(db, plan.config.schema.idFormat);
  const futureLimit = new Date(Date.parse(plan.startedAt) + 86_400_000).toISOString();
  await dropRelation(db, 'events');
  const c = plan.config.cleaning;
  await db.run(
    sql.classifySql({
      eventTypes: plan.config.schema.eventTypes,
      ratingMin: plan.config.schema.rating.min,
      ratingMax: plan.config.schema.rating.max,
      timestampFloor: plan.config.schema.timestampFloor,
      futureLimit,
      detectBots: c.detectBots !== false,
      botEvents: c.detectBots === 'auto' ? 'implicit' : 'all',
      botMadK: c.botMadK,
      botMinEventsPerDay: c.botMinEventsPerDay,
      ...(plan.config.privacy.enabled ? { botMaxEventsPerDay: c.botMaxEventsPerDay } : {}),
      requireKnownItems: c.requireKnownItems,
      nearDuplicateSeconds: c.nearDuplicateSeconds,
      idFormat: plan.config.schema.idFormat,
      keepRid: needsSources(plan),
      eventsFile: path.join(plan.runDir, 'events.parquet'),
    }),
  );
  if (!needsSources(plan)) return null;
  progress({ stage: 'clean', step: 'history and k-core' });
  return buildTrainingSet(db, plan);
}

/** After cleanRows: how bots were judged and how many were found (`rows`: their quarantined rows). */
export async function botChoice(db: Db, config: RecforgeConfig, rows: number): Promise<DataChoices['bots']> {
  const d = config.cleaning.detectBots;
  const o = await db.one<{ threshold: number | null; users: number; rated_users: number }>(
    sql.BOT_OUTCOME_SQL,
  );
  if (d === false) return { configured: d, counted: 'off', rule: null, threshold: null, users: 0, rows: 0 };
  return {
    configured: d,
    counted: d === 'auto' ? 'implicit-events' : 'all-events',
    rule: config.privacy.enabled ? 'public' : 'adaptive',
    threshold: o.rated_users > 0 && o.threshold !== null ? Number(o.threshold) : null,
    users: Number(o.users),
    rows,
  };
}

/**
 * The split for `evaluation.split`. `time` and `user-time` as configured; `auto`: the time cut when it leaves
 * enough evaluable users (at least max(gates.minUsers, minTimeSplitUsers) and minTimeSplitShare of the users with
 * training history), otherwise user-time. With privacy on, `auto` is the public time cut whatever the data: a
 * choice made from counts over all users would let one user move everyone's split (the counts are still
 * measured for the summary, which is internal).
 */
async function chooseAndSplit(db: Db, plan: CleanContext): Promise<DataChoices['split']> {
  const e = plan.config.evaluation;
  const run = async (m: 'time' | 'user-time') => {
    await db.run(sql.dropSplitSql(await db.all<{ name: string; kind: string }>(sql.SPLIT_OBJECTS_SQL)));
    await db.run(sql.splitSql(m, e.holdoutDays, e.holdoutFraction, splitCutoff(plan)));
  };
  if (e.split === 'user-time') {
    await run('user-time');
    return {
      configured: e.split,
      chosen: 'user-time',
      reason: 'configured',
      timeCut: null,
      needed: null,
      perUser: null,
    };
  }
  await run('time');
  const m = await db.one<{ train_users: number; evaluable: number }>(
    timeCutUsersSql(positiveRuleOf(plan.config)),
  );
  const timeCut = { evaluableUsers: Number(m.evaluable), trainUsers: Number(m.train_users) };
  const counts = `${timeCut.evaluableUsers} evaluable users of ${timeCut.trainUsers} with training history`;
  if (e.split === 'time')
    return {
      configured: e.split,
      chosen: 'time',
      reason: `configured (${counts})`,
      timeCut,
      needed: null,
      perUser: null,
    };
  if (plan.config.privacy.enabled) {
    return {
      configured: e.split,
      chosen: 'time',
      reason: `privacy on: auto is the public time cut, whatever the data (${counts})`,
      timeCut,
      needed: null,
      perUser: null,
    };
  }
  const needed = {
    users: Math.max(plan.config.gates.minUsers, e.minTimeSplitUsers ?? 0),
    share: e.minTimeSplitShare,
  };
  if (timeCutIsEnough(timeCut, needed))
    return { configured: e.split, ...chooseSplit(timeCut, needed), timeCut, needed, perUser: null };
  await run('user-time');
  const u = await db.one<{ train_users: number; evaluable: number }>(
    timeCutUsersSql(positiveRuleOf(plan.config)),
  );
  const perUser = { evaluableUsers: Number(u.evaluable), trainUsers: Number(u.train_users) };
  const d = chooseSplit(timeCut, needed, perUser);
  if (d.chosen === 'time') await run('time');
  return { configured: e.split, chosen: d.chosen, reason: d.reason, timeCut, needed, perUser };
}

/**
 * The item-item limits for this run: configured numbers as they are; `auto` from the training split's distinct
 * items per user and catalogue (privacy off), or from public values only (privacy on: the caps, the
 * co-occurrence candidates and the items file's catalogue, never a statistic of the events).
 */
export async function itemItemChoice(db: Db, config: RecforgeConfig): Promise<ItemItemDecision> {
  const configured = config.training.itemItem;
  if (config.privacy.enabled) {
    const catalogue = Number(
      await db.scalar<number>(
        `SELECT count(DISTINCT trim(item_id)) FROM raw_items WHERE nullif(trim(item_id), '') IS NOT NULL`,
      ),
    );
    return publicItemItemLimits(config, catalogue > 0 ? catalogue : null, configured);
  }
  if (configured.maxHistoryPerUser !== 'auto' && configured.neighbours !== 'auto')
    return chooseItemItemLimits({ histogram: [], items: 0 }, configured);
  const histogram = (await db.all<{ n: number; users: number }>(historyHistogramSql('train_events'))).map(
    (r) => ({ n: Number(r.n), users: Number(r.users) }),
  );
  const items = Number(await db.scalar<number>(`SELECT count(DISTINCT item_id) FROM train_events`));
  return chooseItemItemLimits({ histogram, items }, configured);
}

/** The columns that identify a clean event by its own content (the bounding's stable row identity). */
export const EVENT_IDENTITY = ['user_id', 'item_id', 'event_type', 'ts', 'rating'] as const;

/**
 * Splits `events` into train/holdout (the split `evaluation.split` chooses, see chooseAndSplit) and, with privacy on,
 * bounds each user's contribution to the training split (`train_bounded`) and to all events (`all_bounded`) with
 * the sampling key `secret`. Returns the split chosen and the rows the caps removed from all events. The bounding
 * samples by a hash of each row's content, so which rows of user v survive depends only on v's rows: removing or
 * adding another user changes nothing for v.
 */
export async function splitAndBound(
  db: Db,
  plan: CleanContext,
  secret: string,
): Promise<{ capped: number; split: DataChoices['split'] }> {
  progress({ stage: 'clean', step: 'split' });
  const split = await chooseAndSplit(db, plan);
  // Per-user contribution bounding of the training inputs (the holdout is judged as it is).
  if (!plan.config.privacy.enabled) return { capped: 0, split };
  progress({ stage: 'clean', step: 'contribution bounding' });
  for (const [source, target] of [
    ['train_events', 'train_bounded'],
    ['events', 'all_bounded'],
  ]) {
    const b = buildBoundingSql({
      source,
      userColumn: 'user_id',
      itemColumn: 'item_id',
      rowIdentity: EVENT_IDENTITY,
      caps: plan.config.privacy.caps,
      secret,
    });
    await db.run(b.createTableSql(target));
  }
  const capped = await db.scalar<number>(
    `SELECT (SELECT count(*) FROM events) - (SELECT count(*) FROM all_bounded)`,
  );
  return { capped, split };
}

/**
 * Types, validates, deduplicates and de-bots the raw rows in a scratch DuckDB over ingest's artifacts; writes the
 * clean events, every rejected row with its reason (quarantine.parquet), the stable dense id maps, the split
 * and, with privacy on, each user's bounded contribution; applies the quality gate. Idempotent: every output is
 * recreated from the raw artifacts.
 */
export async function clean(
  deps: ActivityDeps,
  run: StageRun,
  raw: RawArtifacts,
  profiled?: ProfileResult,
): Promise<CleanResult> {
  const io = new RunIO(run.plan.run, deps.dataDir);
  fs.mkdirSync(io.runDir, { recursive: true });
  const ctx: CleanContext = {
    config: run.plan.config,
    startedAt: run.plan.run.startedAt,
    runDate: run.incremental?.runDate ?? run.plan.runDate,
    datasetId: run.plan.run.datasetId,
    runId: run.plan.run.runId,
    runDir: io.runDir,
    incremental: run.incremental,
    local: async (key) => {
      if (path.isAbsolute(key)) return key; // a watermark written before partitions were storage keys
      await io.fetch([key]);
      return io.local(key);
    },
  };
  const k = {
    quarantine: io.key('quarantine.parquet'),
    userIds: io.key('user_ids.parquet'),
    itemIds: io.key('item_ids.parquet'),
    train: io.key('train_events.parquet'),
    holdout: io.key('holdout_events.parquet'),
    trainBounded: io.key('train_bounded.parquet'),
    allBounded: io.key('all_bounded.parquet'),
  };
  const cleaned = await io.withDb('clean', async (db) => {
    await openRawViews(db, io, raw);
    const extra = await cleanRows(db, ctx);
    // Incremental runs and the k-core filter replace the events with the windowed training set.
    const eventsKey = io.key(extra ? WINDOWED_EVENTS : 'events.parquet');
    progress({ stage: 'clean', step: 'quarantine' });
    await db.run(
      `COPY (SELECT * FROM quarantine ORDER BY source_file, source_line) TO ${lit(io.local(k.quarantine))} (FORMAT parquet, COMPRESSION zstd)`,
    );
    const byReason: Record<string, number> = {};
    for (const r of await db.all<{ reason: string; n: number }>(sql.REASON_COUNTS_SQL))
      byReason[r.reason] = r.n;

    progress({ stage: 'clean', step: 'id maps' });
    const prev = idMapKeys(ctx.datasetId);
    const prevLocal = async (key: string) => {
      if (!(await io.store.exists(key))) return undefined;
      await io.fetch([key]);
      return io.local(key);
    };
    await db.run(sql.idMapSql(await prevLocal(prev.users), await prevLocal(prev.items)));
    await db.run(`COPY user_ids TO ${lit(io.local(k.userIds))} (FORMAT parquet)`);
    await db.run(`COPY item_ids TO ${lit(io.local(k.itemIds))} (FORMAT parquet)`);

    const bots = await botChoice(db, ctx.config, byReason.bot_user ?? 0);
    const { capped: privacyCapped, split: splitChoice } = await splitAndBound(
      db,
      ctx,
      createSecureRng().secretHex(),
    );
    progress({ stage: 'clean', step: 'item-item limits' });
    const itemItem = await itemItemChoice(db, ctx.config);
    const choices: DataChoices = { split: splitChoice, bots, itemItem };
    log('chose for this data', { ...choices });
    const c = await db.one<{
      kept: number;
      quarantined: number;
      train: number;
      holdout: number;
      holdout_start: string | null;
      newest: string | null;
      users: number;
      items: number;
    }>(`SELECT (SELECT count(*) FROM events) AS kept, (SELECT count(*) FROM quarantine) AS quarantined,
               (SELECT count(*) FROM train_events) AS train, (SELECT count(*) FROM holdout_events) AS holdout,
               (SELECT strftime(holdout_start, '%Y-%m-%dT%H:%M:%S.%fZ') FROM split_info) AS holdout_start,
               (SELECT strftime(max(ts), '%Y-%m-%dT%H:%M:%SZ') FROM events) AS newest,
               (SELECT count(DISTINCT user_id) FROM events) AS users, (SELECT count(DISTINCT item_id) FROM events) AS items`);
    // The split as the next stages see it: an instant over the events, or (per-user split) two files.
    let split: SplitRef;
    if (splitChoice.chosen === 'time') {
      split = { kind: 'time', holdoutStart: c.holdout_start ?? '1970-01-01T00:00:00.000000Z' };
    } else {
      await db.run(`COPY train_events TO ${lit(io.local(k.train))} (FORMAT parquet, COMPRESSION snappy);
                    COPY holdout_events TO ${lit(io.local(k.holdout))} (FORMAT parquet, COMPRESSION snappy);`);
      split = {
        kind: 'files',
        train: await parquetArtifact(db, io, k.train),
        holdout: await parquetArtifact(db, io, k.holdout),
      };
    }
    let bounded: CleanArtifacts['bounded'] = null;
    if (run.plan.config.privacy.enabled) {
      await db.run(`COPY train_bounded TO ${lit(io.local(k.trainBounded))} (FORMAT parquet, COMPRESSION snappy);
                    COPY all_bounded TO ${lit(io.local(k.allBounded))} (FORMAT parquet, COMPRESSION snappy);`);
      bounded = {
        train: await parquetArtifact(db, io, k.trainBounded),
        all: await parquetArtifact(db, io, k.allBounded),
      };
    }
    const artifacts: CleanArtifacts = {
      events: await parquetArtifact(db, io, eventsKey),
      quarantine: await parquetArtifact(db, io, k.quarantine),
      userIds: await parquetArtifact(db, io, k.userIds),
      itemIds: await parquetArtifact(db, io, k.itemIds),
      split,
      bounded,
      choices,
    };
    const out: CleanResult = {
      artifacts,
      kept: c.kept,
      quarantined: c.quarantined,
      byReason,
      trainRows: c.train,
      holdoutRows: c.holdout,
      holdoutStart: c.holdout_start ?? '',
      newestEvent: c.newest,
      users: c.users,
      items: c.items,
      privacyCapped,
      newRows: extra ? extra.newRows : c.kept,
      kCore: extra?.kCore ?? null,
      history: extra?.history ?? null,
    };
    const newLines: Record<string, number> = {};
    for (const r of await db.all<{ reason: string; n: number }>(
      newLineCountsSql(run.incremental?.appended ?? []),
    ))
      newLines[r.reason] = r.n;
    return { out, gate: gateCounts(newLines, c.newest) };
  });
  const result = cleaned.out;
  const a = result.artifacts;
  await io.push([
    a.events.key,
    a.quarantine.key,
    a.userIds.key,
    a.itemIds.key,
    ...(a.split.kind === 'files' ? [a.split.train.key, a.split.holdout.key] : []),
    ...(a.bounded ? [a.bounded.train.key, a.bounded.all.key] : []),
    ...(run.incremental ? [run.incremental.partition] : []),
  ]);
  log('cleaned', { kept: result.kept, quarantined: result.quarantined, byReason: result.byReason });

  const failed = qualityChecks(ctx, cleaned.gate, profiled?.drift ?? null).filter((c) => !c.passed);
  if (failed.length) {
    const what = failed
      .map(
        (c) =>
          `${c.name}: measured ${Number.isInteger(c.value) ? c.value : c.value.toFixed(4)}, threshold ${c.threshold}`,
      )
      .join('; ');
    throw new RecforgeError(
      'QualityGateFailed',
      `quality gate failed (${what}); quarantine: ${io.store.uri(a.quarantine.key)}`,
      result,
    );
  }
  if (result.trainRows === 0 || result.holdoutRows === 0) {
    const cut = splitMethodOf(a.split) === 'time' ? splitCutoff(ctx) : undefined;
    if (cut !== undefined) {
      // A public cut that misses the data is a configuration to fix, not dirty data.
      const source =
        run.plan.config.evaluation.cutoff !== undefined
          ? 'evaluation.cutoff'
          : 'the run date minus evaluation.holdoutDays';
      throw configError(
        `time split at ${cut} (${source}) left ${result.trainRows} training and ${result.holdoutRows} holdout rows; ` +
          `the clean events end at ${result.newestEvent ?? 'nothing'}: set evaluation.cutoff to an instant inside the data ` +
          "(with privacy on the cut must be public, never taken from the data's newest event), or use split: user-time",
      );
    }
    const e = run.plan.config.evaluation;
    const method = splitMethodOf(a.split);
    const chosen = a.choices?.split.configured === 'auto' ? ` (auto: ${a.choices.split.reason})` : '';
    throw new RecforgeError(
      'QualityGateFailed',
      `${method} split left ${result.trainRows} training and ${result.holdoutRows} holdout rows ` +
        (method === 'time'
          ? `(holdoutDays=${e.holdoutDays})${chosen}; the data must span more than the holdout period`
          : `(holdoutFraction=${e.holdoutFraction})${chosen}; only users with at least 3 events have a holdout`),
      result,
    );
  }
  return result;
}
