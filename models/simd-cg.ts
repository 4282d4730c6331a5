/**
 * iALS's CG half-sweeps in WebAssembly SIMD (the typed-array reference is ials-kernels.ts, same arithmetic):
 * addSparse (ap[u] += sum (c - 1)(y . v) y), cgInit (r = b - A x, p = r, rs = r . r) and cgStep (one CG step),
 * each over a range of rows. Offsets are byte offsets into the shared memory; dimBytes = dim * 4, dim % 8 === 0.
 */
import { FN_ADD_SPARSE, fn, hsum, overDims } from './simd-codegen';
import type { Code, ValType } from './wasm-asm';

// prettier-ignore
export const addSparse = fn(undefined,
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
export const cgInit = fn('cgInit', CG_PARAMS, [], CG_LOCALS, (L) => overRows(L, [
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
export const cgStep = fn('cgStep', CG_PARAMS, [], CG_LOCALS, (L) => overRows(L, [
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
