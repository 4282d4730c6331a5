import * as fs from 'node:fs';
import * as path from 'node:path';
import { withDb, lit } from '../lib/duckdb';
import * as sql from '../analytics/baselines.sql';
import type { ModelArtifact, RunPlan, TrainResult } from '../contracts/stages';
import { limitsOf, progress } from './context';
import { trainDpBaselines } from './train-dp';

export function modelsDir(plan: RunPlan): string {
  return path.join(plan.runDir, 'models');
}

/**
 * Trains the baselines twice: on the training split (what evaluation judges) and on all clean events (what is
 * published). Writes each as a Parquet file under the run's models folder.
 */
export async function trainBaselines(plan: RunPlan): Promise<TrainResult> {
  const dir = modelsDir(plan);
  fs.mkdirSync(dir, { recursive: true });
  const { maxHistoryPerUser, neighbours } = plan.config.training.itemItem;
  return withDb(plan.dbPath, limitsOf(plan), async (db) => {
    if (plan.config.privacy.enabled) {
      return { backend: 'duckdb-sql+dp', models: await trainDpBaselines(db, plan, dir) };
    }
    const models: ModelArtifact[] = [];
    const variants: [string, string][] = [
      ['train_events', ''],
      ['events', '-full'],
    ];
    for (const [source, suffix] of variants) {
      progress({ stage: 'train', model: `mostpop${suffix}` });
      const mp = path.join(dir, `mostpop${suffix}.parquet`);
      await db.run(sql.mostPopSql(source, mp));
      models.push({ name: `mostpop${suffix}`, kind: 'mostpop', path: mp, rows: await count(mp) });
      progress({ stage: 'train', model: `itemitem${suffix}` });
      const ii = path.join(dir, `itemitem${suffix}.parquet`);
      await db.run(sql.itemItemSql(source, ii, maxHistoryPerUser, neighbours));
      models.push({ name: `itemitem${suffix}`, kind: 'itemitem', path: ii, rows: await count(ii) });
    }
    return { backend: 'duckdb-sql', models };

    async function count(file: string): Promise<number> {
      return db.scalar<number>(`SELECT count(*) FROM read_parquet(${lit(file)})`);
    }
  });
}
