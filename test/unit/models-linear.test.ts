import { selectBackend } from '../../models/backend';
import {
  fitLinear,
  hasNegatives,
  scoreLinearModel,
  signalRows,
  describeParams,
  type LinearData,
  type LinearParams,
} from '../../models/linear';
import {
  defaultParams,
  neighbours,
  tuneLinear,
  validationScore,
  type LinearSearchSpace,
} from '../../models/linear-tuning';
import type { ScoreBlock } from '../../models/score';
import { popularityRecallAtK } from '../../models/metrics';
import { buildUserItemsCSR } from '../../models/mf';
import { ds } from '../helpers/planted';

beforeAll(async () => {
  await selectBackend('wasm');
});

/** The planted fixture as linear data: every pair positive, times in order of appearance. */
function planted(): LinearData {
  const n = ds.train.userIdx.length;
  const t = Float64Array.from({ length: n }, (_, k) => 1_700_000_000 + k * 60);
  return {
    userIdx: ds.train.userIdx,
    itemIdx: ds.train.itemIdx,
    timestamps: t,
    firstTimestamps: t,
    positive: new Uint8Array(n).fill(1),
    numUsers: ds.numUsers,
    numItems: ds.numItems,
  };
}
const heldOut = { userIdx: ds.test.userIdx, itemIdx: ds.test.itemIdx };

const space = (
  family: LinearSearchSpace['family'],
  over: Partial<LinearSearchSpace> = {},
): LinearSearchSpace => ({
  family,
  signals: ['all'],
  ease: { lambdas: [1, 10, 100, 1000, 10000], startLambda: 100, tauDays: [0], maxItems: 1000 },
  ials: { factors: [16], regularization: [0.1, 10], alpha: [4], iterations: 6 },
  betas: [0.1, 1],
  ...over,
});

async function lists(params: LinearParams, d: LinearData) {
  const model = await fitLinear(d, params);
  const out = new Map<number, number[]>();
  await scoreLinearModel(model, d, {
    topN: 10,
    onBlock: (b: ScoreBlock) =>
      b.users.forEach((u, r) =>
        out.set(
          u,
          Array.from(b.items.subarray(r * 10, (r + 1) * 10)).filter((i) => i >= 0),
        ),
      ),
  });
  return out;
}

const ease = (lambda: number, signal: 'all' | 'positive' = 'all') => ({
  signal,
  lambda,
  tauDays: 0,
  maxItems: 1000,
});
const ials = { signal: 'all' as const, factors: 16, regularization: 1, alpha: 4, iterations: 6 };

describe('linear family', () => {
  test('EASE, iALS and the blend recommend unseen items and recover the planted clusters', async () => {
    const d = planted();
    for (const p of [
      { ease: ease(10), ials: null, beta: 0 },
      { ease: null, ials, beta: 0 },
      { ease: ease(10), ials, beta: 0.5 },
    ]) {
      const model = await fitLinear(d, p);
      // Popularity's recall on this fixture is ~0.09 (popularityRecallAtK); the clusters give far more.
      expect(await validationScore(model, d, heldOut, 10, 'recall')).toBeGreaterThan(
        2 *
          popularityRecallAtK(
            d.itemIdx,
            d.numItems,
            heldOut,
            10,
            buildUserItemsCSR(d.userIdx, d.itemIdx, d.numUsers),
          ),
      );
      const l = await lists(p, d);
      const seen = new Set<number>();
      for (let k = 0; k < d.userIdx.length; k++) if (d.userIdx[k] === 0) seen.add(d.itemIdx[k]);
      expect(l.get(0)!.length).toBe(10);
      for (const i of l.get(0)!) expect(seen.has(i)).toBe(false);
    }
  });

  test('fitting reports EASE’s inverse in percent and iALS’ iterations with their total and loss', async () => {
    const d = planted();
    const seen: Array<{
      part: string;
      phase: string;
      done: number;
      total: number;
      unit: string;
      loss?: number;
    }> = [];
    const plain = await fitLinear(d, { ease: ease(10), ials, beta: 0.5 });
    const watched = await fitLinear(
      d,
      { ease: ease(10), ials, beta: 0.5 },
      { onProgress: (p) => void seen.push(p) },
    );
    const iterations = seen.filter((p) => p.part === 'ials');
    expect(iterations.map((p) => p.done)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(iterations.every((p) => p.total === 6 && p.unit === 'iterations' && Number.isFinite(p.loss))).toBe(
      true,
    );
    const inverse = seen.filter((p) => p.part === 'ease' && p.phase === 'inverse');
    expect(inverse.length).toBeGreaterThan(0);
    expect(inverse.every((p) => p.unit === '%' && p.total === 100 && p.done >= 0 && p.done <= 100)).toBe(
      true,
    );
    // Watching changes nothing in the model.
    expect(Array.from(watched.ials!.itemFactors)).toEqual(Array.from(plain.ials!.itemFactors));
    expect(Array.from(watched.ease!.weights)).toEqual(Array.from(plain.ease!.weights));
  });

  test('the positive signal learns only from positive pairs', async () => {
    const d = planted();
    // Item 199 appears only in non-positive pairs: with the positive signal EASE never covers it.
    const positive = Uint8Array.from(d.itemIdx, (i) => (i === 199 ? 0 : 1));
    const withNeg = { ...d, positive };
    expect(hasNegatives(withNeg)).toBe(true);
    expect(hasNegatives(d)).toBe(false);
    expect(signalRows(withNeg, 'positive').itemIdx.includes(199)).toBe(false);
    const pos = await fitLinear(withNeg, { ease: ease(10, 'positive'), ials: null, beta: 0 });
    const all = await fitLinear(withNeg, { ease: ease(10, 'all'), ials: null, beta: 0 });
    expect(pos.ease!.items.includes(199)).toBe(false);
    expect(all.ease!.items.includes(199)).toBe(true);
  });

  test('describeParams names the parts', () => {
    expect(describeParams({ ease: ease(300, 'positive'), ials, beta: 0.1 })).toBe(
      'EASE(positive, lambda 300) + 0.1 x iALS(all, 16 factors, lambda 1, alpha 4)',
    );
    expect(describeParams({ ease: null, ials, beta: 0 })).toBe('iALS(all, 16 factors, lambda 1, alpha 4)');
  });
});

describe('tuneLinear', () => {
  test('neighbours are the grid values next to the nearest one', () => {
    expect(neighbours([1, 10, 100, 1000], 100)).toEqual([10, 100, 1000]);
    expect(neighbours([1, 10, 100, 1000], 1)).toEqual([1, 10]);
    expect(neighbours([1, 10, 100, 1000], 5000)).toEqual([100, 1000]);
  });

  test('the EASE local search finds the grid optimum without fitting every lambda', async () => {
    const d = planted();
    const r = await tuneLinear({
      fit: d,
      heldOut,
      space: space('ease'),
      k: 10,
      metric: 'ndcg',
      timeBudgetMs: 600_000,
      seed: 1,
    });
    // The exhaustive answer over the same grid.
    const scores = new Map<number, number>();
    for (const lambda of [1, 10, 100, 1000, 10000]) {
      const m = await fitLinear(d, { ease: ease(lambda), ials: null, beta: 0 });
      scores.set(lambda, await validationScore(m, d, heldOut, 10, 'ndcg'));
    }
    const bestLambda = [...scores.entries()].reduce((a, b) => (b[1] > a[1] ? b : a))[0];
    expect(r.best.ease!.lambda).toBe(bestLambda);
    expect(r.bestScore).toBeCloseTo(scores.get(bestLambda)!, 6);
    const fitted = new Set(r.trials.map((t) => t.params.ease!.lambda));
    expect(fitted.size).toBeLessThan(5);
    expect(r.trials.every((t) => t.phase === 'ease')).toBe(true);
  });

  test('the blend phase competes with EASE alone and iALS alone; the best validation score wins', async () => {
    const r = await tuneLinear({
      fit: planted(),
      heldOut,
      space: space('blend'),
      k: 10,
      metric: 'ndcg',
      timeBudgetMs: 600_000,
      seed: 1,
    });
    expect(new Set(r.trials.map((t) => t.phase))).toEqual(new Set(['ease', 'ials', 'blend']));
    // Partial-budget iALS trials only rank candidates; the choice is among full-budget models.
    const best = Math.max(...r.trials.filter((t) => t.budget === 1).map((t) => t.score));
    expect(r.bestScore).toBe(best);
    expect(r.stoppedByTime).toBe(false);
  });

  test('the time budget skips later phases but always leaves a model', async () => {
    let clock = 0;
    const r = await tuneLinear({
      fit: planted(),
      heldOut,
      space: space('blend'),
      k: 10,
      metric: 'ndcg',
      timeBudgetMs: 1000,
      seed: 1,
      // Every reading of the clock advances it: the budget is gone after the first EASE fit.
      now: () => (clock += 400),
    });
    expect(r.stoppedByTime).toBe(true);
    expect(r.best.ease).not.toBeNull();
    expect(r.trials.filter((t) => t.phase === 'blend')).toHaveLength(0);
  });

  test('a champion’s parameters start the search and shrink it', async () => {
    const d = planted();
    const base = { fit: d, heldOut, k: 10, metric: 'ndcg' as const, timeBudgetMs: 600_000, seed: 1 };
    const cold = await tuneLinear({ ...base, space: space('blend') });
    const warm = await tuneLinear({ ...base, space: space('blend'), first: cold.best });
    expect(warm.trials.length).toBeLessThan(cold.trials.length);
    // The search starts at the champion's lambda (or, for an iALS-only champion, at the configured start).
    expect(warm.trials[0].params.ease!.lambda).toBe(cold.best.ease?.lambda ?? 100);
    expect(warm.bestScore).toBeGreaterThanOrEqual(cold.bestScore - 1e-9);
  });

  test('without validation targets nothing is searched: the champion’s or the starting parameters stand', async () => {
    const empty = { userIdx: new Int32Array(0), itemIdx: new Int32Array(0) };
    const base = {
      fit: planted(),
      heldOut: empty,
      k: 10,
      metric: 'ndcg' as const,
      timeBudgetMs: 1000,
      seed: 1,
    };
    const r = await tuneLinear({ ...base, space: space('blend') });
    expect(r.trials).toHaveLength(0);
    expect(r.best).toEqual(defaultParams(space('blend')));
    expect(r.best.ease!.lambda).toBe(100);
    const champion: LinearParams = { ease: ease(10), ials: null, beta: 0 };
    expect((await tuneLinear({ ...base, space: space('blend'), first: champion })).best).toEqual(champion);
  });
});
