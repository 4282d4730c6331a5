/**
 * What identifies a run to every activity: its ids, where its artifacts live, and the DuckDB limits its stages
 * run under. Small and data-free; it travels in every activity's input.
 */
export interface RunRef {
  runId: string;
  workflowId: string;
  datasetId: string;
  /** Storage root the run was planned on: a local folder or s3://bucket/prefix (every worker must see it). */
  storage: string;
  /** Storage key of the run's folder: `runs/<dataset>/<runId>`. */
  runKey: string;
  /** Workflow start time (ISO): names the model version, bounds future timestamps. */
  startedAt: string;
  modelVersion: string;
  duckdb: { memoryLimit: string; threads: number };
}

/** A file the run wrote: storage key (relative to the storage root) and what a reader can check it against. */
export interface ArtifactRef {
  key: string;
  rows: number;
  bytes: number;
}
