/**
 * WebAssembly SIMD (f32x4) versions of the hot loops of hogwild BPR (bpr-kernel.ts) and of iALS's CG solves
 * (ials-kernels.ts), assembled by wasm-asm.ts from simd-cg.ts and simd-bpr.ts. Same arithmetic as the JS kernels,
 * which stay the readable reference and the fallback. Measured in CPU time on 1M interactions, 64 factors: a CG
 * iteration 3.6x faster, a BPR epoch 1.7x (memory-bound: three random rows per sample).
 * Every array lives in one shared WebAssembly.Memory (simd-arena.ts), so worker threads instantiate this module
 * over the same memory and write the same factor tables. Requires dim % 8 === 0 and 16-byte aligned rows.
 *
 * Exports (all offsets are byte offsets into the memory):
 *   bpr(ptr, idx, rowOf, weight|0, P, Q, bias|0, nnz, numItems, dimBytes, lr, decay, popular, verify, seed, count, out)
 *     count samples; writes [correct, skipped] (i32) at out.
 *   cgInit / cgStep(start, end, ptr, idx, conf, y, x, r, p, ap, rs, dimBytes): rows [start, end).
 */
import { bpr } from './simd-bpr';
import { addSparse, cgInit, cgStep } from './simd-cg';
import { fn } from './simd-codegen';
import { buildModule } from './wasm-asm';

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
