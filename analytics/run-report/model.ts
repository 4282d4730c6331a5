import type { ProfileDocument } from '../profile-model';
import type { GateCheck, ModelMetrics, RunPrivacy, RunSummary } from '../../contracts/stages';

/**
 * Everything the run report shows, gathered from a run's artifacts by ./load.ts and rendered by ./html.ts.
 * Plain JSON: the builders are pure functions of it, so tests construct one by hand. Every part but `run` may be
 * missing (a run that failed early, an older run without training history); the page says what is missing.
 */

export interface EvaluationDocument {
  k: number;
  evaluatedUsers: number;
  catalogue?: number;
  metrics: Record<string, ModelMetrics>;
  /** 95% bootstrap interval of each model's mean per-user NDCG@K. */
  ndcgInterval95?: Record<string, { low: number; high: number }>;
  /** Per model: `ndcg@K_new_users`, `ndcg@K_returning_users`, `recall@K_head_items`, `recall@K_tail_items`, novelty, arp. */
  segments?: Record<string, ModelMetrics>;
  gate: { decision: 'promote' | 'reject'; checks: GateCheck[] };
  challenger: string;
  champion: string | null;
  vsChampion?: { version: string; ndcg: number; diff: { mean: number; low: number; high: number } };
}

export interface EpochPoint {
  epoch: number;
  loss: number;
  /** Validation score of the epoch (early stopping's metric), when evaluated. */
  metric?: number;
}

export interface TrainingCurve {
  /** Model variant, e.g. `two-tower` (trained on the training split) or `two-tower-full`. */
  variant: string;
  /** Name of the validation metric, e.g. `ndcg`. */
  metric: string | null;
  bestEpoch: number | null;
  stoppedEarly: boolean;
  epochs: EpochPoint[];
}

export interface PrivacyBudgetView {
  spend: RunPrivacy;
  /** The dataset's budget for the window (config `privacy.budget`). */
  budget: { epsilon: number; delta: number; window: string };
  /** ε composed over the window's live reservations when the report was built (this run included). */
  usedEpsilon: number | null;
}

export interface ItemInfo {
  itemId: string;
  title: string | null;
  category: string | null;
}

export interface SampleRecommendations {
  userId: string;
  /** The user's latest clean events, newest first. */
  history: ItemInfo[];
  recs: Array<ItemInfo & { rank: number; score: number }>;
}

export interface RunIdentity {
  runId: string;
  workflowId: string | null;
  datasetId: string;
  modelVersion: string | null;
  startedAt: string | null;
  status: RunSummary['status'] | 'unknown';
}

/** tuning.json as the training activity writes it (activities/train/linear.ts). */
export interface TuningDocument {
  family: string;
  description: string;
  validationScore: number | null;
  metric: string;
  startedFrom: unknown;
  validationUsers: number;
  seconds: number;
  stoppedByTime: boolean;
  trials: {
    phase: string;
    params: unknown;
    budget: number;
    score: number | null;
    seconds: number;
    error?: string;
  }[];
}

export interface RunReportInput {
  run: RunIdentity;
  generatedAt: string;
  summary: RunSummary | null;
  profile: ProfileDocument | null;
  /** Relative link from the report to the run's profile page, when it exists. */
  profileHref: string | null;
  evaluation: EvaluationDocument | null;
  training: TrainingCurve[];
  /** The linear challengers' in-run tuning (models/tuning.json), when the run tuned one. */
  tuning: TuningDocument | null;
  privacy: PrivacyBudgetView | null;
  samples: SampleRecommendations[];
  /** Relative link to the dataset's index of runs. */
  indexHref: string | null;
}

/** One run in the index: the fields of its summary the history needs. */
export interface RunIndexEntry {
  runId: string;
  datasetId: string;
  startedAt: string;
  status: RunSummary['status'];
  decision: 'promote' | 'reject' | null;
  modelVersion: string;
  challenger: string | null;
  k: number | null;
  /** NDCG@K per model of that run. */
  ndcg: Record<string, number>;
  rows: { ingested: number; kept: number; quarantined: number };
  epsilon: number | null;
  /** Relative link from the index to the run's report. */
  href: string | null;
}
