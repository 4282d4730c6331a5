/**
 * The model registry's records and the live pointer. Pure declarations: safe in workflows and reports.
 *
 * Commit protocol: a version folder and a registry record are immutable once written; the only thing that
 * ever changes is the dataset's **live pointer** (one small document naming the live version, which is the
 * champion, and the one before it), and it changes only by compare-and-swap. So one atomic step decides which
 * version is live and which is champion — they cannot disagree — and a crash before that step changes
 * nothing, a crash after it leaves only derived copies (the `current` symlink) for the retry to redo.
 */

/** The differential-privacy spend of the run that produced a model (also in its published manifest). */
export interface ModelPrivacy {
  epsilon: number;
  delta: number;
  rho: number | null;
  mechanism: string;
  window: string;
  params: Record<string, number | string | boolean>;
}

export interface ModelRecord {
  version: string;
  datasetId: string;
  /** Model family, e.g. itemitem or mf. */
  model: string;
  createdAt: string;
  runId: string;
  workflowId: string;
  /** The champion it was evaluated against / warm-started from. */
  parentVersion: string | null;
  configHash: string;
  codeVersion: string;
  backend: string;
  data: { files: { path: string; sha256: string; rows: number }[]; rows: number; profile: string };
  metrics: Record<string, Record<string, number>>;
  gate: { decision: 'promote' | 'reject'; checks: unknown[] } | null;
  privacy: ModelPrivacy | null;
  /**
   * Storage keys of the model's artifacts (relative to the storage root, inside its run's folder):
   * `eval` (trained on the training split) and `full` (all data), and their MostPop fallbacks.
   */
  artifacts: { eval: string; full: string; mostPopEval: string; mostPopFull: string };
  /** Tuned hyperparameters (linear challengers): where the next run's search starts. */
  params?: Record<string, unknown>;
  /** The tuning that chose them: trials, seconds, validation score, and its report (storage key). */
  tuning?: { trials: number; seconds: number; validationScore: number; metric: string; report: string };
  /** Saved learned-model folders (weights + metadata), for warm starts. */
  modelDirs?: { eval: string; full: string };
  /**
   * What scoring this version again needs (its output was pruned): the run's clean events (each user's history)
   * and item metadata (out-of-stock items), as storage keys.
   */
  inputs: { events: string; items: string };
  /** How its lists are scored (item-item: the latest distinct items per user that drive them); absent before it existed. */
  scoring?: { maxHistory: number };
}

/** What a version is, derived from the live pointer and its gate decision (never stored, so never stale). */
export type ModelStatus = 'champion' | 'previous' | 'retired' | 'candidate' | 'rejected';

export interface PointerMove {
  at: string;
  /** The version made live (champion). */
  version: string;
  /** The version it replaced (null for the first). */
  previous: string | null;
  kind: 'promote' | 'set' | 'rollback';
  reason: string;
  /** Workflow id of whoever moved it. */
  by: string;
}

export interface LivePointer {
  formatVersion: 2;
  datasetId: string;
  /** The live version: its recommendations are current and it is the champion. */
  version: string;
  /** Relative to the output folder: where readers find it. */
  path: string;
  manifest: string;
  previous: string | null;
  updatedAt: string;
  /** The last moves, oldest first (bounded). */
  history: PointerMove[];
}
