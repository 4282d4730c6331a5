import type {
  CleanArtifacts,
  CleanResult,
  EvaluateResult,
  IngestResult,
  ProfileResult,
  PublishResult,
  RawArtifacts,
  RunInputReport,
  ScoringInputs,
  RunSummary,
  StageRun,
  StageTiming,
  TrainResult,
} from '../contracts/stages';

/** Everything a finished run's summary is made of. */
export interface SummaryParts {
  runId: string;
  workflowId: string;
  run: StageRun;
  stages: StageTiming[];
  ingested: IngestResult;
  profiled: ProfileResult;
  cleaned: CleanResult;
  trained: TrainResult;
  evaluation: EvaluateResult;
  published: PublishResult | null;
  live: { champion: string | null; previous: string | null } | null;
  input: RunInputReport;
}

/** The run summary (workflow result, CLI output, memo source): a pure function of the stages' results. */
export function buildRunSummary(p: SummaryParts): RunSummary {
  const { plan, privacy } = p.run;
  return {
    runId: p.runId,
    workflowId: p.workflowId,
    datasetId: plan.run.datasetId,
    status: p.published ? 'completed' : 'rejected',
    modelVersion: plan.run.modelVersion,
    outputDir: p.published?.outputDir ?? null,
    backend: p.trained.backend,
    stages: p.stages,
    rows: {
      ingested: p.ingested.rows + p.ingested.rejectedLines,
      kept: p.cleaned.kept,
      quarantined: p.cleaned.quarantined,
      byReason: p.cleaned.byReason,
    },
    metrics: p.evaluation.metrics,
    gate: p.evaluation.gate,
    privacy: privacy
      ? {
          epsilon: privacy.spend.epsilon,
          delta: privacy.spend.delta,
          rho: privacy.spend.rho ?? null,
          mechanism: privacy.spend.mechanism,
          window: privacy.window,
          rowsRemovedByCaps: p.cleaned.privacyCapped,
          params: { ...privacy.spend.params },
          unit: privacy.unit,
          utility: privacy.utility,
        }
      : null,
    published: p.published,
    training: p.trained.device
      ? {
          device: p.trained.device,
          examplesPerSec: p.trained.examplesPerSec ?? 0,
          epochs: p.trained.epochs ?? 0,
          resumed: p.trained.resumed ?? [],
        }
      : null,
    profile: { report: p.profiled.report, drift: p.profiled.drift },
    registry: p.live,
    input: p.input,
  };
}

/** What a retrain's challenger trains next to the baselines (null: item-item, trained with them). */
export function learnedFamily(challenger: string): string | null {
  return challenger === 'itemitem' ? null : challenger;
}

/** Baselines and the learned challenger as one training result. */
export function mergeTrained(baselines: TrainResult, learned: TrainResult | null): TrainResult {
  if (!learned) return baselines;
  return {
    ...learned,
    backend: `${baselines.backend} + ${learned.backend}`,
    models: [...baselines.models, ...learned.models],
  };
}

/** The run's published model as scoring inputs (pure: the workflow's choice, the trained artifacts). */
export function scoringInputsOf(
  run: StageRun,
  clean: CleanArtifacts,
  raw: RawArtifacts,
  trained: TrainResult,
  evaluation: Pick<EvaluateResult, 'chosenModel'>,
): ScoringInputs {
  const model = trained.models.find((m) => m.name === `${evaluation.chosenModel}-full`)!;
  const mostPop = trained.models.find((m) => m.name === 'mostpop-full')!;
  const c = run.plan.config;
  return {
    datasetId: run.plan.run.datasetId,
    version: run.plan.run.modelVersion,
    generatedAt: run.plan.run.startedAt,
    kind: model.kind,
    model: evaluation.chosenModel,
    modelKey: model.key,
    mostPopKey: mostPop.key,
    eventsKey: clean.events.key,
    itemsKey: raw.items.key,
    topN: c.publish.topN,
    maxHistory: c.training.itemItem.maxHistoryPerUser,
    shards: c.publish.shards,
  };
}
