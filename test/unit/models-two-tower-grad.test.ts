/**
 * The loss's parts (models/two-tower/loss.ts) and the fused step's hand-derived gradients (pooling.ts, fused.ts,
 * fused-step.ts) against tfjs autograd through the towers and loss (autograd.ts): same batches, same random draws,
 * random weights, every branch of the loss on, on wasm, the plain-JS cpu backend and (where built) tfjs-node.
 */
import { selectBackend } from '../../models/backend';
import { Grad, ParamStore } from '../../models/params';
import { Rng } from '../../models/rng';
import {
  DEFAULT_TWO_TOWER_CONFIG,
  initTwoTower,
  TwoTowerConfig,
  TwoTowerData,
  twoTowerArchFor,
  twoTowerParamDefs,
} from '../../models/two-tower';
import {
  accidentalHitPairs,
  denseHitMask,
  itemCounts,
  logSamplingProbability,
  MASKED,
  samplingProbabilityCorrection,
} from '../../models/two-tower/loss';
import { InBatchSoftmaxStep, StepGradients } from '../../models/two-tower/train-step';
import { ds, plantedItems } from '../helpers/planted';
import { tfjsNodeProbe } from '../helpers/tfjs-node';

const n = ds.train.userIdx.length;
const data: TwoTowerData = {
  ...ds.train,
  weight: Float32Array.from({ length: n }, (_, k) => 1 + (k % 3)),
  timestamps: Float64Array.from({ length: n }, (_, k) => k * 60),
  numUsers: 300,
  numItems: 200,
  items: plantedItems(4),
};

test('loss parts: log q, sampling-probability correction, accidental hits', () => {
  const counts = itemCounts(Int32Array.from([0, 0, 2, 0]), 4);
  expect(Array.from(counts)).toEqual([3, 0, 1, 0]);
  const logQ = logSamplingProbability(counts, 4);
  expect(logQ[0]).toBeCloseTo(Math.log(3 / 4), 6);
  expect(logQ[1]).toBe(0); // never trained on: never a column
  const targets = Int32Array.from([2, 0, 2, 3, 2]);
  const off = samplingProbabilityCorrection(targets, logQ, 2, true);
  expect(off[1]).toBeCloseTo(-2 * Math.log(3 / 4), 6);
  expect(off[0]).toBeCloseTo(-2 * Math.log(1 / 4), 6);
  expect(Array.from(samplingProbabilityCorrection(targets, logQ, 2, false))).toEqual([0, 0, 0, 0, 0]);
  // Item 2 sits in rows 0, 2, 4: every ordered pair of distinct rows among them, never the diagonal.
  const pairs = accidentalHitPairs(targets) as Int32Array;
  const asSet = new Set<string>();
  for (let k = 0; k < pairs.length; k += 2) asSet.add(`${pairs[k]},${pairs[k + 1]}`);
  expect([...asSet].sort()).toEqual(['0,2', '0,4', '2,0', '2,4', '4,0', '4,2']);
  expect(accidentalHitPairs(Int32Array.from([1, 2, 3]))).toBeUndefined();
  const mask = denseHitMask(pairs, 5);
  expect(mask[0 * 5 + 2]).toBe(MASKED);
  expect(mask[0 * 5 + 0]).toBe(0);
  expect(mask[1 * 5 + 3]).toBe(0);
  expect(mask.filter((v) => v !== 0)).toHaveLength(6);
});

/** Two steps over identical random weights (separate copies), one per gradient method. */
function steps(cfg: TwoTowerConfig): Record<StepGradients, InBatchSoftmaxStep> {
  const arch = twoTowerArchFor(data, cfg);
  const init = initTwoTower(arch, 0.3, 9).weights;
  // Random, not freshly initialised, weights: a non-zero item bias and layer biases give every gradient a size.
  const rng = new Rng(5);
  for (const w of Object.values(init))
    for (let k = 0; k < w.data.length; k++) w.data[k] += 0.2 * (rng.nextFloat() - 0.5);
  const make = (g: StepGradients): InBatchSoftmaxStep => {
    const copy = Object.fromEntries(
      Object.entries(init).map(([k, v]) => [k, { shape: v.shape, data: v.data.slice() }]),
    );
    return new InBatchSoftmaxStep(
      data,
      cfg,
      arch,
      new ParamStore(twoTowerParamDefs(arch), copy),
      {},
      undefined,
      g,
    );
  };
  return { fused: make('fused'), autograd: make('autograd') };
}

/** Largest difference over all gradients, relative to the largest magnitude of the same parameter's gradient. */
function worstRelative(a: Map<string, Grad>, b: Map<string, Grad>): number {
  expect([...b.keys()].sort()).toEqual([...a.keys()].sort());
  let worst = 0;
  for (const [name, ga] of a) {
    const gb = b.get(name) as Grad;
    expect(gb.kind).toBe(ga.kind);
    if (ga.kind === 'sparse' && gb.kind === 'sparse')
      expect(Array.from(gb.rows)).toEqual(Array.from(ga.rows));
    expect(gb.values.length).toBe(ga.values.length);
    const scale = ga.values.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    expect(scale).toBeGreaterThan(1e-4); // every parameter really gets a gradient here
    for (let k = 0; k < ga.values.length; k++)
      worst = Math.max(worst, Math.abs(ga.values[k] - gb.values[k]) / scale);
  }
  return worst;
}

const variants: [string, Partial<TwoTowerConfig>][] = [
  [
    'every branch on',
    {
      itemBias: true,
      recentLength: 3,
      historyDecay: 0.8,
      userDropout: 0.2,
      l2: 0.01,
      logQScale: 1.3,
      historyGapSeconds: 120,
    },
  ],
  ['no bias, no recent pool, no logQ', { logQCorrection: false }],
];

// tfjs-node ('tensorflow') where `npm run setup` built it (models-tensorflow.test.ts says when it is skipped).
const backends = ['wasm', 'cpu', ...(tfjsNodeProbe.ok ? ['tensorflow' as const] : [])] as const;

describe.each(backends)('fused gradients equal autograd on %s', (backend) => {
  beforeAll(async () => {
    await selectBackend(backend);
  });

  test.each(variants)('%s', (_name, extra) => {
    const cfg: TwoTowerConfig = {
      ...DEFAULT_TWO_TOWER_CONFIG,
      embDim: 8,
      outDim: 6,
      historyLength: 7,
      temperature: 0.2,
      ...extra,
    };
    const s = steps(cfg);
    let masked = 0;
    for (let k = 0; k < 4; k++) {
      const batch = Int32Array.from({ length: 96 }, (_, j) => (k * 97 + j * 13) % n);
      // The last batch repeats one example outright: a row whose positive is also another column's.
      if (k === 3) batch[95] = batch[0];
      if (accidentalHitPairs(Int32Array.from(batch, (e) => data.itemIdx[e]))) masked++;
      const a = s.autograd.computeGradients(batch, new Rng(k));
      const f = s.fused.computeGradients(batch, new Rng(k));
      expect(Math.abs(f.loss - a.loss) / a.loss).toBeLessThan(1e-5);
      // Measured ~5e-7 (float32 rounding of two different operation orders).
      expect(worstRelative(a.grads, f.grads)).toBeLessThan(1e-5);
    }
    expect(masked).toBeGreaterThan(0);
  });
});
