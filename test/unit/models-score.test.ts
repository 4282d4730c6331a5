import { selectBackend, type BackendName } from '../../models/backend';
import { buildUserItemsCSR } from '../../models/mf';
import { Rng } from '../../models/rng';
import {
  chooseBlockSize,
  matmulGflops,
  scoreAll,
  scoreLinear,
  ScoringFactors,
  type LinearScorer,
} from '../../models/score';
import { filterModule, ScoreFilter } from '../../models/simd-filter';
import { BlockSelector } from '../../models/top-n';
import { compileModels } from '../helpers/compile-worker';
import { collect, intFactors, randomExclusion, reference } from '../helpers/scoring';
import { tfjsNodeProbe } from '../helpers/tfjs-node';
import { countTurns } from '../helpers/event-loop';

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

test('scoring gives the event loop a turn between blocks (heartbeats), with the same lists', async () => {
  const f = intFactors(64, 40, 5, 3, true);
  const ref = reference(f, 5);
  const { value: scored, turns } = await countTurns(() =>
    collect(f, { topN: 5, blockSize: 4, yieldMs: 0, selectionWorker: false }),
  );
  const { got } = scored;
  expect(got).toEqual(ref);
  // 16 blocks, a turn after each.
  expect(turns).toBeGreaterThanOrEqual(8);
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
  return compileModels(['top-n-worker', 'top-n', 'simd-filter', 'simd-codegen', 'wasm-asm']);
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

/** Brute force over a block of scores: eligible (not excluded, not NaN) by score desc, index asc; -1/-Inf padded. */
function bruteForce(
  data: Float32Array,
  B: number,
  n: number,
  topN: number,
  excl: { ptr: Int32Array; items: Int32Array },
) {
  const items: number[] = [];
  const scores: number[] = [];
  for (let r = 0; r < B; r++) {
    const ex = new Set(Array.from(excl.items.subarray(excl.ptr[r], excl.ptr[r + 1])));
    const rows: [number, number][] = [];
    for (let j = 0; j < n; j++) {
      const v = data[r * n + j];
      if (!ex.has(j) && v === v) rows.push([v, j]);
    }
    rows.sort((a, b) => b[0] - a[0] || a[1] - b[1]);
    for (let q = 0; q < topN; q++) {
      items.push(q < rows.length ? rows[q][1] : -1);
      // -0 ranks (and is returned) as 0, as in the selector's packed keys.
      scores.push(q < rows.length ? rows[q][0] + 0 : -Infinity);
    }
  }
  return { items, scores };
}

test('the SIMD scan and the JS scan select exactly what a full sort does (ties, seen items, NaN, -0, short rows)', () => {
  expect(filterModule()).not.toBeNull();
  const rng = new Rng(31);
  for (const [B, n, topN, seenPerRow] of [
    [40, 3000, 20, 60],
    [25, 1037, 100, 900],
    [30, 20000, 7, 5],
    [10, 333, 50, 320],
  ]) {
    const data = new Float32Array(B * n);
    // Few distinct values (many ties), some rows constant, NaN, -0 and infinities sprinkled in.
    for (let q = 0; q < data.length; q++) {
      const r = Math.floor(q / n);
      const k = rng.nextInt(1000);
      data[q] =
        r % 7 === 3
          ? 1
          : k < 3
            ? NaN
            : k < 5
              ? -0
              : k < 6
                ? -Infinity
                : k < 7
                  ? Infinity
                  : rng.nextInt(41) - 20;
    }
    const ptr = new Int32Array(B + 1);
    const items: number[] = [];
    for (let r = 0; r < B; r++) {
      const m = rng.nextInt(seenPerRow + 1);
      for (let k = 0; k < m; k++) items.push(rng.nextInt(n));
      ptr[r + 1] = items.length;
    }
    const excl = { ptr, items: Int32Array.from(items) };
    const want = bruteForce(data, B, n, topN, excl);
    for (const filter of [undefined, false] as const) {
      for (const allowSort of [true, false]) {
        const sel = new BlockSelector({ nItems: n, topN, allowSort }, filter);
        expect(sel.simd).toBe(filter === undefined);
        const outI = new Int32Array(B * topN);
        const outS = new Float32Array(B * topN);
        sel.select(data, B, excl, outI, outS);
        expect(Array.from(outI)).toEqual(want.items);
        expect(Array.from(outS)).toEqual(want.scores);
      }
    }
  }
  // The kernel on its own: indices >= thr, ascending, NaN never, in place from its memory or copied in.
  const f = new ScoreFilter(filterModule() as WebAssembly.Module, 100);
  const row = Float32Array.from({ length: 53 }, (_, j) => (j % 5 === 0 ? NaN : j % 9));
  const expected = Array.from(row.keys()).filter((j) => row[j] >= 5);
  expect(Array.from(f.cand.subarray(0, f.filter(row, 0, 53, 5)))).toEqual(expected);
  const shifted = new Float32Array(f.memory.buffer, 16, 60);
  shifted.set(row, 7); // an unaligned row already in the kernel's memory is read in place
  expect(Array.from(f.cand.subarray(0, f.filter(shifted, 7, 53, 5)))).toEqual(expected);
});

const loadable: BackendName[] = ['wasm', 'cpu', ...(tfjsNodeProbe.ok ? (['tensorflow'] as const) : [])];

test.each(loadable)(
  'scoring on %s, selection on the calling thread and on the worker, equals brute force on tied random data',
  async (backend) => {
    await selectBackend(backend);
    try {
      const worker = compileWorker();
      // Integer factors: exact float32 products on every backend, with many ties; seen items up to 400 a user.
      const f = intFactors(45, 2500, 4, 41, true);
      const exclude = randomExclusion(45, 2500, 400, 42);
      const ref = reference(f, 30, exclude);
      for (const selectionWorker of [false, worker] as const) {
        const { got } = await collect(f, { topN: 30, exclude, blockSize: 16, selectionWorker });
        expect(got).toEqual(ref);
      }
    } finally {
      await selectBackend('wasm');
    }
  },
);

test.each(loadable)(
  'a linear scorer with a dense tail (the blend: sparse history in JS + factors in a %s matmul) equals brute force',
  async (backend) => {
    await selectBackend(backend);
    try {
      const rng = new Rng(51);
      const numUsers = 70;
      const k = 300; // history dimensions (EASE's kept items) and scored columns
      const tail = 3; // factor dims + bias, set for every user with a history
      const dim = k + tail;
      const columns = Int32Array.from({ length: k }, (_, c) => c * 2); // every other item of 600
      const itemMatrix = Float32Array.from({ length: dim * k }, () => rng.nextInt(9) - 4);
      const ptr = [0];
      const cols: number[] = [];
      const vals: number[] = [];
      for (let u = 0; u < numUsers; u++) {
        const n = u % 10 === 9 ? 0 : 1 + rng.nextInt(2); // some users without history: no list
        for (let q = 0; q < n; q++) {
          cols.push(rng.nextInt(k));
          vals.push(1 + rng.nextInt(2));
        }
        if (n > 0)
          for (let e = 0; e < tail; e++) {
            cols.push(k + e);
            vals.push(rng.nextInt(5) - 2);
          }
        ptr.push(cols.length);
      }
      const scorer: LinearScorer = {
        numUsers,
        numItems: 600,
        dim,
        itemMatrix,
        columns,
        denseTail: tail,
        userRows: (users) => {
          const p = new Int32Array(users.length + 1);
          const c: number[] = [];
          const v: number[] = [];
          users.forEach((u, r) => {
            for (let q = ptr[u]; q < ptr[u + 1]; q++) {
              c.push(cols[q]);
              v.push(vals[q]);
            }
            p[r + 1] = c.length;
          });
          return { ptr: p, cols: Int32Array.from(c), vals: Float32Array.from(v) };
        },
      };
      const exclude = randomExclusion(numUsers, 600, 40, 52);
      const topN = 25;
      const got: { items: number[]; scores: number[] }[] = [];
      const stats = await scoreLinear(scorer, {
        topN,
        exclude,
        blockSize: 32,
        selectionWorker: false,
        onBlock: (b) => {
          for (let r = 0; r < b.users.length; r++)
            got[b.users[r]] = {
              items: Array.from(b.items.subarray(r * topN, (r + 1) * topN)),
              scores: Array.from(b.scores.subarray(r * topN, (r + 1) * topN)),
            };
        },
      });
      expect(stats.paths?.sparse).toBeGreaterThan(0);
      for (let u = 0; u < numUsers; u++) {
        const ex = new Set(Array.from(exclude.itemIdx.subarray(exclude.userPtr[u], exclude.userPtr[u + 1])));
        const rows: [number, number][] = [];
        if (ptr[u + 1] > ptr[u])
          for (let c = 0; c < k; c++) {
            if (ex.has(columns[c])) continue;
            let s = 0;
            for (let q = ptr[u]; q < ptr[u + 1]; q++) s += vals[q] * itemMatrix[cols[q] * k + c];
            rows.push([s + 0, columns[c]]);
          }
        rows.sort((a, b) => b[0] - a[0] || a[1] - b[1]);
        const items = rows.slice(0, topN).map((r) => r[1]);
        const scores = rows.slice(0, topN).map((r) => r[0]);
        while (items.length < topN) {
          items.push(-1);
          scores.push(-Infinity);
        }
        expect(got[u]).toEqual({ items, scores });
      }
    } finally {
      await selectBackend('wasm');
    }
  },
);
