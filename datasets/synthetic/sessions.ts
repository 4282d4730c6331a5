import type { Rng } from './prng';

// Module-level aliases: inside jest's vm sandbox every `Math.x` is a slow global lookup; locals are not.
const { floor, round, max, min } = Math;

/** When one user's events happen: session sizes and a strictly increasing timestamp (epoch seconds) per event. */
export interface Timeline {
  readonly sessionSizes: Int32Array;
  readonly times: Float64Array;
}

/** Mean gap between consecutive events inside a session, seconds ("a few minutes apart"). */
const MEAN_IN_SESSION_GAP = 100;
const MIN_IN_SESSION_GAP = 5;
/** Sessions never start closer than this to the previous event, so sessions stay distinguishable. */
const MIN_SESSION_GAP = 30 * 60;

/**
 * Fills `out[0..k)` with k sorted uniforms in [lo, hi) using normalised exponential spacings: O(k), no sort.
 */
function sortedUniforms(rng: Rng, k: number, lo: number, hi: number): Float64Array {
  const out = new Float64Array(k);
  let acc = 0;
  for (let i = 0; i < k; i++) {
    acc += rng.exponential();
    out[i] = acc;
  }
  const total = acc + rng.exponential();
  for (let i = 0; i < k; i++) out[i] = lo + ((hi - lo) * out[i]) / total;
  return out;
}

/**
 * Lays out n events in sessions across the window [startSec, endSec). Users have an active span (half of them
 * the whole window, the rest a random sub-window), sessions are spread uniformly inside it (hours to days
 * apart), and events within a session are minutes apart. Timestamps are whole seconds, strictly increasing, so a
 * user never has two identical rows by accident: the only exact duplicates in the output are injected ones.
 */
export function makeTimeline(
  rng: Rng,
  n: number,
  meanSessionEvents: number,
  startSec: number,
  endSec: number,
): Timeline {
  const window = endSec - startSec;
  let lo = startSec;
  let hi = endSec;
  if (rng.next() < 0.5) {
    const span = window * (0.2 + 0.8 * rng.next());
    lo = startSec + floor((window - span) * rng.next());
    hi = min(endSec, lo + Math.ceil(span));
  }
  const meanSize = meanSessionEvents * (0.6 + 0.8 * rng.next());
  const sessions = max(1, min(n, round(n / meanSize)));
  const sessionSizes = new Int32Array(sessions).fill(1);
  for (let e = sessions; e < n; e++) sessionSizes[rng.int(sessions)]++;

  const starts = sortedUniforms(rng, sessions, lo, hi);
  const times = new Float64Array(n);
  let t = -Infinity;
  let e = 0;
  for (let s = 0; s < sessions; s++) {
    t = max(floor(starts[s]), t + MIN_SESSION_GAP);
    for (let j = 0; j < sessionSizes[s]; j++) {
      if (j > 0) t += MIN_IN_SESSION_GAP + round(rng.exponential() * MEAN_IN_SESSION_GAP);
      times[e++] = t;
    }
  }
  fitIntoWindow(times, startSec, endSec);
  return { sessionSizes, times };
}

/**
 * Heavy users can overrun the window end; squeeze their timeline affinely into it, then restore strict
 * increase after rounding (backwards, so the end bound holds).
 */
function fitIntoWindow(times: Float64Array, startSec: number, endSec: number): void {
  const n = times.length;
  if (n === 0 || times[n - 1] < endSec) return;
  const t0 = times[0];
  const scale = (endSec - 1 - t0) / max(1, times[n - 1] - t0);
  for (let i = 0; i < n; i++) times[i] = floor(t0 + (times[i] - t0) * scale);
  times[n - 1] = min(times[n - 1], endSec - 1);
  for (let i = n - 2; i >= 0; i--) times[i] = max(startSec, min(times[i], times[i + 1] - 1));
}
