import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { transformFileSync } from '@swc/core';
import { selectBackend } from '../../models/backend';
import { buildUserItemsCSR } from '../../models/mf';
import { Rng } from '../../models/rng';
import { chooseBlockSize, matmulGflops, scoreAll, ScoringFactors } from '../../models/score';
import { collect, intFactors, randomExclusion, reference } from '../helpers/scoring';

beforeAll(async () => {
  await selectBackend('wasm');
});

test('matches brute force exactly, with exclusions, ties and every block size', async () => {
  const f = intFactors(37, 53, 5, 1, true);
  const exclude = randomExclusion(37, 53, 10, 2);
  const ref = reference(f, 7, exclude);
  for (const blockSize of [1, 8, 37, undefined]) {
    const { got, stats } = await collect(f, { topN: 7, exclude, blockSize });
    expect(got).toEqual(ref);
    expect(stats.blocks).toBe(Math.ceil(37 / (blockSize ?? 37)));
  }
  expect((await collect(f, { topN: 7, exclude, ordering: 'heap' })).got).toEqual(ref);
});

test('large catalogue (sampled-threshold path) matches brute force exactly', async () => {
  const f = intFactors(64, 3000, 6, 3, false);
  const exclude = randomExclusion(64, 3000, 200, 4);
  const ref = reference(f, 20, exclude);
  expect((await collect(f, { topN: 20, exclude, blockSize: 16 })).got).toEqual(ref);
  expect((await collect(f, { topN: 20, exclude, blockSize: 16, ordering: 'heap' })).got).toEqual(ref);
  // Negative, -0 and infinite scores keep their exact order in the packed sort keys.
  const g: ScoringFactors = {
    numUsers: 1,
    numItems: 6,
    dim: 1,
    userFactors: Float32Array.from([1]),
    itemFactors: Float32Array.from([-0, 0, -Infinity, Infinity, -1.5, 1e-30]),
  };
  const { got } = await collect(g, { topN: 6 });
  expect(got[0].items).toEqual([3, 5, 0, 1, 4, 2]);
  expect(got[0].scores).toEqual([Infinity, Math.fround(1e-30), 0, 0, -1.5, -Infinity]);
});

test('excluded items never appear; output is sorted; short rows are padded', async () => {
  const f = intFactors(12, 9, 3, 5, true);
  // user 0 has seen 7 of 9 items: only 2 remain for a top-5.
  const exclude = buildUserItemsCSR(
    Int32Array.from([0, 0, 0, 0, 0, 0, 0]),
    Int32Array.from([0, 1, 2, 3, 4, 5, 6]),
    12,
  );
  const { got } = await collect(f, { topN: 5, exclude });
  expect(got[0].items.slice(2)).toEqual([-1, -1, -1]);
  expect(got[0].scores.slice(2)).toEqual([-Infinity, -Infinity, -Infinity]);
  expect(new Set(got[0].items.slice(0, 2))).toEqual(new Set([7, 8]));
  for (const row of got) {
    for (let k = 1; k < row.scores.length; k++) expect(row.scores[k]).toBeLessThanOrEqual(row.scores[k - 1]);
  }
});

test('candidate restriction, user subset and exclusion callback', async () => {
  const f = intFactors(20, 40, 4, 6, true);
  const candidates = Int32Array.from([3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37]);
  const exclude = randomExclusion(20, 40, 6, 7);
  const ref = reference(f, 4, exclude, candidates);
  const users = Int32Array.from([19, 0, 7]);
  const { got, blocks } = await collect(f, {
    topN: 4,
    users,
    candidateItems: candidates,
    blockSize: 2,
    exclude: (bu) => {
      // Block-local CSR, built from the global one.
      const ptr = new Int32Array(bu.length + 1);
      const items: number[] = [];
      bu.forEach((u, r) => {
        for (let q = exclude.userPtr[u]; q < exclude.userPtr[u + 1]; q++) items.push(exclude.itemIdx[q]);
        ptr[r + 1] = items.length;
      });
      return { userPtr: ptr, itemIdx: Int32Array.from(items) };
    },
  });
  expect(blocks.map((b) => Array.from(b.users))).toEqual([[19, 0], [7]]);
  for (const u of users) expect(got[u]).toEqual(ref[u]);
});

test("the 'tf' selector (tensorScatterUpdate + tf.topk) agrees on tie-free data; NaN scores are skipped", async () => {
  const rng = new Rng(9);
  const f: ScoringFactors = {
    numUsers: 25,
    numItems: 300,
    dim: 8,
    userFactors: Float32Array.from({ length: 200 }, () => rng.nextFloat() - 0.5),
    itemFactors: Float32Array.from({ length: 2400 }, () => rng.nextFloat() - 0.5),
  };
  f.itemFactors[5 * 8] = NaN; // item 5 scores NaN for everyone
  const exclude = randomExclusion(25, 300, 30, 10);
  const js = await collect(f, { topN: 10, exclude, blockSize: 10 });
  const viaTf = await collect(f, { topN: 10, exclude, blockSize: 10, selector: 'tf' });
  const ref = reference(f, 10, exclude);
  for (let u = 0; u < 25; u++) {
    expect(js.got[u].items).toEqual(viaTf.got[u].items);
    expect(js.got[u].items).not.toContain(5);
    // float32 matmul vs float64 reference: same items, scores within rounding.
    expect(js.got[u].items).toEqual(ref[u].items);
    js.got[u].scores.forEach((s, k) => expect(Math.abs(s - ref[u].scores[k])).toBeLessThan(1e-5));
  }
});

/** The selection worker compiled from the sources (jest runs TypeScript; a worker thread needs JavaScript). */
function compileWorker(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'recforge-topn-'));
  for (const name of ['top-n', 'top-n-worker']) {
    const src = path.join(__dirname, '..', '..', 'models', `${name}.ts`);
    const { code } = transformFileSync(src, {
      jsc: { target: 'es2022', parser: { syntax: 'typescript' } },
      module: { type: 'commonjs' },
    });
    fs.writeFileSync(path.join(dir, `${name}.js`), code);
  }
  return path.join(dir, 'top-n-worker.js');
}

test('selection on a worker thread (overlapping the next matmul) gives the same results, blocks in order', async () => {
  const worker = compileWorker();
  const f = intFactors(61, 3000, 6, 11, true);
  const exclude = randomExclusion(61, 3000, 150, 12);
  const ref = reference(f, 15, exclude);
  for (const blockSize of [1, 4, 16, 61]) {
    const { got, blocks } = await collect(f, { topN: 15, exclude, blockSize, selectionWorker: worker });
    expect(got).toEqual(ref);
    expect(blocks.map((b) => b.index)).toEqual(blocks.map((_, i) => i));
    expect(blocks.flatMap((b) => Array.from(b.users))).toEqual(Array.from({ length: 61 }, (_, u) => u));
  }
  const candidates = Int32Array.from([3, 5, 7, 11, 13, 2999, 17]);
  const viaWorker = await collect(f, {
    topN: 4,
    candidateItems: candidates,
    blockSize: 8,
    exclude,
    selectionWorker: worker,
  });
  expect(viaWorker.got).toEqual(reference(f, 4, exclude, candidates));
  // A failing consumer stops scoring with its error, and the worker does not keep the process alive.
  await expect(
    scoreAll(f, {
      topN: 5,
      blockSize: 8,
      selectionWorker: worker,
      onBlock: (b) => {
        if (b.index === 2) throw new Error('sink full');
      },
    }),
  ).rejects.toThrow('sink full');
});

test('block size follows the memory budget', () => {
  const items = 100_000;
  const block = chooseBlockSize(items, 65, 64 * 1024 * 1024, false, Infinity);
  expect(items * 65 * 4 + block * (items * 4 + 65 * 4)).toBeLessThanOrEqual(64 * 1024 * 1024);
  expect(block).toBeGreaterThan(100);
  // Default cache cap: ~8 MiB of scores per block, but at least 32 rows.
  expect(chooseBlockSize(10_000, 65, 1 << 30, false)).toBe(209);
  expect(chooseBlockSize(items, 65, 1 << 30, false)).toBe(32);
  expect(() => chooseBlockSize(items, 65, 10 * 1024 * 1024, false)).toThrow(/budget/);
  expect(matmulGflops(32, 16, 64, 1)).toBeGreaterThan(0);
});
