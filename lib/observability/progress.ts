/**
 * In-stage progress as heartbeat details. Activities report what they know — `{stage, step, done, total, unit}`
 * plus anything model-specific (epoch, loss, validation) — and the tracker adds rate and ETA, so every stage
 * reads the same way in `describe()`'s pending activities, the Temporal UI and `recforge run --follow`.
 *
 * Heartbeat details shape (all but `stage` optional; extra keys pass through unchanged):
 *
 *   stage             'ingest' | 'profile' | 'clean' | 'train' | 'evaluate' | 'publish' | …
 *   step              what the stage is doing now: 'classify', 'score', a model variant ('two-tower-full'), a file
 *   done, total       units of work finished and expected in this step (total absent when unknown)
 *   unit              what done/total count: 'rows', 'bytes', 'files', 'steps', 'users', …
 *   rate              done per second since the step started (or since the first report of it, after a resume)
 *   etaSeconds        seconds left in this step at that rate (null until it can be estimated); a step without a
 *                     total may give its own (tuning: what is left of its time budget, with etaBound: 'budget',
 *                     an upper bound)
 *   statementSpan     units of `unit` that the DuckDB statement now running covers: its query progress moves
 *                     `done` towards done + statementSpan (activities/support/heartbeat.ts); a step without
 *                     counts shows a long statement's percent (unit '%')
 *   percent           100 · done / total
 *   stepElapsedSeconds  seconds since the step started
 *   elapsedSeconds    seconds since the activity started (added by the heartbeat timer, activities/support/heartbeat.ts)
 *   training adds:    epoch, epochs, loss, examplesPerSec, validation {metric, epoch, value}, resumedFrom
 *
 * Pure: the clock is injected; no Temporal import, so it is unit-tested on its own.
 */

export interface ProgressUpdate {
  stage: string;
  step?: string;
  done?: number;
  total?: number;
  unit?: string;
  [extra: string]: unknown;
}

export interface ProgressDetails extends ProgressUpdate {
  rate: number | null;
  etaSeconds: number | null;
  percent: number | null;
  stepElapsedSeconds: number;
}

/** The first report of a step: rate and ETA are measured from here (a resumed step starts with done > 0). */
interface StepStart {
  key: string;
  at: number;
  done: number;
}

export interface ProgressTrackerOptions {
  /** Clock in milliseconds (tests inject one). */
  now?: () => number;
  /** Least time between two heartbeats of the same step; a new step or a finished one is always sent. */
  minIntervalMs?: number;
}

export class ProgressTracker {
  private readonly now: () => number;
  private readonly minIntervalMs: number;
  private start: StepStart | null = null;
  private lastSentAt = -Infinity;
  private lastSentKey = '';

  constructor(o: ProgressTrackerOptions = {}) {
    this.now = o.now ?? Date.now;
    this.minIntervalMs = o.minIntervalMs ?? 500;
  }

  /** Adds rate, ETA and percent to an update; `due` says whether it is worth a heartbeat now. */
  update(u: ProgressUpdate): { details: ProgressDetails; due: boolean } {
    const now = this.now();
    const key = `${u.stage}\u0000${u.step ?? ''}\u0000${u.unit ?? ''}`;
    const done = finite(u.done);
    const total = finite(u.total);
    if (!this.start || this.start.key !== key || (done !== null && done < this.start.done)) {
      this.start = { key, at: now, done: done ?? 0 };
    }
    const seconds = (now - this.start.at) / 1000;
    const rate = done !== null && seconds > 0 ? (done - this.start.done) / seconds : null;
    const left = done !== null && total !== null ? Math.max(0, total - done) : null;
    // The caller's own estimate (e.g. what is left of a time budget) stands when the counts give none.
    const given = finite(u.etaSeconds);
    const etaSeconds =
      left === 0
        ? 0
        : left !== null && rate !== null && rate > 0
          ? Math.round(left / rate)
          : given === null
            ? null
            : Math.round(given);
    const details: ProgressDetails = {
      ...u,
      rate: rate === null ? null : round3(rate),
      etaSeconds,
      percent: done !== null && total !== null && total > 0 ? round3((100 * done) / total) : null,
      stepElapsedSeconds: Math.round(seconds),
    };
    const due = key !== this.lastSentKey || left === 0 || now - this.lastSentAt >= this.minIntervalMs;
    if (due) {
      this.lastSentAt = now;
      this.lastSentKey = key;
    }
    return { details, due };
  }
}

function finite(x: unknown): number | null {
  return typeof x === 'number' && Number.isFinite(x) ? x : null;
}

const round3 = (x: number) => Math.round(x * 1000) / 1000;

/** Reads heartbeat details back (CLI, tests): whatever an activity sent, typed where it fits the shape above. */
export function asProgressDetails(raw: unknown): Partial<ProgressDetails> | null {
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) return null;
  const r = raw as Record<string, unknown>;
  if (typeof r.stage !== 'string') return null;
  return r as Partial<ProgressDetails>;
}
