import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { lit, litList, type Db } from '../../lib/duckdb';
import { faultPoint } from '../../lib/faults';
import { removeStaleTemporaries } from '../../lib/storage/local';
import { fsyncDir, sha256File, writeJsonAtomic } from '../../lib/fs-atomic';
import { shardPredicate } from '../../analytics/baselines.sql';
import { itemItemBatches, rankInto } from './scoring-batches';
import { listSourcesSql } from '../../analytics/cold-start.sql';
import type { PrivacyReservation } from '../../contracts/privacy';
import type { ModelRecord, ModelPrivacy } from '../../contracts/registry';
import type { ArtifactRef } from '../../contracts/run';

import type { ModelRegistry } from '../../registry/registry';
import { retainedVersions } from '../../registry/pointer';
import { log, progress } from './context';
import { RunIO } from './run-io';
import { parquetArtifact } from './artifacts';
import {
  buildPublishedReport,
  renderPublishedReport,
  type PublishedReport,
} from '../../analytics/published-report';

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
  formatVersion: 1 | 2;
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
  /** Users by where their list came from (contracts/stages.ts ListSources): only when privacy is off. */
  lists?: ListSources;
  schema: typeof OUTPUT_SCHEMA;
  /** One part file per user shard (part-<shard>.parquet), sorted by user_id, rank within each. */
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

export function manifestPrivacy(p: PrivacyReservation | null): ManifestPrivacy | null {
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

/** The version folders under a dataset's output (storage keys grouped by folder name). */
async function versionFolders(registry: ModelRegistry): Promise<Map<string, string[]>> {
  const prefix = `${registry.where.outputPrefix}/versions`;
  const out = new Map<string, string[]>();
  for (const key of await registry.store.list(prefix)) {
    const name = key.slice(prefix.length + 1).split('/')[0];
    out.set(name, [...(out.get(name) ?? []), key]);
  }
  return out;
}

/**
 * When a version folder was written: its manifest's createdAt; for a folder without one (a publish that died
 * before its manifest), the folder's mtime on local storage, unknown on a bucket (the failed run's compensation
 * removes those).
 */
async function createdAtOf(registry: ModelRegistry, version: string): Promise<number | null> {
  const obj = await registry.store.get(`${registry.versionKey(version)}/_manifest.json`);
  if (obj) {
    try {
      return Date.parse((JSON.parse(obj.body.toString('utf8')) as Manifest).createdAt);
    } catch {
      return null;
    }
  }
  if (registry.store.kind !== 'local') return null;
  return (
    fs.statSync(registry.store.uri(registry.versionKey(version)), { throwIfNoEntry: false })?.mtimeMs ?? null
  );
}

/**
 * Crash leftovers on local storage, once older than an hour: staging folders (versions/.tmp-*) of publishes
 * that died mid-way, and the output folder's temporary `current` links and reader-copy files (.current-*,
 * .tmp-*) of moves that died between writing and renaming them.
 */
function pruneStaging(registry: ModelRegistry): string[] {
  if (registry.store.kind !== 'local') return [];
  const out = registry.store.uri(registry.where.outputPrefix);
  removeStaleTemporaries(out, ['.tmp-', '.current-']);
  return removeStaleTemporaries(path.join(out, 'versions'));
}

/**
 * Retention: removes version folders the live pointer no longer needs (see retainedVersions: the live one,
 * `previous`, and the most recently live up to `keep`), and folders that never went live (a failed run's) once
 * older than an hour — younger ones may belong to a run still publishing. Never the live version. Works the
 * same on a folder and on a bucket.
 */
export async function pruneVersions(registry: ModelRegistry, keep: number): Promise<string[]> {
  const pointer = await registry.pointer();
  const keepSet = retainedVersions(pointer, keep);
  const everLive = new Set(pointer?.history.map((m) => m.version) ?? []);
  const removed: string[] = pruneStaging(registry);
  registry.sweepTemporaries();
  for (const name of (await versionFolders(registry)).keys()) {
    if (keepSet.has(name) || name === pointer?.version) continue;
    let remove = everLive.has(name);
    if (!remove) {
      const at = await createdAtOf(registry, name);
      remove = at !== null && Date.now() - at > 3_600_000;
    }
    if (remove) {
      await registry.store.deletePrefix(registry.versionKey(name));
      faultPoint('prune:after-remove');
      removed.push(name);
    }
  }
  return removed;
}

/** Removes the version folder of a run that did not go live (the workflow's compensation when a run fails). */
export async function discardUnpublishedVersion(registry: ModelRegistry, version: string): Promise<boolean> {
  const pointer = await registry.pointer();
  if (pointer?.version === version || pointer?.history.some((m) => m.version === version)) return false;
  const keys = (await versionFolders(registry)).get(version);
  if (!keys) return false;
  await registry.store.deletePrefix(registry.versionKey(version));
  return true;
}

export type { ScoringInputs } from '../../contracts/stages';
import { partName, type ListSources, type ScoringInputs } from '../../contracts/stages';

/** A scored shard: its part file (in the run's folder until the version is assembled) and who it covers. */
export interface ShardPart {
  shard: number;
  part: ArtifactRef;
  users: number;
  /** Users whose whole list is popular backfill (no personalised candidate). */
  fallbackUsers: number;
  /** Where the lists came from (fallbackUsers = category + popular); absent in parts scored before it existed. */
  lists?: ListSources;
  /** Statements the shard was scored in (more than one when its users did not fit the memory limit at once). */
  batches?: number;
}

/** Sums the parts' list sources (null when a part lacks them). */
export function sumListSources(parts: readonly { lists?: ListSources }[]): ListSources | null {
  if (parts.length === 0 || parts.some((p) => !p.lists)) return null;
  const out: ListSources = { personal: 0, category: 0, popular: 0, newItems: 0 };
  for (const p of parts) for (const k of Object.keys(out) as (keyof ListSources)[]) out[k] += p.lists![k];
  return out;
}

async function scoringViews(db: Db, io: RunIO, s: ScoringInputs): Promise<void> {
  await io.fetch([s.eventsKey, s.itemsKey, s.modelKey, s.mostPopKey]);
  await db.run(`
    CREATE OR REPLACE VIEW events AS SELECT * FROM read_parquet(${lit(io.local(s.eventsKey))});
    CREATE OR REPLACE VIEW raw_items AS SELECT * FROM read_parquet(${lit(io.local(s.itemsKey))});
    CREATE OR REPLACE TEMP TABLE publish_users AS SELECT DISTINCT user_id FROM events;
    CREATE OR REPLACE TEMP TABLE unavailable_items AS
      SELECT DISTINCT trim(item_id) AS item_id FROM raw_items
      WHERE nullif(trim(item_id), '') IS NOT NULL AND lower(trim(in_stock)) IN ('false', '0', 'no', 'n', 'f');`);
}

/**
 * Scores one shard of the users (a stable hash of the user id): top-N for every user of the clean events,
 * seen and out-of-stock items excluded, backfilled with popular items, into `file`. Shards are independent, so
 * any worker can score any of them, and one shard gives exactly the unsharded file. A shard too large for the
 * memory limit is scored in batches of its users (sub-shards: hash mod shards×batches), each written to a scratch
 * file, then sorted into the part file: a user's list depends only on that user's history, so batching changes
 * nothing in the output, only the memory it takes.
 */
export async function scoreShardInto(db: Db, io: RunIO, s: ScoringInputs, shard: number, file: string) {
  await scoringViews(db, io, s);
  const batches = await itemItemBatches(db, {
    kind: s.kind,
    modelFile: io.local(s.modelKey),
    history: 'events',
    users: shardPredicate('user_id', { index: shard, of: s.shards }),
    maxHistory: s.maxHistory,
    memoryLimit: io.run.duckdb.memoryLimit,
  });
  const scratch = io.scratch(`publish-${shard}`);
  try {
    return await scoreBatchesInto(db, io, s, shard, file, batches, path.join(scratch, 'batches'));
  } finally {
    // The shard's scratch folder too, not only its batches: a long-lived worker keeps no folder per run.
    io.releaseScratch(scratch);
  }
}

/** scoreShardInto's work: each batch of the shard's users ranked into `dir`, then sorted into `file`. */
async function scoreBatchesInto(
  db: Db,
  io: RunIO,
  s: ScoringInputs,
  shard: number,
  file: string,
  batches: number,
  dir: string,
) {
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  const files: string[] = [];
  for (let b = 0; b < batches; b++) {
    progress({
      stage: 'publish',
      step: `score shard ${shard + 1}/${s.shards}`,
      done: b,
      total: batches,
      unit: 'batches',
      // DuckDB's progress through this batch's scoring statement moves `done` between b and b + 1.
      statementSpan: 1,
    });
    await rankInto(db, {
      kind: s.kind,
      modelFile: io.local(s.modelKey),
      mostPopFile: io.local(s.mostPopKey),
      targets: 'publish_users',
      history: 'events',
      k: s.topN,
      maxHistory: s.maxHistory,
      into: 'publish_recs',
      excludeItems: 'unavailable_items',
      shard: { index: shard + s.shards * b, of: s.shards * batches },
      coldStart: s.coldStart ? { ...s.coldStart, items: 'raw_items' } : undefined,
    });
    const out = path.join(dir, `batch-${b}.parquet`);
    await db.run(`COPY publish_recs TO ${lit(out)} (FORMAT parquet); DROP TABLE publish_recs`);
    files.push(out);
  }
  if (batches > 1) log('scored a shard in batches', { shard, batches });
  progress({ stage: 'publish', step: `write shard ${shard + 1}/${s.shards}` });
  const recs = `read_parquet(${litList(files)})`;
  // Snappy, not zstd: every downstream reader (Spark, pyarrow, DuckDB, pure-JS readers) decodes it.
  await db.run(`
    COPY (
      SELECT user_id, rank, item_id, score, ${lit(s.version)} AS model_version,
             CAST(${lit(s.generatedAt)} AS TIMESTAMPTZ) AS generated_at
      FROM ${recs} ORDER BY user_id, rank
    ) TO ${lit(file)} (FORMAT parquet, COMPRESSION snappy, ROW_GROUP_SIZE 122880)`);
  const r = await db.one<{
    users: number;
    personal: number;
    category: number;
    popular: number;
    new_items: number;
  }>(listSourcesSql(recs));
  const lists: ListSources = {
    personal: Number(r.personal),
    category: Number(r.category),
    popular: Number(r.popular),
    newItems: Number(r.new_items),
  };
  return { users: Number(r.users), fallback: lists.category + lists.popular, lists, batches };
}

export interface VersionIdentity {
  runId: string;
  workflowId: string;
  metrics: Record<string, number>;
  privacy: ManifestPrivacy | null;
}

/**
 * Assembles one immutable version folder from the scored shards: part files, the cold-start fallback, the
 * published report and, last, the manifest (what a reader can check each file against). Staged under a
 * temporary name and renamed into `versions/` on a folder; on a bucket, uploaded with the manifest last — readers
 * only ever reach a version through the live pointer, which moves after this. Idempotent per run.
 */
export async function assembleVersion(
  registry: ModelRegistry,
  io: RunIO,
  s: ScoringInputs,
  parts: ShardPart[],
  id: VersionIdentity,
): Promise<{
  manifest: Manifest;
  rows: number;
  users: number;
  fallbackUsers: number;
  lists: ListSources | null;
}> {
  const versionKey = registry.versionKey(s.version);
  const existing = await readManifest(registry, s.version);
  if (existing && existing.runId !== id.runId)
    throw new Error(
      `${registry.store.uri(versionKey)} already holds version ${s.version} from run ${existing.runId}`,
    );
  const fallbackUsers = parts.reduce((a, p) => a + p.fallbackUsers, 0);
  // A retry after the version was assembled (the worker died before reporting it): the folder is complete and
  // may already be live, so it is left exactly as it is. Rebuilding it would swap in re-scored files (scores
  // differ in their last bits between runs of the same query) under the old manifest's checksums, and remove
  // the folder for a moment.
  if (existing && (await versionIntact(registry, s.version, existing))) {
    const glob = registry.store.uri(`${versionKey}/part-*.parquet`);
    const counted = await io.withDb('publish-assemble', (db) =>
      db.one<{ rows: number; users: number }>(
        `SELECT count(*) AS rows, count(DISTINCT user_id) AS users FROM read_parquet(${lit(glob)})`,
      ),
    );
    return {
      manifest: existing,
      rows: counted.rows,
      users: counted.users,
      fallbackUsers,
      lists: sumListSources(parts),
    };
  }
  const staging =
    registry.store.kind === 'local'
      ? path.join(
          registry.store.uri(`${registry.where.outputPrefix}/versions`),
          `.tmp-${s.version}-${process.pid}-${Date.now()}`,
        )
      : path.join(io.scratch('publish-staging'), s.version);
  fs.rmSync(staging, { recursive: true, force: true });
  fs.mkdirSync(path.join(staging, '_fallback'), { recursive: true });
  fs.mkdirSync(path.join(staging, '_report'), { recursive: true });
  const sorted = [...parts].sort((a, b) => a.shard - b.shard);
  await io.fetch(sorted.map((p) => p.part.key));
  for (const p of sorted) fs.copyFileSync(io.local(p.part.key), path.join(staging, partName(p.shard)));
  faultPoint('publish:after-parts');
  const stats = await io.withDb('publish-assemble', async (db) => {
    await scoringViews(db, io, s);
    const fallbackFile = path.join(staging, '_fallback', 'popular.parquet');
    // Cold start: users unknown to this run get the most popular available items (DP-noised counts when privacy
    // is on), in an underscore subfolder: `current/*.parquet` (DuckDB) does not recurse into it, and pyarrow and
    // Spark skip paths starting with '_' when reading the version folder as a dataset.
    await db.run(`
      COPY (
        SELECT CAST(row_number() OVER (ORDER BY score DESC, item_id) AS INTEGER) AS rank, item_id,
               CAST(score AS DOUBLE) AS score, ${lit(s.version)} AS model_version,
               CAST(${lit(s.generatedAt)} AS TIMESTAMPTZ) AS generated_at
        FROM read_parquet(${lit(io.local(s.mostPopKey))})
        WHERE NOT EXISTS (SELECT 1 FROM unavailable_items u WHERE u.item_id = read_parquet.item_id)
        ORDER BY score DESC, item_id LIMIT ${s.topN}
      ) TO ${lit(fallbackFile)} (FORMAT parquet, COMPRESSION snappy)`);
    faultPoint('publish:after-fallback');
    // Read back what was written: the manifest states what a reader will actually get.
    const written = await db.one<{ rows: number; users: number; fallbackRows: number }>(
      `SELECT count(*) AS rows, count(DISTINCT user_id) AS users,
              (SELECT count(*) FROM read_parquet(${lit(fallbackFile)})) AS "fallbackRows"
       FROM read_parquet(${lit(path.join(staging, 'part-*.parquet'))})`,
    );
    // An empty output would replace good recommendations with nothing: refuse it. (A user who has seen every
    // available item legitimately gets no row, so fewer users is logged, not refused.)
    const expectedUsers = await db.scalar<number>(`SELECT count(*) FROM publish_users`);
    if (written.rows === 0)
      throw new Error(
        `refusing to publish ${s.version}: no recommendations for any of ${expectedUsers} users`,
      );
    if (written.users < expectedUsers)
      log('users without recommendations', { missing: expectedUsers - written.users });
    progress({ stage: 'publish', step: 'report' });
    const popularity = await db.all<{ item_id: string; users: number; category: string | null }>(`
      SELECT m.item_id, CAST(m.users AS DOUBLE) AS users, c.category
      FROM read_parquet(${lit(io.local(s.mostPopKey))}) m
      LEFT JOIN (SELECT trim(item_id) AS item_id, any_value(nullif(trim(category), '')) AS category
                 FROM raw_items GROUP BY 1) c ON c.item_id = m.item_id`);
    const report = buildPublishedReport({
      datasetId: s.datasetId,
      modelVersion: s.version,
      generatedAt: s.generatedAt,
      privacy: id.privacy,
      items: popularity.map((r) => ({ itemId: r.item_id, users: r.users, category: r.category })),
    });
    writeJsonAtomic(path.join(staging, '_report', 'report.json'), report);
    fs.writeFileSync(path.join(staging, '_report', 'report.html'), renderPublishedReport(report));
    faultPoint('publish:after-report');
    const perPart = await db.all<{ file: string; rows: number }>(
      `SELECT filename AS file, count(*) AS rows FROM read_parquet(${lit(path.join(staging, 'part-*.parquet'))}, filename = true) GROUP BY 1`,
    );
    return {
      ...written,
      reportBasis: report.basis,
      perPart: new Map(perPart.map((r) => [path.basename(r.file), r.rows])),
    };
  });
  const fallbackFile = path.join(staging, '_fallback', 'popular.parquet');
  const lists = sumListSources(parts);
  // The manifest describes the files staged now; an earlier attempt's incomplete folder only lends its date.
  const manifest: Manifest = {
    formatVersion: 2,
    datasetId: s.datasetId,
    modelVersion: s.version,
    model: s.model,
    runId: id.runId,
    workflowId: id.workflowId,
    createdAt: existing?.createdAt ?? new Date().toISOString(),
    generatedAt: s.generatedAt,
    topN: s.topN,
    // Exact counts only without privacy: with it on, nothing exact about the users leaves the trust boundary.
    ...(id.privacy ? {} : { rowCount: stats.rows, users: stats.users }),
    ...(id.privacy || !lists ? {} : { lists }),
    schema: OUTPUT_SCHEMA,
    files: await Promise.all(
      sorted.map(async (p) => {
        const f = path.join(staging, partName(p.shard));
        return {
          path: partName(p.shard),
          ...(id.privacy ? {} : { rows: stats.perPart.get(partName(p.shard)) ?? 0 }),
          bytes: fs.statSync(f).size,
          sha256: await sha256File(f),
        };
      }),
    ),
    fallback: {
      path: '_fallback/popular.parquet',
      rows: stats.fallbackRows,
      bytes: fs.statSync(fallbackFile).size,
      sha256: await sha256File(fallbackFile),
      for: 'users not in part files (cold start): the most popular available items',
    },
    // Evaluation metrics come from the raw holdout (no noise): with privacy on they stay in the registry.
    metrics: id.privacy ? {} : id.metrics,
    privacy: id.privacy,
    report: { json: '_report/report.json', html: '_report/report.html', basis: stats.reportBasis },
  };
  writeJsonAtomic(path.join(staging, '_manifest.json'), manifest);
  faultPoint('publish:after-manifest');
  if (registry.store.kind === 'local') {
    fsyncDir(staging);
    const finalDir = registry.store.uri(versionKey);
    // Only a partial, manifest-less folder (or this run's own, identical one) can be here.
    fs.rmSync(finalDir, { recursive: true, force: true });
    faultPoint('publish:before-rename');
    fs.renameSync(staging, finalDir);
    fsyncDir(path.dirname(finalDir));
    faultPoint('publish:after-rename');
  } else {
    // Objects appear whole; the manifest goes last, so a version with a manifest is complete.
    const files = fs.readdirSync(staging, { recursive: true, withFileTypes: true }).filter((e) => e.isFile());
    const rel = files.map((e) =>
      path.relative(staging, path.join(e.parentPath, e.name)).split(path.sep).join('/'),
    );
    for (const r of rel.filter((r) => r !== '_manifest.json'))
      await registry.store.put(`${versionKey}/${r}`, fs.readFileSync(path.join(staging, ...r.split('/'))));
    faultPoint('publish:before-manifest-upload');
    await registry.store.put(
      `${versionKey}/_manifest.json`,
      fs.readFileSync(path.join(staging, '_manifest.json')),
    );
    io.releaseScratch(path.dirname(staging));
  }
  return { manifest, rows: stats.rows, users: stats.users, fallbackUsers, lists };
}

/** Whether every file a version's manifest lists is there with its recorded size and SHA-256. */
async function versionIntact(registry: ModelRegistry, version: string, manifest: Manifest): Promise<boolean> {
  for (const f of [...manifest.files, manifest.fallback]) {
    const obj = await registry.store.get(`${registry.versionKey(version)}/${f.path}`);
    if (
      !obj ||
      obj.body.length !== f.bytes ||
      createHash('sha256').update(obj.body).digest('hex') !== f.sha256
    )
      return false;
  }
  return true;
}

async function readManifest(registry: ModelRegistry, version: string): Promise<Manifest | null> {
  const obj = await registry.store.get(`${registry.versionKey(version)}/_manifest.json`);
  return obj ? (JSON.parse(obj.body.toString('utf8')) as Manifest) : null;
}

/**
 * Rebuilds a registered version's output (its folder was pruned): scores every shard in this process from the
 * registry record's artifacts, then assembles the version. No retraining.
 */
export async function republishVersion(
  registry: ModelRegistry,
  io: RunIO,
  record: ModelRecord,
  s: ScoringInputs,
): Promise<void> {
  const parts: ShardPart[] = [];
  for (let shard = 0; shard < s.shards; shard++) {
    const key = io.key(`publish/${partName(shard)}`);
    fs.mkdirSync(path.dirname(io.local(key)), { recursive: true });
    const part = await io.withDb(`republish-${shard}`, async (db) => {
      const r = await scoreShardInto(db, io, s, shard, io.local(key));
      return {
        shard,
        part: await parquetArtifact(db, io, key),
        users: r.users,
        fallbackUsers: r.fallback,
        lists: r.lists,
      };
    });
    await io.push([key]);
    parts.push(part);
  }
  await assembleVersion(registry, io, s, parts, {
    runId: record.runId,
    workflowId: record.workflowId,
    metrics: record.metrics[record.model] ?? {},
    privacy: record.privacy,
  });
}
