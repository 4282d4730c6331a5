/**
 * Two-tower retrieval model (public API; the modules below each do one job).
 *
 * user tower: [ userEmb[u] * keepU ; sum_h w_h itemEmb[h] over the user's last H items ] -> dense -> L2-normalise,
 *             w_h = historyDecay^age(h) normalised to sum 1 (age 0 = the latest item; historyDecay 1 = plain mean)
 * item tower: [ itemEmb[i] * keep ; catEmb[c] ; priceEmb[p] ; mean(tokenEmb[t] for hashed title tokens) ] -> dense
 *             -> L2-normalise
 *             (recentLength > 0: a second, plain mean over the last recentLength items joins the concatenation)
 * score(u, i) = <user, item> (cosine); training logits are divided by a temperature. With itemBias a learned
 * per-item bias b_i is added to the training logit; serving ranks by <user, item> + T * b_i (ScoringFactors.itemBias).
 *
 * Why the bias: the cosine score is bounded (|logit| <= 1/T), and on popularity-skewed logs it otherwise has to
 * spend that range on popularity as well as on taste.
 *
 * Loss (loss.ts): in-batch sampled softmax with log-Q sampling-probability correction and accidental-hit masking.
 *
 * Cold start: items without interactions have an untrained id embedding; the item tower can still place them from
 * category/price/title. During training the id embedding of each example is dropped with probability `idDropout` so
 * the metadata path learns to stand alone, and at inference items never seen in training get keep = 0 (id embedding
 * ignored). Users without history get only their id embedding (new users: none) -- callers should fall back to
 * popularity for them; see hasHistory().
 *
 * The history pooling is what lets the model express "people who just had these items have those next" (the
 * signal item-item co-occurrence lives on, FISM/YouTube-DNN style); the recency decay lets recent items dominate
 * when tastes drift. `userDropout` drops the user-id embedding per example (like idDropout for items), so the
 * user vector cannot lean on a per-user memorised offset that does not carry into the future.
 *
 * Training history is causal: for an interaction, the user tower sees the H interactions *before* it (input order
 * within a user is taken as chronological unless timestamps are given), optionally only those at least
 * historyGapSeconds earlier (causalHistory); inference uses the last H items.
 *
 * Layout: features.ts (tokens, price buckets), history.ts (user history, causal history, pooling weights),
 * config.ts (config, architecture, parameters, init), batch.ts (batch assembly, sub-table upload), towers.ts,
 * loss.ts (logit adjustments, softmax cross-entropy), train-step.ts (one step: batch, adjustments, gradients by
 * fused-step.ts = pooling.ts (host gather/scatter) + fused.ts (dense heads, loss, hand-derived backward), or by
 * autograd.ts, the reference), train.ts (trainTwoTower), inference.ts (embeddings), grow.ts (warm start).
 */
export {
  type ItemFeatures,
  hashToken,
  hashTitleTokens,
  priceBuckets,
  applyPriceBuckets,
  validateFeatures,
} from './features';
export {
  type UserHistory,
  buildUserHistory,
  causalHistory,
  hasHistory,
  historyWeights,
  recentWeights,
} from './history';
export {
  type TwoTowerConfig,
  type TwoTowerArch,
  type TwoTowerModel,
  type TwoTowerData,
  DEFAULT_TWO_TOWER_CONFIG,
  twoTowerParamDefs,
  initTwoTower,
} from './config';
export { trainTwoTower, twoTowerArchFor, type TrainTwoTowerOptions } from './train';
export type { StepGradients } from './train-step';
export { twoTowerEmbeddings, type TwoTowerEmbeddings } from './inference';
export { growTwoTower } from './grow';
