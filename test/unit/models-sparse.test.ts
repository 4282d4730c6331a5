import { balancedRanges, buildCSR, columnCounts, transposeCSR } from '../../models/sparse';

const rows = Int32Array.from([2, 0, 2, 1, 2, 0, 2]);
const items = Int32Array.from([3, 1, 0, 2, 3, 1, 1]);
const weight = Float32Array.from([1, 2, 3, 4, 5, 6, 7]);

test('rows come out sorted by column with duplicates merged by the transform', () => {
  const lin = buildCSR(rows, items, weight, 3, 4);
  expect(Array.from(lin.ptr)).toEqual([0, 1, 2, 5]);
  expect(Array.from(lin.idx)).toEqual([1, 2, 0, 1, 3]);
  expect(Array.from(lin.val)).toEqual([8, 4, 3, 7, 6]);
  expect(Array.from(buildCSR(rows, items, weight, 3, 4, { transform: 'binary' }).val)).toEqual([
    1, 1, 1, 1, 1,
  ]);
  const log = buildCSR(rows, items, weight, 3, 4, { transform: 'log' });
  expect(log.val[0]).toBeCloseTo(Math.log1p(8), 6);
});

test('colOf drops and renumbers columns; decay scales weights (binary: the freshest row)', () => {
  const colOf = Int32Array.from([-1, 0, -1, 1]); // keep items 1 and 3 as columns 0 and 1
  const m = buildCSR(rows, items, weight, 3, 4, { colOf, numCols: 2 });
  expect(Array.from(m.ptr)).toEqual([0, 1, 1, 3]);
  expect(Array.from(m.idx)).toEqual([0, 0, 1]);
  expect(Array.from(m.val)).toEqual([8, 7, 6]);
  const decay = [1, 0.5, 1, 1, 0.25, 0.1, 1];
  const d = buildCSR(rows, items, weight, 3, 4, { decay });
  expect(d.val[0]).toBeCloseTo(2 * 0.5 + 6 * 0.1, 6); // user 0, item 1
  expect(d.val[4]).toBeCloseTo(1 + 5 * 0.25, 6); // user 2, item 3
  const b = buildCSR(rows, items, weight, 3, 4, { decay, transform: 'binary' });
  expect(b.val[0]).toBeCloseTo(0.5, 6);
  expect(() => buildCSR(rows, items, weight, 2, 4)).toThrow(RangeError);
  expect(buildCSR(rows, items, weight, 3, 4, { shared: true }).idx.buffer).toBeInstanceOf(SharedArrayBuffer);
});

test('transpose, column counts and balanced ranges', () => {
  const m = buildCSR(rows, items, weight, 3, 4);
  const t = transposeCSR(m);
  expect(Array.from(t.ptr)).toEqual([0, 1, 3, 4, 5]);
  expect(Array.from(t.idx)).toEqual([2, 0, 2, 1, 2]);
  expect(Array.from(t.val)).toEqual([3, 8, 7, 4, 6]);
  expect(Array.from(transposeCSR(t).val)).toEqual(Array.from(m.val));
  expect(Array.from(columnCounts(m))).toEqual([1, 2, 1, 1]);
  const ptr = Int32Array.from([0, 10, 10, 10, 20, 21, 22, 40]);
  const b = balancedRanges(ptr, 2, 0);
  expect(Array.from(b)).toEqual([0, 4, 7]);
  expect(b[0]).toBe(0);
});
