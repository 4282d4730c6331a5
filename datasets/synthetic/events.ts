import type { Catalog } from './catalog';
import type { ModelParams } from './options';
import type { Rng } from './prng';
import { makeTimeline } from './sessions';
import type { UserTaste } from './users';

// Module-level aliases: inside jest's vm sandbox every `Math.x` is a slow global lookup; locals are not.
const { exp, sqrt } = Math;

/** Event type codes, in funnel order; index into IMPLICIT_EVENT_TYPES. */
export const VIEW = 0;
export const CLICK = 1;
export const CART = 2;
export const PURCHASE = 3;

/** One user's events in parallel arrays (valid up to `length`); buffers are reused across users. */
export interface UserEvents {
  length: number;
  items: Int32Array;
  types: Uint8Array;
  times: Float64Array;
}

/**
 * Samples a user's events: sessions with a focus category, a view → click → cart → purchase funnel with
 * decreasing probabilities, and item choice that mixes popularity with personal taste.
 *
 * Item choice is sampling-importance-resampling: draw `candidates` items from the popularity alias table of the
 * chosen category (O(1) each), then pick one with probability ∝ exp(tasteStrength · ⟨user, item⟩). This
 * approximates a softmax over popularity × taste at O(candidates · dim) per event instead of O(items · dim).
 */
export class EventSampler {
  private readonly cand: Int32Array;
  private readonly weight: Float64Array;
  private readonly latent: Float64Array;
  private readonly drift: Float64Array;
  private readonly out: UserEvents = {
    length: 0,
    items: new Int32Array(0),
    types: new Uint8Array(0),
    times: new Float64Array(0),
  };

  constructor(
    private readonly catalog: Catalog,
    private readonly params: ModelParams,
  ) {
    this.cand = new Int32Array(params.candidates);
    this.weight = new Float64Array(params.candidates);
    this.latent = new Float64Array(catalog.dim);
    this.drift = new Float64Array(catalog.dim);
  }

  private ensureCapacity(n: number): void {
    if (this.out.items.length >= n) return;
    const cap = Math.max(n, this.out.items.length * 2, 64);
    this.out.items = new Int32Array(cap);
    this.out.types = new Uint8Array(cap);
  }

  /** Ornstein–Uhlenbeck step: taste wanders but stays anchored to the user's base, decorrelating over tauDays. */
  private stepDrift(rng: Rng, base: Float64Array, dtDays: number): void {
    const dim = this.catalog.dim;
    const sigma = this.params.driftScale / sqrt(dim);
    const decay = Number.isFinite(dtDays) ? exp(-dtDays / this.params.driftTauDays) : 0;
    const noise = sigma * sqrt(1 - decay * decay);
    for (let d = 0; d < dim; d++) {
      this.drift[d] = this.drift[d] * decay + noise * rng.normal();
      this.latent[d] = base[d] + this.drift[d];
    }
  }

  private chooseInCategory(rng: Rng, category: number): number {
    const { members, categoryAlias, latent: itemLatent, dim } = this.catalog;
    const m = members[category];
    const alias = categoryAlias[category];
    const k = this.cand.length;
    const beta = this.params.tasteStrength;
    let total = 0;
    for (let j = 0; j < k; j++) {
      const item = m[alias.sample(rng)];
      let dot = 0;
      const off = item * dim;
      for (let d = 0; d < dim; d++) dot += this.latent[d] * itemLatent[off + d];
      const w = exp(beta * dot);
      this.cand[j] = item;
      this.weight[j] = w;
      total += w;
    }
    let r = rng.next() * total;
    for (let j = 0; j < k - 1; j++) {
      r -= this.weight[j];
      if (r < 0) return this.cand[j];
    }
    return this.cand[k - 1];
  }

  /** Returns the shared buffer: consume it before the next call. */
  generate(rng: Rng, taste: UserTaste, n: number, startSec: number, endSec: number): UserEvents {
    const p = this.params;
    const timeline = makeTimeline(
      rng,
      n,
      p.meanSessionViews * (1 + p.pClick * (1 + p.pCart * (1 + p.pPurchase))),
      startSec,
      endSec,
    );
    this.ensureCapacity(n);
    const { items, types } = this.out;
    const { times, sessionSizes } = timeline;
    this.drift.fill(0);
    this.stepDrift(rng, taste.base, Infinity); // start from the stationary distribution
    let e = 0;
    let lastSessionStart = times[0];
    for (let s = 0; s < sessionSizes.length; s++) {
      this.stepDrift(rng, taste.base, (times[e] - lastSessionStart) / 86400);
      lastSessionStart = times[e];
      const focus = taste.affinity.sample(rng);
      const end = e + sessionSizes[s];
      while (e < end) {
        const r = rng.next();
        let item: number;
        if (r < p.popularityMix) item = this.catalog.globalAlias.sample(rng);
        else
          item = this.chooseInCategory(
            rng,
            r < p.popularityMix + p.sessionFocus ? focus : taste.affinity.sample(rng),
          );
        items[e] = item;
        types[e++] = VIEW;
        // The funnel: each deeper step is conditional on the previous one and uses the same item.
        if (e < end && rng.next() < p.pClick) {
          items[e] = item;
          types[e++] = CLICK;
          if (e < end && rng.next() < p.pCart) {
            items[e] = item;
            types[e++] = CART;
            if (e < end && rng.next() < p.pPurchase) {
              items[e] = item;
              types[e++] = PURCHASE;
            }
          }
        }
      }
    }
    this.out.length = n;
    this.out.times = times;
    return this.out;
  }
}
