/**
 * A linear blend of EASE and a factor model, scored as one linear scorer (scoreLinear):
 *   score(u, i) = x_u . B[:, i] + beta (p_u . q_i + b_i)
 *               = [x_u | beta p_u | beta] . [B ; Q^T ; b]   over EASE's kept items.
 * EASE reads item-to-item co-occurrence, a factor model (iALS, BPR) smoother latent taste; their lists overlap
 * little, so a blend tuned on validation (beta, and EASE's recency tau through the rows) can beat either. Items
 * outside EASE's kept set get no score, as with EASE alone.
 */
import type { EASEModel } from './ease';
import type { MFModel } from './mf';
import type { LinearScorer } from './score';
import type { CSR } from './sparse';

export function easeBlendScorer(ease: EASEModel, rows: CSR, mf: MFModel, beta: number): LinearScorer {
  const k = ease.items.length;
  const d = mf.dim;
  if (rows.numCols !== k) throw new Error(`history rows have ${rows.numCols} columns, the model ${k}`);
  if (mf.numItems !== ease.numItems || mf.numUsers !== rows.numRows)
    throw new Error(
      `factor model is ${mf.numUsers}x${mf.numItems}, EASE rows ${rows.numRows}x${ease.numItems}`,
    );
  const bias = mf.itemBias ? 1 : 0;
  const dim = k + d + bias;
  const m = new Float32Array(dim * k);
  m.set(ease.weights);
  for (let c = 0; c < k; c++) {
    const q = ease.items[c] * d;
    for (let e = 0; e < d; e++) m[(k + e) * k + c] = mf.itemFactors[q + e];
    if (mf.itemBias) m[(k + d) * k + c] = mf.itemBias[ease.items[c]];
  }
  const extra = d + bias;
  return {
    numUsers: rows.numRows,
    numItems: ease.numItems,
    dim,
    itemMatrix: m,
    columns: ease.items,
    // [beta p_u | beta] is set for every user with a history: one backend matmul, not JS multiply-adds.
    denseTail: extra,
    userRows: (users) => {
      const ptr = new Int32Array(users.length + 1);
      for (let r = 0; r < users.length; r++) {
        const u = users[r];
        const n = rows.ptr[u + 1] - rows.ptr[u];
        // A user with no EASE history stays empty (no list; the popular fallback), as with EASE alone.
        ptr[r + 1] = ptr[r] + n + (n > 0 ? extra : 0);
      }
      const cols = new Int32Array(ptr[users.length]);
      const vals = new Float32Array(ptr[users.length]);
      for (let r = 0; r < users.length; r++) {
        const u = users[r];
        const a = rows.ptr[u];
        const n = rows.ptr[u + 1] - a;
        if (n === 0) continue;
        let w = ptr[r];
        cols.set(rows.idx.subarray(a, a + n), w);
        vals.set(rows.val.subarray(a, a + n), w);
        w += n;
        for (let e = 0; e < d; e++, w++) {
          cols[w] = k + e;
          vals[w] = beta * mf.userFactors[u * d + e];
        }
        if (bias) {
          cols[w] = k + d;
          vals[w] = beta;
        }
      }
      return { ptr, cols, vals };
    },
  };
}
