/** Scoring fixtures and a brute-force reference shared by the scoring tests (wasm and tfjs-node). */
import { buildUserItemsCSR } from '../../models/mf';
import { Rng } from '../../models/rng';
import { ExcludeCSR, scoreAll, ScoreBlock, ScoringFactors } from '../../models/score';

/** Integer-valued factors: float32 dot products are exact, so results can be compared exactly (ties included). */
export function intFactors(
  numUsers: number,
  numItems: number,
  dim: number,
  seed: number,
  bias: boolean,
): ScoringFactors {
  const rng = new Rng(seed);
  const r = (): number => rng.nextInt(7) - 3;
  return {
    numUsers,
    numItems,
    dim,
    userFactors: Float32Array.from({ length: numUsers * dim }, r),
    itemFactors: Float32Array.from({ length: numItems * dim }, r),
    itemBias: bias ? Float32Array.from({ length: numItems }, r) : undefined,
  };
}

export function randomExclusion(
  numUsers: number,
  numItems: number,
  perUser: number,
  seed: number,
): ExcludeCSR {
  const rng = new Rng(seed);
  const u: number[] = [];
  const i: number[] = [];
  for (let user = 0; user < numUsers; user++) {
    const n = rng.nextInt(perUser + 1);
    for (let k = 0; k < n; k++) {
      u.push(user);
      i.push(rng.nextInt(numItems));
    }
  }
  return buildUserItemsCSR(Int32Array.from(u), Int32Array.from(i), numUsers);
}

/** Brute force: float64 scores, NaN and exclusions removed, sorted by score desc then item asc, padded with -1/-Inf. */
export function reference(
  f: ScoringFactors,
  topN: number,
  exclude?: ExcludeCSR,
  candidates?: Int32Array,
): { items: number[]; scores: number[] }[] {
  const out = [];
  for (let u = 0; u < f.numUsers; u++) {
    const ex = new Set<number>();
    if (exclude) for (let q = exclude.userPtr[u]; q < exclude.userPtr[u + 1]; q++) ex.add(exclude.itemIdx[q]);
    const rows: [number, number][] = [];
    for (const i of candidates ?? Array.from({ length: f.numItems }, (_, k) => k)) {
      if (ex.has(i)) continue;
      let s = f.itemBias ? f.itemBias[i] : 0;
      for (let d = 0; d < f.dim; d++) s += f.userFactors[u * f.dim + d] * f.itemFactors[i * f.dim + d];
      if (!Number.isNaN(s)) rows.push([s, i]);
    }
    rows.sort((a, b) => b[0] - a[0] || a[1] - b[1]);
    const top = rows.slice(0, topN);
    while (top.length < topN) top.push([-Infinity, -1]);
    out.push({ items: top.map((t) => t[1]), scores: top.map((t) => t[0]) });
  }
  return out;
}

export async function collect(f: ScoringFactors, opts: Omit<Parameters<typeof scoreAll>[1], 'onBlock'>) {
  const got: { items: number[]; scores: number[] }[] = new Array(f.numUsers);
  const blocks: ScoreBlock[] = [];
  const stats = await scoreAll(f, {
    ...opts,
    onBlock: (b) => {
      blocks.push(b);
      for (let r = 0; r < b.users.length; r++) {
        got[b.users[r]] = {
          items: Array.from(b.items.subarray(r * b.topN, (r + 1) * b.topN)),
          scores: Array.from(b.scores.subarray(r * b.topN, (r + 1) * b.topN)),
        };
      }
    },
  });
  return { got, blocks, stats };
}
