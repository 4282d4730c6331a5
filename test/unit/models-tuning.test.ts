import { grid, successiveHalving } from '../../models/tuning';

type P = { lambda: number; tau: number };
const axes = { lambda: [10, 30, 100, 300, 1000], tau: [1, 7, 30] };
/** A smooth validation surface with its peak at lambda 300, tau 7; a small budget sees it shifted and scaled. */
const surface = (p: P, budget: number): number =>
  budget * (1 - Math.abs(Math.log10(p.lambda) - 2.5) / 3 - Math.abs(Math.log10(p.tau) - Math.log10(7)) / 5);

test('grid is the cartesian product, last axis fastest', () => {
  expect(grid({ a: [1, 2], b: ['x', 'y', 'z'] })).toEqual([
    { a: 1, b: 'x' },
    { a: 1, b: 'y' },
    { a: 1, b: 'z' },
    { a: 2, b: 'x' },
    { a: 2, b: 'y' },
    { a: 2, b: 'z' },
  ]);
  expect(() => grid({ a: [] })).toThrow("axis 'a'");
});

test('successive halving finds the peak with rungs of n, n/3, ... at growing budgets, ending at budget 1', async () => {
  const calls: [P, number][] = [];
  const res = await successiveHalving<P>({
    candidates: grid<P>(axes),
    trial: async (p, b) => (calls.push([p, b]), surface(p, b)),
    seed: 4,
  });
  expect(res.best?.params).toEqual({ lambda: 300, tau: 7 });
  expect(res.best?.budget).toBe(1);
  // 15 candidates, eta 3: rungs of 15, 5, 2, 1 at budgets 1/27, 1/9, 1/3, 1.
  expect(res.rungs).toBe(4);
  const perRung = [0, 1, 2, 3].map((r) => res.trials.filter((t) => t.rung === r));
  expect(perRung.map((t) => t.length)).toEqual([15, 5, 2, 1]);
  expect(perRung.map((t) => t[0].budget)).toEqual([1 / 27, 1 / 9, 1 / 3, 1]);
  expect(calls.length).toBe(23);
  for (const t of res.trials) {
    expect(t.score).toBe(surface(t.params, t.budget));
    expect(t.seconds).toBeGreaterThanOrEqual(0);
  }
  // Each rung keeps the best of the previous one.
  const rung1 = new Set(perRung[1].map((t) => JSON.stringify(t.params)));
  const top5 = [...perRung[0]].sort((a, b) => b.score - a.score).slice(0, 5);
  expect(top5.every((t) => rung1.has(JSON.stringify(t.params)))).toBe(true);
});

test('deterministic given the seed; another seed changes the evaluation order, not the answer', async () => {
  const run = (seed: number) =>
    successiveHalving<P>({ candidates: grid<P>(axes), trial: async (p, b) => surface(p, b), seed });
  const a = await run(7);
  const b = await run(7);
  const c = await run(8);
  const order = (r: typeof a) => r.trials.map((t) => JSON.stringify(t.params) + t.budget);
  expect(order(a)).toEqual(order(b));
  expect(order(a)).not.toEqual(order(c));
  expect(c.best?.params).toEqual(a.best?.params);
});

test("order 'given' keeps the grid's order (with first candidates ahead)", async () => {
  const seenOrder: string[] = [];
  await successiveHalving<P>({
    candidates: grid<P>(axes),
    first: [{ lambda: 1000, tau: 30 }],
    order: 'given',
    minBudget: 1,
    trial: async (p) => (seenOrder.push(`${p.lambda}/${p.tau}`), 0),
  });
  expect(seenOrder.slice(0, 4)).toEqual(['1000/30', '10/1', '10/7', '10/30']);
  expect(seenOrder.length).toBe(15);
});

test('a time budget stops between trials and keeps the best of the largest budget reached', async () => {
  let clock = 0;
  const res = await successiveHalving<P>({
    candidates: grid<P>(axes),
    trial: async (p, b) => ((clock += 10), surface(p, b)),
    timeBudgetMs: 175, // 15 trials of rung 0 (150 ms), then 3 of rung 1 start before 175 ms
    now: () => clock,
    seed: 1,
  });
  expect(res.stoppedByTime).toBe(true);
  expect(res.trials.length).toBe(18);
  expect(res.trials.filter((t) => t.rung === 1).length).toBe(3);
  expect(res.best?.budget).toBe(1 / 9);
  const rung1 = res.trials.filter((t) => t.rung === 1);
  expect(res.best?.score).toBe(Math.max(...rung1.map((t) => t.score)));
});

test('failed trials are recorded with their error and never win; first candidates always run', async () => {
  const champion = { lambda: 10, tau: 1 };
  const res = await successiveHalving<P>({
    candidates: grid<P>(axes),
    first: [champion],
    maxCandidates: 4,
    trial: async (p, b) => {
      if (p.lambda === 300) throw new Error('out of memory');
      return surface(p, b);
    },
    seed: 2,
  });
  expect(res.trials[0].params).toEqual(champion);
  expect(new Set(res.trials.map((t) => JSON.stringify(t.params))).size).toBe(4);
  for (const t of res.trials.filter((t) => t.params.lambda === 300)) {
    expect(t.score).toBeNaN();
    expect(t.error).toBe('out of memory');
  }
  expect(res.best?.params.lambda).not.toBe(300);
});

test('minBudget 1 is a plain grid search: every candidate runs once at full budget', async () => {
  let calls = 0;
  const res = await successiveHalving<P>({
    candidates: grid<P>(axes),
    trial: async (p, b) => (calls++, surface(p, b)),
    minBudget: 1,
  });
  expect(calls).toBe(15);
  expect(res.trials.every((t) => t.budget === 1)).toBe(true);
  expect(res.best?.params).toEqual({ lambda: 300, tau: 7 });
});
