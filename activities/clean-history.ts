import { ApplicationFailure } from '@temporalio/common';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { lit, type Db } from '../lib/duckdb';
import { fsyncDir } from '../lib/fs-atomic';
import * as hist from '../analytics/history.sql';
import { kCoreEnabled, kCorePassSql, kCoreSetupSql, KCORE_DROP_SQL } from '../analytics/kcore.sql';
import type { CleanResult, RunPlan } from '../contracts/stages';
import { log, progress } from './context';

/**
 * The step between cleaning and the id maps when incremental runs or the k-core filter are on: this run's
 * clean rows are stored as its partition, joined with the history partitions, windowed, k-core filtered,
 * and put back into `events`. Requires `events` with the raw row id (classifySql keepRid).
 */

/** Whether clean() must keep raw row ids in `events` for this step. */
export const needsSources = (plan: RunPlan) =>
  Boolean(plan.incremental) || kCoreEnabled(plan.config.cleaning.kCore);

export interface HistoryOutcome {
  newRows: number;
  duplicatesOfHistory: number;
  kCore: CleanResult['kCore'];
  history: CleanResult['history'];
}

export async function buildTrainingSet(db: Db, plan: RunPlan): Promise<HistoryOutcome> {
  const inc = plan.incremental ?? null;
  const runDate = inc?.runDate ?? plan.startedAt.slice(0, 10);
  await db.run(hist.newSourcesSql(runDate));
  let duplicatesOfHistory = 0;
  let history: CleanResult['history'] = null;
  let newRows: number;
  if (inc) {
    progress({ stage: 'clean', step: 'history', partitions: inc.history.length });
    for (const h of inc.history) {
      if (!fs.existsSync(h.partition)) {
        // Permanent until someone restores it: retrying cannot help.
        throw ApplicationFailure.nonRetryable(
          `${h.partition}: store partition of ${h.runDate} is missing (watermark.json lists it); restore it, ` +
            'or remove that entry from watermark.json to re-read its files',
          'BadInput',
        );
      }
    }
    await db.run(hist.unionHistorySql(inc.history.map((h) => h.partition)));
    await db.run(hist.QUARANTINE_HISTORY_DUPS_SQL);
    duplicatesOfHistory = await db.scalar<number>(`SELECT count(*) FROM ev_hist_dups`);
    // Written under a temporary name and renamed: a crash never leaves a half-written partition.
    fs.mkdirSync(path.dirname(inc.partition), { recursive: true });
    const tmp = `${inc.partition}.tmp-${process.pid}`;
    await db.run(hist.writePartitionSql(tmp, runDate));
    fs.renameSync(tmp, inc.partition);
    fsyncDir(path.dirname(inc.partition));
    // With privacy on the window starts at a public instant (run date − historyDays), never at the data's newest
    // event minus historyDays: one user's far-future event would otherwise move every other user's window.
    const start = plan.config.privacy.enabled
      ? new Date(Date.parse(`${runDate}T00:00:00Z`) - inc.historyDays * 86_400_000).toISOString()
      : undefined;
    await db.run(hist.windowSql(inc.historyDays, start));
    const w = await db.one<{ new_rows: number; newest_new: string | null; start: string | null }>(
      `SELECT (SELECT count(*) FROM ev_all WHERE run_date = ${lit(runDate)}) AS new_rows,
              (SELECT strftime(max(ts), '%Y-%m-%dT%H:%M:%SZ') FROM ev_all WHERE run_date = ${lit(runDate)}) AS newest_new,
              (SELECT strftime(min(ts), '%Y-%m-%dT%H:%M:%SZ') FROM ev_src) AS start`,
    );
    newRows = w.new_rows;
    history = {
      partitions: inc.history.length + 1,
      windowStart: w.start,
      duplicatesOfHistory,
      newestNewEvent: w.newest_new,
    };
  } else {
    await db.run(hist.SOURCES_ARE_NEW_SQL);
    newRows = await db.scalar<number>(`SELECT count(*) FROM ev_new`);
  }
  const kCore = await applyKCore(db, plan);
  // A file of its own: the view still reads events.parquet until it is replaced.
  await db.run(hist.replaceEventsSql(path.join(plan.runDir, 'events-window.parquet')));
  return { newRows, duplicatesOfHistory, kCore, history };
}

/** Peels `ev_src` to its k-core, pass by pass, and quarantines what it removes. */
async function applyKCore(db: Db, plan: RunPlan): Promise<CleanResult['kCore']> {
  const k = plan.config.cleaning.kCore;
  if (!kCoreEnabled(k)) return null;
  await db.run(kCoreSetupSql('ev_src'));
  let passes = 0;
  let converged = false;
  while (passes < k.maxIterations) {
    passes++;
    progress({ stage: 'clean', step: 'k-core', pass: passes });
    await db.run(kCorePassSql(k, passes));
    if ((await db.scalar<number>(`SELECT count(*) FROM kc_weak`)) === 0) {
      converged = true;
      break;
    }
  }
  const removed = await db.scalar<number>(`SELECT count(*) FROM kc_removed`);
  await db.run(hist.quarantineKCoreSql(k));
  await db.run(KCORE_DROP_SQL);
  if (!converged) log('k-core filter stopped at maxIterations before converging', { passes, removed });
  return { removed, iterations: passes, converged };
}
