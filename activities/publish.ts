import * as fs from 'node:fs';
import * as path from 'node:path';
import { withDb, lit, type DuckdbLimits } from '../lib/duckdb';
import { dataPath } from '../lib/config';
import { fsyncDir, sha256File, writeJsonAtomic, readJsonIfExists } from '../lib/fs-atomic';
import { recommendSql, maxSeenSql, type RecommendParams } from '../analytics/baselines.sql';
import type { EvaluateResult, PublishResult, RunPlan, TrainResult } from '../workflows/types';
import { limitsOf, log, progress } from './context';
import { stateDir } from './clean';
import { recordSuccessfulProfile } from './profile';
import type { ModelPrivacy } from '../lib/registry';
import {
  buildPublishedReport,
  renderPublishedReport,
  type PublishedReport,
} from '../analytics/published-report';

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
  /**
   * Exact rows and users of the part files: only when privacy is off. With privacy on they are left out (the
   * number of users is a count nobody noised); readers check each file by its sha256 and bytes instead.
   */
  rowCount?: number;
  users?: number;
  schema: typeof OUTPUT_SCHEMA;
  files: { path: string; rows?: number; bytes: number; sha256: string }[];
  /** Top-N for users without a row in `files` (cold start). */
  fallback: { path: string; rows: number; bytes: number; sha256: string; for: string };
  metrics: Record<string, number>;
  privacy: ManifestPrivacy | null;
  /**
   * The published report (JSON + HTML), built only from the run's popularity release — differentially private
   * when `privacy` is set. The run's profile report, with raw counts, is never published.
   */
  report: { json: string; html: string; basis: PublishedReport['basis'] };
}

/** The differential-privacy spend of the run that produced a version (the registry's record of it). */
export type ManifestPrivacy = ModelPrivacy;

export function manifestPrivacy(plan: RunPlan): ManifestPrivacy | null {
  const p = plan.privacy;
  if (!p) return null;
  return {
    epsilon: p.spend.epsilon,
    delta: p.spend.delta,
    rho: p.spend.rho ?? null,
    mechanism: p.spend.mechanism,
    window: p.window,
    params: { ...p.spend.params },
  };
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

export interface VersionSpec {
  root: string;
  dbPath: string;
  limits: DuckdbLimits;
  datasetId: string;
  version: string;
  runId: string;
  workflowId: string;
  model: string;
  kind: RecommendParams['kind'];
  modelFile: string;
  mostPopFile: string;
  topN: number;
  maxHistory: number;
  generatedAt: string;
  metrics: Record<string, number>;
  privacy: Manifest['privacy'];
}

/**
 * Writes one immutable version folder: top-N for every user of the run's clean events, seen and out-of-stock
 * items excluded, into a temporary folder; reads it back; writes the manifest; renames it into versions/.
 * A crash at any point leaves at most a `.tmp-*` folder that readers never see. Idempotent per run.
 */
/** Writes a version; `rows` and `users` are the exact counts, for the run summary (internal), not the manifest. */
export async function writeVersion(
  v: VersionSpec,
): Promise<{ dir: string; manifest: Manifest; rows: number; users: number }> {
  const versionsDir = path.join(v.root, 'versions');
  const finalDir = path.join(versionsDir, v.version);
  fs.mkdirSync(versionsDir, { recursive: true });
  const existing = readJsonIfExists<Manifest>(path.join(finalDir, '_manifest.json'));
  if (existing) {
    if (existing.runId !== v.runId)
      throw new Error(`${finalDir} already holds version ${v.version} from run ${existing.runId}`);
    const counted = await withDb(':memory:', v.limits, (db) =>
      db.one<{ rows: number; users: number }>(
        `SELECT count(*) AS rows, count(DISTINCT user_id) AS users FROM read_parquet(${lit(path.join(finalDir, 'part-*.parquet'))})`,
      ),
    );
    return { dir: finalDir, manifest: existing, ...counted };
  }
  const tmpDir = path.join(versionsDir, `.tmp-${v.version}-${process.pid}-${Date.now()}`);
  fs.mkdirSync(tmpDir, { recursive: true });
  const file = path.join(tmpDir, 'part-00000.parquet');
  const stats = await withDb(v.dbPath, v.limits, async (db) => {
    await db.run(`SET TimeZone = 'UTC'`);
    progress({ stage: 'publish', step: 'score' });
    await db.run(`
      CREATE OR REPLACE TEMP TABLE publish_users AS SELECT DISTINCT user_id FROM events;
      CREATE OR REPLACE TEMP TABLE unavailable_items AS
        SELECT DISTINCT trim(item_id) AS item_id FROM raw_items
        WHERE nullif(trim(item_id), '') IS NOT NULL AND lower(trim(in_stock)) IN ('false', '0', 'no', 'n', 'f');`);
    const maxSeen = await db.scalar<number>(maxSeenSql('events', 'publish_users'));
    await db.run(
      recommendSql(
        {
          kind: v.kind,
          modelFile: v.modelFile,
          mostPopFile: v.mostPopFile,
          targets: 'publish_users',
          history: 'events',
          k: v.topN,
          maxHistory: v.maxHistory,
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
        SELECT user_id, rank, item_id, score, ${lit(v.version)} AS model_version,
               CAST(${lit(v.generatedAt)} AS TIMESTAMPTZ) AS generated_at
        FROM publish_recs ORDER BY user_id, rank
      ) TO ${lit(file)} (FORMAT parquet, COMPRESSION snappy, ROW_GROUP_SIZE 122880)`);
    // Read back what was written: the manifest states what a reader will actually get.
    // Cold start: users unknown to this run get the most popular available items (DP-noised counts when
    // privacy is on), in an underscore subfolder: `current/*.parquet` (DuckDB) does not recurse into it, and
    // pyarrow and Spark skip paths starting with '_' when reading the version folder as a dataset.
    fs.mkdirSync(path.join(tmpDir, '_fallback'), { recursive: true });
    await db.run(`
      COPY (
        SELECT CAST(row_number() OVER (ORDER BY score DESC, item_id) AS INTEGER) AS rank, item_id,
               CAST(score AS DOUBLE) AS score, ${lit(v.version)} AS model_version,
               CAST(${lit(v.generatedAt)} AS TIMESTAMPTZ) AS generated_at
        FROM read_parquet(${lit(v.mostPopFile)})
        WHERE NOT EXISTS (SELECT 1 FROM unavailable_items u WHERE u.item_id = read_parquet.item_id)
        ORDER BY score DESC, item_id LIMIT ${v.topN}
      ) TO ${lit(path.join(tmpDir, '_fallback', 'popular.parquet'))} (FORMAT parquet, COMPRESSION snappy)`);
    const written = await db.one<{ rows: number; users: number; fallbackRows: number }>(
      `SELECT count(*) AS rows, count(DISTINCT user_id) AS users,
              (SELECT count(*) FROM read_parquet(${lit(path.join(tmpDir, '_fallback', 'popular.parquet'))})) AS "fallbackRows"
       FROM read_parquet(${lit(file)})`,
    );
    // An empty output would replace good recommendations with nothing: refuse it. (A user who has seen every
    // available item legitimately gets no row, so fewer users is logged, not refused.)
    const expectedUsers = await db.scalar<number>(`SELECT count(*) FROM publish_users`);
    if (written.rows === 0) {
      throw new Error(
        `refusing to publish ${v.version}: no recommendations for any of ${expectedUsers} users`,
      );
    }
    if (written.users < expectedUsers)
      log('users without recommendations', { missing: expectedUsers - written.users });
    progress({ stage: 'publish', step: 'report' });
    const popularity = await db.all<{ item_id: string; users: number; category: string | null }>(`
      SELECT m.item_id, CAST(m.users AS DOUBLE) AS users, c.category
      FROM read_parquet(${lit(v.mostPopFile)}) m
      LEFT JOIN (SELECT trim(item_id) AS item_id, any_value(nullif(trim(category), '')) AS category
                 FROM raw_items GROUP BY 1) c ON c.item_id = m.item_id`);
    const report = buildPublishedReport({
      datasetId: v.datasetId,
      modelVersion: v.version,
      generatedAt: v.generatedAt,
      privacy: v.privacy,
      items: popularity.map((r) => ({ itemId: r.item_id, users: r.users, category: r.category })),
    });
    fs.mkdirSync(path.join(tmpDir, '_report'), { recursive: true });
    writeJsonAtomic(path.join(tmpDir, '_report', 'report.json'), report);
    fs.writeFileSync(path.join(tmpDir, '_report', 'report.html'), renderPublishedReport(report));
    return { ...written, reportBasis: report.basis };
  });
  const fallbackFile = path.join(tmpDir, '_fallback', 'popular.parquet');
  const manifest: Manifest = {
    formatVersion: 1,
    datasetId: v.datasetId,
    modelVersion: v.version,
    model: v.model,
    runId: v.runId,
    workflowId: v.workflowId,
    createdAt: new Date().toISOString(),
    generatedAt: v.generatedAt,
    topN: v.topN,
    // Exact counts only without privacy: with it on, nothing exact about the users leaves the trust boundary.
    ...(v.privacy ? {} : { rowCount: stats.rows, users: stats.users }),
    schema: OUTPUT_SCHEMA,
    files: [
      {
        path: 'part-00000.parquet',
        ...(v.privacy ? {} : { rows: stats.rows }),
        bytes: fs.statSync(file).size,
        sha256: await sha256File(file),
      },
    ],
    fallback: {
      path: '_fallback/popular.parquet',
      rows: stats.fallbackRows,
      bytes: fs.statSync(fallbackFile).size,
      sha256: await sha256File(fallbackFile),
      for: 'users not in part files (cold start): the most popular available items',
    },
    // Evaluation metrics come from the raw holdout (no noise): with privacy on they stay in the registry.
    metrics: v.privacy ? {} : v.metrics,
    privacy: v.privacy,
    report: { json: '_report/report.json', html: '_report/report.html', basis: stats.reportBasis },
  };
  writeJsonAtomic(path.join(tmpDir, '_manifest.json'), manifest);
  fsyncDir(tmpDir);
  fs.rmSync(finalDir, { recursive: true, force: true }); // Only a partial, manifest-less folder can be here.
  fs.renameSync(tmpDir, finalDir);
  fsyncDir(versionsDir);
  return { dir: finalDir, manifest, rows: stats.rows, users: stats.users };
}

/**
 * Publishes the run's challenger: writes its version folder, then switches `current`. A crash at any point
 * leaves the previous version current; a retry of the same run reuses a completed version folder.
 */
export async function publish(
  plan: RunPlan,
  trained: TrainResult,
  evaluation: EvaluateResult,
): Promise<PublishResult> {
  const root = outputRoot(plan);
  const model = trained.models.find((m) => m.name === `${evaluation.chosenModel}-full`)!;
  const mostPop = trained.models.find((m) => m.name === 'mostpop-full')!;
  const {
    dir: finalDir,
    manifest,
    rows,
    users,
  } = await writeVersion({
    root,
    dbPath: plan.dbPath,
    limits: limitsOf(plan),
    datasetId: plan.datasetId,
    version: plan.modelVersion,
    runId: plan.runId,
    workflowId: plan.workflowId,
    model: evaluation.chosenModel,
    kind: model.kind,
    modelFile: model.path,
    mostPopFile: mostPop.path,
    topN: plan.config.publish.topN,
    maxHistory: plan.config.training.itemItem.maxHistoryPerUser,
    generatedAt: plan.startedAt,
    metrics: evaluation.metrics[evaluation.chosenModel] ?? {},
    privacy: manifestPrivacy(plan),
  });
  // `current` is switched by promoteCandidate, under the registry lock together with the champion alias.
  const currentPath = path.join(root, 'current');
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
  // This run's profile becomes the baseline the next run's drift is measured against.
  await recordSuccessfulProfile(plan);
  log('published', { version: plan.modelVersion, rows, pruned });
  return {
    outputDir: root,
    versionDir: finalDir,
    currentPath,
    // Exact counts for the run summary (Temporal memo, operators): inside the trust boundary.
    rows,
    users,
    manifestPath: path.join(finalDir, '_manifest.json'),
    sha256: manifest.files[0].sha256,
  };
}
