/**
 * The typed-array kernels worker threads can run (kernel-pool.ts), by name. Pure: no tfjs, no I/O, so a worker
 * loads only these few modules.
 */
import { bprChunk, type BprArrays, type BprChunkResult } from './bpr-kernel';
import { cgInit, cgStep, type CGArrays } from './ials-kernels';

export const KERNELS = {
  cgInit: (a: CGArrays, start: number, end: number): null => (cgInit(a, start, end), null),
  cgStep: (a: CGArrays, start: number, end: number): null => (cgStep(a, start, end), null),
  bpr: (a: BprArrays, start: number, end: number): BprChunkResult => bprChunk(a, start, end),
};

export type KernelName = keyof typeof KERNELS;
export type KernelArgs<N extends KernelName> = Parameters<(typeof KERNELS)[N]>[0];
export type KernelResult<N extends KernelName> = ReturnType<(typeof KERNELS)[N]>;
