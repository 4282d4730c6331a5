import type { ProfileDocument, DriftBaseline } from '../../analytics/profile-model';
import { PROFILE_FORMAT_VERSION } from '../../analytics/profile-model';
import { baselineOf } from '../../analytics/drift';
import type { SchemaRecord } from '../../analytics/schema-drift';
import type { IngestResult, StageRun } from '../../contracts/stages';
import { readDocument, type Storage } from '../../lib/storage';
import { log } from './context';
import { baselineIdsKey, lastProfileKey, schemaKey, stateFolder } from './layout';
import type { RunIO } from './run-io';

/**
 * The dataset state documents that more than one stage reads or writes: the drift baseline (profile reads it,
 * a published run records it) and the schema-drift reference (ingest reads it, a published run records it).
 */

/** The pointer to the last published run's profile of a dataset, written by recordSuccessfulProfile. */
export interface LastProfilePointer {
  formatVersion: 1;
  datasetId: string;
  runId: string;
  modelVersion: string;
  createdAt: string;
  recordedAt: string;
  /** Storage key of the run's own profile.json (may be pruned later; the baseline below is self-sufficient). */
  profilePath: string;
  /** Storage keys of copies of the run's distinct ids, kept in the state folder so they outlive the run folder. */
  usersPath: string;
  itemsPath: string;
  baseline: DriftBaseline;
}

/** A run's profile outputs (activities/profile.ts writes them). */
const profileRunKeys = (io: RunIO) => ({
  json: io.key('profile.json'),
  users: io.key('profile_users.parquet'),
  items: io.key('profile_items.parquet'),
});

export async function readSchemaRecord(store: Storage, datasetId: string): Promise<SchemaRecord | undefined> {
  try {
    const r = (await readDocument<SchemaRecord>(store, schemaKey(datasetId)))?.value;
    return r?.formatVersion === 1 && Array.isArray(r.files) ? r : undefined;
  } catch {
    return undefined; // drift reporting is advisory: an unreadable record means "nothing to compare with"
  }
}

/** The run's file columns become the next run's schema-drift reference (published runs only). */
export async function writeSchemaRecord(
  store: Storage,
  run: StageRun,
  ingested: IngestResult,
): Promise<void> {
  const record: SchemaRecord = {
    formatVersion: 1,
    runId: run.plan.run.runId,
    runDate: run.incremental?.runDate ?? run.plan.runDate,
    files: ingested.files.filter((f) => f.columns).map((f) => ({ path: f.path, columns: f.columns! })),
  };
  if (record.files.length)
    await store.put(schemaKey(run.plan.run.datasetId), JSON.stringify(record, null, 2) + '\n');
}

/**
 * Marks this run's profile as the dataset's baseline for drift: copies its id lists into the state folder and
 * then writes the last_profile.json pointer (the pointer is the commit point, so readers never see a pointer to
 * missing files). Only a published run records it. Idempotent; never moves the baseline back to an older run;
 * returns the pointer now in place, or null (and changes nothing) when this run has no profile to record.
 */
export async function recordSuccessfulProfile(io: RunIO): Promise<LastProfilePointer | null> {
  const keys = profileRunKeys(io);
  const { datasetId, runId } = io.run;
  const doc = await io.getJson<ProfileDocument>(keys.json).catch(() => null);
  // A run that published must not fail over its drift baseline: without a profile, keep the old baseline.
  if (
    !doc ||
    doc.formatVersion !== PROFILE_FORMAT_VERSION ||
    !(await io.store.exists(keys.users)) ||
    !(await io.store.exists(keys.items))
  ) {
    log('no profile of this run to record as the drift baseline', { profile: keys.json });
    return null;
  }
  const current = (await readDocument<LastProfilePointer>(io.store, lastProfileKey(datasetId)))?.value;
  if (current && current.runId !== runId && current.createdAt > io.run.startedAt) return current;
  const keep = (kind: 'users' | 'items') => baselineIdsKey(datasetId, runId, kind);
  for (const [kind, from] of [
    ['users', keys.users],
    ['items', keys.items],
  ] as const) {
    const obj = await io.store.get(from);
    if (obj) await io.store.put(keep(kind), obj.body);
  }
  const pointer: LastProfilePointer = {
    formatVersion: 1,
    datasetId,
    runId,
    modelVersion: io.run.modelVersion,
    createdAt: io.run.startedAt,
    recordedAt: new Date().toISOString(),
    profilePath: keys.json,
    usersPath: keep('users'),
    itemsPath: keep('items'),
    baseline: baselineOf(doc),
  };
  await io.putJson(lastProfileKey(datasetId), pointer);
  // Id lists of earlier baselines are no longer referenced by the pointer.
  for (const key of await io.store.list(stateFolder(datasetId))) {
    const name = key.slice(key.lastIndexOf('/') + 1);
    if (/^profile-.*-(users|items)\.parquet$/.test(name) && !name.startsWith(`profile-${runId}-`))
      await io.store.delete(key);
  }
  return pointer;
}
