/**
 * The scan of top-N selection (top-n.ts) as a WebAssembly SIMD kernel: the indices of a score row's entries that are
 * >= a threshold. Sixteen scores per step are compared with four f32x4.ge whose i32x4.bitmask results make one
 * 16-bit mask, so a row whose scores mostly fall below the threshold costs one comparison per four scores, and a
 * group holding survivors costs one store per survivor (count-trailing-zeros over the mask). `s >= thr` is false for NaN, as in the JS scan, so NaN scores never
 * survive. Measured on the project machine: ~0.2-0.3 ns per score against 1-2 ns for the JS loop.
 *
 * The kernel reads from one shared WebAssembly.Memory: a row already there (a selection worker's score slots,
 * top-n-thread.ts) is scanned in place, any other row is first copied into the filter's row scratch.
 *
 *   filter(src, n, thr, out) -> count: writes the indices j < n with f32[src + 4j] >= thr, ascending, as i32 at out.
 */
import { fn } from './simd-codegen';
import { buildModule } from './wasm-asm';

// prettier-ignore
const filterFn = fn(
  'filter',
  [['src', 'i32'], ['n', 'i32'], ['thr', 'f32'], ['out', 'i32']],
  ['i32'],
  [['t', 'v128'], ['i', 'i32'], ['cnt', 'i32'], ['end', 'i32'], ['a', 'i32'], ['j', 'i32']],
  (L) => {
    const keep = (index: (string | number)[]) => [
      'local.get', L.out, 'local.get', L.cnt, 'i32.const', 2, 'i32.shl', 'i32.add', ...index, 'i32.store', 0,
      'local.get', L.cnt, 'i32.const', 1, 'i32.add', 'local.set', L.cnt,
    ];
    return [
      'local.get', L.thr, 'f32x4.splat', 'local.set', L.t,
      'local.get', L.n, 'i32.const', -16, 'i32.and', 'local.set', L.end,
      'local.get', L.src, 'local.set', L.a,
      'block', 'loop',
      'local.get', L.i, 'local.get', L.end, 'i32.ge_s', 'br_if', 1,
      // A 16-bit mask of the group's scores >= thr (one i32x4.bitmask per four), then one store per set bit.
      'local.get', L.a, 'v128.load', 0, 'local.get', L.t, 'f32x4.ge', 'i32x4.bitmask',
      'local.get', L.a, 'v128.load', 16, 'local.get', L.t, 'f32x4.ge', 'i32x4.bitmask', 'i32.const', 4, 'i32.shl', 'i32.or',
      'local.get', L.a, 'v128.load', 32, 'local.get', L.t, 'f32x4.ge', 'i32x4.bitmask', 'i32.const', 8, 'i32.shl', 'i32.or',
      'local.get', L.a, 'v128.load', 48, 'local.get', L.t, 'f32x4.ge', 'i32x4.bitmask', 'i32.const', 12, 'i32.shl', 'i32.or',
      'local.tee', L.j,
      'if',
      'loop',
      ...keep(['local.get', L.i, 'local.get', L.j, 'i32.ctz', 'i32.add']),
      'local.get', L.j, 'local.get', L.j, 'i32.const', 1, 'i32.sub', 'i32.and', 'local.tee', L.j, 'br_if', 0,
      'end',
      'end',
      'local.get', L.i, 'i32.const', 16, 'i32.add', 'local.set', L.i,
      'local.get', L.a, 'i32.const', 64, 'i32.add', 'local.set', L.a,
      'br', 0,
      'end', 'end',
      // The last n % 16 scores, one at a time.
      'block', 'loop',
      'local.get', L.i, 'local.get', L.n, 'i32.ge_s', 'br_if', 1,
      'local.get', L.a, 'f32.load', 0, 'local.get', L.thr, 'f32.ge',
      'if', ...keep(['local.get', L.i]), 'end',
      'local.get', L.i, 'i32.const', 1, 'i32.add', 'local.set', L.i,
      'local.get', L.a, 'i32.const', 4, 'i32.add', 'local.set', L.a,
      'br', 0,
      'end', 'end',
      'local.get', L.cnt,
    ];
  },
);

let compiled: WebAssembly.Module | null | undefined;
let compiledUnshared: WebAssembly.Module | null | undefined;

/**
 * The filter module over an unshared, growable memory (tfjs-wasm's heap: its score tensors are scanned where the
 * matmul wrote them), or null without SIMD.
 */
export function heapFilterModule(): WebAssembly.Module | null {
  if (compiledUnshared === undefined) {
    try {
      compiledUnshared = new WebAssembly.Module(buildModule([filterFn], 1, 1, false));
    } catch {
      compiledUnshared = null;
    }
  }
  return compiledUnshared;
}

/** The filter module, or null where this runtime lacks WebAssembly SIMD or shared memories. */
export function filterModule(): WebAssembly.Module | null {
  if (compiled === undefined) {
    try {
      compiled = new WebAssembly.Module(buildModule([filterFn], 1, 65536));
      new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });
    } catch {
      compiled = null;
    }
  }
  return compiled;
}

const PAGE = 65536;

/** Bytes a ScoreFilter's scratch needs for rows of `nItems` scores (row copy + candidate indices). */
export function filterScratchBytes(nItems: number): number {
  return 2 * Math.ceil((nItems * 4) / 16) * 16;
}

/** Pages of a shared memory holding `bytes` (and the 16 unused bytes at offset 0). */
export function pagesFor(bytes: number): number {
  return Math.max(1, Math.ceil((bytes + 16) / PAGE));
}

/**
 * The filter over a shared memory: its scratch (row copy, then candidate indices) at byte `scratchOff`, sized by
 * filterScratchBytes(nItems). Without a memory, one of just the scratch is made.
 */
export class ScoreFilter {
  readonly memory: WebAssembly.Memory;
  /** Candidate indices of the last filter() call. */
  cand: Int32Array;
  private readonly rowOff: number;
  private readonly candOff: number;
  private row: Float32Array;
  private readonly nItems: number;
  private readonly run: (src: number, n: number, thr: number, out: number) => number;

  constructor(module: WebAssembly.Module, nItems: number, memory?: WebAssembly.Memory, scratchOff = 16) {
    this.memory =
      memory ??
      new WebAssembly.Memory({
        initial: pagesFor(filterScratchBytes(nItems)),
        maximum: pagesFor(filterScratchBytes(nItems)),
        shared: true,
      });
    const half = filterScratchBytes(nItems) / 2;
    if (scratchOff % 16 !== 0 || scratchOff + 2 * half > this.memory.buffer.byteLength)
      throw new Error('ScoreFilter: scratch outside the memory');
    this.rowOff = scratchOff;
    this.candOff = scratchOff + half;
    this.nItems = nItems;
    this.row = new Float32Array(this.memory.buffer, this.rowOff, nItems);
    this.cand = new Int32Array(this.memory.buffer, this.candOff, nItems);
    const inst = new WebAssembly.Instance(module, { env: { memory: this.memory } });
    this.run = inst.exports.filter as (src: number, n: number, thr: number, out: number) => number;
  }

  /** Indices (into this.cand, ascending, relative to `off`) of row[off .. off + n) with score >= thr; the count. */
  filter(row: Float32Array, off: number, n: number, thr: number): number {
    if (this.cand.buffer !== this.memory.buffer) {
      // An unshared memory grew (its old buffer is detached): views again.
      this.row = new Float32Array(this.memory.buffer, this.rowOff, this.nItems);
      this.cand = new Int32Array(this.memory.buffer, this.candOff, this.nItems);
    }
    let src: number;
    if (row.buffer === this.memory.buffer) {
      src = row.byteOffset + off * 4;
    } else {
      this.row.set(row.subarray(off, off + n));
      src = this.rowOff;
    }
    return this.run(src, n, Math.fround(thr), this.candOff);
  }
}
