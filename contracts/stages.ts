/**
 * Types shared by workflows and activities. Pure declarations: safe to import into the workflow sandbox.
 * Activities exchange artifact references (paths, counts, checksums), never bulk data.
 */

/** Input of `retrainPipeline`; every field is optional and defaults from config. */
export interface RetrainInput {
  /** Dataset id: names the run lock, the registry and the output; default `dataset.id`. */
  datasetId?: string;
  /** Interaction file, folder or glob; default `dataset.interactions`. */
  interactions?: string;
  /** Item metadata file; default `dataset.items`. */
  items?: string;
  /** Config overlay file(s) merged over configs/default.yaml in order, later wins (paths on the worker). */
  config?: string | string[];
  /** Config keys overriding everything else, e.g. `{"publish": {"topN": 50}}`. */
  overrides?: Record<string, unknown>;
  /**
   * The run's logical date (YYYY-MM-DD, UTC) for incremental runs: names its watermark entry and store
   * partition; re-running a date is idempotent. Default: the workflow's start date.
   */
  runDate?: string;
}

/** Incremental-run plan: what this run reads and the history it trains on (null when incremental is off). */
export interface IncrementalPlan {
  runDate: string;
  historyDays: number;
  /** Input files skipped because an earlier run consumed them (unchanged since). */
  skipped: { path: string; consumedOn: string }[];
  /** Store partitions of the successful runs before this date, oldest first. */
  history: { runDate: string; partition: string }[];
  /** Where this run writes its clean new events. */
  partition: string;
  /**
   * Files read again because they grew by appending (their first bytes hash to what an earlier run consumed):
   * rows up to `previousLines` were delivered before, so the quality gate judges only the lines after them.
   * Optional: plans written before it existed lack it.
   */
  appended?: { path: string; previousLines: number; consumedOn: string }[];
}

export interface RunPlan {
  workflowId: string;
  runId: string;
  datasetId: string;
  /** Per-run artifact folder; the run's DuckDB file lives inside. */
  runDir: string;
  dbPath: string;
  interactionFiles: string[];
  itemsFile?: string;
  modelVersion: string;
  /** The resolved, validated configuration every activity of this run uses (small; no data). */
  config: import('./config').RecforgeConfig;
  startedAt: string;
  /** Whether the bundled dataset had to be generated for this run. */
  generatedData: boolean;
  /** The privacy spend reserved in the ledger for this run (null when differential privacy is off). */
  privacy: import('./privacy').PrivacyReservation | null;
  /** Set when dataset.incremental is on (optional: plans written before it existed lack it). */
  incremental?: IncrementalPlan | null;
}

export interface IngestedFile {
  path: string;
  format: 'csv' | 'parquet' | 'jsonl';
  bytes: number;
  sha256: string;
  rows: number;
  rejectedLines: number;
  /** Physical lines (CSV, JSON Lines): the header, `rows`, `rejectedLines` and blank lines add up to it. */
  lines?: number;
  /** Modification time when read (the watermark's cheap unchanged-file test). */
  mtimeMs?: number;
  /** The columns the file declares (CSV header, Parquet schema with types); absent for JSON Lines. */
  columns?: { name: string; type?: string }[];
}

/** A file's columns against the previous successful run's (same path, else that run's last file). */
export interface SchemaDrift {
  file: string;
  /** The file of the previous run compared with. */
  comparedWith: string;
  added: string[];
  removed: string[];
  retyped: { column: string; from: string; to: string }[];
}

export interface IngestResult {
  rows: number;
  rejectedLines: number;
  files: IngestedFile[];
  itemRows: number;
  /** Schema-drift warnings (extra or renamed columns, per schema.drift), each naming file and column. */
  warnings?: string[];
  /** Column changes against the previous successful run; empty when none or nothing was recorded. */
  schemaDrift?: SchemaDrift[];
}

export interface ProfileResult {
  profilePath: string;
  rows: number;
  users: number;
  items: number;
  density: number;
  minTimestamp: string | null;
  maxTimestamp: string | null;
  nulls: Record<string, number>;
  /** Self-contained HTML report beside profile.json. */
  reportPath: string;
  /** Drift against the previous successful run's profile of this dataset; null on a first run. */
  drift: import('./profile').DriftSummary | null;
}

export interface CleanResult {
  kept: number;
  quarantined: number;
  byReason: Record<string, number>;
  quarantinePath: string;
  trainRows: number;
  holdoutRows: number;
  holdoutStart: string;
  /** Newest clean event (freshness). */
  newestEvent: string | null;
  users: number;
  items: number;
  /** Rows the per-user contribution caps removed from the training inputs (0 when DP is off). */
  privacyCapped: number;
  /** This run's new rows that passed cleaning (before the history window and the k-core filter). */
  newRows?: number;
  /** The k-core filter, when on. */
  kCore?: { removed: number; iterations: number; converged: boolean } | null;
  /** Incremental runs: the store partitions trained on and the window. */
  history?: {
    partitions: number;
    windowStart: string | null;
    /** New rows dropped because an earlier partition holds the same event. */
    duplicatesOfHistory: number;
    /** The newest of this run's new clean events (the watermark's newestEvent). */
    newestNewEvent: string | null;
  } | null;
}

export interface ModelArtifact {
  name: string;
  kind: 'mostpop' | 'itemitem' | 'recs';
  /** Saved model folder of learned models (weights + id maps), for warm starts and re-scoring. */
  modelDir?: string;
  /** Parquet file holding what the model needs to score. */
  path: string;
  rows: number;
}

export interface TrainResult {
  backend: string;
  models: ModelArtifact[];
  /** Learned models: the champion re-scored on this run's training history. */
  champion?: ModelArtifact | null;
  device?: string;
  /** Variants that resumed from a checkpoint after a retry (worker crash). */
  resumed?: { variant: string; fromStep: number }[];
  examplesPerSec?: number;
  epochs?: number;
}

export type MetricName = 'precision@k' | 'recall@k' | 'ndcg@k' | 'hitrate@k' | 'coverage';
export type ModelMetrics = Record<string, number>;

export interface GateCheck {
  name: string;
  value: number;
  threshold: number;
  passed: boolean;
  /** 95% bootstrap interval of the value, where the check uses one. */
  ci?: [number, number];
}

export interface EvaluateResult {
  k: number;
  evaluatedUsers: number;
  metrics: Record<string, ModelMetrics>;
  /** The challenger: the model this run proposes (and publishes if the gates pass). */
  chosenModel: string;
  /** The champion's version at evaluation time (null for the first model of a dataset). */
  championVersion: string | null;
  gate: { decision: 'promote' | 'reject'; checks: GateCheck[] };
  reportPath: string;
}

export interface PublishResult {
  outputDir: string;
  versionDir: string;
  currentPath: string;
  rows: number;
  users: number;
  manifestPath: string;
  sha256: string;
}

/** The privacy spend as reported in the summary, the registry and the manifest. */
export interface RunPrivacy {
  epsilon: number;
  delta: number;
  rho: number | null;
  mechanism: string;
  window: string;
  rowsRemovedByCaps: number;
  params: Record<string, number | string | boolean>;
  /** The privacy unit the spend was charged to (optional: runs from before units existed lack it). */
  unit?: string;
  /** The plan's signal-to-noise estimate from public parameters, made before the budget was reserved. */
  utility?: import('./privacy').UtilityEstimate;
}

export interface StageTiming {
  name: string;
  seconds: number;
}

export interface RunSummary {
  runId: string;
  workflowId: string;
  datasetId: string;
  status: 'completed' | 'failed' | 'rejected';
  modelVersion: string;
  outputDir: string | null;
  backend: string;
  stages: StageTiming[];
  rows: { ingested: number; kept: number; quarantined: number; byReason: Record<string, number> };
  metrics: Record<string, ModelMetrics>;
  gate: { decision: 'promote' | 'reject'; checks: GateCheck[] };
  privacy: RunPrivacy | null;
  published: PublishResult | null;
  /** Learned-model training: device, speed, epochs, and whether it resumed from a checkpoint. */
  training: {
    device: string;
    examplesPerSec: number;
    epochs: number;
    resumed: { variant: string; fromStep: number }[];
  } | null;
  /** Data profile: the HTML report and drift against the previous successful run. */
  profile: { reportPath: string; drift: ProfileResult['drift'] } | null;
  /** Registry aliases after the run. */
  registry: { champion: string | null; previous: string | null } | null;
  /** The input files read and the dataset's watermark after the run. */
  input?: RunInputReport;
  /** The run report (HTML) and the dataset's index of runs; null when it could not be written. */
  report?: { html: string; index: string } | null;
}

export interface RunInputReport {
  files: string[];
  /** Incremental runs: files skipped as already consumed. */
  skipped: { path: string; consumedOn: string }[];
  warnings: string[];
  schemaDrift: SchemaDrift[];
  /** Incremental runs: the committed watermark entry of this run. */
  watermark: {
    runDate: string;
    newestEvent: string | null;
    partition: string;
    historyRunDates: string[];
    windowStart: string | null;
  } | null;
}

/** Input of `promoteModel` and `rollbackModel`; every field optional except `version` for promotion. */
export interface AliasInput {
  datasetId?: string;
  /** The version to make champion (promoteModel only). */
  version?: string;
  reason?: string;
  /** Promote even a version its gates rejected. */
  force?: boolean;
  config?: string | string[];
  overrides?: Record<string, unknown>;
}

export interface AliasResult {
  champion: string | null;
  previous: string | null;
  /** The output's `current` pointer, now at the champion's recommendations. */
  currentPath: string;
}
