/**
 * Turns of the event loop for long synchronous work on the worker's thread. An activity heartbeats, and sees its
 * cancellation, only when the loop runs; awaiting promises that are already resolved runs microtasks only, so a
 * loop of such awaits holds the loop as firmly as a plain loop does.
 */

/** One turn of the event loop (timers, I/O callbacks), then back. */
export const nextTurn = (): Promise<void> => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * A gate for a hot loop: `await gate()` takes a turn of the event loop when `everyMs` have passed since the last
 * one (0: every call), and otherwise returns at once.
 */
export function turnEvery(everyMs = 200): () => Promise<void> {
  let last = performance.now();
  return async () => {
    if (performance.now() - last < everyMs) return;
    await nextTurn();
    last = performance.now();
  };
}
