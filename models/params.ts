/**
 * Host-side parameter tables.
 *
 * Design: master weights live in JS Float32Arrays; each step uploads only the rows the batch touches (a "sub-table"),
 * runs forward/backward in tfjs on those, and applies the optimizer to the touched rows. Why:
 * - A 70k x 64 user table is 4.5M floats; dense per-step Adam on it (what tf.train.adam does with tf.Variables) costs
 *   ~10 full passes over every table per step and dominated the measured ~80k examples/s. Touching only batch rows
 *   makes the step cost O(batch), independent of catalogue size.
 * - Weights, optimizer moments and RNG state are plain arrays, so checkpoints, resume, warm start and save/load are
 *   copies rather than tensor plumbing, and nothing leaks tfjs memory between steps.
 */

export interface NamedArray {
  shape: number[];
  data: Float32Array;
}

/** Weights by name; every tensor is float32, row-major. */
export type Weights = Record<string, NamedArray>;

export interface ParamDef {
  name: string;
  shape: number[];
  /** Row-sparse updates (embedding tables): only rows present in a batch get gradients / optimizer updates. */
  sparse: boolean;
}

export interface SparseGrad {
  kind: 'sparse';
  /** Global row ids, unique. */
  rows: Int32Array;
  /** rows.length x rowSize gradient values. */
  values: Float32Array;
}
export interface DenseGrad {
  kind: 'dense';
  values: Float32Array;
}
export type Grad = SparseGrad | DenseGrad;

export function sizeOf(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

export function rowSizeOf(shape: number[]): number {
  return shape.length <= 1 ? 1 : sizeOf(shape.slice(1));
}

export class ParamStore {
  readonly defs: ParamDef[];
  readonly weights: Weights;

  constructor(defs: ParamDef[], weights: Weights) {
    for (const d of defs) {
      const w = weights[d.name];
      if (!w) throw new Error(`ParamStore: missing weight '${d.name}'`);
      if (w.shape.length !== d.shape.length || w.shape.some((v, i) => v !== d.shape[i])) {
        throw new Error(`ParamStore: '${d.name}' has shape [${w.shape}], expected [${d.shape}]`);
      }
      if (w.data.length !== sizeOf(d.shape)) throw new Error(`ParamStore: '${d.name}' data length mismatch`);
    }
    this.defs = defs;
    this.weights = weights;
  }

  get(name: string): NamedArray {
    const w = this.weights[name];
    if (!w) throw new Error(`unknown parameter '${name}'`);
    return w;
  }
}

export function cloneWeights(w: Weights): Weights {
  const out: Weights = {};
  for (const [k, v] of Object.entries(w)) out[k] = { shape: v.shape.slice(), data: v.data.slice() };
  return out;
}

/** Copies src into dst in place (same names/shapes), so live references to dst arrays stay valid. */
export function copyWeightsInto(dst: Weights, src: Weights): void {
  for (const [k, v] of Object.entries(dst)) {
    const s = src[k];
    if (!s || s.data.length !== v.data.length) throw new Error(`copyWeightsInto: mismatch for '${k}'`);
    v.data.set(s.data);
  }
}

/**
 * Maps the global row ids used in one batch to dense local ids 0..count-1 (first-seen order, so deterministic).
 * The `local` lookup array is table-sized but reset in O(count) after each batch.
 */
export class RowIndexer {
  private readonly local: Int32Array;
  private rows: Int32Array;
  count = 0;

  constructor(readonly numRows: number) {
    this.local = new Int32Array(numRows).fill(-1);
    this.rows = new Int32Array(1024);
  }

  add(row: number): number {
    const l = this.local[row];
    if (l >= 0) return l;
    if (row < 0 || row >= this.numRows) throw new RangeError(`row ${row} outside [0, ${this.numRows})`);
    if (this.count === this.rows.length) {
      const grown = new Int32Array(this.rows.length * 2);
      grown.set(this.rows);
      this.rows = grown;
    }
    this.local[row] = this.count;
    this.rows[this.count] = row;
    return this.count++;
  }

  /** The global ids in local order (a copy; the indexer can be reset afterwards). */
  takeRows(): Int32Array {
    return this.rows.slice(0, this.count);
  }

  reset(): void {
    for (let i = 0; i < this.count; i++) this.local[this.rows[i]] = -1;
    this.count = 0;
  }
}

/** Copies the given rows of a row-major table into a new (rows.length + extraZeroRows) x rowSize array. */
export function gatherRows(
  table: Float32Array,
  rowSize: number,
  rows: Int32Array,
  extraZeroRows = 0,
): Float32Array {
  const out = new Float32Array((rows.length + extraZeroRows) * rowSize);
  if (rowSize === 1) {
    for (let k = 0; k < rows.length; k++) out[k] = table[rows[k]];
    return out;
  }
  for (let k = 0; k < rows.length; k++) {
    const src = rows[k] * rowSize;
    out.set(table.subarray(src, src + rowSize), k * rowSize);
  }
  return out;
}
