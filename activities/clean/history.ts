import * as fs from 'node:fs';
import * as path from 'node:path';
import { lit, type Db } from '../../lib/duckdb';
import { fsyncDir } from '../../lib/fs-atomic';
import * as hist from '../../analytics/history.sql';
import { kCoreEnabled, kCorePassSql, kCoreSetupSql, KCORE_DROP_SQL } from '../../analytics/kcore.sql';
import type { CleanResult } from '../../contracts/stages';
import type { CleanContext } from './index';
import { WINDOWED_EVENTS } from '../support/layout';
import { badInput } from '../../contracts/errors';
import { log, progress } from '../support/context';

/**
 * The step between cleaning and the id maps when incremental runs or the k-core filter are on: this run's
 * clean rows are stored as its partition, joined with the history partitions, windowed, k-core filtered,
 * and put back into `events`. Requires `events` with the raw row id (classifySql keepRid).
 */

/** Whether clean() must keep raw row ids in `events` for this step. */
export const needsSources = (plan: Pick<CleanContext, 'incremental' | 'config'>) =>
  Boolean(plan.incremental) || kCoreEnabled(plan.config.cleaning.kCore);

export interface HistoryOutcome {
  newRows: number;
  duplicatesOfHistory: number;
  kCore: CleanResult['kCore'];
  history: CleanResult['history'];
}

/**
 * The local folder that mirrors the run's storage root: the run folder is `runs/<dataset>/<runId>` below it,
 * and store partitions `state/<dataset>/…`.
 */
function storageRootOf(plan: CleanContext): string {
  return path.resolve(plan.runDir, '..', '..', '..');
}

export async function buildTrainingSet(db: Db, plan: CleanContext): Promise<HistoryOutcome> {
  const inc = plan.incremental ?? null;
  const runDate = plan.runDate;
  await db.run(hist.newSourcesSql(runDate));
  let duplicatesOfHistory = 0;
  let history: CleanResult['history'] = null;
  let newRows: number;
  if (inc) {
    progress({ stage: 'clean', step: 'history', partitions: inc.history.length });
    // History partitions are storage keys (older watermarks hold paths); each is made present locally first.
    const local = plan.local ?? (async (key: string) => key);
    const partitions: string[] = [];
    for (const h of inc.history) {
      const file = await local(h.partition).catch(() => h.partition);
      if (!fs.existsSync(file)) {
        // Permanent until someone restores it: retrying cannot help.
        throw badInput(
          `${h.partition}: store partition of ${h.runDate} is missing (watermark.json lists it); restore it, ` +
            'or remove that entry from watermark.json to re-read its files',
        );
      }
      partitions.push(file);
    }
    await db.run(hist.unionHistorySql(partitions));
    await db.run(hist.QUARANTINE_HISTORY_DUPS_SQL);
    duplicatesOfHistory = await db.scalar<number>(`SELECT count(*) FROM ev_hist_dups`);
    // This run's partition, written locally under a temporary name and renamed (a crash never leaves a half-written
    // one); the clean activity uploads it with its other artifacts.
    const partition = path.isAbsolute(inc.partition)
      ? inc.partition
      : path.join(storageRootOf(plan), ...inc.partition.split('/'));
    fs.mkdirSync(path.dirname(partition), { recursive: true });
    const tmp = `${partition}.tmp-${process.pid}`;
    await db.run(hist.writePartitionSql(tmp, runDate));
    fs.renameSync(tmp, partition);
    fsyncDir(path.dirname(partition));
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
  await db.run(hist.replaceEventsSql(path.join(plan.runDir, WINDOWED_EVENTS)));
  return { newRows, duplicatesOfHistory, kCore, history };
}

/** Peels `ev_src` to its k-core, pass by pass, and quarantines what it removes. */
async function applyKCore(db: Db, plan: CleanContext): Promise<CleanResult['kCore']> {
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
