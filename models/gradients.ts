/**
 * Gradient definitions for the kernels models/ differentiates through.
 *
 * Why this exists: '@tensorflow/tfjs-core' resolves in Node to dist/tf-core.node.js, which registers *no* gradients
 * (the union package '@tensorflow/tfjs' imports the ESM-only dist/register_all_gradients.js, which CommonJS cannot
 * load). With tfjs-core + a backend alone, tf.grad fails with "gradient function not found for Add". The configs
 * below are ports of tfjs-core 4.22 src/gradients/*_grad.ts (Apache-2.0) for the kernels used by mf.ts and
 * two-tower.ts. Registration is skipped for kernels that already have a gradient (e.g. when tfjs-node, which ships
 * the full tfjs, provides them), so we never shadow the upstream definitions.
 */
import type * as tfc from '@tensorflow/tfjs-core';

type Tf = typeof tfc;
type T = tfc.Tensor;
type Attrs = tfc.NamedAttrMap;
type GradMap = Record<string, () => T>;

function reduceTo(tf: Tf, g: T, shape: number[], outShape: number[]): T {
  const axes = tf.backend_util.getReductionAxes(shape, outShape);
  const r = axes.length > 0 ? tf.sum(g, axes) : g;
  return tf.reshape(r, shape);
}

/**
 * dy reshaped to keep-dims shape and broadcast to x's shape. Upstream multiplies by tf.ones(x.shape), which fills a
 * fresh JS array on every call (~8 ms per BPR step); tf.tile would avoid that but wasm's Tile walks element
 * coordinates one by one (~65 ms per step). A broadcasting multiply by a backend-side Fill is cheap on every backend.
 */
function broadcastBack(tf: Tf, dy: T, keepShape: number[], shape: number[]): T {
  const r = tf.reshape(dy, keepShape);
  if (keepShape.every((d, i) => d === shape[i])) return r;
  return tf.mul(r, tf.fill(shape, 1, 'float32'));
}

/** Swaps the last two axes (matrix transpose, batched for rank > 2). */
function swapLastTwo(tf: Tf, x: T): T {
  const r = x.rank;
  if (r < 2) return x;
  const perm = x.shape.map((_, i) => i);
  perm[r - 1] = r - 2;
  perm[r - 2] = r - 1;
  return tf.transpose(x, perm);
}

function binaryShapes(tf: Tf, a: T, b: T): number[] {
  return tf.broadcast_util.assertAndGetBroadcastShape(a.shape, b.shape);
}

function configs(tf: Tf): tfc.GradConfig[] {
  const f32 = (x: T): T => tf.cast(x, 'float32');
  return [
    {
      kernelName: 'Add',
      inputsToSave: ['a', 'b'],
      gradFunc: (dy: T | T[], saved: T[]): GradMap => {
        const [a, b] = saved;
        const out = binaryShapes(tf, a, b);
        return { a: () => reduceTo(tf, dy as T, a.shape, out), b: () => reduceTo(tf, dy as T, b.shape, out) };
      },
    },
    {
      kernelName: 'AddN',
      saveAllInputs: true,
      gradFunc: (dy: T | T[], saved: T[]): GradMap => {
        const ders: GradMap = {};
        saved.forEach((_, i) => (ders[i] = () => (dy as T).clone()));
        return ders;
      },
    },
    {
      kernelName: 'Sub',
      inputsToSave: ['a', 'b'],
      gradFunc: (dy: T | T[], saved: T[]): GradMap => {
        const [a, b] = saved;
        const out = binaryShapes(tf, a, b);
        return {
          a: () => reduceTo(tf, dy as T, a.shape, out),
          b: () => tf.neg(reduceTo(tf, dy as T, b.shape, out)),
        };
      },
    },
    {
      kernelName: 'Multiply',
      inputsToSave: ['a', 'b'],
      gradFunc: (dy: T | T[], saved: T[]): GradMap => {
        const [a, b] = saved;
        const out = binaryShapes(tf, a, b);
        return {
          a: () => reduceTo(tf, tf.mul(dy as T, f32(b)), a.shape, out),
          b: () => reduceTo(tf, tf.mul(dy as T, f32(a)), b.shape, out),
        };
      },
    },
    {
      kernelName: 'RealDiv',
      inputsToSave: ['a', 'b'],
      gradFunc: (dy: T | T[], saved: T[]): GradMap => {
        const [a, b] = saved;
        const out = binaryShapes(tf, a, b);
        return {
          a: () => reduceTo(tf, tf.div(dy as T, f32(b)), a.shape, out),
          b: () => {
            const r = reduceTo(tf, tf.mul(dy as T, f32(a)), b.shape, out);
            return tf.neg(tf.div(r, f32(tf.square(b))));
          },
        };
      },
    },
    {
      kernelName: 'Maximum',
      inputsToSave: ['a', 'b'],
      gradFunc: (dy: T | T[], saved: T[]): GradMap => {
        const [a, b] = saved;
        const out = binaryShapes(tf, a, b);
        return {
          a: () => reduceTo(tf, tf.mul(dy as T, f32(tf.greaterEqual(a, b))), a.shape, out),
          b: () => reduceTo(tf, tf.mul(dy as T, f32(tf.less(a, b))), b.shape, out),
        };
      },
    },
    { kernelName: 'Neg', gradFunc: (dy: T | T[]): GradMap => ({ x: () => tf.neg(dy as T) }) },
    { kernelName: 'Identity', gradFunc: (dy: T | T[]): GradMap => ({ x: () => f32(dy as T) }) },
    { kernelName: 'Cast', gradFunc: (dy: T | T[]): GradMap => ({ x: () => (dy as T).clone() }) },
    {
      kernelName: 'Square',
      inputsToSave: ['x'],
      gradFunc: (dy: T | T[], saved: T[]): GradMap => ({
        x: () => tf.mul(dy as T, tf.mul(f32(saved[0]), 2)),
      }),
    },
    {
      kernelName: 'Sqrt',
      inputsToSave: ['x'],
      gradFunc: (dy: T | T[], saved: T[]): GradMap => ({
        x: () => tf.div(dy as T, tf.mul(tf.sqrt(f32(saved[0])), 2)),
      }),
    },
    {
      kernelName: 'Rsqrt',
      inputsToSave: ['x'],
      gradFunc: (dy: T | T[], saved: T[]): GradMap => ({
        x: () => tf.neg(tf.div(dy as T, tf.mul(tf.pow(saved[0], 1.5), 2))),
      }),
    },
    {
      kernelName: 'Exp',
      outputsToSave: [true],
      gradFunc: (dy: T | T[], saved: T[]): GradMap => ({ x: () => tf.mul(dy as T, saved[0]) }),
    },
    {
      kernelName: 'Log',
      inputsToSave: ['x'],
      gradFunc: (dy: T | T[], saved: T[]): GradMap => ({ x: () => tf.div(dy as T, f32(saved[0])) }),
    },
    {
      kernelName: 'Softplus',
      inputsToSave: ['x'],
      gradFunc: (dy: T | T[], saved: T[]): GradMap => ({ x: () => tf.mul(dy as T, tf.sigmoid(saved[0])) }),
    },
    {
      kernelName: 'Sigmoid',
      outputsToSave: [true],
      gradFunc: (dy: T | T[], saved: T[]): GradMap => {
        const [y] = saved;
        return { x: () => tf.mul(dy as T, tf.mul(y, tf.sub(tf.scalar(1), y))) };
      },
    },
    {
      kernelName: 'Tanh',
      outputsToSave: [true],
      gradFunc: (dy: T | T[], saved: T[]): GradMap => {
        const [y] = saved;
        return { x: () => tf.mul(tf.sub(tf.scalar(1), tf.square(y)), dy as T) };
      },
    },
    {
      kernelName: 'Relu',
      inputsToSave: ['x'],
      gradFunc: (dy: T | T[], saved: T[]): GradMap => ({ x: () => tf.mul(dy as T, f32(tf.step(saved[0]))) }),
    },
    {
      kernelName: 'Sum',
      inputsToSave: ['x'],
      gradFunc: (dy: T | T[], saved: T[], attrs: Attrs): GradMap => {
        const [x] = saved;
        const expanded = x.shape.slice();
        tf.util
          .parseAxisParam(attrs['axis'] as number | number[], x.shape)
          .forEach((ax) => (expanded[ax] = 1));
        return { x: () => broadcastBack(tf, dy as T, expanded, x.shape) };
      },
    },
    {
      kernelName: 'Mean',
      inputsToSave: ['x'],
      gradFunc: (dy: T | T[], saved: T[], attrs: Attrs): GradMap => {
        const [x] = saved;
        const axes = tf.util.parseAxisParam(attrs['axis'] as number | number[], x.shape);
        const reduceSize = tf.util.sizeFromShape(tf.backend_util.computeOutAndReduceShapes(x.shape, axes)[1]);
        const expanded = x.shape.slice();
        axes.forEach((ax) => (expanded[ax] = 1));
        return { x: () => tf.div(broadcastBack(tf, dy as T, expanded, x.shape), reduceSize) };
      },
    },
    {
      kernelName: 'Max',
      inputsToSave: ['x'],
      outputsToSave: [true],
      gradFunc: (dy: T | T[], saved: T[], attrs: Attrs): GradMap => {
        const [x, y] = saved;
        const axes = tf.util.parseAxisParam(attrs['reductionIndices'] as number | number[], x.shape);
        // y/dy lack the reduced axes unless keepDims was set; restore them so they broadcast against x.
        const keepY =
          y.rank < x.rank ? tf.reshape(y, tf.backend_util.expandShapeToKeepDim(y.shape, axes)) : y;
        const d = dy as T;
        const keepDy =
          d.rank < x.rank ? tf.reshape(d, tf.backend_util.expandShapeToKeepDim(d.shape, axes)) : d;
        // Broadcast y with an add (fast on wasm) before comparing: wasm's broadcasting Equal walks coordinates one
        // element at a time (~90 ms for 8192x64 vs ~3 ms same-shape).
        const yFull = tf.add(tf.mul(x, 0), keepY);
        return { x: () => tf.mul(keepDy, f32(tf.equal(x, yFull))) };
      },
    },
    {
      kernelName: 'BatchMatMul',
      inputsToSave: ['a', 'b'],
      gradFunc: (dy: T | T[], saved: T[], attrs: Attrs): GradMap => {
        // Same maths as upstream, but with explicit transposes instead of matMul's transpose flags: on tfjs-wasm a
        // flagged matmul measured 10-50x slower than transpose + plain matmul (e.g. 135 ms vs 3 ms for
        // [32,1024]^T x [1024,1024]).
        const [a, b] = saved;
        const d = dy as T;
        const t = (x: T): T => swapLastTwo(tf, x);
        const mm = (x: T, y: T): T => tf.matMul(x, y);
        const ta = attrs['transposeA'] === true;
        const tb = attrs['transposeB'] === true;
        if (!ta && !tb) return { a: () => mm(d, t(b)), b: () => mm(t(a), d) };
        if (!ta && tb) return { a: () => mm(d, b), b: () => mm(t(d), a) };
        if (ta && !tb) return { a: () => mm(b, t(d)), b: () => mm(a, d) };
        return { a: () => mm(t(b), t(d)), b: () => mm(t(d), t(a)) };
      },
    },
    {
      kernelName: 'Reshape',
      inputsToSave: ['x'],
      gradFunc: (dy: T | T[], saved: T[]): GradMap => ({ x: () => tf.reshape(dy as T, saved[0].shape) }),
    },
    {
      kernelName: 'ExpandDims',
      inputsToSave: ['input'],
      gradFunc: (dy: T | T[], saved: T[]): GradMap => ({ input: () => tf.reshape(dy as T, saved[0].shape) }),
    },
    {
      kernelName: 'Transpose',
      gradFunc: (dy: T | T[], _saved: T[], attrs: Attrs): GradMap => {
        const undo = tf.backend_util.getUndoAxesPermutation(attrs['perm'] as number[]);
        return { x: () => tf.transpose(dy as T, undo) };
      },
    },
    {
      kernelName: 'Concat',
      saveAllInputs: true,
      gradFunc: (dy: T | T[], saved: T[], attrs: Attrs): GradMap => {
        const axis = tf.util.parseAxisParam(attrs['axis'] as number, saved[0].shape)[0];
        const parts = tf.split(
          dy as T,
          saved.map((t) => t.shape[axis]),
          axis,
        );
        const ders: GradMap = {};
        parts.forEach((p, i) => (ders[i] = () => p));
        return ders;
      },
    },
    {
      kernelName: 'Slice',
      inputsToSave: ['x'],
      gradFunc: (dy: T | T[], saved: T[], attrs: Attrs): GradMap => {
        const [x] = saved;
        const [begin, size] = tf.slice_util.parseSliceParams(
          x,
          attrs['begin'] as number | number[],
          attrs['size'] as number | number[],
        );
        const pads: Array<[number, number]> = x.shape.map((d, i) => [begin[i], d - begin[i] - size[i]]);
        return { x: () => tf.pad(dy as T, pads) };
      },
    },
    {
      kernelName: 'GatherV2',
      inputsToSave: ['x', 'indices'],
      gradFunc: (dy: T | T[], saved: T[], attrs: Attrs): GradMap => {
        const [x, indices] = saved;
        if ((attrs['batchDims'] as number | undefined) ?? 0)
          throw new Error('GatherV2 grad: batchDims unsupported');
        const axis = tf.util.parseAxisParam(attrs['axis'] as number, x.shape)[0];
        return {
          x: () => {
            // dy has shape x.shape[:axis] + indices.shape + x.shape[axis+1:]; move the index axis to the front,
            // scatter-add rows into x.shape[axis] segments, and move it back.
            const outer = x.shape.slice(0, axis);
            const inner = x.shape.slice(axis + 1);
            const values = tf.reshape(dy as T, [...outer, indices.size, ...inner]);
            const perm = [
              outer.length,
              ...outer.map((_, i) => i),
              ...inner.map((_, i) => outer.length + 1 + i),
            ];
            const moved = perm.every((p, i) => p === i) ? values : tf.transpose(values, perm);
            const summed = tf.unsortedSegmentSum(
              moved,
              tf.reshape(indices, [indices.size]) as tfc.Tensor1D,
              x.shape[axis],
            );
            const undo = tf.backend_util.getUndoAxesPermutation(perm);
            return perm.every((p, i) => p === i) ? summed : tf.transpose(summed, undo);
          },
          indices: () => indices,
        };
      },
    },
  ];
}

/** Registers the gradients above for kernels that have none. Returns the kernel names it registered. */
export function registerMissingGradients(tf: Tf): string[] {
  const added: string[] = [];
  for (const cfg of configs(tf)) {
    if (tf.getGradient(cfg.kernelName) === undefined) {
      tf.registerGradient(cfg);
      added.push(cfg.kernelName);
    }
  }
  return added;
}
