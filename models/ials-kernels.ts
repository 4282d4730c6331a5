/**
 * The sparse half of iALS's conjugate-gradient solves (Hu, Koren & Volinsky 2008; CG as in Takacs et al. 2011 and
 * the `implicit` library), over a range of rows, in plain typed-array loops so worker threads can run them on
 * SharedArrayBuffers. The dense half, (Y^T Y + lambda I) v for every row at once, is one backend matmul done by
 * the caller (ials.ts) before each call and left in `ap`.
 *
 * For row u with observed columns i (confidence c_ui = 1 + alpha w_ui, preference 1), the normal equations are
 *   A x = b,  A = G + sum_i (c_ui - 1) y_i y_i^T,  G = Y^T Y + lambda I,  b = sum_i c_ui y_i.
 * cgInit turns ap = G x into the residual r = b - A x and starts p = r; cgStep turns ap = G p into A p and takes one
 * CG step. A row whose squared residual fell below 1e-20 stops moving (implicit's early exit).
 */

export interface CGArrays {
  /** CSR of the side being solved: row u observes columns idx[ptr[u] .. ptr[u + 1]) with confidences conf. */
  ptr: Int32Array;
  idx: Int32Array;
  conf: Float32Array;
  /** The other side's factors (columns x dim). */
  y: Float32Array;
  /** This side's factors (rows x dim), updated in place. */
  x: Float32Array;
  r: Float32Array;
  p: Float32Array;
  /** In: the dense product G x (cgInit) or G p (cgStep); used as scratch. */
  ap: Float32Array;
  /** Squared residual norm per row. */
  rs: Float64Array;
  dim: number;
}

const CONVERGED = 1e-20;

/**
 * ap[u] += sum_i (c_ui - 1) (y_i . v) y_i for v = vec[u]. The dot and the axpy are 4-way unrolled (independent
 * accumulators let V8 overlap the multiply-adds: measured ~1.6x over the plain loops).
 */
function addSparse(a: CGArrays, u: number, vec: Float32Array): void {
  const { ptr, idx, conf, y, ap, dim } = a;
  const o = u * dim;
  const d4 = dim & ~3;
  for (let q = ptr[u]; q < ptr[u + 1]; q++) {
    const yo = idx[q] * dim;
    let d0 = 0;
    let d1 = 0;
    let d2 = 0;
    let d3 = 0;
    let d = 0;
    for (; d < d4; d += 4) {
      d0 += y[yo + d] * vec[o + d];
      d1 += y[yo + d + 1] * vec[o + d + 1];
      d2 += y[yo + d + 2] * vec[o + d + 2];
      d3 += y[yo + d + 3] * vec[o + d + 3];
    }
    for (; d < dim; d++) d0 += y[yo + d] * vec[o + d];
    const s = (conf[q] - 1) * (d0 + d1 + d2 + d3);
    for (d = 0; d < d4; d += 4) {
      ap[o + d] += s * y[yo + d];
      ap[o + d + 1] += s * y[yo + d + 1];
      ap[o + d + 2] += s * y[yo + d + 2];
      ap[o + d + 3] += s * y[yo + d + 3];
    }
    for (; d < dim; d++) ap[o + d] += s * y[yo + d];
  }
}

/** r = b - A x, p = r, rs = r . r for rows [start, end). */
export function cgInit(a: CGArrays, start: number, end: number): void {
  const { ptr, idx, conf, y, x, r, p, ap, rs, dim } = a;
  for (let u = start; u < end; u++) {
    const o = u * dim;
    addSparse(a, u, x); // ap = A x
    for (let d = 0; d < dim; d++) r[o + d] = -ap[o + d];
    for (let q = ptr[u]; q < ptr[u + 1]; q++) {
      const yo = idx[q] * dim;
      const c = conf[q];
      for (let d = 0; d < dim; d++) r[o + d] += c * y[yo + d];
    }
    let s = 0;
    for (let d = 0; d < dim; d++) {
      p[o + d] = r[o + d];
      s += r[o + d] * r[o + d];
    }
    rs[u] = s;
  }
}

/** One CG step for rows [start, end) (ap = G p on entry). */
export function cgStep(a: CGArrays, start: number, end: number): void {
  const { x, r, p, ap, rs, dim } = a;
  for (let u = start; u < end; u++) {
    const rsold = rs[u];
    if (rsold < CONVERGED) continue;
    const o = u * dim;
    addSparse(a, u, p); // ap = A p
    let pAp = 0;
    for (let d = 0; d < dim; d++) pAp += p[o + d] * ap[o + d];
    if (!(pAp > 0)) {
      rs[u] = 0; // p is (numerically) zero: nothing left to solve
      continue;
    }
    const alpha = rsold / pAp;
    let rsnew = 0;
    for (let d = 0; d < dim; d++) {
      x[o + d] += alpha * p[o + d];
      const rd = r[o + d] - alpha * ap[o + d];
      r[o + d] = rd;
      rsnew += rd * rd;
    }
    rs[u] = rsnew;
    if (rsnew < CONVERGED) continue;
    const beta = rsnew / rsold;
    for (let d = 0; d < dim; d++) p[o + d] = r[o + d] + beta * p[o + d];
  }
}
