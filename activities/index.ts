import type { RetrainInput, RunPlan } from '../contracts/stages';
import type { ActivityDeps } from './context';
import { withHeartbeat } from './heartbeat';
import { abandonPlan, planRun, releaseLock } from './plan';
import { ingest } from './ingest';
import { profile } from './profile';
import { clean } from './clean';
import { trainBaselines } from './train';
import { evaluate } from './evaluate';
import { registryOf } from './support/storage';
import { trainLearned } from './train-mf';
import { trainLearnedDp } from './train-mf-dp';
import { trainTwoTowerChallenger } from './train-two-tower';
import { publish } from './publish';
import { settleBudget } from './privacy';
import { commitRun } from './incremental';
import { registerCandidate, promoteCandidate, setChampion, rollbackChampion } from './registry';
import type {
  AliasInput,
  EvaluateResult,
  IngestResult,
  ProfileResult,
  RunSummary,
  TrainResult,
} from '../contracts/stages';
import { writeRunReport } from '../analytics/run-report/write';
import { Context } from '@temporalio/activity';

export type { ActivityDeps } from './context';

function workflowIdOf(): string {
  return Context.current().info.workflowExecution?.workflowId ?? 'unknown';
}

/** Activities served on the CPU task queue. */
export function createCpuActivities(deps: ActivityDeps) {
  return {
    planRun: withHeartbeat('plan', async (input: RetrainInput, startedAt: string) => {
      const execution = Context.current().info.workflowExecution;
      if (!execution) throw new Error('planRun must be called from a workflow');
      return planRun(deps, input, { workflowId: execution.workflowId, runId: execution.runId, startedAt });
    }),
    abandonPlan: async (input: RetrainInput) => {
      const execution = Context.current().info.workflowExecution;
      if (!execution) throw new Error('abandonPlan must be called from a workflow');
      return abandonPlan(deps, input, { workflowId: execution.workflowId, runId: execution.runId });
    },
    ingest: withHeartbeat('ingest', ingest),
    profile: withHeartbeat('profile', profile),
    clean: withHeartbeat('clean', clean),
    evaluate: withHeartbeat('evaluate', evaluate),
    publish: withHeartbeat('publish', publish),
    releaseLock: async (plan: RunPlan) => releaseLock(plan),
    /** Records the completed run's input (file columns; the watermark entry of incremental runs). */
    commitRun: withHeartbeat('commit', commitRun),
    registerCandidate: withHeartbeat(
      'register',
      async (
        plan: RunPlan,
        ingested: IngestResult,
        profiled: ProfileResult,
        trained: TrainResult,
        evaluation: EvaluateResult,
      ) => {
        await registerCandidate(deps, plan, ingested, profiled, trained, evaluation);
      },
    ),
    promoteCandidate: withHeartbeat('promote', promoteCandidate),
    /** Writes the run's summary.json, report.html and the dataset's index of runs (analytics/run-report). */
    writeRunReport: withHeartbeat('report', async (plan: RunPlan, summary: RunSummary) =>
      writeRunReport(plan.runDir, { summary }),
    ),
    /** Commit the run's privacy reservation once noise was released, or give it back if nothing was. */
    settlePrivacy: async (plan: RunPlan, outcome: 'commit' | 'release') => {
      if (plan.privacy) await settleBudget(plan.config, plan.runId, outcome);
    },
    setChampion: async (input: AliasInput) => setChampion(deps, input, workflowIdOf()),
    rollbackChampion: async (input: AliasInput) => rollbackChampion(deps, input, workflowIdOf()),
  };
}

/** Activities served on the training task queue (GPU workers in production). */
export function createTrainingActivities(_deps: ActivityDeps) {
  return {
    trainBaselines: withHeartbeat('train', trainBaselines),
    trainLearned: withHeartbeat('train', async (plan: RunPlan) => {
      const registry = registryOf(plan.config, plan.datasetId);
      const championVersion = await registry.champion();
      const champion = championVersion ? await registry.get(championVersion) : undefined;
      if (plan.config.training.challenger === 'two-tower')
        return trainTwoTowerChallenger(plan, registry, champion);
      // With privacy on, mf is trained with DP-SGD against the run's reservation (train-mf-dp.ts).
      return plan.privacy ? trainLearnedDp(plan, registry, champion) : trainLearned(plan, registry, champion);
    }),
  };
}

export type CpuActivities = ReturnType<typeof createCpuActivities>;
export type TrainingActivities = ReturnType<typeof createTrainingActivities>;
