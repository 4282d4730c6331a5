/**
 * Kernels that embedding training needs but a backend lacks (or implements unusably slowly).
 *
 * - wasm: tfjs-backend-wasm 4.22 has no UnsortedSegmentSum. tf.gather's gradient (GatherV2_grad) is
 *   unsortedSegmentSum(dy, indices, numRows), so without it no embedding can be trained on wasm. This is the only
 *   kernel missing on wasm among everything models/ uses (checked against tf.getKernelsForBackend('cpu')).
 * - cpu: tfjs-backend-cpu's UnsortedSegmentSum loops `for segment in 0..numSegments: sum(x * (ids == segment))`,
 *   i.e. O(numSegments * N * D); for a 10k-row table that is 10k full passes per step. We replace it with the same
 *   O(N * D) scatter-add (results are identical up to float summation order, which is the same index order here).
 *
 * - GatherV2 (wasm and cpu): both exist but copy element by element through generic index arithmetic; measured on
 *   wasm, gathering 8192 rows of 64 floats took ~30 ms (~35 ns/element) and was 40% of a BPR step. The replacement
 *   copies whole rows (TypedArray.set), ~1 ms for the same gather. Cases it does not cover (batchDims > 0, other
 *   dtypes) are forwarded to the backend's original kernel.
 *
 * Both run in JS over the backend's buffers. They are memory-bound and touch each element once, so JS is not a
 * bottleneck here (unlike matmul, which stays in the backend).
 */
import type * as tfc from '@tensorflow/tfjs-core';

type Tf = typeof tfc;
type TypedArray = Float32Array | Int32Array | Uint8Array;

/** The subset of a backend we touch; tfjs types kernel backends as `{}`, so we narrow by capability. */
interface ReadableBackend {
  readSync(dataId: object): ArrayLike<number>;
}
interface WasmLikeBackend extends ReadableBackend {
  makeOutput(shape: number[], dtype: tfc.DataType): tfc.TensorInfo;
  typedArrayFromHeap(info: tfc.TensorInfo): TypedArray;
}
interface CpuLikeBackend extends ReadableBackend {
  makeTensorInfo(shape: number[], dtype: tfc.DataType, values: TypedArray): tfc.TensorInfo;
}

function isWasmLike(b: object): b is WasmLikeBackend {
  return typeof (b as Partial<WasmLikeBackend>).typedArrayFromHeap === 'function';
}

/**
 * out[segmentIds[i], ...] += x[i, ...]. segmentIds may have any rank r <= rank(x); the leading r dims of x are
 * flattened and matched element-wise with the ids (TF semantics). Ids outside [0, numSegments) are dropped, as in TF.
 */
export function scatterAddRows(
  x: ArrayLike<number>,
  ids: ArrayLike<number>,
  numSegments: number,
  rowSize: number,
  out: Float32Array | Int32Array,
): void {
  out.fill(0);
  const n = ids.length;
  for (let i = 0; i < n; i++) {
    const s = ids[i];
    if (s < 0 || s >= numSegments) continue;
    const src = i * rowSize;
    const dst = s * rowSize;
    for (let k = 0; k < rowSize; k++) out[dst + k] += x[src + k];
  }
}

function segmentOutShape(xShape: number[], idsShape: number[], numSegments: number): number[] {
  for (let i = 0; i < idsShape.length; i++) {
    if (xShape[i] !== idsShape[i]) {
      throw new Error(
        `UnsortedSegmentSum: segmentIds shape [${idsShape}] must be a prefix of x shape [${xShape}]`,
      );
    }
  }
  return [numSegments, ...xShape.slice(idsShape.length)];
}

function unsortedSegmentSumKernel(args: {
  inputs: tfc.NamedTensorInfoMap;
  backend: object;
  attrs?: tfc.NamedAttrMap;
}): tfc.TensorInfo {
  const x = args.inputs['x'] as tfc.TensorInfo;
  const segmentIds = args.inputs['segmentIds'] as tfc.TensorInfo;
  const numSegments = Number((args.attrs as { numSegments: number }).numSegments);
  if (x.dtype !== 'float32' && x.dtype !== 'int32') {
    throw new Error(`UnsortedSegmentSum: dtype ${x.dtype} not supported`);
  }
  const outShape = segmentOutShape(x.shape, segmentIds.shape, numSegments);
  const rowSize = outShape.slice(1).reduce((a, b) => a * b, 1);
  const backend = args.backend;
  if (isWasmLike(backend)) {
    // Allocate first: allocation may grow the wasm heap, which detaches earlier views of it.
    const outInfo = backend.makeOutput(outShape, x.dtype);
    const out = backend.typedArrayFromHeap(outInfo) as Float32Array | Int32Array;
    const xs = backend.typedArrayFromHeap(x);
    // segmentIds arrive as int32 from the op; a float tensor would still be read correctly via its heap view.
    const ids = backend.typedArrayFromHeap(segmentIds);
    scatterAddRows(xs, ids, numSegments, rowSize, out);
    return outInfo;
  }
  const cpu = backend as CpuLikeBackend;
  const xs = cpu.readSync(x.dataId);
  const ids = cpu.readSync(segmentIds.dataId);
  const size = numSegments * rowSize;
  const out = x.dtype === 'int32' ? new Int32Array(size) : new Float32Array(size);
  scatterAddRows(xs, ids, numSegments, rowSize, out);
  return cpu.makeTensorInfo(outShape, x.dtype, out);
}

/** out[o, k, :] = x[o, indices[k], :] with o over x.shape[:axis]; indices are checked like the upstream kernels. */
export function gatherAxis(
  x: TypedArray,
  indices: ArrayLike<number>,
  outerSize: number,
  axisDim: number,
  innerSize: number,
  out: TypedArray,
): void {
  const n = indices.length;
  for (let k = 0; k < n; k++) {
    const idx = indices[k];
    if (idx < 0 || idx >= axisDim || !Number.isInteger(idx)) {
      throw new Error(`GatherV2: the index value ${idx} is not in [0, ${axisDim - 1}]`);
    }
  }
  for (let o = 0; o < outerSize; o++) {
    const srcBase = o * axisDim * innerSize;
    const dstBase = o * n * innerSize;
    if (innerSize === 1) {
      for (let k = 0; k < n; k++) out[dstBase + k] = x[srcBase + indices[k]];
      continue;
    }
    for (let k = 0; k < n; k++) {
      const src = srcBase + indices[k] * innerSize;
      out.set(x.subarray(src, src + innerSize), dstBase + k * innerSize);
    }
  }
}

const originalGather = new Map<string, tfc.KernelFunc>();

function makeGatherKernel(backendName: string): tfc.KernelFunc {
  const kernel = (args: { inputs: tfc.NamedTensorInfoMap; backend: object; attrs?: tfc.NamedAttrMap }) => {
    const x = args.inputs['x'] as tfc.TensorInfo;
    const indices = args.inputs['indices'] as tfc.TensorInfo;
    const attrs = (args.attrs ?? {}) as { axis?: number; batchDims?: number };
    const batchDims = attrs.batchDims ?? 0;
    const fallback = originalGather.get(backendName);
    if (batchDims !== 0 || (x.dtype !== 'float32' && x.dtype !== 'int32')) {
      if (!fallback) throw new Error(`GatherV2: no fallback kernel for ${backendName}`);
      return fallback(args as unknown as Parameters<tfc.KernelFunc>[0]);
    }
    const rank = x.shape.length;
    const axis = (attrs.axis ?? 0) < 0 ? (attrs.axis ?? 0) + rank : (attrs.axis ?? 0);
    const outShape = [...x.shape.slice(0, axis), ...indices.shape, ...x.shape.slice(axis + 1)];
    const outerSize = x.shape.slice(0, axis).reduce((a, b) => a * b, 1);
    const innerSize = x.shape.slice(axis + 1).reduce((a, b) => a * b, 1);
    const backend = args.backend;
    if (isWasmLike(backend)) {
      const outInfo = backend.makeOutput(outShape, x.dtype);
      const out = backend.typedArrayFromHeap(outInfo);
      gatherAxis(
        backend.typedArrayFromHeap(x),
        backend.typedArrayFromHeap(indices),
        outerSize,
        x.shape[axis],
        innerSize,
        out,
      );
      return outInfo;
    }
    const cpu = backend as CpuLikeBackend;
    const xs = cpu.readSync(x.dataId) as TypedArray;
    const size = outShape.reduce((a, b) => a * b, 1);
    const out = x.dtype === 'int32' ? new Int32Array(size) : new Float32Array(size);
    gatherAxis(xs, cpu.readSync(indices.dataId), outerSize, x.shape[axis], innerSize, out);
    return cpu.makeTensorInfo(outShape, x.dtype, out);
  };
  return kernel as unknown as tfc.KernelFunc;
}

const USS = 'UnsortedSegmentSum';
const GATHER = 'GatherV2';
const ussKernel = unsortedSegmentSumKernel as unknown as tfc.KernelFunc;
const gatherKernels = new Map<string, tfc.KernelFunc>();

/**
 * Registers what `backendName` needs: on 'wasm' the missing UnsortedSegmentSum, on 'cpu' a replacement for the slow
 * one, and on both the row-copy GatherV2. Other backends (tfjs-node 'tensorflow') have native kernels and are left
 * alone. Idempotent. Kernels are keyed by backend *name*, so this works before or after the backend is initialised.
 * Returns what it (re)registered.
 */
export function registerTrainingKernels(tf: Tf, backendName: string): string[] {
  if (backendName !== 'wasm' && backendName !== 'cpu') return [];
  const done: string[] = [];
  const uss = tf.getKernel(USS, backendName);
  if (uss?.kernelFunc !== ussKernel) {
    // unregister first: registerKernel on an existing key only warns and overwrites, which is noisy.
    if (uss) tf.unregisterKernel(USS, backendName);
    tf.registerKernel({ kernelName: USS, backendName, kernelFunc: ussKernel });
    done.push(`${USS}/${backendName}`);
  }
  const gather = tf.getKernel(GATHER, backendName);
  let fast = gatherKernels.get(backendName);
  if (!fast) {
    fast = makeGatherKernel(backendName);
    gatherKernels.set(backendName, fast);
  }
  if (gather && gather.kernelFunc !== fast) {
    originalGather.set(backendName, gather.kernelFunc);
    tf.unregisterKernel(GATHER, backendName);
    tf.registerKernel({ kernelName: GATHER, backendName, kernelFunc: fast });
    done.push(`${GATHER}/${backendName}`);
  }
  return done;
}

/** Restores the backends' own GatherV2 (used by tests to compare against upstream kernels). */
export function restoreOriginalGather(tf: Tf, backendName: string): void {
  const orig = originalGather.get(backendName);
  if (!orig) return;
  tf.unregisterKernel(GATHER, backendName);
  tf.registerKernel({ kernelName: GATHER, backendName, kernelFunc: orig });
}
