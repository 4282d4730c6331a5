/**
 * Two-tower configuration, architecture (what fixes the parameter shapes), the parameter list and its seeded
 * initialisation.
 */
import type { AdamConfig } from '../adam';
import type { Interactions } from '../mf';
import { glorotUniform, randomNormalArray } from '../init';
import type { ParamDef, Weights } from '../params';
import { mixSeed } from '../rng';
import type { ItemFeatures } from './features';

export interface TwoTowerConfig {
  embDim: number;
  outDim: number;
  historyLength: number;
  temperature: number;
  /** Probability of dropping the item-id embedding per training example (teaches the metadata path). */
  idDropout: number;
  /** Probability of dropping the user-id embedding per training example (the history path must stand alone). */
  userDropout: number;
  /** History pooling weight per step back in time (1: plain mean; 0.8: the latest item counts 1, the one before 0.8, ...). */
  historyDecay: number;
  /**
   * Training only: a positive at time t sees the user's history up to t - gap (seconds; needs timestamps). 0 = the
   * items right before it (same session included). Serving predicts items in later sessions from the history up
   * to a cutoff, so a gap of about a session makes the training examples look like the serving question.
   */
  historyGapSeconds: number;
  /**
   * Items in a second, short history pool (0: off): the mean of the user's last `recentLength` items, beside the
   * mean of the last `historyLength`, so the user tower sees both long-run taste and what the user just did.
   */
  recentLength: number;
  /** A learned per-item bias added to the logit (score = <user, item> / T + b_i); serves as itemBias = T * b_i. */
  itemBias: boolean;
  logQCorrection: boolean;
  /**
   * Multiplier of the log q(i) correction (1: unbiased sampled softmax). Above 1 the model keeps some of the
   * popularity prior, which the ranking metrics reward on popularity-skewed logs.
   */
  logQScale: number;
  /** L2 on the id embeddings used by a batch. */
  l2: number;
  initStd: number;
  epochs: number;
  batchSize: number;
  lr: number;
  seed: number;
  adam: Omit<AdamConfig, 'lr'>;
  patience: number;
  minDelta: number;
  checkpointEvery: number;
  progressIntervalMs: number;
}

export const DEFAULT_TWO_TOWER_CONFIG: TwoTowerConfig = {
  embDim: 32,
  outDim: 32,
  historyLength: 20,
  temperature: 0.1,
  idDropout: 0.2,
  userDropout: 0,
  historyDecay: 1,
  historyGapSeconds: 0,
  recentLength: 0,
  itemBias: false,
  logQCorrection: true,
  logQScale: 1,
  l2: 0,
  initStd: 0.05,
  epochs: 10,
  batchSize: 512,
  lr: 0.005,
  seed: 42,
  adam: { beta1: 0.9, beta2: 0.999, epsilon: 1e-8, lazy: true },
  patience: 3,
  minDelta: 0,
  checkpointEvery: 0,
  progressIntervalMs: 1000,
};

/** What defines the shapes of a two-tower model. */
export interface TwoTowerArch {
  numUsers: number;
  numItems: number;
  embDim: number;
  outDim: number;
  historyLength: number;
  numCategories: number;
  numPriceBuckets: number;
  numTokenBuckets: number;
  maxTitleTokens: number;
  /** History pooling decay (see TwoTowerConfig.historyDecay); absent in models saved before it existed: 1. */
  historyDecay?: number;
  /** Short recent-history pool (TwoTowerConfig.recentLength); absent in models saved before it existed: 0. */
  recentLength?: number;
  /** Per-item logit bias (absent in models saved before it existed: none), and the temperature it is scaled by. */
  itemBias?: boolean;
  temperature?: number;
}

export interface TwoTowerModel {
  kind: 'two-tower';
  arch: TwoTowerArch;
  /** userEmb, itemEmb, catEmb, priceEmb, tokenEmb, userW, userB, itemW, itemB. */
  weights: Weights;
  /** 1 for items that had training interactions (their id embedding is used at inference). */
  itemSeen: Uint8Array;
}

/** Width of the user tower's input: user id, history mean and (recentLength > 0) the recent-items mean. */
export function userInputWidth(a: TwoTowerArch): number {
  return ((a.recentLength ?? 0) > 0 ? 3 : 2) * a.embDim;
}

export function twoTowerParamDefs(a: TwoTowerArch): ParamDef[] {
  const E = a.embDim;
  const O = a.outDim;
  return [
    { name: 'userEmb', shape: [a.numUsers, E], sparse: true },
    { name: 'itemEmb', shape: [a.numItems, E], sparse: true },
    { name: 'catEmb', shape: [a.numCategories, E], sparse: true },
    { name: 'priceEmb', shape: [a.numPriceBuckets, E], sparse: true },
    { name: 'tokenEmb', shape: [a.numTokenBuckets, E], sparse: true },
    { name: 'userW', shape: [userInputWidth(a), O], sparse: false },
    { name: 'userB', shape: [O], sparse: false },
    { name: 'itemW', shape: [4 * E, O], sparse: false },
    { name: 'itemB', shape: [O], sparse: false },
    ...(a.itemBias ? [{ name: 'itemBias', shape: [a.numItems, 1], sparse: true }] : []),
  ];
}

export function initTwoTower(a: TwoTowerArch, initStd: number, seed: number): TwoTowerModel {
  const E = a.embDim;
  const O = a.outDim;
  const w: Weights = {};
  let s = 0;
  for (const d of twoTowerParamDefs(a)) {
    const size = d.shape.reduce((x, y) => x * y, 1);
    s++;
    let data: Float32Array;
    if (d.name === 'userW') data = glorotUniform(userInputWidth(a), O, mixSeed(seed, s));
    else if (d.name === 'itemW') data = glorotUniform(4 * E, O, mixSeed(seed, s));
    else if (d.name === 'userB' || d.name === 'itemB' || d.name === 'itemBias') data = new Float32Array(size);
    else data = randomNormalArray(size, initStd, mixSeed(seed, s));
    w[d.name] = { shape: d.shape.slice(), data };
  }
  return { kind: 'two-tower', arch: { ...a }, weights: w, itemSeen: new Uint8Array(a.numItems) };
}

/** Training data: interactions (dense user/item ids, optional weights) with the items' features. */
export interface TwoTowerData extends Interactions {
  items: ItemFeatures;
  /** Optional event times (any monotone unit) to order each user's history; default: input order. */
  timestamps?: Float64Array;
}
