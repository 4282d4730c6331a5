import { Context } from '@temporalio/activity';
import type {
  AliasInput,
  CleanArtifacts,
  CleanResult,
  EvaluateResult,
  IngestResult,
  PreparedInput,
  ProfileResult,
  RawArtifacts,
  RetrainInput,
  RunPlan,
  RunSummary,
  StageRun,
  TrainResult,
} from '../contracts/stages';
import type { ModelRecord } from '../contracts/registry';
import type { RunRef } from '../contracts/run';
import type { ActivityDeps } from './support/context';
import { withHeartbeat as heartbeating } from './support/heartbeat';
import { workflowProgressSink } from './support/progress-signal';
import { TrainContext } from './support/train-context';
import { planRun, prepareInput } from './plan';
import { acquireDatasetLock, releaseDatasetLock } from './lock';
import { selectIncrementalInput, commitRun } from './incremental';
import { reservePrivacyBudget, settlePrivacyBudget } from './privacy';
import { ingest } from './ingest';
import { profile } from './profile';
import { clean } from './clean';
import { trainBaselines } from './train/baselines';
import { trainLearned } from './train/mf';
import { trainLearnedDp } from './train/mf-dp';
import { trainLinearChallenger } from './train/linear';
import { trainTwoTowerChallenger } from './train/two-tower';
import { evaluate } from './evaluate';
import { scorePublishShard, publishVersion } from './publish';
import type { ScoringInputs } from '../contracts/stages';
import type { ShardPart } from './support/publishing';
import {
  currentChampion,
  registerCandidate,
  promoteCandidate,
  discardVersion,
  commitDatasetState,
  setChampion,
  rollbackChampion,
} from './registry';
import { writeStoredRunReport } from './report';

export type { ActivityDeps } from './support/context';

/** withHeartbeat whose in-stage progress also reaches the workflow's `progress` query (a throttled signal). */
function progressReporting(deps: ActivityDeps) {
  const sink = workflowProgressSink(deps.client);
  return <A extends unknown[], R>(name: string, fn: (...args: A) => Promise<R>) =>
    heartbeating(name, fn, sink);
}

function execution() {
  const e = Context.current().info.workflowExecution;
  if (!e) throw new Error('this activity must be called from a workflow');
  return e;
}

/**
 * Activities served on the CPU task queue: thin adapters from the workflow's calls to the stage modules. Each
 * takes the run (or its plan) and the artifact references of the stages before it, and returns its own.
 */
export function createCpuActivities(deps: ActivityDeps) {
  const withHeartbeat = progressReporting(deps);
  return {
    planRun: withHeartbeat('plan', async (input: RetrainInput, startedAt: string) => {
      const e = execution();
      return planRun(deps, input, { workflowId: e.workflowId, runId: e.runId, startedAt });
    }),
    prepareInput: withHeartbeat('input', (plan: RunPlan) => prepareInput(deps, plan)),
    acquireDatasetLock: withHeartbeat('lock', (run: RunRef) => acquireDatasetLock(run, deps.client)),
    releaseDatasetLock: withHeartbeat('lock', (run: RunRef) => releaseDatasetLock(run)),
    selectIncrementalInput: withHeartbeat('input', (plan: RunPlan, prepared: PreparedInput) =>
      selectIncrementalInput(plan, prepared),
    ),
    reservePrivacyBudget: withHeartbeat('privacy', (plan: RunPlan, input: PreparedInput) =>
      reservePrivacyBudget(plan, input),
    ),
    settlePrivacyBudget: withHeartbeat('privacy', (plan: RunPlan, outcome: 'commit' | 'release') =>
      settlePrivacyBudget(plan, outcome),
    ),
    ingest: withHeartbeat('ingest', (run: StageRun) => ingest(deps, run)),
    profile: withHeartbeat('profile', (run: StageRun, raw: RawArtifacts) => profile(deps, run, raw)),
    clean: withHeartbeat('clean', (run: StageRun, raw: RawArtifacts, profiled: ProfileResult) =>
      clean(deps, run, raw, profiled),
    ),
    currentChampion: withHeartbeat('registry', (plan: RunPlan) => currentChampion(plan)),
    evaluate: withHeartbeat(
      'evaluate',
      (run: StageRun, cleaned: CleanArtifacts, trained: TrainResult, champion: ModelRecord | null) =>
        evaluate(deps, run, cleaned, trained, champion),
    ),
    registerCandidate: withHeartbeat(
      'register',
      (
        run: StageRun,
        ingested: IngestResult,
        profiled: ProfileResult,
        cleaned: CleanResult,
        trained: TrainResult,
        evaluation: EvaluateResult,
      ) => registerCandidate(deps, run, ingested, profiled, cleaned, trained, evaluation),
    ),
    scorePublishShard: withHeartbeat('publish', (run: StageRun, s: ScoringInputs, shard: number) =>
      scorePublishShard(deps, run, s, shard),
    ),
    publishVersion: withHeartbeat(
      'publish',
      (run: StageRun, s: ScoringInputs, parts: ShardPart[], evaluation: EvaluateResult) =>
        publishVersion(deps, run, s, parts, evaluation),
    ),
    discardUnpublishedVersion: withHeartbeat('publish', (plan: RunPlan) => discardVersion(plan)),
    promoteCandidate: withHeartbeat('promote', (plan: RunPlan, evaluation: EvaluateResult) =>
      promoteCandidate(plan, evaluation),
    ),
    commitDatasetState: withHeartbeat(
      'commit',
      (run: StageRun, ingested: IngestResult, _profiled: ProfileResult, cleaned: CleanResult) =>
        commitDatasetState(deps, run, ingested, cleaned),
    ),
    /** Records the completed run's input (the watermark entry of incremental runs). */
    commitRun: withHeartbeat('commit', (run: StageRun, ingested: IngestResult, cleaned: CleanResult) =>
      commitRun(deps, run, ingested, cleaned),
    ),
    writeRunReport: withHeartbeat('report', (plan: RunPlan, summary: RunSummary) =>
      writeStoredRunReport(deps, plan, summary),
    ),
    setChampion: withHeartbeat('promote', (input: AliasInput) =>
      setChampion(deps, input, execution().workflowId),
    ),
    rollbackChampion: withHeartbeat('promote', (input: AliasInput) =>
      rollbackChampion(deps, input, execution().workflowId),
    ),
  };
}

/** Activities served on the training task queue (GPU workers in production). */
export function createTrainingActivities(deps: ActivityDeps) {
  const withHeartbeat = progressReporting(deps);
  return {
    trainBaselines: withHeartbeat('train', (run: StageRun, cleaned: CleanArtifacts, raw: RawArtifacts) =>
      trainBaselines(deps, run, cleaned, raw),
    ),
    /**
     * The learned challenger the workflow chose: two-tower, or BPR-MF (trained with DP-SGD against the run's
     * reservation when privacy is on), warm-started from the champion when it is of the same family.
     */
    trainLearned: withHeartbeat(
      'train',
      async (
        run: StageRun,
        cleaned: CleanArtifacts,
        raw: RawArtifacts,
        family: string,
        champion: ModelRecord | null,
      ): Promise<TrainResult> => {
        const ctx = new TrainContext(run, cleaned, raw, deps.dataDir);
        if (family === 'two-tower') return trainTwoTowerChallenger(ctx, champion);
        if (family === 'mf') return run.privacy ? trainLearnedDp(ctx, champion) : trainLearned(ctx, champion);
        if (family === 'ease' || family === 'ials' || family === 'blend')
          return trainLinearChallenger(ctx, family, champion);
        throw new Error(`unknown challenger family '${family}'`);
      },
    ),
  };
}

export type CpuActivities = ReturnType<typeof createCpuActivities>;
export type TrainingActivities = ReturnType<typeof createTrainingActivities>;
