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

/** The bundled synthetic dataset a run generates (seeded, deterministic) when its default input is missing. */
export interface GenerateSpec {
  out: string;
  users: number;
  items: number;
  events: number;
  seed: number;
  dirtyRate: number;
  botUsers: number;
}

/**
 * The run as planning resolved it, without side effects: its identity and storage (RunRef), the validated
 * config (the workflow derives its decisions from it), its date and the input it reads.
 */
export interface RunPlan {
  run: import('./run').RunRef;
  config: import('./config').RecforgeConfig;
  /** The run's logical date (YYYY-MM-DD): the incremental watermark's entry, the public split cut with privacy. */
  runDate: string;
  /** The interactions file, folder or glob (absolute). */
  interactions: string;
  /** The item metadata file (absolute), when one is configured or given. */
  items: string | null;
  /** Whether the items file was named in the workflow input (then it must exist). */
  itemsRequired: boolean;
  /** The bundled dataset to verify or generate before reading (null: the input is the user's). */
  generate: GenerateSpec | null;
}

/** The input files a run reads (after generation and, for incremental runs, selection). */
export interface PreparedInput {
  interactionFiles: string[];
  itemsFile: string | null;
  /** Whether the bundled dataset had to be generated for this run. */
  generatedData: boolean;
}

/**
 * What every data stage of a run needs beside its artifacts, assembled by the workflow from its saga steps:
 * the plan, the files it reads, the privacy reservation (null when privacy is off) and the incremental plan.
 */
export interface StageRun {
  plan: RunPlan;
  input: PreparedInput;
  privacy: import('./privacy').PrivacyReservation | null;
  incremental: IncrementalPlan | null;
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

/**
 * A landed input file and how its rows' line numbers are known (see analytics/ingest.sql.ts LandedFile): its
 * Parquet `key` in the run's folder, the input file it came from and its index in the run.
 */
export interface LandedRef {
  key: string;
  source: string;
  fileIndex: number;
  lines: 'stored' | 'ordinal' | 'shifted' | 'batch';
  batch?: number;
}

/** Everything ingest landed: the rows (per input file), malformed lines, line-number tables and the items. */
export interface RawArtifacts {
  landed: LandedRef[];
  rejects: import('./run').ArtifactRef;
  lineShifts: import('./run').ArtifactRef;
  batchFiles: import('./run').ArtifactRef;
  items: import('./run').ArtifactRef;
}

export interface IngestResult {
  raw: RawArtifacts;
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
  /** profile.json (storage key). */
  profile: string;
  rows: number;
  users: number;
  items: number;
  density: number;
  minTimestamp: string | null;
  maxTimestamp: string | null;
  nulls: Record<string, number>;
  /** Self-contained HTML report beside profile.json (storage key). */
  report: string;
  /** Drift against the previous successful run's profile of this dataset; null on a first run. */
  drift: import('./profile').DriftSummary | null;
}

/**
 * How evaluation's holdout is cut from the clean events: at an instant (`time`: train is everything before
 * it), or as written files (`files`: the per-user split, where each user's latest share is held out).
 */
export type SplitRef =
  | { kind: 'time'; holdoutStart: string }
  | { kind: 'files'; train: import('./run').ArtifactRef; holdout: import('./run').ArtifactRef };

/** The evaluation split a run used: `time` (one cut) or `user-time` (each user's latest share). */
export type SplitMethod = 'time' | 'user-time';

/** The split method of a clean artifact's split reference (a per-user split is written as files). */
export function splitMethodOf(split: SplitRef): SplitMethod {
  return split.kind === 'files' ? 'user-time' : 'time';
}

/**
 * What cleaning chose for the settings that adapt to the data (`auto` in config), and why; settings given as
 * fixed values are echoed with source `config`. The later stages read these, never the config's `auto`.
 */
export interface DataChoices {
  split: {
    configured: 'auto' | SplitMethod;
    chosen: SplitMethod;
    /** In words, with the counts. */
    reason: string;
    /**
     * The time cut's evaluable users (training history and a positive item new to them in the holdout) and the
     * users with training history it leaves; null when the time cut was not measured.
     */
    timeCut: { evaluableUsers: number; trainUsers: number } | null;
    /** The same counts for the per-user split, measured only when `auto` found the time cut short. */
    perUser: { evaluableUsers: number; trainUsers: number } | null;
    /** What `auto` asked of the time cut (null: not auto, or privacy on: the public cut regardless). */
    needed: { users: number; share: number } | null;
  };
  bots: {
    configured: boolean | 'auto';
    /** Which events count toward a user's events per active day (`off`: detection disabled). */
    counted: 'off' | 'all-events' | 'implicit-events';
    /** adaptive: max(botMinEventsPerDay, median + botMadK·MAD) across users; public: botMaxEventsPerDay. */
    rule: 'adaptive' | 'public' | null;
    /** Events per active day above which a user is a bot (null: off, or no user had a counted event). */
    threshold: number | null;
    users: number;
    rows: number;
  };
  itemItem: {
    maxHistoryPerUser: number;
    neighbours: number;
    /** Where each value came from: the config's number, the data's own distribution, or public values only. */
    source: { maxHistoryPerUser: 'config' | 'data' | 'public'; neighbours: 'config' | 'data' | 'public' };
    /** In words, with the statistics the values came from. */
    reason: string;
  };
}

/** What cleaning wrote: the clean events and their split, the quarantine, the id maps, the bounded inputs. */
export interface CleanArtifacts {
  events: import('./run').ArtifactRef;
  quarantine: import('./run').ArtifactRef;
  userIds: import('./run').ArtifactRef;
  itemIds: import('./run').ArtifactRef;
  split: SplitRef;
  /** With privacy on: each user's bounded contribution to the training split and to all events. */
  bounded: { train: import('./run').ArtifactRef; all: import('./run').ArtifactRef } | null;
  /**
   * The settings chosen for this data (split, bots, item-item limits). Optional: artifacts of runs from before
   * it existed lack it (then the config's numbers, or the legacy defaults, apply: itemItemLimitsOf).
   */
  choices?: DataChoices;
}

/** Item-item limits of a run before `auto` existed and no choice was recorded. */
export const LEGACY_ITEM_ITEM_LIMITS = { maxHistoryPerUser: 50, neighbours: 50 } as const;

/**
 * The item-item limits a run's stages use: cleaning's choice when recorded, else the config's numbers (the legacy
 * defaults where the config says `auto`).
 */
export function itemItemLimitsOf(
  config: { training: { itemItem: { maxHistoryPerUser: number | 'auto'; neighbours: number | 'auto' } } },
  clean: Pick<CleanArtifacts, 'choices'> | null | undefined,
): { maxHistoryPerUser: number; neighbours: number } {
  const c = clean?.choices?.itemItem;
  if (c) return { maxHistoryPerUser: c.maxHistoryPerUser, neighbours: c.neighbours };
  const i = config.training.itemItem;
  return {
    maxHistoryPerUser:
      i.maxHistoryPerUser === 'auto' ? LEGACY_ITEM_ITEM_LIMITS.maxHistoryPerUser : i.maxHistoryPerUser,
    neighbours: i.neighbours === 'auto' ? LEGACY_ITEM_ITEM_LIMITS.neighbours : i.neighbours,
  };
}

export interface CleanResult {
  artifacts: CleanArtifacts;
  kept: number;
  quarantined: number;
  byReason: Record<string, number>;
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
  /** Saved model folder of learned models (weights + id maps; storage key), for warm starts and re-scoring. */
  modelDir?: string;
  /** Parquet file holding what the model needs to score (storage key). */
  key: string;
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
  /** Linear challengers: what the run's tuning chose (models/linear-tuning.ts); trials in `report`. */
  tuning?: TuningSummary;
}

export interface TuningSummary {
  family: string;
  /** The chosen parameters (models/linear.ts LinearParams), stored in the registry for the next warm start. */
  params: Record<string, unknown>;
  description: string;
  validationScore: number;
  metric: string;
  trials: number;
  seconds: number;
  stoppedByTime: boolean;
  /** The search started from the champion's parameters. */
  warmStarted: boolean;
  /** tuning.json (storage key): every trial with its parameters, budget, score and time. */
  report: string;
}

export type MetricName = 'precision@k' | 'recall@k' | 'ndcg@k' | 'hitrate@k' | 'coverage';
export type { GateCheck, ModelMetrics } from './evaluation';
import type { GateCheck, ModelMetrics } from './evaluation';

export interface EvaluateResult {
  k: number;
  evaluatedUsers: number;
  metrics: Record<string, ModelMetrics>;
  /** The challenger: the model this run proposes (and publishes if the gates pass). */
  chosenModel: string;
  /** The champion's version at evaluation time (null for the first model of a dataset). */
  championVersion: string | null;
  gate: { decision: 'promote' | 'reject'; checks: GateCheck[] };
  /** evaluation.json (storage key). */
  report: string;
}

export interface PublishResult {
  version: string;
  /** Storage keys: the dataset's output folder, the version folder, its manifest. */
  output: string;
  versionKey: string;
  manifest: string;
  /** Where readers find it: the output folder's path or URI (the `current` link on local storage). */
  outputDir: string;
  rows: number;
  users: number;
  /** Users whose list is all popular backfill (no personalised candidate). */
  fallbackUsers: number;
  /** Where the lists came from (fallbackUsers = category + popular); absent in results from before it existed. */
  lists?: ListSources;
}

/**
 * Published users by where their list came from (analytics/cold-start.sql.ts listSourcesSql): `personal`, at least
 * one model candidate; otherwise `category`, the popular items of their events' categories (light users), or
 * `popular`, global popularity. `newItems`: users whose list holds a new item (metadata score).
 */
export interface ListSources {
  personal: number;
  category: number;
  popular: number;
  newItems: number;
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

/**
 * In-stage progress of a running activity, sent by the activity to its retrainPipeline (a signal, throttled to a
 * few a minute; activities/support/progress-signal.ts) so that the `progress` query can answer with it.
 * `details` has the heartbeat shape of lib/observability/progress.ts: {stage, step, done, total, unit, etaSeconds…}.
 */
export const STAGE_PROGRESS_SIGNAL = 'stageProgress';
export interface StageProgressReport {
  activity: string;
  attempt: number;
  details: Record<string, unknown>;
  /** When the activity measured it (ISO 8601). */
  at: string;
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
    /** Linear challengers: what tuning chose, from how many trials, in how long. */
    tuning?: TuningSummary;
  } | null;
  /** Data profile: the HTML report (storage key) and drift against the previous successful run. */
  profile: { report: string; drift: ProfileResult['drift'] } | null;
  /** Registry aliases after the run. */
  registry: { champion: string | null; previous: string | null } | null;
  /** The input files read and the dataset's watermark after the run. */
  input?: RunInputReport;
  /** The run report (HTML) and the dataset's index of runs; null when it could not be written. */
  report?: { html: string; index: string } | null;
  /** What was chosen for this data: the split, bot detection, the item-item limits, and why. */
  choices?: DataChoices | null;
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

/** What scoring a version needs, all by storage key: the model, the fallback, the history and the items. */
export interface ScoringInputs {
  datasetId: string;
  version: string;
  generatedAt: string;
  kind: 'mostpop' | 'itemitem' | 'recs';
  model: string;
  modelKey: string;
  mostPopKey: string;
  /** The clean events: each user's history (seen items are never recommended) and who gets a list. */
  eventsKey: string;
  /** The item metadata (out-of-stock items are never recommended). */
  itemsKey: string;
  topN: number;
  maxHistory: number;
  shards: number;
  /** publish.coldStart with privacy.enabled (analytics/cold-start.sql.ts); absent: off. */
  coldStart?: { lightUserEvents: number; newItemSlots: number; newItemRank: number; privacy: boolean };
}

/** The part file of a user shard: `part-00000.parquet`, … (sorted by user_id, rank inside). */
export const partName = (shard: number) => `part-${String(shard).padStart(5, '0')}.parquet`;
