import type { ModelRecord } from '../../../contracts/registry';
import type { EvaluateResult, ScoringInputs, StageRun } from '../../../contracts/stages';
import type { ActivityDeps } from '../../../activities/support/context';
import type { ShardPart } from '../../../activities/support/publishing';

/**
 * The end of a retrain after its evaluation — register → score each shard → publishVersion → promoteCandidate
 * (pointer swap, derived copies, pruning) — as one job. The same code runs in a child process that the kill
 * harness SIGKILLs (children/publish-sequence.ts, from dist/) and in the test process for the retry that must
 * finish the run (from the TypeScript sources), so the retry is what a new worker's attempt would do.
 */
export interface SequenceJob {
  run: StageRun;
  scoring: ScoringInputs;
  evaluation: EvaluateResult;
  record: ModelRecord;
}

export interface SequenceResult {
  champion: string | null;
  previous: string | null;
  parts: number;
}

export interface SequenceModules {
  publish: typeof import('../../../activities/publish');
  registry: typeof import('../../../activities/registry');
  storage: typeof import('../../../activities/support/storage');
}

export async function runSequence(
  m: SequenceModules,
  deps: ActivityDeps,
  job: SequenceJob,
): Promise<SequenceResult> {
  const { plan } = job.run;
  // registerCandidate's core: the write-once record (a retry of the same run gets the existing one back).
  await m.storage.registryOf(plan.config, plan.run.datasetId).register(job.record);
  const parts: ShardPart[] = [];
  for (let shard = 0; shard < job.scoring.shards; shard++)
    parts.push(await m.publish.scorePublishShard(deps, job.run, job.scoring, shard));
  await m.publish.publishVersion(deps, job.run, job.scoring, parts, job.evaluation);
  const live = await m.registry.promoteCandidate(plan, job.evaluation);
  return { ...live, parts: parts.length };
}
