import { AsyncLocalStorage } from 'node:async_hooks';

/**
 * The cancellation signal of the operation in progress (an activity), carried implicitly so that low-level
 * helpers — the DuckDB wrapper, training loops — can stop early without every function taking a signal
 * parameter. Independent of Temporal: the activity wrapper binds Temporal's cancellation signal to it.
 */
const scope = new AsyncLocalStorage<AbortSignal>();

export class OperationCancelled extends Error {
  override name = 'OperationCancelled';
}

export function runCancellable<T>(signal: AbortSignal, fn: () => Promise<T>): Promise<T> {
  return scope.run(signal, fn);
}

export function currentSignal(): AbortSignal | undefined {
  return scope.getStore();
}

/** Throws the cancellation reason when the current operation has been cancelled. */
export function throwIfCancelled(): void {
  const signal = currentSignal();
  if (signal?.aborted) {
    throw signal.reason instanceof Error ? signal.reason : new OperationCancelled('operation cancelled');
  }
}
