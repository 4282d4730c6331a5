/**
 * Small code-generation helpers for the SIMD kernels (simd-*.ts): named locals, lane sums, the unrolled loop over
 * a row's dimensions, and the module's fixed function indices (the order simd-kernels.ts assembles them in).
 */
import type { Code, FuncDef, ValType } from './wasm-asm';

/** Function indices in the module: exp first, addSparse second (called by the CG kernels and BPR). */
export const FN_EXP = 0;
export const FN_ADD_SPARSE = 1;

/** Builds a function from named params and locals: body(L) gets each name's index. */
export function fn(
  name: string | undefined,
  params: [string, ValType][],
  results: ValType[],
  locals: [string, ValType][],
  body: (L: Record<string, number>) => Code,
): FuncDef {
  const L: Record<string, number> = {};
  [...params, ...locals].forEach(([n], i) => (L[n] = i));
  return { name, params: params.map((p) => p[1]), results, locals: locals.map((l) => l[1]), code: body(L) };
}

/** Sum of the four lanes of the v128 local `v` (left on the stack as f32). */
export const hsum = (v: number): Code => [
  'local.get',
  v,
  'f32x4.extract_lane',
  0,
  'local.get',
  v,
  'f32x4.extract_lane',
  1,
  'f32.add',
  'local.get',
  v,
  'f32x4.extract_lane',
  2,
  'f32.add',
  'local.get',
  v,
  'f32x4.extract_lane',
  3,
  'f32.add',
];

/**
 * for (d = 0; d < dimBytes; d += 32) { body; body shifted by 16 bytes } — unrolled twice (dim % 8 === 0), the
 * copy's v128 loads and stores 16 bytes further on through their offset immediates. A dot-product accumulator
 * `acc` gets an independent twin in the copy (so the two chains of adds overlap), summed into `acc` after the loop.
 */
export const overDims = (d: number, dimBytes: number, body: Code, acc?: [number, number]): Code => {
  const copy: Code = [];
  for (let k = 0; k < body.length; k++) {
    const t = body[k];
    copy.push(t);
    if (t === 'v128.load' || t === 'v128.store') copy.push((body[++k] as number) + 16);
    else if (acc && (t === 'local.get' || t === 'local.set' || t === 'local.tee'))
      copy.push(body[++k] === acc[0] ? acc[1] : body[k]);
  }
  return [
    ...(acc ? ['f32.const', 0, 'f32x4.splat', 'local.set', acc[1]] : []),
    'i32.const',
    0,
    'local.set',
    d,
    'loop',
    ...body,
    ...copy,
    'local.get',
    d,
    'i32.const',
    32,
    'i32.add',
    'local.tee',
    d,
    'local.get',
    dimBytes,
    'i32.lt_s',
    'br_if',
    0,
    'end',
    ...(acc ? ['local.get', acc[0], 'local.get', acc[1], 'f32x4.add', 'local.set', acc[0]] : []),
  ];
};
