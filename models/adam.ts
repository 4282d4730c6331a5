/**
 * Adam on host arrays (see params.ts for why weights live on the host).
 *
 * Update (same as tf.train.adam): m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
 *   p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps), with t the global step.
 * Sparse parameters use *lazy* Adam (TF's LazyAdam / PyTorch SparseAdam): only rows that received a gradient in this
 * step update their moments and weights. Dense Adam on an embedding table would also decay the moments and keep moving
 * every untouched row on every step, costing O(table) per step. `lazy: false` gives dense semantics when wanted.
 * The state (m, v, step) is plain Float32Arrays so checkpoints restore it bit-exactly.
 */
import { Grad, ParamStore, rowSizeOf, sizeOf, Weights } from './params';

export interface AdamConfig {
  lr: number;
  beta1?: number;
  beta2?: number;
  epsilon?: number;
  /** Lazy (row-sparse) updates for sparse parameters; default true. */
  lazy?: boolean;
}

export interface AdamState {
  step: number;
  m: Weights;
  v: Weights;
}

export class Adam {
  readonly lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly epsilon: number;
  readonly lazy: boolean;
  step = 0;
  readonly m: Weights = {};
  readonly v: Weights = {};
  private readonly scratch = new Map<string, Float32Array>();

  constructor(
    cfg: AdamConfig,
    private readonly params: ParamStore,
  ) {
    this.lr = cfg.lr;
    this.beta1 = cfg.beta1 ?? 0.9;
    this.beta2 = cfg.beta2 ?? 0.999;
    this.epsilon = cfg.epsilon ?? 1e-8;
    this.lazy = cfg.lazy ?? true;
    for (const d of params.defs) {
      this.m[d.name] = { shape: d.shape.slice(), data: new Float32Array(sizeOf(d.shape)) };
      this.v[d.name] = { shape: d.shape.slice(), data: new Float32Array(sizeOf(d.shape)) };
    }
  }

  /** Applies one step; parameters without a gradient entry are left untouched (and their moments too). */
  apply(grads: Map<string, Grad>): void {
    this.step += 1;
    const t = this.step;
    const b1 = this.beta1;
    const b2 = this.beta2;
    const c1 = 1 / (1 - Math.pow(b1, t));
    const c2 = 1 / (1 - Math.pow(b2, t));
    const lr = this.lr;
    const eps = this.epsilon;
    for (const def of this.params.defs) {
      const g = grads.get(def.name);
      if (!g) continue;
      const p = this.params.get(def.name).data;
      const m = this.m[def.name].data;
      const v = this.v[def.name].data;
      if (g.kind === 'dense') {
        adamRange(p, m, v, g.values, 0, 0, p.length, b1, b2, c1, c2, lr, eps);
        continue;
      }
      const rowSize = rowSizeOf(def.shape);
      if (this.lazy) {
        adamRows(p, m, v, g.values, g.rows, rowSize, b1, b2, c1, c2, lr, eps);
      } else {
        let full = this.scratch.get(def.name);
        if (!full) {
          full = new Float32Array(p.length);
          this.scratch.set(def.name, full);
        }
        full.fill(0);
        for (let k = 0; k < g.rows.length; k++) {
          full.set(g.values.subarray(k * rowSize, (k + 1) * rowSize), g.rows[k] * rowSize);
        }
        adamRange(p, m, v, full, 0, 0, p.length, b1, b2, c1, c2, lr, eps);
      }
    }
  }

  getState(): AdamState {
    const copy = (w: Weights): Weights =>
      Object.fromEntries(
        Object.entries(w).map(([k, a]) => [k, { shape: a.shape.slice(), data: a.data.slice() }]),
      );
    return { step: this.step, m: copy(this.m), v: copy(this.v) };
  }

  setState(s: AdamState): void {
    for (const def of this.params.defs) {
      const m = s.m[def.name];
      const v = s.v[def.name];
      if (
        !m ||
        !v ||
        m.data.length !== this.m[def.name].data.length ||
        v.data.length !== this.v[def.name].data.length
      ) {
        throw new Error(`Adam.setState: moments for '${def.name}' missing or wrong size`);
      }
      this.m[def.name].data.set(m.data);
      this.v[def.name].data.set(v.data);
    }
    this.step = s.step;
  }
}

/** The inner loop; kept monomorphic (always Float32Array) so V8 compiles it to tight code. */
function adamRange(
  p: Float32Array,
  m: Float32Array,
  v: Float32Array,
  g: Float32Array,
  pOff: number,
  gOff: number,
  n: number,
  b1: number,
  b2: number,
  c1: number,
  c2: number,
  lr: number,
  eps: number,
): void {
  const a1 = 1 - b1;
  const a2 = 1 - b2;
  for (let k = 0; k < n; k++) {
    const gi = g[gOff + k];
    const i = pOff + k;
    const mi = b1 * m[i] + a1 * gi;
    const vi = b2 * v[i] + a2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] -= (lr * (mi * c1)) / (Math.sqrt(vi * c2) + eps);
  }
}

/** Lazy Adam over whole rows in one loop (a call per 64-float row cost ~40% extra in measurements). */
function adamRows(
  p: Float32Array,
  m: Float32Array,
  v: Float32Array,
  g: Float32Array,
  rows: Int32Array,
  rowSize: number,
  b1: number,
  b2: number,
  c1: number,
  c2: number,
  lr: number,
  eps: number,
): void {
  const a1 = 1 - b1;
  const a2 = 1 - b2;
  const lrc1 = lr * c1;
  for (let k = 0; k < rows.length; k++) {
    const base = rows[k] * rowSize;
    const gBase = k * rowSize;
    for (let d = 0; d < rowSize; d++) {
      const gi = g[gBase + d];
      const i = base + d;
      const mi = b1 * m[i] + a1 * gi;
      const vi = b2 * v[i] + a2 * gi * gi;
      m[i] = mi;
      v[i] = vi;
      p[i] -= (lrc1 * mi) / (Math.sqrt(vi * c2) + eps);
    }
  }
}
