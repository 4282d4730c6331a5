import type { Db } from './duckdb';

/** The typed array each column is read into. */
export type ColumnKind = 'i32' | 'f32' | 'f64' | 'u8';
type ArrayOf<K extends ColumnKind> = K extends 'i32'
  ? Int32Array
  : K extends 'f32'
    ? Float32Array
    : K extends 'f64'
      ? Float64Array
      : Uint8Array;

const make = (kind: ColumnKind, n: number) =>
  kind === 'i32'
    ? new Int32Array(n)
    : kind === 'f32'
      ? new Float32Array(n)
      : kind === 'f64'
        ? new Float64Array(n)
        : new Uint8Array(n);

/**
 * Reads a query's columns, in `spec`'s order (the query must select them in that order), into typed arrays,
 * streaming chunk by chunk (Db.streamColumns): memory is the arrays themselves (grown by doubling, then trimmed),
 * never a JavaScript value per cell, and the event loop is never held for more than one chunk.
 */
export async function readTypedColumns<S extends Record<string, ColumnKind>>(
  db: Db,
  sql: string,
  spec: S,
): Promise<{ rows: number; columns: { [K in keyof S]: ArrayOf<S[K]> } }> {
  const names = Object.keys(spec);
  let cap = 1 << 16;
  let arrays = names.map((n) => make(spec[n], cap));
  let rows = 0;
  await db.streamColumns(sql, (cols, n) => {
    if (rows + n > cap) {
      while (rows + n > cap) cap *= 2;
      arrays = arrays.map((a, c) => {
        const b = make(spec[names[c]], cap);
        b.set(a.subarray(0, rows));
        return b;
      });
    }
    for (let c = 0; c < names.length; c++) {
      const out = arrays[c];
      const src = cols[c];
      for (let r = 0; r < n; r++) out[rows + r] = Number(src[r]);
    }
    rows += n;
  });
  const columns = Object.fromEntries(names.map((n, c) => [n, arrays[c].slice(0, rows)]));
  return { rows, columns: columns as { [K in keyof S]: ArrayOf<S[K]> } };
}
