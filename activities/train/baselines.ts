import * as fs from 'node:fs';
import * as path from 'node:path';
import { lit } from '../../lib/duckdb';
import * as sql from '../../analytics/baselines.sql';
import { itemItemLimitsOf } from '../../contracts/stages';
import type {
  CleanArtifacts,
  ModelArtifact,
  RawArtifacts,
  StageRun,
  TrainResult,
} from '../../contracts/stages';
import { progress, type ActivityDeps } from '../support/context';
import { TrainContext } from '../support/train-context';
import { trainDpBaselines } from './dp';
import { trainItemItem } from './item-item';

/**
 * Trains the baselines twice: on the training split (what evaluation judges) and on all clean events (what is
 * published). Writes each as a Parquet file under the run's models folder. With privacy on they are trained
 * only from differentially private releases of the bounded events (train-dp.ts).
 */
export async function trainBaselines(
  deps: ActivityDeps,
  run: StageRun,
  clean: CleanArtifacts,
  raw: RawArtifacts,
): Promise<TrainResult> {
  const plan = new TrainContext(run, clean, raw, deps.dataDir);
  const dir = path.join(plan.runDir, 'models');
  fs.mkdirSync(dir, { recursive: true });
  // cleaning's choice for this data (training.itemItem may say `auto`).
  const { maxHistoryPerUser, neighbours } = itemItemLimitsOf(plan.config, clean);
  const result = await plan.withViews('train', async (db): Promise<TrainResult> => {
    if (plan.config.privacy.enabled) {
      return { backend: 'duckdb-sql+dp', models: await trainDpBaselines(db, plan, dir) };
    }
    const models: ModelArtifact[] = [];
    const variants: [string, string][] = [
      ['train_events', ''],
      ['events', '-full'],
    ];
    const count = (file: string) => db.scalar<number>(`SELECT count(*) FROM read_parquet(${lit(file)})`);
    for (const [source, suffix] of variants) {
      progress({ stage: 'train', step: `mostpop${suffix}` });
      const mp = path.join(dir, `mostpop${suffix}.parquet`);
      await db.run(sql.mostPopSql(source, mp));
      models.push({ name: `mostpop${suffix}`, kind: 'mostpop', key: plan.key(mp), rows: await count(mp) });
      progress({ stage: 'train', step: `itemitem${suffix}` });
      const ii = path.join(dir, `itemitem${suffix}.parquet`);
      await trainItemItem(db, {
        source,
        outFile: ii,
        maxHistory: maxHistoryPerUser,
        neighbours,
        memoryLimit: plan.io.run.duckdb.memoryLimit,
        step: `itemitem${suffix}`,
      });
      models.push({ name: `itemitem${suffix}`, kind: 'itemitem', key: plan.key(ii), rows: await count(ii) });
    }
    return { backend: 'duckdb-sql', models };
  });
  await plan.io.push(result.models.map((m) => m.key));
  return result;
}
