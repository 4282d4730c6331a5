/**
 * Blocked all-users x all-items scoring with seen-item exclusion and per-user top-N.
 *
 * For each block of users: S = [P_block | 1] x [Q | b]^T in the backend (one matmul, the item bias folded in as an
 * extra column), then per-row top-N selection. Memory is bounded by the block size, which is derived from a byte
 * budget: the resident item matrix (D+1) x I plus block x I scores, independent of the number of users.
 *
 * Selection ('js', default): per row, a threshold from a strided sample of the row (its order statistic that
 * ~2.5N scores beat), a scan keeping the eligible scores >= it — a WebAssembly SIMD kernel, one comparison per four
 * scores (models/simd-filter.ts) — and an exact selection over the few survivors (packed keys, quickselect, native
 * sort); excluded items are checked only for survivors (via a per-row stamp array), so exclusion is ~free. On wasm
 * the scores are read in place from the wasm heap. The selection (models/top-n.ts) runs in a worker thread when
 * the compiled worker is available and a core is idle for it (overlapPays): block b's selection then overlaps
 * block b + 1's matmul. 'tf' (tf.tensorScatterUpdate to -inf + tf.topk) is kept for backends where reading scores
 * back is the bottleneck (GPU).
 * The item matrix is stored pre-transposed ([D+1, I]): tfjs-wasm's matmul with transposeB ran ~5x slower.
 * scoreLinear scores sparse user rows built per block by a provider (EASE histories) against a dim x items matrix
 * through the same loop (models/score-sources.ts).
 * Ordering: score descending, ties by lower item index; NaN scores are never returned. Rows with fewer than N
 * eligible items are padded with item -1 and score -Infinity.
 */
import * as os from 'node:os';
import type { Tensor2D } from '@tensorflow/tfjs-core';
import { ensureBackend, getTf } from './backend';
import {
  factorSource,
  linearSource,
  type BlockSource,
  type LinearScorer,
  type ScoringFactors,
} from './score-sources';
import { filterScratchBytes, heapFilterModule, ScoreFilter } from './simd-filter';
import { BlockSelector, MAX_PACKED_ITEMS, type BlockExclusion, type SelectionSetup } from './top-n';
import { defaultWorkerScript, SelectionThread, type SelectedBlock } from './top-n-thread';
import { turnEvery } from './turns';

export type { LinearScorer, ScoringFactors, SparseRows, UserRowProvider } from './score-sources';

/** Items to exclude per user, CSR over *global* user ids (ptr length numUsers + 1). Lists need not be sorted. */
export interface ExcludeCSR {
  userPtr: Int32Array;
  itemIdx: Int32Array;
}

/** Per-block exclusion: for block users (global ids), return CSR local to the block (ptr length users.length + 1). */
export type ExcludeFn = (users: Int32Array) => ExcludeCSR;

export interface ScoreBlock {
  index: number;
  /** Global user ids of this block. */
  users: Int32Array;
  topN: number;
  /** users.length x topN item ids (global), -1 padded. */
  items: Int32Array;
  /** users.length x topN scores, -Infinity padded. */
  scores: Float32Array;
}

export interface ScoreOptions {
  topN: number;
  /** Users to score (global ids); default all. */
  users?: Int32Array;
  exclude?: ExcludeCSR | ExcludeFn;
  /** Restrict recommendations to these items (e.g. in stock); default all. */
  candidateItems?: Int32Array;
  /** Bytes for item matrix + one block of scores (default 256 MiB; scoreLinear: the item matrix + 256 MiB). */
  memoryBudgetBytes?: number;
  /** Fixed block size (users), overriding the budget. */
  blockSize?: number;
  /** Target bytes of one block of scores (default 8 MiB), see chooseBlockSize. */
  cacheTargetBytes?: number;
  /**
   * How the JS selector ranks surviving candidates: 'sort' (heap over packed (score, index) keys; needs <= 2^21
   * items), 'heap' ((score, index) pair heap, any size), or 'auto' ('sort' when possible). Results are identical.
   */
  ordering?: 'auto' | 'sort' | 'heap';
  selector?: 'js' | 'tf';
  /**
   * The 'js' selector's worker thread (overlaps selection with the next block's matmul): a compiled worker
   * script, or false for selection on the calling thread. Default (see overlapPays): the worker beside this
   * module when compiled, if the backend's matmul leaves a core idle for it.
   */
  selectionWorker?: string | false;
  /** Longest stretch of scoring between two turns of the event loop, ms (default 200). */
  yieldMs?: number;
  onBlock: (block: ScoreBlock) => void | Promise<void>;
}

export interface ScoreStats {
  users: number;
  items: number;
  blocks: number;
  blockSize: number;
  ms: number;
  matmulMs: number;
  /** 2 * users * items * (dim + bias) / total time. */
  gflops: number;
  /** scoreLinear: blocks scored by each kind of product (see score-sources.ts). */
  paths?: Record<'sparse' | 'compact' | 'dense', number>;
}

interface HeapReader {
  typedArrayFromHeap?: (t: Tensor2D) => Float32Array;
  wasm?: { asm?: { memory?: unknown }; _malloc?: (n: number) => number; _free?: (p: number) => void };
}

interface WasmHeap {
  memory: WebAssembly.Memory;
  malloc: (bytes: number) => number;
  free: (ptr: number) => void;
}

/** tfjs-wasm's heap (its memory and allocator), when the backend exposes them. */
function wasmHeap(b: HeapReader): WasmHeap | undefined {
  const w = b.wasm;
  const memory = w?.asm?.memory;
  if (
    !(memory instanceof WebAssembly.Memory) ||
    typeof w?._malloc !== 'function' ||
    typeof w._free !== 'function'
  )
    return undefined;
  const { _malloc: malloc, _free: free } = w;
  return { memory, malloc: (n) => malloc(n), free: (p) => free(p) };
}

/**
 * Picks a block size (users per matmul): as large as the byte budget allows for the item matrix plus one block of
 * scores (twice when scores are copied out of the backend), but capped so a block of scores stays around
 * `cacheTargetBytes`: the top-N scan reads the block right after the matmul wrote it, and measured scoring
 * throughput on wasm dropped by ~40% going from 256 to 1024+ rows x 10k items (40 MB blocks).
 */
export function chooseBlockSize(
  numItems: number,
  dimPlusBias: number,
  budgetBytes: number,
  copiesScores: boolean,
  cacheTargetBytes = 8 * 1024 * 1024,
): number {
  const resident = numItems * dimPlusBias * 4;
  const perUser = numItems * 4 * (copiesScores ? 2 : 1) + dimPlusBias * 4;
  const free = budgetBytes - resident;
  if (free < perUser) {
    throw new Error(
      `scoring memory budget ${budgetBytes} B cannot hold the item matrix (${resident} B) plus one row of scores`,
    );
  }
  const byBudget = Math.floor(free / perUser);
  // Never below 32 rows (matmul efficiency) unless the budget forces it.
  const byCache = Math.max(32, Math.floor(cacheTargetBytes / (numItems * 4)));
  return Math.max(1, Math.min(byBudget, byCache, 4096));
}

/**
 * Scores users x items in blocks and hands each block's top-N to opts.onBlock (awaited, so the caller can stream to
 * disk with back-pressure). Selects the 'auto' backend if none was selected.
 */
export async function scoreAll(f: ScoringFactors, opts: ScoreOptions): Promise<ScoreStats> {
  await ensureBackend();
  return scoreSource(factorSource(f, opts.candidateItems), f.numUsers, f.numItems, opts, 256 * 1024 * 1024);
}

/**
 * Scores sparse user rows (built per block by m.userRows) against m.itemMatrix, e.g. EASE; items outside
 * m.columns get no score, and users whose rows are empty get no recommendations (-1 padded), so the caller's
 * fallback (popular backfill) applies to them.
 */
export async function scoreLinear(m: LinearScorer, opts: ScoreOptions): Promise<ScoreStats> {
  await ensureBackend();
  const source = linearSource(m, opts.candidateItems);
  const resident = source.inputWidth * source.nCols * 4;
  return scoreSource(source, m.numUsers, m.numItems, opts, resident + 256 * 1024 * 1024);
}

/** Longest stretch of scoring between two turns of the event loop. */
const YIELD_MS = 200;

async function scoreSource(
  source: BlockSource,
  numUsers: number,
  numItems: number,
  opts: ScoreOptions,
  defaultBudget: number,
): Promise<ScoreStats> {
  const tf = getTf();
  const t0 = performance.now();
  const users = opts.users ?? Int32Array.from({ length: numUsers }, (_, i) => i);
  const nItems = source.nCols;
  const cand = source.colToGlobal;
  const topN = Math.max(1, Math.floor(opts.topN));
  const selector = opts.selector ?? 'js';
  const backendObj = tf.backend() as unknown as HeapReader;
  const inPlace = selector === 'js' && typeof backendObj.typedArrayFromHeap === 'function';
  let thread: SelectionThread | undefined;
  let heap: WasmHeap | undefined;
  let heapScratch = 0;
  let matmulMs = 0;
  let blocks = 0;
  let blockSize = 0;
  try {
    blockSize =
      opts.blockSize ??
      chooseBlockSize(
        nItems,
        source.inputWidth,
        opts.memoryBudgetBytes ?? defaultBudget,
        !inPlace,
        opts.cacheTargetBytes,
      );
    // global item -> local column (only when columns are not the catalogue itself)
    let globalToLocal: Int32Array | undefined;
    if (cand) {
      globalToLocal = new Int32Array(numItems).fill(-1);
      for (let c = 0; c < nItems; c++) globalToLocal[cand[c]] = c;
    }
    if (opts.ordering === 'sort' && nItems > MAX_PACKED_ITEMS)
      throw new Error(`ordering 'sort' supports <= ${MAX_PACKED_ITEMS} items`);
    const setup: SelectionSetup = { nItems, topN, allowSort: opts.ordering !== 'heap', cand, globalToLocal };
    const script =
      selector === 'js' && opts.selectionWorker !== false
        ? (opts.selectionWorker ?? (overlapPays(tf.getBackend()) ? defaultWorkerScript() : undefined))
        : undefined;
    thread = script ? new SelectionThread(script, setup, blockSize) : undefined;
    // On the calling thread over tfjs-wasm, the SIMD scan runs on the wasm heap itself: rows are scanned where
    // the matmul wrote them (its scratch is allocated in that heap), not copied into a memory of its own.
    let local: BlockSelector | undefined;
    if (!thread) {
      const hm = inPlace ? heapFilterModule() : null;
      heap = hm ? wasmHeap(backendObj) : undefined;
      if (hm && heap) {
        heapScratch = heap.malloc(filterScratchBytes(nItems) + 16);
        try {
          const f = new ScoreFilter(hm, nItems, heap.memory, Math.ceil(heapScratch / 16) * 16);
          local = new BlockSelector(setup, f);
        } catch {
          // e.g. a threaded tfjs-wasm build, whose heap is a shared memory: the scan's own memory instead.
          heap.free(heapScratch);
          heapScratch = 0;
        }
      }
      local ??= new BlockSelector(setup);
    }
    const emit = async (index: number, bu: Int32Array, sel: SelectedBlock, empty?: Uint8Array) => {
      if (empty) blankRows(sel, empty, topN);
      await opts.onBlock({ index, users: bu, topN, items: sel.items, scores: sel.scores });
    };
    // With the worker: block b's selection runs while block b + 1's matmul does; a slot is refilled only after
    // the block that used it was delivered, and blocks are delivered in order.
    type Inflight = { index: number; users: Int32Array; empty?: Uint8Array; result: Promise<SelectedBlock> };
    const inflight: (Inflight | undefined)[] = [];
    const deliver = async (slot: number) => {
      const f = inflight[slot];
      if (!f) return;
      inflight[slot] = undefined;
      await emit(f.index, f.users, await f.result, f.empty);
    };
    const turn = turnEvery(opts.yieldMs ?? YIELD_MS);
    for (let start = 0; start < users.length; start += blockSize) {
      const bu = users.subarray(start, Math.min(users.length, start + blockSize));
      const B = bu.length;
      const tm = performance.now();
      const block = source.blockScores(bu);
      const { empty } = block;
      // Scores computed outside the backend (a linear scorer's sparse product) are already a plain array.
      const scores =
        block.scores ?? (selector === 'tf' ? (tf.tensor2d(block.data, [B, nItems]) as Tensor2D) : undefined);
      const excl = resolveExclusion(opts.exclude, bu);
      try {
        if (selector === 'tf') {
          const out = { items: new Int32Array(B * topN), scores: new Float32Array(B * topN) };
          selectWithTf(scores as Tensor2D, excl, globalToLocal, nItems, topN, cand, out.items, out.scores);
          matmulMs += performance.now() - tm;
          await emit(blocks, bu.slice(), out, empty);
        } else {
          const data = !scores
            ? (block.data as Float32Array)
            : inPlace
              ? (backendObj.typedArrayFromHeap as (t: Tensor2D) => Float32Array)(scores)
              : (scores.dataSync() as Float32Array);
          matmulMs += performance.now() - tm;
          if (thread) {
            const slot = blocks % 2;
            await deliver(slot);
            thread.slot(slot).set(data.subarray(0, B * nItems));
            inflight[slot] = {
              index: blocks,
              users: bu.slice(),
              empty,
              result: thread.submit(blocks, slot, B, excl),
            };
          } else {
            const out = { items: new Int32Array(B * topN), scores: new Float32Array(B * topN) };
            (local as BlockSelector).select(data, B, excl, out.items, out.scores);
            await emit(blocks, bu.slice(), out, empty);
          }
        }
      } finally {
        scores?.dispose();
      }
      blocks++;
      // Awaiting the block callbacks only runs microtasks: scoring 200,000 users (20M events) held the loop ~110 s
      // and the activity could not heartbeat.
      await turn();
    }
    // The older of the two blocks still in flight first.
    await deliver(blocks % 2);
    await deliver((blocks + 1) % 2);
  } finally {
    source.dispose();
    if (heap && heapScratch) heap.free(heapScratch);
    await thread?.close();
  }
  const ms = performance.now() - t0;
  return {
    users: users.length,
    items: nItems,
    blocks,
    blockSize,
    ms,
    matmulMs,
    gflops: (2 * users.length * nItems * source.inputWidth) / (ms * 1e6),
    ...(source.paths ? { paths: { ...source.paths } } : {}),
  };
}

/**
 * Whether selection on a worker thread can overlap the matmul rather than compete with it: only when the backend's
 * matmul runs on one thread (wasm, cpu; libtensorflow's uses every core) and a core is idle now (load average
 * below the cores minus one). Measured on the 2-core project machine under a load of 6-8: with no idle core the
 * worker slowed the matmul's thread by ~65% and scoring ran at 0.47x matmul, against 0.69x on the calling thread.
 */
export function overlapPays(backend: string): boolean {
  if (backend !== 'wasm' && backend !== 'cpu') return false;
  return os.loadavg()[0] <= os.availableParallelism() - 1.5;
}

/** Rows without any input get no recommendations. */
function blankRows(sel: SelectedBlock, empty: Uint8Array, topN: number): void {
  for (let r = 0; r < empty.length; r++) {
    if (!empty[r]) continue;
    sel.items.fill(-1, r * topN, (r + 1) * topN);
    sel.scores.fill(-Infinity, r * topN, (r + 1) * topN);
  }
}

function resolveExclusion(
  exclude: ExcludeCSR | ExcludeFn | undefined,
  users: Int32Array,
): BlockExclusion | undefined {
  if (!exclude) return undefined;
  if (typeof exclude === 'function') {
    const r = exclude(users);
    if (r.userPtr.length !== users.length + 1)
      throw new Error('exclude callback must return ptr of length users+1');
    return { ptr: r.userPtr, items: r.itemIdx };
  }
  // Slice the global CSR down to this block.
  const ptr = new Int32Array(users.length + 1);
  let total = 0;
  for (let r = 0; r < users.length; r++) {
    total += exclude.userPtr[users[r] + 1] - exclude.userPtr[users[r]];
    ptr[r + 1] = total;
  }
  const items = new Int32Array(total);
  for (let r = 0; r < users.length; r++) {
    items.set(exclude.itemIdx.subarray(exclude.userPtr[users[r]], exclude.userPtr[users[r] + 1]), ptr[r]);
  }
  return { ptr, items };
}

function selectWithTf(
  scores: Tensor2D,
  excl: { ptr: Int32Array; items: Int32Array } | undefined,
  globalToLocal: Int32Array | undefined,
  nItems: number,
  topN: number,
  cand: Int32Array | undefined,
  outItems: Int32Array,
  outScores: Float32Array,
): void {
  const tf = getTf();
  const B = scores.shape[0];
  const k = Math.min(topN, nItems);
  const { values, indices } = tf.tidy(() => {
    let s: Tensor2D = scores;
    if (excl && excl.items.length > 0) {
      const coords: number[] = [];
      for (let r = 0; r < B; r++) {
        for (let q = excl.ptr[r]; q < excl.ptr[r + 1]; q++) {
          const l = globalToLocal ? globalToLocal[excl.items[q]] : excl.items[q];
          if (l >= 0 && l < nItems) coords.push(r, l);
        }
      }
      if (coords.length > 0) {
        const idx = tf.tensor2d(coords, [coords.length / 2, 2], 'int32');
        s = tf.tensorScatterUpdate(s, idx, tf.fill([coords.length / 2], -Infinity));
      }
    }
    // NaN scores would outrank everything in topk; send them to -inf like the JS path skips them.
    s = tf.where(tf.isNaN(s), tf.fill(s.shape, -Infinity), s);
    return tf.topk(s, k, true);
  });
  const v = values.dataSync() as Float32Array;
  const ix = indices.dataSync() as Int32Array;
  values.dispose();
  indices.dispose();
  for (let r = 0; r < B; r++) {
    for (let q = 0; q < topN; q++) {
      const o = r * topN + q;
      if (q < k && v[r * k + q] !== -Infinity) {
        outScores[o] = v[r * k + q];
        outItems[o] = cand ? cand[ix[r * k + q]] : ix[r * k + q];
      } else {
        outScores[o] = -Infinity;
        outItems[o] = -1;
      }
    }
  }
}

/**
 * Plain matmul GFLOP/s on the active backend for [m, k] x [k, n] (best of `reps`), the baseline for scoring.
 * No read-back is timed: wasm, cpu and tfjs-node run kernels synchronously, so the product exists when matMul returns.
 */
export function matmulGflops(m: number, k: number, n: number, reps = 3): number {
  const tf = getTf();
  const a = tf.randomNormal([m, k], 0, 1, 'float32', 1);
  const b = tf.randomNormal([k, n], 0, 1, 'float32', 2);
  let best = Infinity;
  try {
    for (let r = 0; r < reps; r++) {
      const t0 = performance.now();
      const c = tf.matMul(a, b);
      best = Math.min(best, performance.now() - t0);
      c.dispose();
    }
  } finally {
    a.dispose();
    b.dispose();
  }
  return (2 * m * k * n) / (best * 1e6);
}
