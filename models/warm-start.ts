/**
 * Warm start: grow a champion's embedding tables to a newer, larger id space and train from there.
 *
 * Ids are stable and append-only (new users/items get the next indices), so rows 0..old-1 are copied verbatim and
 * only the new tail is initialised:
 * - new users: N(0, initStd^2) with initStd = 0.01 by default: small enough not to disturb ranking before training
 *   reaches them, non-zero so their gradients are not all identical.
 * - new items: if a category per item is given, the mean of the old rows in the same category plus the same small
 *   noise (a sensible prior for a new product in a known category); otherwise (or for a category with no old items)
 *   N(0, initStd^2). New item biases start at the category's (or the global) mean old bias.
 * The optimizer is *not* carried over: trainMF/trainTwoTower build a fresh Adam (m = v = 0, step 0) for initial
 * weights, because old moments describe a different data distribution and table size.
 * Noise comes from the seeded Rng (Box-Muller), so growing needs no tfjs backend and is reproducible.
 */
import type { MFModel } from './mf';
import { Rng } from './rng';

export interface GrowOptions {
  /** Std of the normal init for new rows (default 0.01). */
  initStd?: number;
  /** Category per item for the *new* item count (length >= newNumItems); enables category-mean init. */
  itemCategory?: Int32Array;
}

function gaussian(rng: Rng): number {
  // Box-Muller; 1 - u keeps log() finite.
  const u = 1 - rng.nextFloat();
  const v = rng.nextFloat();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

/** Copies the first oldRows rows and fills the rest with init(row, out, offset). */
export function growTable(
  old: Float32Array,
  oldRows: number,
  newRows: number,
  rowSize: number,
  init: (row: number, out: Float32Array, offset: number) => void,
): Float32Array {
  if (newRows < oldRows)
    throw new Error(`cannot shrink a table from ${oldRows} to ${newRows} rows (ids are append-only)`);
  if (old.length !== oldRows * rowSize) throw new Error('growTable: old table size mismatch');
  const out = new Float32Array(newRows * rowSize);
  out.set(old);
  for (let r = oldRows; r < newRows; r++) init(r, out, r * rowSize);
  return out;
}

/** Fills new rows with N(0, std^2) noise from rng. */
export function normalInit(
  rng: Rng,
  std: number,
  rowSize: number,
): (row: number, out: Float32Array, off: number) => void {
  return (_row, out, off) => {
    for (let d = 0; d < rowSize; d++) out[off + d] = std * gaussian(rng);
  };
}

/** Per-category mean of the old rows (rows of categories without old items stay undefined). */
function categoryMeans(
  table: Float32Array,
  oldRows: number,
  rowSize: number,
  category: Int32Array,
): Map<number, Float64Array> {
  const sums = new Map<number, Float64Array>();
  const counts = new Map<number, number>();
  for (let r = 0; r < oldRows; r++) {
    const c = category[r];
    let s = sums.get(c);
    if (!s) {
      s = new Float64Array(rowSize);
      sums.set(c, s);
    }
    for (let d = 0; d < rowSize; d++) s[d] += table[r * rowSize + d];
    counts.set(c, (counts.get(c) ?? 0) + 1);
  }
  for (const [c, s] of sums) {
    const n = counts.get(c) ?? 1;
    for (let d = 0; d < rowSize; d++) s[d] /= n;
  }
  return sums;
}

/** Item-table init: category mean (if known) + N(0, std^2) noise; plain noise otherwise. */
export function itemInit(
  old: Float32Array,
  oldRows: number,
  rowSize: number,
  rng: Rng,
  std: number,
  category?: Int32Array,
): (row: number, out: Float32Array, off: number) => void {
  const means = category ? categoryMeans(old, oldRows, rowSize, category) : undefined;
  return (row, out, off) => {
    const mean = means?.get((category as Int32Array)[row]);
    for (let d = 0; d < rowSize; d++) out[off + d] = (mean ? mean[d] : 0) + std * gaussian(rng);
  };
}

/** Grows an MF model to newNumUsers x newNumItems (see header for the init of new rows). */
export function growEmbeddings(
  old: MFModel,
  newNumUsers: number,
  newNumItems: number,
  seed: number,
  opts: GrowOptions = {},
): MFModel {
  const std = opts.initStd ?? 0.01;
  const cat = opts.itemCategory;
  if (cat && cat.length < newNumItems) throw new Error('itemCategory must cover all new items');
  const rng = new Rng(seed);
  const D = old.dim;
  const userFactors = growTable(old.userFactors, old.numUsers, newNumUsers, D, normalInit(rng, std, D));
  const itemFactors = growTable(
    old.itemFactors,
    old.numItems,
    newNumItems,
    D,
    itemInit(old.itemFactors, old.numItems, D, rng, std, cat),
  );
  let itemBias: Float32Array | undefined;
  if (old.itemBias) {
    const means = cat ? categoryMeans(old.itemBias, old.numItems, 1, cat) : undefined;
    let global = 0;
    for (let i = 0; i < old.numItems; i++) global += old.itemBias[i];
    global = old.numItems > 0 ? global / old.numItems : 0;
    itemBias = growTable(old.itemBias, old.numItems, newNumItems, 1, (row, out, off) => {
      out[off] = means?.get((cat as Int32Array)[row])?.[0] ?? global;
    });
  }
  return {
    kind: 'mf',
    numUsers: newNumUsers,
    numItems: newNumItems,
    dim: D,
    userFactors,
    itemFactors,
    itemBias,
  };
}
