/**
 * Where a dataset's state lives on the run's storage (keys relative to the storage root). One place, so every
 * stage, the registry and the tests agree on the layout:
 *   runs/<dataset>/<runId>/…                 a run's artifacts (RunRef.runKey)
 *   state/<dataset>/user_ids.parquet, …      stable dense id maps (moved only by a published run)
 *   state/<dataset>/last_profile.json        drift baseline (published runs)
 *   state/<dataset>/last_schema.json         schema-drift reference (published runs)
 *   state/<dataset>/watermark.json           incremental runs' consumed input (completed runs)
 *   state/<dataset>/events/date=D/<run>.parquet  incremental store partitions
 *   locks/<dataset>.json                     the dataset lock (activities/lock.ts)
 */

const stateKey = (datasetId: string) => `state/${datasetId}`;

export const idMapKeys = (datasetId: string) => ({
  users: `${stateKey(datasetId)}/user_ids.parquet`,
  items: `${stateKey(datasetId)}/item_ids.parquet`,
});
export const lastProfileKey = (datasetId: string) => `${stateKey(datasetId)}/last_profile.json`;
export const schemaKey = (datasetId: string) => `${stateKey(datasetId)}/last_schema.json`;
export const watermarkKey = (datasetId: string) => `${stateKey(datasetId)}/watermark.json`;
/** One file per run of a date: a failed re-run never touches the partition the committed entry points at. */
export const partitionKey = (datasetId: string, runDate: string, runId: string) =>
  `${stateKey(datasetId)}/events/date=${runDate}/${runId}.parquet`;
/** A copy of a published run's distinct users or items, the next run's drift reference. */
export const baselineIdsKey = (datasetId: string, runId: string, kind: 'users' | 'items') =>
  `${stateKey(datasetId)}/profile-${runId}-${kind}.parquet`;
export const stateFolder = stateKey;

/** The events file of incremental runs and the k-core filter: the windowed training set (clean/history.ts). */
export const WINDOWED_EVENTS = 'events-window.parquet';
