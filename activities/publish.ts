import * as fs from 'node:fs';
import * as path from 'node:path';
import { withDb, lit } from '../lib/duckdb';
import { dataPath } from '../lib/config';
import { fsyncDir, sha256File, writeJsonAtomic, readJsonIfExists } from '../lib/fs-atomic';
import { recommendSql, maxSeenSql } from '../analytics/baselines.sql';
import type { EvaluateResult, PublishResult, RunPlan, TrainResult } from '../workflows/types';
import { limitsOf, log, progress } from './context';
import { stateDir } from './clean';

/** The Parquet contract downstream readers rely on (also written into every manifest). */
export const OUTPUT_SCHEMA = [
  { name: 'user_id', type: 'VARCHAR' },
  { name: 'rank', type: 'INTEGER' },
  { name: 'item_id', type: 'VARCHAR' },
  { name: 'score', type: 'DOUBLE' },
  { name: 'model_version', type: 'VARCHAR' },
  { name: 'generated_at', type: 'TIMESTAMP WITH TIME ZONE' },
] as const;

export interface Manifest {
  formatVersion: 1;
  datasetId: string;
  modelVersion: string;
  model: string;
  runId: string;
  workflowId: string;
  createdAt: string;
  generatedAt: string;
  topN: number;
  rowCount: number;
  users: number;
  schema: typeof OUTPUT_SCHEMA;
  files: { path: string; rows: number; bytes: number; sha256: string }[];
  metrics: Record<string, number>;
  privacy: { epsilon: number; delta: number } | null;
}

export function outputRoot(plan: RunPlan): string {
  return path.join(dataPath(plan.config, plan.config.publish.outputDir), plan.datasetId);
}

/** Points `current` at a version atomically: a new symlink renamed over the old one, plus a JSON pointer. */
export function switchCurrent(root: string, version: string): string {
  const link = path.join(root, 'current');
  const tmp = path.join(root, `.current-${process.pid}-${Date.now()}`);
  fs.symlinkSync(path.join('versions', version), tmp);
  fs.renameSync(tmp, link);
  writeJsonAtomic(path.join(root, '_current.json'), {
    version,
    path: path.join('versions', version),
    switchedAt: new Date().toISOString(),
  });
  fsyncDir(root);
  return link;
}

export function currentVersion(root: string): string | undefined {
  return readJsonIfExists<{ version: string }>(path.join(root, '_current.json'))?.version;
}

/** Removes all but the newest `keep` versions (by manifest time), never the current one; leftovers of crashed writes too. */
export function pruneVersions(root: string, keep: number): string[] {
  const dir = path.join(root, 'versions');
  if (!fs.existsSync(dir)) return [];
  const current = currentVersion(root);
  const removed: string[] = [];
  for (const name of fs.readdirSync(dir)) {
    if (name.startsWith('.tmp-')) {
      const age = Date.now() - fs.statSync(path.join(dir, name)).mtimeMs;
      if (age > 3_600_000) {
        fs.rmSync(path.join(dir, name), { recursive: true, force: true });
        removed.push(name);
      }
    }
  }
  const versions = fs
    .readdirSync(dir)
    .filter((n) => !n.startsWith('.'))
    .map((n) => ({ n, m: readJsonIfExists<Manifest>(path.join(dir, n, '_manifest.json')) }))
    .filter((v) => v.m)
    .sort((a, b) => (a.m!.createdAt < b.m!.createdAt ? 1 : -1));
  for (const v of versions.slice(keep)) {
    if (v.n === current) continue;
    fs.rmSync(path.join(dir, v.n), { recursive: true, force: true });
    removed.push(v.n);
  }
  return removed;
}

/**
 * Writes top-N recommendations for every known user into a temporary folder, verifies them by reading back,
 * writes the manifest, renames the folder into versions/, then switches `current`. A crash at any point leaves
 * the previous version current; a retry of the same run reuses a completed version folder.
 */
export async function publish(
  plan: RunPlan,
  trained: TrainResult,
  evaluation: EvaluateResult,
): Promise<PublishResult> {
  const root = outputRoot(plan);
  const versionsDir = path.join(root, 'versions');
  const finalDir = path.join(versionsDir, plan.modelVersion);
  fs.mkdirSync(versionsDir, { recursive: true });
  const model = trained.models.find((m) => m.name === `${evaluation.chosenModel}-full`)!;
  const mostPop = trained.models.find((m) => m.name === 'mostpop-full')!;
  const topN = plan.config.publish.topN;

  let manifest = readJsonIfExists<Manifest>(path.join(finalDir, '_manifest.json'));
  if (manifest && manifest.runId !== plan.runId) {
    throw new Error(`${finalDir} already holds version ${plan.modelVersion} from run ${manifest.runId}`);
  }
  if (!manifest) {
    const tmpDir = path.join(versionsDir, `.tmp-${plan.modelVersion}-${process.pid}-${Date.now()}`);
    fs.mkdirSync(tmpDir, { recursive: true });
    const file = path.join(tmpDir, 'part-00000.parquet');
    const stats = await withDb(plan.dbPath, limitsOf(plan), async (db) => {
      await db.run(`SET TimeZone = 'UTC'`);
      progress({ stage: 'publish', step: 'score' });
      await db.run(`
        CREATE OR REPLACE TEMP TABLE publish_users AS SELECT DISTINCT user_id FROM events;
        CREATE OR REPLACE TEMP TABLE unavailable_items AS
          SELECT DISTINCT item_id FROM raw_items WHERE lower(trim(in_stock)) IN ('false', '0', 'no', 'n', 'f');`);
      const maxSeen = await db.scalar<number>(maxSeenSql('events', 'publish_users'));
      await db.run(
        recommendSql(
          {
            kind: model.kind,
            modelFile: model.path,
            mostPopFile: mostPop.path,
            targets: 'publish_users',
            history: 'events',
            k: topN,
            maxHistory: plan.config.training.itemItem.maxHistoryPerUser,
            into: 'publish_recs',
            excludeItems: 'unavailable_items',
          },
          maxSeen,
        ),
      );
      progress({ stage: 'publish', step: 'write' });
      // Snappy, not zstd: every downstream reader (Spark, pyarrow, DuckDB, pure-JS readers) decodes it.
      await db.run(`
        COPY (
          SELECT user_id, rank, item_id, score, ${lit(plan.modelVersion)} AS model_version,
                 CAST(${lit(plan.startedAt)} AS TIMESTAMPTZ) AS generated_at
          FROM publish_recs ORDER BY user_id, rank
        ) TO ${lit(file)} (FORMAT parquet, COMPRESSION snappy, ROW_GROUP_SIZE 122880)`);
      // Read back what was written: the manifest states what a reader will actually get.
      return db.one<{ rows: number; users: number }>(
        `SELECT count(*) AS rows, count(DISTINCT user_id) AS users FROM read_parquet(${lit(file)})`,
      );
    });
    manifest = {
      formatVersion: 1,
      datasetId: plan.datasetId,
      modelVersion: plan.modelVersion,
      model: evaluation.chosenModel,
      runId: plan.runId,
      workflowId: plan.workflowId,
      createdAt: new Date().toISOString(),
      generatedAt: plan.startedAt,
      topN,
      rowCount: stats.rows,
      users: stats.users,
      schema: OUTPUT_SCHEMA,
      files: [
        {
          path: 'part-00000.parquet',
          rows: stats.rows,
          bytes: fs.statSync(file).size,
          sha256: await sha256File(file),
        },
      ],
      metrics: evaluation.metrics[evaluation.chosenModel] ?? {},
      privacy: null,
    };
    writeJsonAtomic(path.join(tmpDir, '_manifest.json'), manifest);
    fsyncDir(tmpDir);
    fs.rmSync(finalDir, { recursive: true, force: true }); // Only a partial, manifest-less folder can be here.
    fs.renameSync(tmpDir, finalDir);
    fsyncDir(versionsDir);
  }
  const currentPath = switchCurrent(root, plan.modelVersion);
  const pruned = pruneVersions(root, plan.config.publish.keepVersions);
  // The id maps become the dataset's state only once a run has published with them.
  const state = stateDir(plan);
  fs.mkdirSync(state, { recursive: true });
  for (const f of ['user_ids.parquet', 'item_ids.parquet']) {
    const src = path.join(plan.runDir, f);
    if (fs.existsSync(src)) {
      fs.copyFileSync(src, path.join(state, `${f}.tmp`));
      fs.renameSync(path.join(state, `${f}.tmp`), path.join(state, f));
    }
  }
  log('published', { version: plan.modelVersion, rows: manifest.rowCount, pruned });
  return {
    outputDir: root,
    versionDir: finalDir,
    currentPath,
    rows: manifest.rowCount,
    users: manifest.users,
    manifestPath: path.join(finalDir, '_manifest.json'),
    sha256: manifest.files[0].sha256,
  };
}
