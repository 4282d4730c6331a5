import * as fs from 'node:fs';
import * as path from 'node:path';
import type { EvaluateResult, PublishResult, StageRun } from '../contracts/stages';
import { partName, type ScoringInputs } from '../contracts/stages';
import { log, type ActivityDeps } from './support/context';
import { RunIO } from './support/run-io';
import { parquetArtifact } from './support/artifacts';
import { registryOf } from './support/storage';
import { assembleVersion, manifestPrivacy, scoreShardInto, type ShardPart } from './support/publishing';

/**
 * Publishing, as the workflow calls it: every user shard scored by its own activity (any CPU worker), then
 * the version assembled from the parts (support/publishing.ts holds how). The live pointer moves after, in
 * promoteCandidate.
 */

/** Activity: scores one shard into the run's folder (publish/part-<shard>.parquet). Idempotent. */
export async function scorePublishShard(
  deps: ActivityDeps,
  run: StageRun,
  s: ScoringInputs,
  shard: number,
): Promise<ShardPart> {
  const io = new RunIO(run.plan.run, deps.dataDir);
  const key = io.key(`publish/${partName(shard)}`);
  fs.mkdirSync(path.dirname(io.local(key)), { recursive: true });
  return io.withDb(`publish-${shard}`, async (db) => {
    const r = await scoreShardInto(db, io, s, shard, io.local(key));
    const part = await parquetArtifact(db, io, key);
    await io.push([key]);
    return { shard, part, users: r.users, fallbackUsers: r.fallback, lists: r.lists, batches: r.batches };
  });
}

/**
 * Activity: assembles the run's version from its scored shards. The live pointer (and `current`) moves in
 * promoteCandidate: one compare-and-swap names version and champion. A crash at any point leaves the previous
 * version live; a retry of the same run rebuilds the same folder.
 */
export async function publishVersion(
  deps: ActivityDeps,
  run: StageRun,
  s: ScoringInputs,
  parts: ShardPart[],
  evaluation: Pick<EvaluateResult, 'chosenModel' | 'metrics'>,
): Promise<PublishResult> {
  const io = new RunIO(run.plan.run, deps.dataDir);
  const registry = registryOf(run.plan.config, run.plan.run.datasetId);
  const { rows, users, fallbackUsers, lists } = await assembleVersion(registry, io, s, parts, {
    runId: run.plan.run.runId,
    workflowId: run.plan.run.workflowId,
    metrics: evaluation.metrics[evaluation.chosenModel] ?? {},
    privacy: manifestPrivacy(run.privacy),
  });
  log('published', { version: s.version, rows, shards: parts.length, fallbackUsers, lists });
  const output = registry.where.outputPrefix;
  return {
    version: s.version,
    output,
    versionKey: registry.versionKey(s.version),
    manifest: `${registry.versionKey(s.version)}/_manifest.json`,
    outputDir: registry.store.uri(output),
    // Exact counts for the run summary (Temporal memo, operators): inside the trust boundary.
    rows,
    users,
    fallbackUsers,
    ...(lists ? { lists } : {}),
  };
}
