/**
 * Fallback and forcing. Runs in its own file: a failed wasm initialisation cannot be retried in the same process.
 */
import { BackendUnavailableError, getTf, selectBackend } from '../../models/backend';

// Each test sets the switch itself; an operator's RECFORGE_TFJS_NODE from outside is put back afterwards.
const outerSwitch = process.env.RECFORGE_TFJS_NODE;
beforeEach(() => {
  delete process.env.RECFORGE_TFJS_NODE;
});
afterAll(() => {
  if (outerSwitch === undefined) delete process.env.RECFORGE_TFJS_NODE;
  else process.env.RECFORGE_TFJS_NODE = outerSwitch;
});

test('forcing an unavailable backend fails with the reason', async () => {
  // tfjs-node-gpu is never installed here (its install needs a CUDA libtensorflow download).
  const err = await selectBackend('tensorflow-gpu').catch((e: unknown) => e);
  expect(err).toBeInstanceOf(BackendUnavailableError);
  expect((err as Error).message).toMatch(
    /'tensorflow-gpu' is unavailable: tensorflow-gpu: Cannot find module '@tensorflow\/tfjs-node-gpu'/,
  );
  expect((err as BackendUnavailableError).tried).toHaveLength(1);
  // The operator's switch keeps libtensorflow out even where setup built it.
  process.env.RECFORGE_TFJS_NODE = 'off';
  await expect(selectBackend('tensorflow')).rejects.toThrow(/disabled by RECFORGE_TFJS_NODE=off/);
});

test('auto falls back to cpu when wasm cannot start, and says why', async () => {
  process.env.RECFORGE_TFJS_NODE = 'off';
  const sel = await selectBackend('auto', { wasmPaths: '/nonexistent-wasm-dir/' });
  expect(sel.name).toBe('cpu');
  expect(sel.backend).toBe('cpu');
  expect(getTf().getBackend()).toBe('cpu');
  expect(sel.tried.find((t) => t.name === 'tensorflow')?.error).toMatch(/RECFORGE_TFJS_NODE=off/);
  const wasm = sel.tried.find((t) => t.name === 'wasm');
  expect(wasm?.ok).toBe(false);
  expect(wasm?.error).toMatch(/wasm binary not found/);
  // The cpu backend computes, including gradients through gather (ported gradients + replaced kernels).
  const tf = getTf();
  const table = tf.tensor2d([1, 2, 3, 4, 5, 6], [3, 2]);
  const g = tf.grad((t: import('@tensorflow/tfjs-core').Tensor) =>
    tf.sum(tf.gather(t, tf.tensor1d([2, 2, 0], 'int32'))),
  )(table);
  expect(Array.from(g.dataSync())).toEqual([1, 1, 0, 0, 2, 2]);
});

test('forcing cpu works', async () => {
  const sel = await selectBackend('cpu');
  expect(sel).toMatchObject({ name: 'cpu', backend: 'cpu', device: 'cpu (js)' });
  expect(sel.tried).toEqual([expect.objectContaining({ name: 'cpu', ok: true })]);
});
