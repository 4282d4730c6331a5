import {
  proxyActivities,
  workflowInfo,
  upsertSearchAttributes,
  upsertMemo,
  defineQuery,
  setHandler,
  CancellationScope,
  ActivityCancellationType,
  isCancellation,
  patched,
  log,
} from '@temporalio/workflow';
import type { RetryPolicy, Duration } from '@temporalio/common';
import type { CpuActivities, TrainingActivities } from '../activities';
import type {
  RetrainInput,
  RunSummary,
  StageTiming,
  RunPlan,
  PublishResult,
  TrainResult,
} from '../contracts/stages';
import { SA_DATASET, SA_GATE, SA_MODEL_VERSION, SA_NDCG, SA_ROWS, SA_STAGE } from './search-attributes';

/** Errors no retry can fix: bad input or config, a dirty dataset, a busy dataset. */
export const NON_RETRYABLE = [
  'BadInput',
  'ConfigError',
  'QualityGateFailed',
  'DatasetBusy',
  'PrivacyBudgetExceeded',
  'NoNewData',
];

const retry: RetryPolicy = {
  initialInterval: '2s',
  backoffCoefficient: 2,
  maximumInterval: '1m',
  maximumAttempts: 5,
  nonRetryableErrorTypes: NON_RETRYABLE,
};

export interface ProgressState {
  stage: string;
  stages: StageTiming[];
  modelVersion?: string;
}

export const progressQuery = defineQuery<ProgressState>('progress');

/**
 * The nightly retrain: plan → ingest → profile → clean → train → evaluate → publish. Activities exchange
 * artifact references only. CPU stages run on this workflow's task queue; training runs on the training
 * queue named in the run's resolved config, so GPU workers scale as their own pool.
 */
export async function retrainPipeline(input: RetrainInput = {}): Promise<RunSummary> {
  const info = workflowInfo();
  const cpuQueue = info.taskQueue;
  // Planning loads the config, so it runs with fixed options; later stages use the run's configured ones.
  const planning = proxyActivities<CpuActivities>({
    taskQueue: cpuQueue,
    startToCloseTimeout: '15m',
    heartbeatTimeout: '1m',
    retry,
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  });
  const quick = proxyActivities<CpuActivities>({ taskQueue: cpuQueue, startToCloseTimeout: '1m', retry });

  const state: ProgressState = { stage: 'plan', stages: [] };
  setHandler(progressQuery, () => state);
  const startedAt = info.startTime.toISOString();

  async function stage<T>(name: string, fn: () => Promise<T>): Promise<T> {
    state.stage = name;
    upsertSearchAttributes([{ key: SA_STAGE, value: name }]);
    const t0 = Date.now();
    const out = await fn();
    state.stages.push({ name, seconds: (Date.now() - t0) / 1000 });
    log.info('stage finished', { stage: name, seconds: (Date.now() - t0) / 1000 });
    return out;
  }

  let plan: RunPlan;
  try {
    plan = await stage('plan', () => planning.planRun(input, startedAt));
  } catch (err) {
    // Cancelled while planning: the lock and the privacy reservation it may have taken are not yet covered by
    // the finally below, so give them back here.
    if (isCancellation(err)) await CancellationScope.nonCancellable(() => quick.abandonPlan(input));
    throw err;
  }
  state.modelVersion = plan.modelVersion;
  const a = plan.config.temporal.activities;
  const stageRetry: RetryPolicy = { ...retry, maximumAttempts: a.maximumAttempts };
  const cpu = proxyActivities<CpuActivities>({
    taskQueue: cpuQueue,
    startToCloseTimeout: a.startToCloseTimeout as Duration,
    heartbeatTimeout: a.heartbeatTimeout as Duration,
    retry: stageRetry,
    // A cancelled run waits until the stage has really stopped before it releases the dataset lock: otherwise a
    // new run could start while the old stage still writes into the dataset's files.
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  });
  const training = proxyActivities<TrainingActivities>({
    taskQueue: plan.config.temporal.taskQueues.training,
    startToCloseTimeout: a.trainingStartToCloseTimeout as Duration,
    heartbeatTimeout: a.heartbeatTimeout as Duration,
    retry: stageRetry,
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  });
  upsertSearchAttributes([
    { key: SA_DATASET, value: plan.datasetId },
    { key: SA_MODEL_VERSION, value: plan.modelVersion },
  ]);
  let privacySettled = false;
  let trainingStarted = false;
  try {
    const ingested = await stage('ingest', () => cpu.ingest(plan));
    upsertSearchAttributes([{ key: SA_ROWS, value: ingested.rows + ingested.rejectedLines }]);
    const profiled = await stage('profile', () => cpu.profile(plan));
    const cleaned = await stage('clean', () => cpu.clean(plan, profiled));
    trainingStarted = true;
    const trained = await stage('train', async () => {
      const baselines = await training.trainBaselines(plan);
      if (plan.config.training.challenger === 'itemitem') return baselines;
      const learned = await training.trainLearned(plan);
      const merged: TrainResult = {
        ...learned,
        backend: `${baselines.backend} + ${learned.backend}`,
        models: [...baselines.models, ...learned.models],
      };
      return merged;
    });
    // Noise has been drawn from the data: from here on the spend is final, whatever happens next.
    if (plan.privacy) {
      await quick.settlePrivacy(plan, 'commit');
      privacySettled = true;
    }
    const evaluation = await stage('evaluate', () => cpu.evaluate(plan, trained));
    await cpu.registerCandidate(plan, ingested, profiled, trained, evaluation);
    // A rejected challenger publishes nothing: the champion's output stays current.
    let published: PublishResult | null = null;
    let registry: RunSummary['registry'] = null;
    if (evaluation.gate.decision === 'promote') {
      published = await stage('publish', () => cpu.publish(plan, trained, evaluation));
      const aliases = await cpu.promoteCandidate(plan, evaluation, published);
      registry = { champion: aliases.champion, previous: aliases.previous };
    }
    // The run completed (a rejected challenger is a model decision, not a data problem): its input counts as
    // consumed. Committed last, so a run that fails anywhere before leaves the watermark where it was.
    // patched(): runs started before commitRun existed replay without it.
    const inputReport = patched('commit-run') ? await cpu.commitRun(plan, ingested, cleaned) : undefined;

    const summary: RunSummary = {
      runId: info.runId,
      workflowId: info.workflowId,
      datasetId: plan.datasetId,
      status: published ? 'completed' : 'rejected',
      modelVersion: plan.modelVersion,
      outputDir: published?.outputDir ?? null,
      backend: trained.backend,
      stages: state.stages,
      rows: {
        ingested: ingested.rows + ingested.rejectedLines,
        kept: cleaned.kept,
        quarantined: cleaned.quarantined,
        byReason: cleaned.byReason,
      },
      metrics: evaluation.metrics,
      gate: evaluation.gate,
      privacy: plan.privacy
        ? {
            epsilon: plan.privacy.spend.epsilon,
            delta: plan.privacy.spend.delta,
            rho: plan.privacy.spend.rho ?? null,
            mechanism: plan.privacy.spend.mechanism,
            window: plan.privacy.window,
            rowsRemovedByCaps: cleaned.privacyCapped,
            params: { ...plan.privacy.spend.params },
            unit: plan.privacy.unit,
            utility: plan.privacy.utility,
          }
        : null,
      published,
      training: trained.device
        ? {
            device: trained.device,
            examplesPerSec: trained.examplesPerSec ?? 0,
            epochs: trained.epochs ?? 0,
            resumed: trained.resumed ?? [],
          }
        : null,
      profile: { reportPath: profiled.reportPath, drift: profiled.drift },
      registry,
      input: inputReport,
    };
    // patched(): runs started before the report existed replay without it. A report that cannot be built must not
    // fail a run whose output is already published.
    if (patched('run-report')) {
      try {
        summary.report = await cpu.writeRunReport(plan, summary);
      } catch (err) {
        if (isCancellation(err)) throw err;
        log.warn('run report not written', { error: (err as Error).message });
        summary.report = null;
      }
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
    return summary;
  } finally {
    // Release the dataset even when the run fails or is cancelled; a run that failed before training gives
    // its privacy reservation back.
    await CancellationScope.nonCancellable(async () => {
      // Once training started, noise may have been drawn and seen: the spend stands.
      try {
        if (plan.privacy && !privacySettled)
          await quick.settlePrivacy(plan, trainingStarted ? 'commit' : 'release');
      } finally {
        await quick.releaseLock(plan);
      }
    });
  }
}
