/**
 * 'auto' on this machine: tfjs-node (libtensorflow from PyPI, built by `npm run setup`) when it loads, else wasm.
 * Its own file: which backends a process has initialised changes what later selections can do.
 */
import { getTf, selectBackend } from '../../models/backend';
import { tfjsNodeProbe, tfjsNodeRequired } from '../helpers/tfjs-node';

(tfjsNodeRequired ? test : test.skip)('tfjs-node loads wherever CI requires it', () => {
  expect(tfjsNodeProbe).toEqual({ ok: true, detail: expect.stringMatching(/libtensorflow 2\./) });
});

test('auto takes the first backend that starts and records why the earlier ones were skipped', async () => {
  const sel = await selectBackend('auto');
  expect(sel.tried[0]).toMatchObject({ name: 'tensorflow-gpu', ok: false });
  expect(sel.tried[0].error).toMatch(/tfjs-node-gpu|RECFORGE_TFJS_NODE=off/);
  if (tfjsNodeProbe.ok) {
    expect(sel).toMatchObject({ name: 'tensorflow', backend: 'tensorflow' });
    expect(sel.device).toMatch(/^cpu \(libtensorflow 2\.\d+\.\d+\)$/);
    expect(sel.tried.map((t) => [t.name, t.ok])).toEqual([
      ['tensorflow-gpu', false],
      ['tensorflow', true],
    ]);
    // The namespace models/ computes with is tfjs-node's, and it computes natively.
    const tf = getTf();
    expect(tf.getBackend()).toBe('tensorflow');
    expect(
      Array.from(tf.matMul(tf.tensor2d([1, 2], [1, 2]), tf.tensor2d([3, 4], [2, 1])).dataSync()),
    ).toEqual([11]);
  } else {
    expect(sel).toMatchObject({ name: 'wasm', backend: 'wasm' });
    expect(sel.tried.map((t) => [t.name, t.ok])).toEqual([
      ['tensorflow-gpu', false],
      ['tensorflow', false],
      ['wasm', true],
    ]);
    expect(sel.tried[1].error).toMatch(/tfjs-node|RECFORGE_TFJS_NODE=off/);
  }
});
