import { AliasTable } from './alias';
import type { Catalog } from './catalog';
import { Rng, Streams } from './prng';

/**
 * Splits `total` into `weights.length` integer parts proportional to the weights, summing exactly to `total`,
 * each part the floor or ceiling of its ideal share. Cumulative rounding is O(n) (no sort, unlike largest
 * remainder), which matters with millions of users.
 */
export function apportion(weights: Float64Array, total: number): Uint32Array {
  const n = weights.length;
  const out = new Uint32Array(n);
  let sum = 0;
  for (let i = 0; i < n; i++) sum += weights[i];
  let cum = 0;
  let prev = 0;
  for (let i = 0; i < n; i++) {
    cum += weights[i];
    const next = i === n - 1 ? total : Math.min(total, Math.round((cum / sum) * total));
    out[i] = Math.max(0, next - prev);
    prev = Math.max(prev, next);
  }
  return out;
}

/**
 * Events per user: log-normal activity (a few heavy users, a long tail of light ones). Everyone gets at least one
 * event when there are enough to go round, so every generated user appears in the log.
 */
export function allocateActivity(seed: number, users: number, events: number, sigma: number): Uint32Array {
  const rng = Rng.derive(seed, Streams.activity);
  const w = new Float64Array(users);
  for (let u = 0; u < users; u++) w[u] = rng.logNormal(0, sigma);
  if (events < users) return apportion(w, events);
  const extra = apportion(w, events - users);
  for (let u = 0; u < users; u++) extra[u] += 1;
  return extra;
}

/** A user's stable taste: which categories they shop and where they point in latent space. */
export interface UserTaste {
  readonly affinity: AliasTable;
  /** Affinity weight per category (sums to 1); kept for diagnostics and tests. */
  readonly weights: Float64Array;
  readonly base: Float64Array;
}

/**
 * Dirichlet-ish category affinity concentrated on 1–3 favourite categories, plus a small diffuse share so users
 * occasionally browse elsewhere. The latent vector mixes the favourites' centroids with a personal component.
 */
export function makeUserTaste(rng: Rng, catalog: Catalog): UserTaste {
  const nCat = catalog.categoryNames.length;
  const dim = catalog.dim;
  const r = rng.next();
  const k = Math.min(nCat, r < 0.45 ? 1 : r < 0.8 ? 2 : 3);
  const favourites: number[] = [];
  const catAlias = new AliasTable(catalog.categoryMass);
  while (favourites.length < k) {
    // Popular departments have more fans; duplicates are re-drawn.
    const c = catAlias.sample(rng);
    if (!favourites.includes(c)) favourites.push(c);
  }
  const weights = new Float64Array(nCat);
  let diffuse = 0;
  for (let c = 0; c < nCat; c++) {
    weights[c] = rng.gamma(0.3);
    diffuse += weights[c];
  }
  for (let c = 0; c < nCat; c++) weights[c] = diffuse > 0 ? (0.12 * weights[c]) / diffuse : 0.12 / nCat;
  let favSum = 0;
  const favW = favourites.map(() => {
    const g = rng.gamma(2);
    favSum += g;
    return g;
  });
  favourites.forEach((c, j) => (weights[c] += (0.88 * favW[j]) / favSum));

  const base = new Float64Array(dim);
  const unit = 1 / Math.sqrt(dim);
  for (let j = 0; j < favourites.length; j++) {
    const c = favourites[j];
    for (let d = 0; d < dim; d++) base[d] += (favW[j] / favSum) * catalog.centroids[c * dim + d];
  }
  for (let d = 0; d < dim; d++) base[d] += 0.8 * unit * rng.normal();
  return { affinity: new AliasTable(weights), weights, base };
}

export function userRng(seed: number, user: number): Rng {
  return Rng.derive(seed, Streams.user, user);
}
