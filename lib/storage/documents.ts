import type { Storage } from './types';

/**
 * JSON state documents changed only by compare-and-swap: the live-version pointer, dataset locks, the privacy
 * ledger. `updateDocument` reads the document, lets `change` decide, and writes the result only if nobody wrote
 * in between — otherwise it reads again and asks `change` again, so every decision is made on the latest state.
 */

export interface VersionedDocument<T> {
  value: T;
  token: string;
}

export class DocumentConflictError extends Error {
  override readonly name = 'DocumentConflictError';
}

export async function readDocument<T>(store: Storage, key: string): Promise<VersionedDocument<T> | null> {
  const obj = await store.get(key);
  if (!obj) return null;
  let value: T;
  try {
    value = JSON.parse(obj.body.toString('utf8')) as T;
  } catch (err) {
    throw new Error(`${store.uri(key)}: not valid JSON (${(err as Error).message})`);
  }
  return { value, token: obj.token };
}

/** What `change` returns: the new document, or `keep` to write nothing (with a result for the caller). */
export type Change<T, R> = { write: T; result: R } | { keep: true; result: R };

/**
 * Read-decide-swap until the swap wins. `change` may run several times (it must be pure apart from its
 * return value) and may throw to abort. Gives up after `maxAttempts` lost swaps (a storm of writers).
 */
export async function updateDocument<T, R>(
  store: Storage,
  key: string,
  change: (current: T | null) => Change<T, R> | Promise<Change<T, R>>,
  maxAttempts = 50,
): Promise<R> {
  for (let attempt = 0; attempt < maxAttempts; attempt++) {
    const cur = await readDocument<T>(store, key);
    const decided = await change(cur ? cur.value : null);
    if ('keep' in decided) return decided.result;
    const body = JSON.stringify(decided.write, null, 2) + '\n';
    if ((await store.putIfMatch(key, body, cur ? cur.token : null)) !== null) return decided.result;
    // Lost the swap: back off a little (jittered) so a crowd of writers spreads out.
    await new Promise((r) => setTimeout(r, Math.min(200, 2 ** attempt) * Math.random()));
  }
  throw new DocumentConflictError(`${store.uri(key)}: gave up after ${maxAttempts} conflicting writes`);
}
