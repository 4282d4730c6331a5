/**
 * Dense symmetric positive-definite inverse for EASE, with the O(n^3) work in tfjs matmuls (tfjs has no linalg
 * inverse, and a scalar JS loop would take minutes at ~10k items).
 *
 * Blocked recursive inversion by Schur complements: for M = [[A, B], [Bt, D]] (A: m x m),
 *   Ai = inv(A);  W = Ai B;  S = D - Bt W;  Si = inv(S);  V = W Si;
 *   inv(M) = [[Ai + V Wt, -V], [-Vt, Si]].
 * For SPD M this is block Cholesky elimination without pivoting, which is stable; every level costs four matmuls of
 * (n/2)^3 (n^3 flops), the recursion 4/3 n^3 in all. Leaves (<= leafSize) are inverted in float64 JS through
 * Cholesky. Blocks live in JS Float32Arrays and are copied into tensors per matmul: the copies are O(n^2) per level
 * against O(n^3) of arithmetic, and the backend heap only ever holds one matmul's operands (wasm's never shrinks).
 * S and the top-left block are re-symmetrised after each level, so rounding does not drift the result away from
 * symmetry.
 */
import { getTf } from './backend';
import { nextTurn } from './turns';

export class NotPositiveDefiniteError extends Error {
  constructor(pivot: number, value: number) {
    super(`matrix is not positive definite (pivot ${pivot} = ${value})`);
    this.name = 'NotPositiveDefiniteError';
  }
}

/** In-place lower Cholesky factor of the n x n float64 matrix `a` (row-major; the upper triangle is zeroed). */
export function choleskyF64(a: Float64Array, n: number): Float64Array {
  for (let j = 0; j < n; j++) {
    const jr = j * n;
    let s = a[jr + j];
    for (let k = 0; k < j; k++) s -= a[jr + k] * a[jr + k];
    if (!(s > 0)) throw new NotPositiveDefiniteError(j, s);
    const d = Math.sqrt(s);
    a[jr + j] = d;
    for (let i = j + 1; i < n; i++) {
      const ir = i * n;
      let t = a[ir + j];
      for (let k = 0; k < j; k++) t -= a[ir + k] * a[jr + k];
      a[ir + j] = t / d;
    }
    for (let k = j + 1; k < n; k++) a[jr + k] = 0;
  }
  return a;
}

/** Inverse of an SPD matrix in float64 (Cholesky, triangular inverse, Lit Li): the reference and the leaf solver. */
export function spdInverseF64(a: ArrayLike<number>, n: number): Float64Array {
  const L = choleskyF64(Float64Array.from(a as ArrayLike<number>), n);
  // Li = inv(L), lower triangular, column by column.
  const Li = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    Li[j * n + j] = 1 / L[j * n + j];
    for (let i = j + 1; i < n; i++) {
      let s = 0;
      for (let k = j; k < i; k++) s += L[i * n + k] * Li[k * n + j];
      Li[i * n + j] = -s / L[i * n + i];
    }
  }
  // inv(A) = Li^T Li; P[i][j] = sum_{k >= max(i, j)} Li[k][i] Li[k][j].
  const P = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = 0;
      for (let k = i; k < n; k++) s += Li[k * n + i] * Li[k * n + j];
      P[i * n + j] = s;
      P[j * n + i] = s;
    }
  }
  return P;
}

export interface SpdInverseOptions {
  /** Blocks up to this size are inverted in float64 JS (default 128). */
  leafSize?: number;
  /** Called between matmuls (heartbeats); an abort signal stops the inversion there. */
  onProgress?: (doneFlops: number, totalFlops: number) => void | Promise<void>;
  signal?: AbortSignal;
}

/** The block of rows [r0, r1) x columns [c0, c1) of the n-column row-major matrix `a`, copied out. */
function block(a: Float32Array, n: number, r0: number, r1: number, c0: number, c1: number): Float32Array {
  const w = c1 - c0;
  const out = new Float32Array((r1 - r0) * w);
  for (let r = r0; r < r1; r++) out.set(a.subarray(r * n + c0, r * n + c1), (r - r0) * w);
  return out;
}

/** Transpose of a rows x cols matrix, in cache-sized tiles. */
function transpose(a: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  const T = 32;
  for (let r0 = 0; r0 < rows; r0 += T) {
    const r1 = Math.min(rows, r0 + T);
    for (let c0 = 0; c0 < cols; c0 += T) {
      const c1 = Math.min(cols, c0 + T);
      for (let r = r0; r < r1; r++) for (let c = c0; c < c1; c++) out[c * rows + r] = a[r * cols + c];
    }
  }
  return out;
}

/** a = (a + a^T) / 2 in place, in 64 x 64 tiles (a plain column walk misses the cache on every access). */
function symmetrize(a: Float32Array, n: number): void {
  const T = 64;
  for (let i0 = 0; i0 < n; i0 += T) {
    for (let j0 = 0; j0 <= i0; j0 += T) {
      const i1 = Math.min(n, i0 + T);
      const j1 = Math.min(n, j0 + T);
      for (let i = i0; i < i1; i++) {
        for (let j = j0; j < Math.min(j1, i); j++) {
          const v = 0.5 * (a[i * n + j] + a[j * n + i]);
          a[i * n + j] = v;
          a[j * n + i] = v;
        }
      }
    }
  }
}

/** Flops of the recursive inversion of an n x n block (for progress reporting). */
function inverseFlops(n: number, leaf: number): number {
  if (n <= leaf) return 0;
  const m = splitPoint(n);
  const r = n - m;
  return 2 * (m * m * r + r * m * r + m * r * r + m * r * m) + inverseFlops(m, leaf) + inverseFlops(r, leaf);
}

/** Splits near the middle on a multiple of 64 (matmul kernels like aligned shapes). */
function splitPoint(n: number): number {
  const m = Math.round(n / 2 / 64) * 64;
  return m > 0 && m < n ? m : Math.floor(n / 2);
}

/**
 * Inverse of the n x n SPD matrix `a` (row-major float32; only read). Throws NotPositiveDefiniteError when a
 * leaf's Cholesky fails (a singular or indefinite input; EASE adds lambda * I, so its Gram matrix never is).
 */
export async function spdInverse(
  a: Float32Array,
  n: number,
  opts: SpdInverseOptions = {},
): Promise<Float32Array> {
  if (a.length !== n * n) throw new Error(`spdInverse: expected ${n * n} entries, got ${a.length}`);
  const leaf = Math.max(1, opts.leafSize ?? 128);
  const total = inverseFlops(n, leaf);
  let done = 0;
  const tf = getTf();
  const mm = async (x: Float32Array, rows: number, inner: number, y: Float32Array, cols: number) => {
    if (opts.signal?.aborted) throw opts.signal.reason ?? new Error('spdInverse aborted');
    // Not returned from tidy: tidy walks a returned container, and a typed array's every element with it.
    const t = tf.tidy(() => tf.matMul(tf.tensor2d(x, [rows, inner]), tf.tensor2d(y, [inner, cols])));
    const out = t.dataSync() as Float32Array;
    t.dispose();
    done += 2 * rows * inner * cols;
    if (opts.onProgress) await opts.onProgress(done, total);
    // Let timers (activity heartbeats) run between the large matmuls.
    await nextTurn();
    return out;
  };

  const inv = async (m: Float32Array, size: number): Promise<Float32Array> => {
    if (size <= leaf) return Float32Array.from(spdInverseF64(m, size));
    const h = splitPoint(size);
    const r = size - h;
    // Each block is dropped as soon as it is used, so the peak stays near 2 n^2 floats besides the input.
    const Ai = await inv(block(m, size, 0, h, 0, h), h);
    let B: Float32Array | undefined = block(m, size, 0, h, h, size);
    let W: Float32Array | undefined = await mm(Ai, h, h, B, r); // h x r
    const Bt = transpose(B, h, r);
    B = undefined;
    const S = await mm(Bt, r, h, W, r); // Bt W, r x r
    for (let i = 0; i < r; i++) {
      const row = (h + i) * size + h;
      for (let j = 0; j < r; j++) S[i * r + j] = m[row + j] - S[i * r + j];
    }
    symmetrize(S, r);
    const Si = await inv(S, r);
    const V = await mm(W, h, r, Si, r); // h x r
    const Wt = transpose(W, h, r);
    W = undefined;
    const TL = await mm(V, h, r, Wt, h); // V Wt, h x h
    for (let k = 0; k < TL.length; k++) TL[k] += Ai[k];
    symmetrize(TL, h);
    const out = new Float32Array(size * size);
    for (let i = 0; i < h; i++) {
      out.set(TL.subarray(i * h, i * h + h), i * size);
      for (let j = 0; j < r; j++) {
        const v = -V[i * r + j];
        out[i * size + h + j] = v;
        out[(h + j) * size + i] = v;
      }
    }
    for (let i = 0; i < r; i++) out.set(Si.subarray(i * r, i * r + r), (h + i) * size + h);
    return out;
  };
  return inv(a, n);
}
