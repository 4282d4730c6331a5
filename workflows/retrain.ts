import {
  proxyActivities,
  workflowInfo,
  upsertSearchAttributes,
  upsertMemo,
  defineQuery,
  defineSignal,
  setHandler,
  ActivityCancellationType,
  isCancellation,
  log,
} from '@temporalio/workflow';
import type { RetryPolicy, Duration } from '@temporalio/common';
import type { CpuActivities, TrainingActivities } from '../activities';
import { NON_RETRYABLE } from '../contracts/errors';
import {
  STAGE_PROGRESS_SIGNAL,
  type RetrainInput,
  type RunSummary,
  type StageProgressReport,
  type StageTiming,
  type StageRun,
} from '../contracts/stages';
import {
  SA_DATASET,
  SA_GATE,
  SA_MODEL_VERSION,
  SA_NDCG,
  SA_ROWS,
  SA_STAGE,
} from '../contracts/search-attributes';
import { Saga } from './saga';
import { buildRunSummary, learnedFamily, mergeTrained, scoringInputsOf } from './summary';

const retry: RetryPolicy = {
  initialInterval: '2s',
  backoffCoefficient: 2,
  maximumInterval: '1m',
  maximumAttempts: 5,
  nonRetryableErrorTypes: [...NON_RETRYABLE],
};

export interface ProgressState {
  stage: string;
  stages: StageTiming[];
  modelVersion?: string;
  /**
   * The current stage's in-stage progress: the latest report of each of its running activities (by activity
   * type), {stage, step, done, total, unit, etaSeconds…}; emptied when the next stage starts.
   */
  current?: Record<string, StageProgressReport>;
}

export const progressQuery = defineQuery<ProgressState>('progress');
export const stageProgressSignal = defineSignal<[StageProgressReport]>(STAGE_PROGRESS_SIGNAL);

/**
 * The nightly retrain, every decision in view:
 *   plan → input (bundled data generated if needed) → take the dataset → choose incremental input →
 *   reserve the privacy budget → ingest → profile → clean → train (baselines + the configured challenger,
 *   warm-started from the champion) → evaluate and gate → register → [publish → go live → move dataset state]
 *   → record the input → report.
 * Activities exchange artifact references (storage keys), never data. What the run acquires (the dataset lock,
 * the privacy reservation, an unpublished version folder) is given back by its compensation, failure or not.
 * CPU stages run on this workflow's task queue; training on the training queue named in the run's config, so
 * GPU workers scale as their own pool.
 */
export async function retrainPipeline(input: RetrainInput = {}): Promise<RunSummary> {
  const info = workflowInfo();
  const cpuQueue = info.taskQueue;
  const state: ProgressState = { stage: 'plan', stages: [] };
  setHandler(progressQuery, () => state);
  setHandler(stageProgressSignal, (r) => {
    // A late report of a stage that has finished is dropped.
    if (r?.details?.stage !== state.stage) return;
    state.current = { ...state.current, [r.activity]: r };
  });

  async function stage<T>(name: string, fn: () => Promise<T>): Promise<T> {
    state.stage = name;
    state.current = {};
    upsertSearchAttributes([{ key: SA_STAGE, value: name }]);
    const t0 = Date.now();
    const out = await fn();
    state.stages.push({ name, seconds: (Date.now() - t0) / 1000 });
    state.current = {};
    log.info('stage finished', { stage: name, seconds: (Date.now() - t0) / 1000 });
    return out;
  }

  // Planning loads the config, so it runs with fixed options; later stages use the run's configured ones.
  // Every activity heartbeats (activities/support/heartbeat.ts), and every proxy has a heartbeat timeout: a
  // worker killed in the middle of even a short step is noticed in seconds, not after the step's whole
  // start-to-close timeout (the reliability suite measured 2 minutes lost per kill in a lock or registry step).
  const planning = proxyActivities<CpuActivities>({
    taskQueue: cpuQueue,
    startToCloseTimeout: '5m',
    heartbeatTimeout: '30s',
    retry,
  });
  const plan = await stage('plan', () => planning.planRun(input, info.startTime.toISOString()));
  state.modelVersion = plan.run.modelVersion;
  upsertSearchAttributes([
    { key: SA_DATASET, value: plan.run.datasetId },
    { key: SA_MODEL_VERSION, value: plan.run.modelVersion },
  ]);
  const a = plan.config.temporal.activities;
  const stageRetry: RetryPolicy = { ...retry, maximumAttempts: a.maximumAttempts };
  // A cancelled run waits until a stage has really stopped before it gives the dataset back: otherwise a new
  // run could start while the old stage still writes the dataset's files.
  const cpu = proxyActivities<CpuActivities>({
    taskQueue: cpuQueue,
    startToCloseTimeout: a.startToCloseTimeout as Duration,
    heartbeatTimeout: a.heartbeatTimeout as Duration,
    retry: stageRetry,
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  });
  const quick = proxyActivities<CpuActivities>({
    taskQueue: cpuQueue,
    startToCloseTimeout: '2m',
    heartbeatTimeout: a.heartbeatTimeout as Duration,
    retry: stageRetry,
  });
  const training = proxyActivities<TrainingActivities>({
    taskQueue: plan.config.temporal.taskQueues.training,
    startToCloseTimeout: a.trainingStartToCloseTimeout as Duration,
    heartbeatTimeout: a.heartbeatTimeout as Duration,
    retry: stageRetry,
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  });

  const saga = new Saga();
  let failed = true;
  try {
    const prepared = await stage('input', () => cpu.prepareInput(plan));

    // One retrain per dataset; given back whatever happens. Registered before the call: a cancellation that lands
    // after the lock was taken but before the answer arrived must still give it back (a no-op if not held).
    saga.always('release the dataset', () => quick.releaseDatasetLock(plan.run));
    await quick.acquireDatasetLock(plan.run);

    // Incremental runs read only files no earlier date consumed (decided under the lock).
    const selected = plan.config.dataset.incremental.enabled
      ? await quick.selectIncrementalInput(plan, prepared)
      : { input: prepared, incremental: null };

    // The privacy budget is reserved before any data is read, and given back unless noise was drawn.
    // Registered before the call, like the lock: settling a run that reserved nothing changes nothing.
    let noiseDrawn = false;
    if (plan.config.privacy.enabled)
      saga.always('settle the privacy reservation', () =>
        quick.settlePrivacyBudget(plan, noiseDrawn ? 'commit' : 'release'),
      );
    const privacy = plan.config.privacy.enabled
      ? await quick.reservePrivacyBudget(plan, selected.input)
      : null;

    const run: StageRun = { plan, input: selected.input, privacy, incremental: selected.incremental };
    const ingested = await stage('ingest', () => cpu.ingest(run));
    upsertSearchAttributes([{ key: SA_ROWS, value: ingested.rows + ingested.rejectedLines }]);
    const profiled = await stage('profile', () => cpu.profile(run, ingested.raw));
    const cleaned = await stage('clean', () => cpu.clean(run, ingested.raw, profiled));

    // The model this run proposes, warm-started from (and later judged against) the current champion.
    const champion = await quick.currentChampion(plan);
    const family = learnedFamily(plan.config.training.challenger);
    noiseDrawn = privacy !== null; // training releases noisy statistics: from here on the spend stands
    const trained = await stage('train', async () =>
      mergeTrained(
        await training.trainBaselines(run, cleaned.artifacts, ingested.raw),
        family ? await training.trainLearned(run, cleaned.artifacts, ingested.raw, family, champion) : null,
      ),
    );
    if (privacy) await quick.settlePrivacyBudget(plan, 'commit');

    const evaluation = await stage('evaluate', () => cpu.evaluate(run, cleaned.artifacts, trained, champion));
    // Every challenger enters the registry, promoted or not: rejected models stay inspectable.
    await quick.registerCandidate(run, ingested, profiled, cleaned, trained, evaluation);

    // A rejected challenger publishes nothing: the champion's output stays live.
    let published = null;
    let live = null;
    if (evaluation.gate.decision === 'promote') {
      // Scoring fans out by user shard (any CPU worker takes any shard); the version is assembled from the parts.
      const scoring = scoringInputsOf(run, cleaned.artifacts, ingested.raw, trained, evaluation);
      saga.onFailure('discard the unpublished version', () => quick.discardUnpublishedVersion(plan));
      published = await stage('publish', async () => {
        const parts = await Promise.all(
          Array.from({ length: scoring.shards }, (_, shard) => cpu.scorePublishShard(run, scoring, shard)),
        );
        return cpu.publishVersion(run, scoring, parts, evaluation);
      });
      // The commit point: one compare-and-swap makes this version live and champion.
      live = await quick.promoteCandidate(plan, evaluation);
      saga.drop('discard the unpublished version');
      // Only a published run moves the dataset's state (stable id maps, drift baseline, schema reference).
      await quick.commitDatasetState(run, ingested, profiled, cleaned);
    }
    // The run completed (a rejected challenger is a model decision, not a data problem): its input counts as
    // consumed. Last, so a run that fails anywhere before leaves the watermark where it was.
    const inputReport = await quick.commitRun(run, ingested, cleaned);

    const summary = buildRunSummary({
      runId: info.runId,
      workflowId: info.workflowId,
      run,
      stages: state.stages,
      ingested,
      profiled,
      cleaned,
      trained,
      evaluation,
      published,
      live,
      input: inputReport,
    });
    // A report that cannot be built must not fail a run whose output is already published.
    try {
      summary.report = await cpu.writeRunReport(plan, summary);
    } catch (err) {
      if (isCancellation(err)) throw err;
      log.warn('run report not written', { error: (err as Error).message });
      summary.report = null;
    }
    state.stage = 'done';
    upsertSearchAttributes([
      { key: SA_STAGE, value: 'done' },
      { key: SA_GATE, value: evaluation.gate.decision },
      { key: SA_NDCG, value: evaluation.metrics[evaluation.chosenModel]?.[`ndcg@${evaluation.k}`] ?? 0 },
    ]);
    upsertMemo({
      summary: {
        status: summary.status,
        modelVersion: summary.modelVersion,
        rows: summary.rows,
        metrics: summary.metrics,
        outputDir: summary.outputDir,
        // What `recforge runs` and the UI's memo panel need without fetching the result: the decision with its
        // checks, the challenger and K (its headline metric is metrics[challenger]['ndcg@K']), and the report.
        challenger: evaluation.chosenModel,
        k: evaluation.k,
        gate: summary.gate,
        report: summary.report?.html ?? null,
      },
    });
    failed = false;
    return summary;
  } finally {
    await saga.finish(failed);
  }
}
