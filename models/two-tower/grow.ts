/**
 * Warm start for two-tower: growing a champion to a larger id space (growTwoTower), and adopting its weights as
 * the starting point of a new run whose architecture may have gained or lost the item bias or the recent pool
 * (adoptInitialWeights).
 */
import type { Weights } from '../params';
import { Rng } from '../rng';
import { initTwoTower, TwoTowerArch, TwoTowerModel } from './config';

/**
 * Warm start for two-tower: grows the user/item id tables (rows copied, new rows N(0, initStd^2)); the metadata
 * tables and dense layers are reused as is. itemSeen of new items is 0 until they are trained on.
 */
export function growTwoTower(
  model: TwoTowerModel,
  newNumUsers: number,
  newNumItems: number,
  seed: number,
  initStd = 0.01,
): TwoTowerModel {
  const a = model.arch;
  if (newNumUsers < a.numUsers || newNumItems < a.numItems)
    throw new Error('cannot shrink (ids are append-only)');
  const rng = new Rng(seed);
  const grow = (name: string, oldRows: number, newRows: number): Float32Array => {
    const old = model.weights[name].data;
    const out = new Float32Array(newRows * a.embDim);
    out.set(old);
    for (let k = oldRows * a.embDim; k < out.length; k++) {
      const u1 = 1 - rng.nextFloat();
      const u2 = rng.nextFloat();
      out[k] = initStd * Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
    }
    return out;
  };
  const weights: Weights = {};
  for (const [k, v] of Object.entries(model.weights))
    weights[k] = { shape: v.shape.slice(), data: v.data.slice() };
  weights['userEmb'] = { shape: [newNumUsers, a.embDim], data: grow('userEmb', a.numUsers, newNumUsers) };
  weights['itemEmb'] = { shape: [newNumItems, a.embDim], data: grow('itemEmb', a.numItems, newNumItems) };
  if (weights['itemBias']) {
    const b = new Float32Array(newNumItems);
    b.set(model.weights['itemBias'].data);
    weights['itemBias'] = { shape: [newNumItems, 1], data: b };
  }
  const itemSeen = new Uint8Array(newNumItems);
  itemSeen.set(model.itemSeen);
  return {
    kind: 'two-tower',
    arch: { ...a, numUsers: newNumUsers, numItems: newNumItems },
    weights,
    itemSeen,
  };
}

/**
 * The weights a warm-started run begins from: copies of `initial`'s, which must have the shapes `arch` needs
 * (ids and metadata tables; use growTwoTower first). A champion saved without (or with) the item bias gets a zero
 * bias (or loses it); one without (or with another) recent-items pool gets a freshly initialised user layer.
 */
export function adoptInitialWeights(
  initial: TwoTowerModel,
  arch: TwoTowerArch,
  initStd: number,
  seed: number,
): Weights {
  const a = initial.arch;
  const keys: (keyof TwoTowerArch)[] = [
    'numUsers',
    'numItems',
    'embDim',
    'outDim',
    'numCategories',
    'numPriceBuckets',
    'numTokenBuckets',
  ];
  for (const k of keys) {
    if (a[k] !== arch[k])
      throw new Error(`initialWeights.${k} = ${a[k]}, data/config need ${arch[k]} (use growTwoTower)`);
  }
  const weights: Weights = Object.fromEntries(
    Object.entries(initial.weights).map(([k, v]) => [k, { shape: v.shape.slice(), data: v.data.slice() }]),
  );
  if (arch.itemBias && !weights['itemBias'])
    weights['itemBias'] = { shape: [arch.numItems, 1], data: new Float32Array(arch.numItems) };
  if (!arch.itemBias) delete weights['itemBias'];
  if ((a.recentLength ?? 0) > 0 !== (arch.recentLength ?? 0) > 0) {
    const fresh = initTwoTower(arch, initStd, seed).weights;
    weights['userW'] = fresh['userW'];
    weights['userB'] = fresh['userB'];
  }
  return weights;
}
