import { selectBackend } from '../../models/backend';
import { trainBPR } from '../../models/bpr-fast';
import { trainIALS } from '../../models/ials';
import { cgInit, cgStep, type CGArrays } from '../../models/ials-kernels';
import { KERNELS } from '../../models/kernels';
import { recallAtK } from '../../models/metrics';
import { Rng } from '../../models/rng';
import { SimdArena } from '../../models/simd-arena';
import { simdInstance, simdSupported } from '../../models/simd-kernels';
import { buildCSR } from '../../models/sparse';
import { encode } from '../../models/wasm-asm';
import { compileKernelWorker } from '../helpers/compile-worker';
import { data, ds, seen } from '../helpers/planted';

let worker: string;
beforeAll(async () => {
  await selectBackend('wasm');
  worker = compileKernelWorker();
});

test('the assembler encodes LEB128 immediates and refuses unknown instructions', () => {
  expect(encode(['i32.const', 624485])).toEqual([0x41, 0xe5, 0x8e, 0x26]);
  expect(encode(['i32.const', -123456])).toEqual([0x41, 0xc0, 0xbb, 0x78]);
  expect(encode(['local.get', 300, 'f32x4.add'])).toEqual([0x20, 0xac, 0x02, 0xfd, 0xe4, 0x01]);
  expect(encode(['v128.load', 16])).toEqual([0xfd, 0x00, 0x04, 0x10]);
  expect(() => encode(['f32.frobnicate'])).toThrow('unknown instruction');
  expect(() => encode(['local.get'])).toThrow('numeric immediate');
});

test('the runtime supports the SIMD module; its exp is within 2e-6 of Math.exp', () => {
  expect(simdSupported()).toBe(true);
  const arena = new SimdArena(1024);
  const k = simdInstance(arena.id, arena.module, arena.memory);
  for (let x = -40; x <= 40; x += 0.37) expect(Math.abs(k.exp(x) / Math.exp(x) - 1)).toBeLessThan(2e-6);
  expect(k.exp(-200)).toBeGreaterThan(0); // clamped, not a denormal or zero
});

test('SIMD CG steps match the typed-array kernels (same arithmetic, float32 summation order aside)', () => {
  const rng = new Rng(3);
  const rows = 40;
  const cols = 30;
  const dim = 16;
  const u: number[] = [];
  const i: number[] = [];
  for (let k = 0; k < 300; k++) {
    u.push(rng.nextInt(rows));
    i.push(rng.nextInt(cols));
  }
  const m = buildCSR(Int32Array.from(u), Int32Array.from(i), undefined, rows, cols, { transform: 'linear' });
  for (let q = 0; q < m.val.length; q++) m.val[q] = 1 + 5 * m.val[q];
  const y = Float32Array.from({ length: cols * dim }, () => rng.nextFloat() - 0.5);
  const x0 = Float32Array.from({ length: rows * dim }, () => rng.nextFloat() - 0.5);
  const g = Float32Array.from({ length: rows * dim }, () => rng.nextFloat()); // stands in for G v
  const js: CGArrays = {
    ptr: m.ptr,
    idx: m.idx,
    conf: m.val,
    y,
    x: x0.slice(),
    r: new Float32Array(rows * dim),
    p: new Float32Array(rows * dim),
    ap: g.slice(),
    rs: new Float64Array(rows),
    dim,
  };
  const arena = new SimdArena(1 << 20);
  const a = {
    ptr: arena.i32(m.ptr.length, m.ptr),
    idx: arena.i32(m.idx.length, m.idx),
    conf: arena.f32(m.val.length, m.val),
    y: arena.f32(y.length, y),
    x: arena.f32(x0.length, x0),
    r: arena.f32(rows * dim),
    p: arena.f32(rows * dim),
    ap: arena.f32(rows * dim, g),
    rs: arena.f64(rows),
  };
  const simd = {
    id: arena.id,
    module: arena.module,
    memory: arena.memory,
    ...Object.fromEntries(Object.entries(a).map(([k, v]) => [k, v.off])),
    dimBytes: dim * 4,
  } as Parameters<typeof KERNELS.simdCgInit>[0];
  const close = (got: ArrayLike<number>, want: ArrayLike<number>) => {
    for (let k = 0; k < want.length; k++)
      expect(Math.abs(got[k] - want[k])).toBeLessThan(1e-4 * (1 + Math.abs(want[k])));
  };
  cgInit(js, 0, rows);
  KERNELS.simdCgInit(simd, 0, 17);
  KERNELS.simdCgInit(simd, 17, rows);
  close(a.r.view, js.r);
  close(a.rs.view, js.rs);
  for (let step = 0; step < 3; step++) {
    js.ap.set(g); // the dense half would put G p here; any values exercise the same code
    a.ap.view.set(g);
    cgStep(js, 0, rows);
    KERNELS.simdCgStep(simd, 0, rows);
    close(a.x.view, js.x);
    close(a.p.view, js.p);
  }
});

test('a SIMD BPR sample updates exactly as the hand-derived gradient says (with bias and weight)', () => {
  const D = 8;
  const arena = new SimdArena(4096);
  const p0 = Array.from({ length: D }, (_, d) => 0.1 * (d - 3));
  const q0 = Array.from({ length: 2 * D }, (_, d) => 0.05 * ((d * 7) % 5) - 0.1);
  for (let seed = 1; seed < 50; seed++) {
    const P = arena.f32(D, p0);
    const Q = arena.f32(2 * D, q0);
    const bias = arena.f32(2, [0.05, -0.05]);
    const out = arena.i32(2);
    const args = {
      id: arena.id,
      module: arena.module,
      memory: arena.memory,
      ptr: arena.i32(2, [0, 1]).off,
      idx: arena.i32(1, [0]).off,
      rowOf: arena.i32(1, [0]).off,
      weight: arena.f32(1, [2]).off,
      P: P.off,
      Q: Q.off,
      bias: bias.off,
      nnz: 1,
      numItems: 2,
      dimBytes: D * 4,
      lr: 0.1,
      reg: 0.01,
      popular: 0,
      verify: true,
      seed,
      out: out.off,
    };
    const r = KERNELS.simdBpr(args, 0, 1);
    if (r.skipped === 1) continue;
    const x = p0.reduce((s, v, d) => s + v * (q0[d] - q0[D + d]), 0) + 0.1;
    const step = (0.1 * 2) / (1 + Math.exp(x));
    const decay = 1 - 0.1 * 0.01;
    for (let d = 0; d < D; d++) {
      expect(P.view[d]).toBeCloseTo(decay * p0[d] + step * (q0[d] - q0[D + d]), 5);
      expect(Q.view[d]).toBeCloseTo(decay * q0[d] + step * p0[d], 5);
      expect(Q.view[D + d]).toBeCloseTo(decay * q0[D + d] - step * p0[d], 5);
    }
    expect(bias.view[0]).toBeCloseTo(decay * 0.05 + step, 5);
    expect(bias.view[1]).toBeCloseTo(-decay * 0.05 - step, 5);
    expect(r).toEqual({ samples: 1, skipped: 0, correct: x > 0 ? 1 : 0 });
    return;
  }
  throw new Error('no seed drew the negative item');
});

test('SIMD kernels on worker threads: iALS bit-identical to one thread, BPR learns the planted clusters', async () => {
  const cfg = { factors: 16, iterations: 3, seed: 4, kernel: 'simd' as const };
  const inline = await trainIALS(data, { ...cfg, threads: 0 });
  const threaded = await trainIALS(data, { ...cfg, threads: 2 }, {}, { workerScript: worker });
  expect(Array.from(threaded.model.userFactors)).toEqual(Array.from(inline.model.userFactors));
  const js = await trainIALS(data, { ...cfg, threads: 0, kernel: 'js' });
  for (let k = 0; k < js.model.itemFactors.length; k++)
    expect(Math.abs(inline.model.itemFactors[k] - js.model.itemFactors[k])).toBeLessThan(1e-3);
  const bpr = await trainBPR(
    data,
    { factors: 16, epochs: 20, lr: 0.05, reg: 0.002, threads: 2, kernel: 'simd' },
    {},
    { workerScript: worker, stepSamples: 1000 },
  );
  expect(await recallAtK(bpr.model, ds.test, 10, seen)).toBeGreaterThan(0.25);
  await expect(trainBPR(data, { factors: 12, epochs: 1, kernel: 'simd' })).rejects.toThrow('% 8');
});
