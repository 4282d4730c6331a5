import * as fs from 'node:fs';
import * as path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { dropRelation, withDb, lit, type Db } from '../lib/duckdb';
import * as sql from '../analytics/clean.sql';
import type { CleanResult, ProfileResult, RunPlan } from '../contracts/stages';
import { limitsOf, log, progress } from './context';
import { buildBoundingSql, createSecureRng } from '../privacy';
import { buildTrainingSet, needsSources, type HistoryOutcome } from './clean-history';
import { newLineCountsSql } from '../analytics/history.sql';

/** Where the dataset's stable id maps live between runs (updated only when a run publishes). */
export function stateDir(plan: Pick<RunPlan, 'config' | 'datasetId'>): string {
  return path.join(plan.config.dataDir, 'state', plan.datasetId);
}

export interface QualityCheck {
  name: string;
  value: number;
  threshold: number;
  passed: boolean;
}

/** Pure: the quality gate over the cleaning counts, the drift against the last good run and freshness. */
export function qualityChecks(
  plan: RunPlan,
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
async function checkIdPatterns(db: Db, f: RunPlan['config']['schema']['idFormat']): Promise<void> {
  for (const [key, pattern] of Object.entries(f ?? {})) {
    if (pattern === undefined) continue;
    try {
      await db.run(`SELECT regexp_full_match('', ${lit(pattern)})`);
    } catch (err) {
      throw ApplicationFailure.nonRetryable(
        `schema.idFormat.${key} '${pattern}': ${String((err as Error).message).split('\n')[0]}`,
        'ConfigError',
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

/**
 * A run ingested by a worker from before the Parquet landing zone (raw_events a table, no rid) and cleaned by
 * this one, as happens when workers are upgraded while a run is in flight: give that table the row ids
 * cleaning joins on (its rowids, which follow file and line order as the old ingest inserted them).
 */
async function adoptTableLayout(db: Db): Promise<void> {
  const old = await db.scalar<number>(`
    SELECT count(*) FROM duckdb_tables() t WHERE NOT t.temporary AND t.table_name = 'raw_events'
      AND NOT EXISTS (SELECT 1 FROM duckdb_columns() c WHERE c.table_name = 'raw_events' AND c.column_name = 'rid')`);
  if (Number(old) > 0) {
    log('raw_events from an earlier ingest layout: adding row ids', {});
    await db.run(`ALTER TABLE raw_events ADD COLUMN rid BIGINT; UPDATE raw_events SET rid = rowid;`);
  }
}

/** The run date's instant (00:00 UTC): the incremental run date, else the workflow's start date. */
export function runDateInstant(plan: Pick<RunPlan, 'startedAt' | 'incremental'>): number {
  return Date.parse(`${plan.incremental?.runDate ?? plan.startedAt.slice(0, 10)}T00:00:00Z`);
}

/**
 * Where the `time` split cuts: `evaluation.cutoff` when set; with privacy on, otherwise the run date minus
 * holdoutDays — public instants, so one user's events cannot move anyone else's rows across the cut. Undefined
 * (privacy off, no cutoff): the newest clean event minus holdoutDays, taken from the data.
 */
export function splitCutoff(plan: Pick<RunPlan, 'config' | 'startedAt' | 'incremental'>): string | undefined {
  const e = plan.config.evaluation;
  if (e.cutoff !== undefined) return new Date(e.cutoff).toISOString();
  if (!plan.config.privacy.enabled) return undefined;
  return new Date(runDateInstant(plan) - e.holdoutDays * 86_400_000).toISOString();
}

/**
 * Classifies, deduplicates and de-bots the raw rows into `events` (and the quarantine table), then, for incremental
 * runs or the k-core filter, builds the training set. With privacy on every step here is per-user or public
 * (the bot threshold is the public cleaning.botMaxEventsPerDay; k-core is refused by config validation).
 */
export async function cleanRows(db: Db, plan: RunPlan): Promise<HistoryOutcome | null> {
  await db.run(`SET TimeZone = 'UTC'`);
  progress({ stage: 'clean', step: 'classify' });
  await checkIdPatterns(db, plan.config.schema.idFormat);
  await adoptTableLayout(db);
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
      detectBots: c.detectBots,
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

/** The columns that identify a clean event by its own content (the bounding's stable row identity). */
export const EVENT_IDENTITY = ['user_id', 'item_id', 'event_type', 'ts', 'rating'] as const;

/**
 * Splits `events` into train/holdout and, with privacy on, bounds each user's contribution to the training split
 * (`train_bounded`) and to all events (`all_bounded`) with the sampling key `secret`. Returns the rows the caps
 * removed from all events. The bounding samples by a hash of each row's content, so which rows of user v survive
 * depends only on v's rows: removing or adding another user changes nothing for v.
 */
export async function splitAndBound(db: Db, plan: RunPlan, secret: string): Promise<number> {
  progress({ stage: 'clean', step: 'split' });
  const e = plan.config.evaluation;
  await db.run(sql.dropSplitSql(await db.all<{ name: string; kind: string }>(sql.SPLIT_OBJECTS_SQL)));
  await db.run(sql.splitSql(e.split, e.holdoutDays, e.holdoutFraction, splitCutoff(plan)));
  // Per-user contribution bounding of the training inputs (the holdout is judged as it is).
  if (!plan.config.privacy.enabled) return 0;
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
  return db.scalar<number>(`SELECT (SELECT count(*) FROM events) - (SELECT count(*) FROM all_bounded)`);
}

/**
 * Types, validates, deduplicates and de-bots the raw rows in DuckDB; writes every rejected row with its reason
 * to quarantine.parquet; maps ids to stable dense indices; splits train/holdout by time; applies the quality
 * gate. Idempotent: all tables are recreated from raw_events.
 */
export async function clean(plan: RunPlan, profiled?: ProfileResult): Promise<CleanResult> {
  const quarantinePath = path.join(plan.runDir, 'quarantine.parquet');
  const cleaned = await withDb(plan.dbPath, limitsOf(plan), async (db) => {
    const extra = await cleanRows(db, plan);
    progress({ stage: 'clean', step: 'quarantine' });
    await db.run(
      `COPY (SELECT * FROM quarantine ORDER BY source_file, source_line) TO ${lit(quarantinePath)} (FORMAT parquet, COMPRESSION zstd)`,
    );
    const byReason: Record<string, number> = {};
    for (const r of await db.all<{ reason: string; n: number }>(sql.REASON_COUNTS_SQL))
      byReason[r.reason] = r.n;

    progress({ stage: 'clean', step: 'id maps' });
    const state = stateDir(plan);
    const prevUsers = path.join(state, 'user_ids.parquet');
    const prevItems = path.join(state, 'item_ids.parquet');
    await db.run(
      sql.idMapSql(
        fs.existsSync(prevUsers) ? prevUsers : undefined,
        fs.existsSync(prevItems) ? prevItems : undefined,
      ),
    );
    await db.run(`COPY user_ids TO ${lit(path.join(plan.runDir, 'user_ids.parquet'))} (FORMAT parquet)`);
    await db.run(`COPY item_ids TO ${lit(path.join(plan.runDir, 'item_ids.parquet'))} (FORMAT parquet)`);

    const privacyCapped = await splitAndBound(db, plan, createSecureRng().secretHex());
    await db.run('CHECKPOINT');
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
               (SELECT strftime(holdout_start, '%Y-%m-%dT%H:%M:%SZ') FROM split_info) AS holdout_start,
               (SELECT strftime(max(ts), '%Y-%m-%dT%H:%M:%SZ') FROM events) AS newest,
               (SELECT count(DISTINCT user_id) FROM events) AS users, (SELECT count(DISTINCT item_id) FROM events) AS items`);
    const out: CleanResult = {
      kept: c.kept,
      quarantined: c.quarantined,
      byReason,
      quarantinePath,
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
      newLineCountsSql(plan.incremental?.appended ?? []),
    ))
      newLines[r.reason] = r.n;
    return { out, gate: gateCounts(newLines, c.newest) };
  });
  const result = cleaned.out;
  log('cleaned', { kept: result.kept, quarantined: result.quarantined, byReason: result.byReason });

  const failed = qualityChecks(plan, cleaned.gate, profiled?.drift ?? null).filter((c) => !c.passed);
  if (failed.length) {
    const what = failed
      .map(
        (c) =>
          `${c.name}: measured ${Number.isInteger(c.value) ? c.value : c.value.toFixed(4)}, threshold ${c.threshold}`,
      )
      .join('; ');
    throw ApplicationFailure.nonRetryable(
      `quality gate failed (${what}); quarantine: ${quarantinePath}`,
      'QualityGateFailed',
      result,
    );
  }
  if (result.trainRows === 0 || result.holdoutRows === 0) {
    const cut = plan.config.evaluation.split === 'time' ? splitCutoff(plan) : undefined;
    if (cut !== undefined) {
      // A public cut that misses the data is a configuration to fix, not dirty data.
      const source =
        plan.config.evaluation.cutoff !== undefined
          ? 'evaluation.cutoff'
          : 'the run date minus evaluation.holdoutDays';
      throw ApplicationFailure.nonRetryable(
        `time split at ${cut} (${source}) left ${result.trainRows} training and ${result.holdoutRows} holdout rows; ` +
          `the clean events end at ${result.newestEvent ?? 'nothing'}: set evaluation.cutoff to an instant inside the data ` +
          "(with privacy on the cut must be public, never taken from the data's newest event), or use split: user-time",
        'ConfigError',
      );
    }
    throw ApplicationFailure.nonRetryable(
      `time split left ${result.trainRows} training and ${result.holdoutRows} holdout rows (holdoutDays=${plan.config.evaluation.holdoutDays}); ` +
        'the data must span more than the holdout period',
      'QualityGateFailed',
      result,
    );
  }
  return result;
}
