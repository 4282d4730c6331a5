/**
 * Where recforge keeps its artifacts and state: the local data folder (the embedded default) or an
 * S3-compatible bucket (multi-host deployments). Every stored path is a *key* relative to the storage root
 * ('runs/synthetic/<runId>/events.parquet'), so any worker that sees the same storage can run any stage.
 *
 * Two kinds of objects live there:
 *  - immutable artifacts (Parquet, model files, reports): written once under a fresh key, read many times;
 *  - mutable state documents (the live-version pointer, the dataset lock, the privacy ledger, the watermark):
 *    small JSON objects changed only by compare-and-swap (`putIfMatch`). This is the one commit protocol of the
 *    project: two workers on two machines can never both win a swap, and a crash leaves either the old or the
 *    new document, never a mix.
 */

/** An object's content and its version token (an S3 ETag, or a local journal generation). */
export interface StoredObject {
  body: Buffer;
  token: string;
}

export interface Storage {
  readonly kind: 'local' | 's3';
  /** '/abs/data' or 's3://bucket/prefix' (no trailing slash). */
  readonly root: string;
  /** The URI DuckDB reads or writes the key at (an absolute path, or an s3:// URL). */
  uri(key: string): string;
  /** Null when the object does not exist. */
  get(key: string): Promise<StoredObject | null>;
  /** Writes the object so that readers see the old content or the new, never a part (tmp + rename / one PUT). */
  put(key: string, body: Buffer | string): Promise<void>;
  /**
   * Compare-and-swap: writes `body` only if the object's current token is `token` (null: only if it does not
   * exist). Returns the new token, or null when another writer got there first (nothing was written).
   */
  putIfMatch(key: string, body: Buffer | string, token: string | null): Promise<string | null>;
  exists(key: string): Promise<boolean>;
  /** Keys under a prefix (recursive, sorted). */
  list(prefix: string): Promise<string[]>;
  /** Removes one object (no error when absent). */
  delete(key: string): Promise<void>;
  /** Removes every object under a prefix. */
  deletePrefix(prefix: string): Promise<void>;
  /**
   * A local folder holding the objects under `prefix`, for libraries that need a filesystem (tfjs model
   * bundles): the folder itself on local storage, a downloaded copy in `cacheDir` on S3.
   */
  localDir(prefix: string, cacheDir: string): Promise<string>;
  /** Uploads a local folder's files under `prefix` (local storage: copies unless it is already there). */
  putDir(localDir: string, prefix: string): Promise<void>;
  /**
   * Brings what readers outside recforge see of a state document up to its newest version (local storage:
   * the plain copy beside the journal, which a crash can leave one generation behind; S3: nothing to do).
   */
  syncCopy(key: string): Promise<void>;
}

/** Keys are '/'-separated, relative, without '..' or empty segments: they never escape the storage root. */
export function checkKey(key: string): string {
  if (
    typeof key !== 'string' ||
    key.length === 0 ||
    key.length > 1024 ||
    key.startsWith('/') ||
    key.includes('\\') ||
    key.includes('\0') ||
    key.split('/').some((s) => s === '' || s === '.' || s === '..')
  ) {
    throw new StorageKeyError(key);
  }
  return key;
}

export class StorageKeyError extends Error {
  override readonly name = 'StorageKeyError';
  constructor(readonly key: string) {
    super(
      `invalid storage key ${JSON.stringify(String(key).slice(0, 200))}: keys are relative '/'-separated paths without '..'`,
    );
  }
}

/** Joins key segments ('runs', ds, runId) with '/', checking the result. */
export function joinKey(...parts: string[]): string {
  return checkKey(parts.filter((p) => p !== '').join('/'));
}
