import { withDb } from '../../lib/duckdb';
import { readTypedColumns } from '../../lib/typed-columns';

/**
 * Streamed reads into typed arrays (lib/typed-columns.ts): every row, in the query's order, across many of
 * DuckDB's chunks and past the arrays' first capacity (grown by doubling), each column in its own array type.
 */
test('reads 200,003 rows chunk by chunk into typed arrays, growing them, in order', async () => {
  await withDb(':memory:', { memoryLimit: '512MB', threads: 2 }, async (db) => {
    const n = 200_003;
    const { rows, columns } = await readTypedColumns(
      db,
      `SELECT i::INTEGER AS i, (i * 0.5)::DOUBLE AS half, (i % 7 = 0)::INTEGER AS flag, (i / 4)::FLOAT AS q
       FROM range(${n}) t(i) ORDER BY i`,
      { i: 'i32', half: 'f64', flag: 'u8', q: 'f32' },
    );
    expect(rows).toBe(n);
    expect(columns.i).toBeInstanceOf(Int32Array);
    expect(columns.half).toBeInstanceOf(Float64Array);
    expect(columns.flag).toBeInstanceOf(Uint8Array);
    expect(columns.q).toBeInstanceOf(Float32Array);
    expect(columns.i.length).toBe(n);
    for (const r of [0, 1, 2047, 2048, 65_535, 65_536, 131_072, n - 1]) {
      expect([r, columns.i[r], columns.half[r], columns.flag[r], columns.q[r]]).toEqual([
        r,
        r,
        r * 0.5,
        r % 7 === 0 ? 1 : 0,
        Math.fround(r / 4),
      ]);
    }
    let ordered = true;
    for (let r = 1; r < n; r++) ordered &&= columns.i[r] === columns.i[r - 1] + 1;
    expect(ordered).toBe(true);
  });
});

test('an empty result gives empty arrays', async () => {
  await withDb(':memory:', { memoryLimit: '512MB', threads: 1 }, async (db) => {
    const { rows, columns } = await readTypedColumns(db, `SELECT 1::INTEGER AS a WHERE false`, { a: 'i32' });
    expect(rows).toBe(0);
    expect(columns.a.length).toBe(0);
  });
});
