/**
 * WebAssembly SIMD (f32x4) versions of the hot loops of hogwild BPR (bpr-kernel.ts) and of iALS's CG solves
 * (ials-kernels.ts), assembled by wasm-asm.ts. Same arithmetic as the JS kernels, which stay the readable
 * reference and the fallback; the 4-wide loads, multiplies and adds cut the per-sample and per-entry cost ~3x.
 * Every array lives in one shared WebAssembly.Memory (simd-arena.ts), so worker threads instantiate this module
 * over the same memory and write the same factor tables. Requires dim % 8 === 0 and 16-byte aligned rows.
 *
 * Exports (all offsets are byte offsets into the memory):
 *   bpr(ptr, idx, rowOf, weight|0, P, Q, bias|0, nnz, numItems, dimBytes, lr, decay, popular, verify, seed, count, out)
 *     count samples; writes [correct, skipped] (i32) at out.
 *   cgInit / cgStep(start, end, ptr, idx, conf, y, x, r, p, ap, rs, dimBytes): rows [start, end).
 */
import { buildModule, type Code, type FuncDef, type ValType } from './wasm-asm';

/** Builds a function from named params and locals: body(L) gets each name's index. */
function fn(
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

const FN_EXP = 0;
const FN_ADD_SPARSE = 1;

/** Sum of the four lanes of the v128 local `v` (left on the stack as f32). */
const hsum = (v: number): Code => [
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
const overDims = (d: number, dimBytes: number, body: Code, acc?: [number, number]): Code => {
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

// prettier-ignore
const expf = fn('exp', [['x', 'f32']], ['f32'], [['n', 'f32'], ['r', 'f32']], (L) => [
  // Range reduction x = n ln2 + r (ln2 split in two for accuracy), then a degree-6 polynomial for e^r and
  // 2^n built from the exponent bits; |x| is clamped to 87 so 2^n stays a normal float.
  'local.get', L.x, 'f32.const', -87, 'f32.max', 'f32.const', 87, 'f32.min', 'local.set', L.x,
  'local.get', L.x, 'f32.const', 1.4426950408889634, 'f32.mul', 'f32.nearest', 'local.set', L.n,
  'local.get', L.x, 'local.get', L.n, 'f32.const', 0.693145751953125, 'f32.mul', 'f32.sub',
  'local.get', L.n, 'f32.const', 1.428606765330187e-6, 'f32.mul', 'f32.sub', 'local.set', L.r,
  'f32.const', 1 / 720, 'local.get', L.r, 'f32.mul', 'f32.const', 1 / 120, 'f32.add',
  'local.get', L.r, 'f32.mul', 'f32.const', 1 / 24, 'f32.add',
  'local.get', L.r, 'f32.mul', 'f32.const', 1 / 6, 'f32.add',
  'local.get', L.r, 'f32.mul', 'f32.const', 0.5, 'f32.add',
  'local.get', L.r, 'f32.mul', 'f32.const', 1, 'f32.add',
  'local.get', L.r, 'f32.mul', 'f32.const', 1, 'f32.add',
  'local.get', L.n, 'i32.trunc_f32_s', 'i32.const', 127, 'i32.add', 'i32.const', 23, 'i32.shl',
  'f32.reinterpret_i32', 'f32.mul',
]);

// prettier-ignore
const addSparse = fn(undefined,
  [['u', 'i32'], ['vec', 'i32'], ['ptr', 'i32'], ['idx', 'i32'], ['conf', 'i32'], ['y', 'i32'], ['ap', 'i32'], ['dimBytes', 'i32']],
  [],
  [['q', 'i32'], ['qEnd', 'i32'], ['o', 'i32'], ['yo', 'i32'], ['d', 'i32'], ['acc', 'v128'], ['acc1', 'v128'], ['s', 'v128']],
  (L) => [
    // ap[u] += sum_q (conf[q] - 1) (y[idx[q]] . vec[u]) y[idx[q]]
    'local.get', L.u, 'local.get', L.dimBytes, 'i32.mul', 'local.set', L.o,
    'local.get', L.ptr, 'local.get', L.u, 'i32.const', 2, 'i32.shl', 'i32.add', 'i32.load', 0, 'local.set', L.q,
    'local.get', L.ptr, 'local.get', L.u, 'i32.const', 2, 'i32.shl', 'i32.add', 'i32.load', 4, 'local.set', L.qEnd,
    'block', 'local.get', L.q, 'local.get', L.qEnd, 'i32.ge_s', 'br_if', 0,
    'loop',
    'local.get', L.y, 'local.get', L.idx, 'local.get', L.q, 'i32.const', 2, 'i32.shl', 'i32.add', 'i32.load', 0,
    'local.get', L.dimBytes, 'i32.mul', 'i32.add', 'local.set', L.yo,
    'f32.const', 0, 'f32x4.splat', 'local.set', L.acc,
    ...overDims(L.d, L.dimBytes, [
      'local.get', L.acc,
      'local.get', L.yo, 'local.get', L.d, 'i32.add', 'v128.load', 0,
      'local.get', L.vec, 'local.get', L.o, 'i32.add', 'local.get', L.d, 'i32.add', 'v128.load', 0,
      'f32x4.mul', 'f32x4.add', 'local.set', L.acc,
    ], [L.acc, L.acc1]),
    'local.get', L.conf, 'local.get', L.q, 'i32.const', 2, 'i32.shl', 'i32.add', 'f32.load', 0,
    'f32.const', 1, 'f32.sub', ...hsum(L.acc), 'f32.mul', 'f32x4.splat', 'local.set', L.s,
    ...overDims(L.d, L.dimBytes, [
      'local.get', L.ap, 'local.get', L.o, 'i32.add', 'local.get', L.d, 'i32.add',
      'local.get', L.ap, 'local.get', L.o, 'i32.add', 'local.get', L.d, 'i32.add', 'v128.load', 0,
      'local.get', L.s, 'local.get', L.yo, 'local.get', L.d, 'i32.add', 'v128.load', 0, 'f32x4.mul',
      'f32x4.add', 'v128.store', 0,
    ]),
    'local.get', L.q, 'i32.const', 1, 'i32.add', 'local.tee', L.q, 'local.get', L.qEnd, 'i32.lt_s', 'br_if', 0,
    'end', 'end',
  ]);

const CG_PARAMS: [string, ValType][] = [
  ['start', 'i32'],
  ['end', 'i32'],
  ['ptr', 'i32'],
  ['idx', 'i32'],
  ['conf', 'i32'],
  ['y', 'i32'],
  ['x', 'i32'],
  ['r', 'i32'],
  ['p', 'i32'],
  ['ap', 'i32'],
  ['rs', 'i32'],
  ['dimBytes', 'i32'],
];
const CG_LOCALS: [string, ValType][] = [
  ['u', 'i32'],
  ['o', 'i32'],
  ['d', 'i32'],
  ['q', 'i32'],
  ['qEnd', 'i32'],
  ['yo', 'i32'],
  ['acc', 'v128'],
  ['acc1', 'v128'],
  ['v', 'v128'],
  ['t', 'v128'],
  ['rsold', 'f64'],
  ['rsnew', 'f64'],
  ['pAp', 'f32'],
];

/** for (u = start; u < end; u++) { o = u * dimBytes; body } — `br 0` inside body (at its top level) = continue. */
const overRows = (L: Record<string, number>, body: Code): Code => [
  'local.get',
  L.start,
  'local.set',
  L.u,
  'block',
  'local.get',
  L.u,
  'local.get',
  L.end,
  'i32.ge_s',
  'br_if',
  0,
  'loop',
  'local.get',
  L.u,
  'local.get',
  L.dimBytes,
  'i32.mul',
  'local.set',
  L.o,
  'block',
  ...body,
  'end',
  'local.get',
  L.u,
  'i32.const',
  1,
  'i32.add',
  'local.tee',
  L.u,
  'local.get',
  L.end,
  'i32.lt_s',
  'br_if',
  0,
  'end',
  'end',
];

const at = (base: number, o: number, d: number): Code => [
  'local.get',
  base,
  'local.get',
  o,
  'i32.add',
  'local.get',
  d,
  'i32.add',
];
const callAddSparse = (L: Record<string, number>, vec: number): Code => [
  'local.get',
  L.u,
  'local.get',
  vec,
  'local.get',
  L.ptr,
  'local.get',
  L.idx,
  'local.get',
  L.conf,
  'local.get',
  L.y,
  'local.get',
  L.ap,
  'local.get',
  L.dimBytes,
  'call',
  FN_ADD_SPARSE,
];

// prettier-ignore
const cgInit = fn('cgInit', CG_PARAMS, [], CG_LOCALS, (L) => overRows(L, [
  ...callAddSparse(L, L.x), // ap = A x
  ...overDims(L.d, L.dimBytes, [...at(L.r, L.o, L.d), 'f32.const', 0, 'f32x4.splat', ...at(L.ap, L.o, L.d), 'v128.load', 0, 'f32x4.sub', 'v128.store', 0]),
  // r += sum_q conf[q] y[idx[q]]
  'local.get', L.ptr, 'local.get', L.u, 'i32.const', 2, 'i32.shl', 'i32.add', 'i32.load', 0, 'local.set', L.q,
  'local.get', L.ptr, 'local.get', L.u, 'i32.const', 2, 'i32.shl', 'i32.add', 'i32.load', 4, 'local.set', L.qEnd,
  'block', 'local.get', L.q, 'local.get', L.qEnd, 'i32.ge_s', 'br_if', 0,
  'loop',
  'local.get', L.y, 'local.get', L.idx, 'local.get', L.q, 'i32.const', 2, 'i32.shl', 'i32.add', 'i32.load', 0,
  'local.get', L.dimBytes, 'i32.mul', 'i32.add', 'local.set', L.yo,
  'local.get', L.conf, 'local.get', L.q, 'i32.const', 2, 'i32.shl', 'i32.add', 'f32.load', 0, 'f32x4.splat', 'local.set', L.t,
  ...overDims(L.d, L.dimBytes, [
    ...at(L.r, L.o, L.d), ...at(L.r, L.o, L.d), 'v128.load', 0,
    'local.get', L.t, 'local.get', L.yo, 'local.get', L.d, 'i32.add', 'v128.load', 0, 'f32x4.mul', 'f32x4.add', 'v128.store', 0,
  ]),
  'local.get', L.q, 'i32.const', 1, 'i32.add', 'local.tee', L.q, 'local.get', L.qEnd, 'i32.lt_s', 'br_if', 0,
  'end', 'end',
  // p = r, rs = r . r
  'f32.const', 0, 'f32x4.splat', 'local.set', L.acc,
  ...overDims(L.d, L.dimBytes, [
    ...at(L.r, L.o, L.d), 'v128.load', 0, 'local.set', L.v,
    ...at(L.p, L.o, L.d), 'local.get', L.v, 'v128.store', 0,
    'local.get', L.acc, 'local.get', L.v, 'local.get', L.v, 'f32x4.mul', 'f32x4.add', 'local.set', L.acc,
  ], [L.acc, L.acc1]),
  'local.get', L.rs, 'local.get', L.u, 'i32.const', 3, 'i32.shl', 'i32.add', ...hsum(L.acc), 'f64.promote_f32', 'f64.store', 0,
]));

// prettier-ignore
const cgStep = fn('cgStep', CG_PARAMS, [], CG_LOCALS, (L) => overRows(L, [
  'local.get', L.rs, 'local.get', L.u, 'i32.const', 3, 'i32.shl', 'i32.add', 'f64.load', 0, 'local.tee', L.rsold,
  'f64.const', 1e-20, 'f64.lt', 'br_if', 0,
  ...callAddSparse(L, L.p), // ap = A p
  'f32.const', 0, 'f32x4.splat', 'local.set', L.acc,
  ...overDims(L.d, L.dimBytes, [
    'local.get', L.acc, ...at(L.p, L.o, L.d), 'v128.load', 0, ...at(L.ap, L.o, L.d), 'v128.load', 0,
    'f32x4.mul', 'f32x4.add', 'local.set', L.acc,
  ], [L.acc, L.acc1]),
  ...hsum(L.acc), 'local.tee', L.pAp, 'f32.const', 0, 'f32.gt',
  'if', 'else',
  // p is (numerically) zero: nothing left to solve
  'local.get', L.rs, 'local.get', L.u, 'i32.const', 3, 'i32.shl', 'i32.add', 'f64.const', 0, 'f64.store', 0, 'br', 1,
  'end',
  // alpha = rsold / pAp; x += alpha p; r -= alpha ap; rsnew = r . r
  'local.get', L.rsold, 'local.get', L.pAp, 'f64.promote_f32', 'f64.div', 'f32.demote_f64', 'f32x4.splat', 'local.set', L.t,
  'f32.const', 0, 'f32x4.splat', 'local.set', L.acc,
  ...overDims(L.d, L.dimBytes, [
    ...at(L.x, L.o, L.d), ...at(L.x, L.o, L.d), 'v128.load', 0,
    'local.get', L.t, ...at(L.p, L.o, L.d), 'v128.load', 0, 'f32x4.mul', 'f32x4.add', 'v128.store', 0,
    ...at(L.r, L.o, L.d), 'v128.load', 0, 'local.get', L.t, ...at(L.ap, L.o, L.d), 'v128.load', 0, 'f32x4.mul',
    'f32x4.sub', 'local.set', L.v,
    ...at(L.r, L.o, L.d), 'local.get', L.v, 'v128.store', 0,
    'local.get', L.acc, 'local.get', L.v, 'local.get', L.v, 'f32x4.mul', 'f32x4.add', 'local.set', L.acc,
  ], [L.acc, L.acc1]),
  'local.get', L.rs, 'local.get', L.u, 'i32.const', 3, 'i32.shl', 'i32.add', ...hsum(L.acc), 'f64.promote_f32',
  'local.tee', L.rsnew, 'f64.store', 0,
  'local.get', L.rsnew, 'f64.const', 1e-20, 'f64.lt', 'br_if', 0,
  // p = r + (rsnew / rsold) p
  'local.get', L.rsnew, 'local.get', L.rsold, 'f64.div', 'f32.demote_f64', 'f32x4.splat', 'local.set', L.t,
  ...overDims(L.d, L.dimBytes, [
    ...at(L.p, L.o, L.d), ...at(L.r, L.o, L.d), 'v128.load', 0,
    'local.get', L.t, ...at(L.p, L.o, L.d), 'v128.load', 0, 'f32x4.mul', 'f32x4.add', 'v128.store', 0,
  ]),
]));

/** xorshift128's next word (left on the stack), state in locals s0..s3, scratch t. */
const rng = (L: Record<string, number>): Code => [
  'local.get',
  L.s0,
  'local.get',
  L.s0,
  'i32.const',
  11,
  'i32.shl',
  'i32.xor',
  'local.set',
  L.t,
  'local.get',
  L.s1,
  'local.set',
  L.s0,
  'local.get',
  L.s2,
  'local.set',
  L.s1,
  'local.get',
  L.s3,
  'local.set',
  L.s2,
  'local.get',
  L.s3,
  'local.get',
  L.s3,
  'i32.const',
  19,
  'i32.shr_u',
  'i32.xor',
  'local.get',
  L.t,
  'i32.xor',
  'local.get',
  L.t,
  'i32.const',
  8,
  'i32.shr_u',
  'i32.xor',
  'local.tee',
  L.s3,
];

// prettier-ignore
const bpr = fn('bpr',
  [['ptr', 'i32'], ['idx', 'i32'], ['rowOf', 'i32'], ['weight', 'i32'], ['P', 'i32'], ['Q', 'i32'], ['bias', 'i32'],
    ['nnz', 'i32'], ['numItems', 'i32'], ['dimBytes', 'i32'], ['lr', 'f32'], ['decay', 'f32'], ['popular', 'i32'],
    ['verify', 'i32'], ['seed', 'i32'], ['count', 'i32'], ['out', 'i32']],
  [],
  [['s0', 'i32'], ['s1', 'i32'], ['s2', 'i32'], ['s3', 'i32'], ['t', 'i32'], ['n', 'i32'], ['k', 'i32'], ['u', 'i32'],
    ['i', 'i32'], ['j', 'i32'], ['lo', 'i32'], ['hi', 'i32'], ['mid', 'i32'], ['v', 'i32'], ['po', 'i32'], ['io', 'i32'],
    ['jo', 'i32'], ['d', 'i32'], ['correct', 'i32'], ['skipped', 'i32'], ['x', 'f32'], ['step', 'f32'],
    ['acc', 'v128'], ['acc1', 'v128'], ['vstep', 'v128'], ['vdecay', 'v128'], ['pu', 'v128'], ['qi', 'v128'], ['qj', 'v128']],
  (L) => [
    // Non-zero xorshift state from the seed.
    'local.get', L.seed, 'i32.const', 1, 'i32.or', 'local.set', L.s0,
    'local.get', L.s0, 'i32.const', 0x85ebca6b | 0, 'i32.mul', 'i32.const', 2, 'i32.or', 'local.set', L.s1,
    'local.get', L.s1, 'i32.const', 0xc2b2ae35 | 0, 'i32.mul', 'i32.const', 4, 'i32.or', 'local.set', L.s2,
    'local.get', L.s2, 'i32.const', 0x27d4eb2d, 'i32.mul', 'i32.const', 8, 'i32.or', 'local.set', L.s3,
    'local.get', L.decay, 'f32x4.splat', 'local.set', L.vdecay,
    'block', 'local.get', L.count, 'i32.const', 0, 'i32.le_s', 'br_if', 0,
    'loop',
    'block', // a skipped sample branches here (depth 0 at this level)
    // k uniform over positives; u, i from it; j uniform over items or over positives' items (popularity)
    ...rng(L), 'local.get', L.nnz, 'i32.rem_u', 'local.set', L.k,
    'local.get', L.rowOf, 'local.get', L.k, 'i32.const', 2, 'i32.shl', 'i32.add', 'i32.load', 0, 'local.set', L.u,
    'local.get', L.idx, 'local.get', L.k, 'i32.const', 2, 'i32.shl', 'i32.add', 'i32.load', 0, 'local.set', L.i,
    'local.get', L.popular,
    'if',
    'local.get', L.idx, ...rng(L), 'local.get', L.nnz, 'i32.rem_u', 'i32.const', 2, 'i32.shl', 'i32.add', 'i32.load', 0, 'local.set', L.j,
    'else',
    ...rng(L), 'local.get', L.numItems, 'i32.rem_u', 'local.set', L.j,
    'end',
    'local.get', L.j, 'local.get', L.i, 'i32.eq',
    'if', 'local.get', L.skipped, 'i32.const', 1, 'i32.add', 'local.set', L.skipped, 'br', 1, 'end',
    // verify: binary search j in the user's sorted items
    'local.get', L.verify,
    'if',
    'local.get', L.ptr, 'local.get', L.u, 'i32.const', 2, 'i32.shl', 'i32.add', 'i32.load', 0, 'local.set', L.lo,
    'local.get', L.ptr, 'local.get', L.u, 'i32.const', 2, 'i32.shl', 'i32.add', 'i32.load', 4, 'i32.const', 1, 'i32.sub', 'local.set', L.hi,
    'block', 'loop',
    'local.get', L.lo, 'local.get', L.hi, 'i32.gt_s', 'br_if', 1,
    'local.get', L.lo, 'local.get', L.hi, 'i32.add', 'i32.const', 1, 'i32.shr_u', 'local.set', L.mid,
    'local.get', L.idx, 'local.get', L.mid, 'i32.const', 2, 'i32.shl', 'i32.add', 'i32.load', 0, 'local.tee', L.v,
    'local.get', L.j, 'i32.eq',
    // found: count it and leave the sample (if > loop > block > if(verify) > sample block = depth 4)
    'if', 'local.get', L.skipped, 'i32.const', 1, 'i32.add', 'local.set', L.skipped, 'br', 4, 'end',
    'local.get', L.v, 'local.get', L.j, 'i32.lt_s',
    'if', 'local.get', L.mid, 'i32.const', 1, 'i32.add', 'local.set', L.lo,
    'else', 'local.get', L.mid, 'i32.const', 1, 'i32.sub', 'local.set', L.hi, 'end',
    'br', 0,
    'end', 'end',
    'end',
    'local.get', L.P, 'local.get', L.u, 'local.get', L.dimBytes, 'i32.mul', 'i32.add', 'local.set', L.po,
    'local.get', L.Q, 'local.get', L.i, 'local.get', L.dimBytes, 'i32.mul', 'i32.add', 'local.set', L.io,
    'local.get', L.Q, 'local.get', L.j, 'local.get', L.dimBytes, 'i32.mul', 'i32.add', 'local.set', L.jo,
    // x = p_u . (q_i - q_j) (+ b_i - b_j)
    'f32.const', 0, 'f32x4.splat', 'local.set', L.acc,
    ...overDims(L.d, L.dimBytes, [
      'local.get', L.acc,
      'local.get', L.po, 'local.get', L.d, 'i32.add', 'v128.load', 0,
      'local.get', L.io, 'local.get', L.d, 'i32.add', 'v128.load', 0,
      'local.get', L.jo, 'local.get', L.d, 'i32.add', 'v128.load', 0,
      'f32x4.sub', 'f32x4.mul', 'f32x4.add', 'local.set', L.acc,
    ], [L.acc, L.acc1]),
    ...hsum(L.acc), 'local.set', L.x,
    'local.get', L.bias,
    'if',
    'local.get', L.x,
    'local.get', L.bias, 'local.get', L.i, 'i32.const', 2, 'i32.shl', 'i32.add', 'f32.load', 0, 'f32.add',
    'local.get', L.bias, 'local.get', L.j, 'i32.const', 2, 'i32.shl', 'i32.add', 'f32.load', 0, 'f32.sub',
    'local.set', L.x,
    'end',
    'local.get', L.correct, 'local.get', L.x, 'f32.const', 0, 'f32.gt', 'i32.add', 'local.set', L.correct,
    // step = lr * w / (1 + e^x)
    'local.get', L.lr,
    // w = weight ? weight[k] : 1 (select: reading weight + 4k with weight = 0 stays inside the idx array)
    'local.get', L.weight, 'local.get', L.k, 'i32.const', 2, 'i32.shl', 'i32.add', 'f32.load', 0,
    'f32.const', 1, 'local.get', L.weight, 'select', 'f32.mul',
    'f32.const', 1, 'local.get', L.x, 'call', FN_EXP, 'f32.add', 'f32.div', 'local.tee', L.step,
    'f32x4.splat', 'local.set', L.vstep,
    ...overDims(L.d, L.dimBytes, [
      'local.get', L.po, 'local.get', L.d, 'i32.add', 'v128.load', 0, 'local.set', L.pu,
      'local.get', L.io, 'local.get', L.d, 'i32.add', 'v128.load', 0, 'local.set', L.qi,
      'local.get', L.jo, 'local.get', L.d, 'i32.add', 'v128.load', 0, 'local.set', L.qj,
      'local.get', L.po, 'local.get', L.d, 'i32.add',
      'local.get', L.vdecay, 'local.get', L.pu, 'f32x4.mul',
      'local.get', L.vstep, 'local.get', L.qi, 'local.get', L.qj, 'f32x4.sub', 'f32x4.mul', 'f32x4.add', 'v128.store', 0,
      'local.get', L.io, 'local.get', L.d, 'i32.add',
      'local.get', L.vdecay, 'local.get', L.qi, 'f32x4.mul', 'local.get', L.vstep, 'local.get', L.pu, 'f32x4.mul',
      'f32x4.add', 'v128.store', 0,
      'local.get', L.jo, 'local.get', L.d, 'i32.add',
      'local.get', L.vdecay, 'local.get', L.qj, 'f32x4.mul', 'local.get', L.vstep, 'local.get', L.pu, 'f32x4.mul',
      'f32x4.sub', 'v128.store', 0,
    ]),
    'local.get', L.bias,
    'if',
    'local.get', L.bias, 'local.get', L.i, 'i32.const', 2, 'i32.shl', 'i32.add',
    'local.get', L.decay, 'local.get', L.bias, 'local.get', L.i, 'i32.const', 2, 'i32.shl', 'i32.add', 'f32.load', 0,
    'f32.mul', 'local.get', L.step, 'f32.add', 'f32.store', 0,
    'local.get', L.bias, 'local.get', L.j, 'i32.const', 2, 'i32.shl', 'i32.add',
    'local.get', L.decay, 'local.get', L.bias, 'local.get', L.j, 'i32.const', 2, 'i32.shl', 'i32.add', 'f32.load', 0,
    'f32.mul', 'local.get', L.step, 'f32.sub', 'f32.store', 0,
    'end',
    'end', // sample block
    'local.get', L.n, 'i32.const', 1, 'i32.add', 'local.tee', L.n, 'local.get', L.count, 'i32.lt_s', 'br_if', 0,
    'end', 'end',
    'local.get', L.out, 'local.get', L.correct, 'i32.store', 0,
    'local.get', L.out, 'local.get', L.skipped, 'i32.store', 4,
  ]);

let moduleBytes: Uint8Array | undefined;
let compiled: WebAssembly.Module | undefined;

/** The kernels' module bytes (built once per process). */
export function simdModuleBytes(): Uint8Array {
  moduleBytes ??= buildModule([expf, addSparse, cgInit, cgStep, bpr], 1, 65536);
  return moduleBytes;
}

/** The compiled module (once per process; worker threads receive it by postMessage). */
export function simdModule(): WebAssembly.Module {
  compiled ??= new WebAssembly.Module(simdModuleBytes());
  return compiled;
}

export interface SimdExports {
  exp(x: number): number;
  cgInit(...args: number[]): void;
  cgStep(...args: number[]): void;
  bpr(...args: number[]): void;
}

/** Whether this runtime runs WebAssembly SIMD and shared memories (Node >= 16.4 does). */
export function simdSupported(): boolean {
  try {
    simdModule();
    new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });
    return true;
  } catch {
    return false;
  }
}

const instances = new Map<number, SimdExports>();

/**
 * The kernels bound to `memory`, instantiated once per arena id in this thread (the few most recent are kept:
 * each training run has its own arena).
 */
export function simdInstance(
  id: number,
  module: WebAssembly.Module,
  memory: WebAssembly.Memory,
): SimdExports {
  let inst = instances.get(id);
  if (!inst) {
    inst = new WebAssembly.Instance(module, { env: { memory } }).exports as unknown as SimdExports;
    instances.set(id, inst);
    while (instances.size > 4) instances.delete(instances.keys().next().value as number);
  }
  return inst;
}
