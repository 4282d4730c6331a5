/**
 * Hogwild BPR SGD (Rendle et al. 2009; Recht et al. 2011) over typed arrays, with hand-derived gradients: one
 * sample costs one dot product and three axpys of `dim` floats, no tensors and no autograd. Worker threads run this
 * on the same SharedArrayBuffer factor tables at once; their rare collisions on a row are benign lost updates,
 * which is what makes lock-free SGD scale (and what makes multi-threaded runs not bit-reproducible).
 *
 * Per sample: a positive (u, i) uniform over the interactions, a negative j either uniform over items or
 * proportional to popularity (the item of another random interaction, as `implicit` does: it pushes popular items
 * down as often as they come up as positives, so the model cannot win by ranking popularity); with `verify`, a j
 * the user has interacted with skips the sample (implicit's verify_negative_samples). With x = p_u.(q_i - q_j) +
 * b_i - b_j and g = weight * sigmoid(-x):
 *   p_u += lr (g (q_i - q_j) - reg p_u),  q_i += lr (g p_u - reg q_i),  q_j += lr (-g p_u - reg q_j),
 *   b_i += lr (g - reg b_i),  b_j += lr (-g - reg b_j).
 */

export interface BprArrays {
  /** User CSR of the positives (items ascending per user) and, per interaction position, its user. */
  ptr: Int32Array;
  idx: Int32Array;
  rowOf: Int32Array;
  /** Per-interaction weight multiplying the gradient (absent: 1). */
  weight?: Float32Array;
  userFactors: Float32Array;
  itemFactors: Float32Array;
  /** Item bias (absent: no bias). */
  itemBias?: Float32Array;
  numItems: number;
  dim: number;
  lr: number;
  reg: number;
  /** 0: uniform negatives, 1: popularity-proportional negatives. */
  popularityNegatives: number;
  verify: boolean;
  /** Seed of this chunk's generator (the caller mixes in epoch and chunk). */
  seed: number;
}

export interface BprChunkResult {
  samples: number;
  skipped: number;
  /** Samples whose positive already outscored the negative before the update. */
  correct: number;
}

function contains(idx: Int32Array, lo: number, hi: number, item: number): boolean {
  hi--;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const v = idx[mid];
    if (v === item) return true;
    if (v < item) lo = mid + 1;
    else hi = mid - 1;
  }
  return false;
}

/** Runs `end - start` SGD samples (the range only sizes the chunk: samples are drawn at random). */
export function bprChunk(a: BprArrays, start: number, end: number): BprChunkResult {
  const { ptr, idx, rowOf, weight, userFactors: P, itemFactors: Q, itemBias, numItems, dim, lr, reg } = a;
  const nnz = idx.length;
  const d4 = dim & ~3;
  const popular = a.popularityNegatives === 1;
  // xorshift128 in four int32 locals: a fraction of the cost of a method call per draw.
  let s0 = a.seed | 0 || 1;
  let s1 = Math.imul(s0 ^ 0x9e3779b9, 0x85ebca6b) | 0 || 2;
  let s2 = Math.imul(s1 ^ 0x7f4a7c15, 0xc2b2ae35) | 0 || 3;
  let s3 = Math.imul(s2 ^ 0x2545f491, 0x27d4eb2d) | 0 || 4;
  const next = (): number => {
    const t = s0 ^ (s0 << 11);
    s0 = s1;
    s1 = s2;
    s2 = s3;
    s3 = s3 ^ (s3 >>> 19) ^ t ^ (t >>> 8);
    return s3 >>> 0;
  };
  let skipped = 0;
  let correct = 0;
  const decay = 1 - lr * reg;
  for (let n = start; n < end; n++) {
    const k = next() % nnz;
    const u = rowOf[k];
    const i = idx[k];
    const j = popular ? idx[next() % nnz] : next() % numItems;
    if (j === i || (a.verify && contains(idx, ptr[u], ptr[u + 1], j))) {
      skipped++;
      continue;
    }
    const po = u * dim;
    const io = i * dim;
    const jo = j * dim;
    let x0 = 0;
    let x1 = 0;
    let x2 = 0;
    let x3 = 0;
    let d = 0;
    for (; d < d4; d += 4) {
      x0 += P[po + d] * (Q[io + d] - Q[jo + d]);
      x1 += P[po + d + 1] * (Q[io + d + 1] - Q[jo + d + 1]);
      x2 += P[po + d + 2] * (Q[io + d + 2] - Q[jo + d + 2]);
      x3 += P[po + d + 3] * (Q[io + d + 3] - Q[jo + d + 3]);
    }
    for (; d < dim; d++) x0 += P[po + d] * (Q[io + d] - Q[jo + d]);
    let x = x0 + x1 + x2 + x3;
    if (itemBias) x += itemBias[i] - itemBias[j];
    if (x > 0) correct++;
    const g = (weight ? weight[k] : 1) / (1 + Math.exp(x));
    const step = lr * g;
    for (d = 0; d < dim; d++) {
      const pu = P[po + d];
      const qi = Q[io + d];
      const qj = Q[jo + d];
      P[po + d] = decay * pu + step * (qi - qj);
      Q[io + d] = decay * qi + step * pu;
      Q[jo + d] = decay * qj - step * pu;
    }
    if (itemBias) {
      itemBias[i] = decay * itemBias[i] + step;
      itemBias[j] = decay * itemBias[j] - step;
    }
  }
  return { samples: end - start, skipped, correct };
}
