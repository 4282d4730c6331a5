/**
 * Runs `fn` and counts the turns the event loop took meanwhile: a chain of immediates runs once per turn, and
 * never while only microtasks run (a loop that merely awaits resolved promises gives it none).
 */
export async function countTurns<T>(fn: () => Promise<T>): Promise<{ value: T; turns: number }> {
  let turns = 0;
  let running = true;
  const chain = () => {
    turns++;
    if (running) setImmediate(chain);
  };
  setImmediate(chain);
  try {
    const value = await fn();
    return { value, turns };
  } finally {
    running = false;
  }
}
