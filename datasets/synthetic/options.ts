import { CATEGORIES } from './words';

export type OutputFormat = 'csv' | 'jsonl';

/** What a caller (CLI, pipeline) chooses. Everything but the sizes, seed and folder has a default. */
export interface GenerateOptions {
  users: number;
  items: number;
  /** Clean (organic) events; dirty rows and bot events come on top. */
  events: number;
  seed: number;
  out: string;
  /** Dirty rows as a share of clean events, split across the dirty kinds. */
  dirtyRate?: number;
  botUsers?: number;
  days?: number;
  /** Window start: `YYYY-MM-DD` or an ISO-8601 UTC instant. */
  start?: string;
  format?: OutputFormat;
  categories?: number;
  /** Exponent of the Zipf-like item popularity prior. */
  zipfExponent?: number;
  /** Stops the generation at the next chunk (besides the activity's own cancellation, lib/cancellation.ts). */
  signal?: AbortSignal;
  /** Called after each written chunk; lets CLIs print progress and tests sample memory. */
  onProgress?: (p: { cleanEvents: number; totalEvents: number }) => void;
}

/** Knobs of the behavioural model. Fixed defaults; exposed so tests and benchmarks can reason about them. */
export interface ModelParams {
  latentDim: number;
  /** Candidates drawn from the popularity prior per choice, then re-weighted by taste (sampling-importance-resampling). */
  candidates: number;
  /** Weight of the latent dot product in the taste score: higher = more personal, less popular. */
  tasteStrength: number;
  /** Share of views drawn from global popularity alone (trending items, home-page traffic). */
  popularityMix: number;
  /** Share of views that stay in the session's focus category. */
  sessionFocus: number;
  meanSessionViews: number;
  pClick: number;
  pCart: number;
  pPurchase: number;
  /** Time constant of the taste drift (Ornstein–Uhlenbeck), days. */
  driftTauDays: number;
  /** Stationary spread of the drift relative to the base taste vector. */
  driftScale: number;
  /** Spread of the log-normal per-user activity. */
  activitySigma: number;
}

export const DEFAULT_MODEL: ModelParams = {
  latentDim: 8,
  candidates: 8,
  tasteStrength: 2.5,
  popularityMix: 0.1,
  sessionFocus: 0.7,
  meanSessionViews: 4,
  pClick: 0.3,
  pCart: 0.35,
  pPurchase: 0.5,
  driftTauDays: 21,
  driftScale: 0.6,
  activitySigma: 1.1,
};

export interface ResolvedOptions {
  users: number;
  items: number;
  events: number;
  seed: number;
  out: string;
  dirtyRate: number;
  botUsers: number;
  days: number;
  start: string;
  format: OutputFormat;
  categories: number;
  zipfExponent: number;
  /** Window in epoch seconds, [startSec, endSec). */
  startSec: number;
  endSec: number;
}

export class DatagenOptionsError extends Error {
  override name = 'DatagenOptionsError';
}

const DEFAULT_START = '2026-09-01';

function requireInt(name: string, v: number, min: number, max = Number.MAX_SAFE_INTEGER): void {
  if (!Number.isInteger(v) || v < min || v > max) {
    throw new DatagenOptionsError(`${name} must be an integer in [${min}, ${max}], got ${v}`);
  }
}

function requireNumber(name: string, v: number, min: number, max: number): void {
  if (!Number.isFinite(v) || v < min || v > max) {
    throw new DatagenOptionsError(`${name} must be a number in [${min}, ${max}], got ${v}`);
  }
}

/** Parses `YYYY-MM-DD` or an ISO instant with an explicit zone to epoch seconds (UTC). */
export function parseStart(start: string): number {
  const dateOnly = /^\d{4}-\d{2}-\d{2}$/.test(start);
  const instant = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/.test(start);
  const ms = dateOnly || instant ? Date.parse(dateOnly ? `${start}T00:00:00Z` : start) : NaN;
  if (!Number.isFinite(ms)) {
    throw new DatagenOptionsError(
      `start must be YYYY-MM-DD or an ISO-8601 instant with a zone, got "${start}"`,
    );
  }
  return Math.floor(ms / 1000);
}

/** Fills defaults and validates; the error names the offending option. */
export function resolveOptions(o: GenerateOptions): ResolvedOptions {
  requireInt('users', o.users, 1, 50_000_000);
  requireInt('items', o.items, 1, 10_000_000);
  requireInt('events', o.events, 1, 2_000_000_000);
  requireInt('seed', o.seed, Number.MIN_SAFE_INTEGER);
  if (!o.out) throw new DatagenOptionsError('out (output folder) is required');
  const dirtyRate = o.dirtyRate ?? 0;
  requireNumber('dirtyRate', dirtyRate, 0, 0.5);
  const botUsers = o.botUsers ?? 0;
  requireInt('botUsers', botUsers, 0, 10_000);
  const days = o.days ?? 42;
  requireInt('days', days, 1, 3650);
  const start = o.start ?? DEFAULT_START;
  const startSec = parseStart(start);
  const format = o.format ?? 'csv';
  if (format !== 'csv' && format !== 'jsonl')
    throw new DatagenOptionsError(`format must be csv or jsonl, got ${String(format)}`);
  const categories = o.categories ?? CATEGORIES.length;
  requireInt('categories', categories, 1, CATEGORIES.length);
  const zipfExponent = o.zipfExponent ?? 1.0;
  requireNumber('zipfExponent', zipfExponent, 0, 3);
  const endSec = startSec + days * 86400;
  if (endSec * 1000 >= Date.parse('2099-01-01T00:00:00Z')) {
    // The injected "far future" rows use year 2099; a window reaching it would make them indistinguishable.
    throw new DatagenOptionsError('the time window must end before 2099');
  }
  return {
    users: o.users,
    items: o.items,
    events: o.events,
    seed: o.seed,
    out: o.out,
    dirtyRate,
    botUsers,
    days,
    start,
    format,
    categories,
    zipfExponent,
    startSec,
    endSec,
  };
}
