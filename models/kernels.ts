/**
 * The kernels worker threads can run (kernel-pool.ts), by name: the typed-array ones (bpr-kernel.ts,
 * ials-kernels.ts) and their WebAssembly SIMD versions (simd-kernels.ts, over a shared memory passed with the
 * arguments). Pure: no tfjs, no I/O, so a worker loads only these few modules.
 */
import { bprChunk, type BprArrays, type BprChunkResult } from './bpr-kernel';
import { cgInit, cgStep, type CGArrays } from './ials-kernels';
import { simdInstance } from './simd-kernels';

/** Where a SIMD kernel's arrays live: the arena's memory, its id (instance cache key) and the compiled module. */
export interface SimdTarget {
  id: number;
  module: WebAssembly.Module;
  memory: WebAssembly.Memory;
}

/** Byte offsets of the CG arrays in the arena (see CGArrays), dimBytes = dim * 4. */
export interface SimdCGArgs extends SimdTarget {
  ptr: number;
  idx: number;
  conf: number;
  y: number;
  x: number;
  r: number;
  p: number;
  ap: number;
  rs: number;
  dimBytes: number;
}

/** Byte offsets of the BPR arrays in the arena (0: absent), and the sampler's settings (see BprArrays). */
export interface SimdBprArgs extends SimdTarget {
  ptr: number;
  idx: number;
  rowOf: number;
  weight: number;
  P: number;
  Q: number;
  bias: number;
  nnz: number;
  numItems: number;
  dimBytes: number;
  lr: number;
  reg: number;
  popular: number;
  verify: boolean;
  seed: number;
  /** 8 bytes per chunk for the [correct, skipped] counts; the chunk's own slot is `out`. */
  out: number;
}

const cgArgs = (a: SimdCGArgs, start: number, end: number): number[] => [
  start,
  end,
  a.ptr,
  a.idx,
  a.conf,
  a.y,
  a.x,
  a.r,
  a.p,
  a.ap,
  a.rs,
  a.dimBytes,
];

export const KERNELS = {
  cgInit: (a: CGArrays, start: number, end: number): null => (cgInit(a, start, end), null),
  cgStep: (a: CGArrays, start: number, end: number): null => (cgStep(a, start, end), null),
  bpr: (a: BprArrays, start: number, end: number): BprChunkResult => bprChunk(a, start, end),
  simdCgInit: (a: SimdCGArgs, start: number, end: number): null => {
    simdInstance(a.id, a.module, a.memory).cgInit(...cgArgs(a, start, end));
    return null;
  },
  simdCgStep: (a: SimdCGArgs, start: number, end: number): null => {
    simdInstance(a.id, a.module, a.memory).cgStep(...cgArgs(a, start, end));
    return null;
  },
  simdBpr: (a: SimdBprArgs, start: number, end: number): BprChunkResult => {
    const k = simdInstance(a.id, a.module, a.memory);
    const count = end - start;
    k.bpr(
      a.ptr,
      a.idx,
      a.rowOf,
      a.weight,
      a.P,
      a.Q,
      a.bias,
      a.nnz,
      a.numItems,
      a.dimBytes,
      a.lr,
      1 - a.lr * a.reg,
      a.popular,
      a.verify ? 1 : 0,
      a.seed,
      count,
      a.out,
    );
    const res = new Int32Array(a.memory.buffer, a.out, 2);
    return { samples: count, correct: res[0], skipped: res[1] };
  },
};

export type KernelName = keyof typeof KERNELS;
export type KernelArgs<N extends KernelName> = Parameters<(typeof KERNELS)[N]>[0];
export type KernelResult<N extends KernelName> = ReturnType<(typeof KERNELS)[N]>;
