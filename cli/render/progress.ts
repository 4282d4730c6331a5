import type { ProgressDetails } from '../../lib/observability/progress';

/**
 * Live progress of a run as text: one line per pipeline stage (done with its time, running with a bar, rate and
 * ETA from the pending activity's heartbeat details, or waiting). Pure: state in, lines out; ../commands/follow.ts
 * polls the workflow's `progress` query and `describe()` and redraws.
 */

export const PIPELINE_STAGES = [
  'plan',
  'ingest',
  'profile',
  'clean',
  'train',
  'evaluate',
  'publish',
] as const;

export interface PendingActivityView {
  activity: string;
  attempt: number;
  /** Decoded heartbeat details (lib/observability/progress.ts shape), or null before the first heartbeat. */
  details: Partial<ProgressDetails> | null;
  lastFailure?: string | null;
}

export interface LiveRunState {
  /** The workflow's current stage (`progress` query). */
  stage: string;
  /**
   * The `progress` query's in-stage progress of the current stage, by activity (reports the activities send
   * their workflow); used when describe() shows no heartbeat details for the stage.
   */
  current?: Record<string, { activity: string; attempt: number; details: Record<string, unknown> }>;
  stages: Array<{ name: string; seconds: number }>;
  pending: PendingActivityView[];
  /** COMPLETED, FAILED, RUNNING, … */
  status: string;
  elapsedSeconds: number;
}

export function bar(fraction: number, width: number): string {
  const f = Math.min(1, Math.max(0, fraction));
  const full = Math.round(f * width);
  return `[${'#'.repeat(full)}${'-'.repeat(width - full)}]`;
}

export function duration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '–';
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = s % 60;
  return h
    ? `${h}:${String(m).padStart(2, '0')}:${String(r).padStart(2, '0')}`
    : `${m}:${String(r).padStart(2, '0')}`;
}

const compact = (n: number) =>
  n >= 1e9
    ? `${(n / 1e9).toFixed(1)}G`
    : n >= 1e6
      ? `${(n / 1e6).toFixed(1)}M`
      : n >= 1e4
        ? `${(n / 1e3).toFixed(0)}k`
        : Number.isInteger(n) || n >= 10
          ? String(Math.round(n))
          : n.toFixed(1);

/** What a heartbeat says, in a few words: step, counts, epoch, loss, validation, rate, ETA. */
export function describeDetails(d: Partial<ProgressDetails>, barWidth = 24): string {
  const parts: string[] = [];
  const done = typeof d.done === 'number' ? d.done : null;
  const total = typeof d.total === 'number' ? d.total : null;
  if (done !== null && total !== null && total > 0)
    parts.push(`${bar(done / total, barWidth)} ${Math.floor((100 * done) / total)}%`);
  const r = d as Record<string, unknown>;
  if (typeof d.step === 'string' && d.step) parts.push(d.step);
  else if (typeof r.model === 'string') parts.push(r.model);
  // A percent is already in the bar; other units show their counts.
  if (done !== null && !(d.unit === '%' && total !== null))
    parts.push(`${compact(done)}${total !== null ? `/${compact(total)}` : ''}${d.unit ? ` ${d.unit}` : ''}`);
  if (typeof r.epoch === 'number')
    parts.push(`epoch ${r.epoch + 1}${typeof r.epochs === 'number' ? `/${r.epochs}` : ''}`);
  if (typeof r.loss === 'number') parts.push(`loss ${r.loss.toFixed(4)}`);
  const v = r.validation as { value?: number } | null | undefined;
  if (v && typeof v.value === 'number') parts.push(`val ${v.value.toFixed(4)}`);
  if (typeof d.rate === 'number' && d.rate > 0 && d.unit !== '%')
    parts.push(`${compact(d.rate)}${d.unit ? ` ${d.unit}` : ''}/s`);
  // An ETA from a time budget is an upper bound (tuning stops there at the latest).
  if (typeof d.etaSeconds === 'number') parts.push(`ETA ${r.etaBound ? '≤ ' : ''}${duration(d.etaSeconds)}`);
  // Before its first progress report an activity's heartbeats carry only how long it has run.
  if (!parts.length)
    return typeof r.elapsedSeconds === 'number' ? `running ${duration(r.elapsedSeconds)}` : 'running';
  return parts.join(' · ');
}

/** The stage lines of a run: ✔ done (seconds), ▶ running (heartbeat), · waiting. */
export function renderProgress(s: LiveRunState, o: { barWidth?: number } = {}): string[] {
  const done = new Map(s.stages.map((st) => [st.name, st.seconds]));
  const finished = s.status !== 'RUNNING';
  const lines = PIPELINE_STAGES.map((name) => {
    const label = name.padEnd(9);
    const secs = done.get(name);
    if (secs !== undefined) return `  ✔ ${label} ${secs.toFixed(1)}s`;
    if (name === s.stage && !finished) {
      const fromQuery = Object.values(s.current ?? {}).map((c): PendingActivityView => ({
        activity: c.activity,
        attempt: c.attempt,
        details: c.details as Partial<ProgressDetails>,
      }));
      // Heartbeat details (fresher: every report) first, then the query's (throttled) reports.
      const p =
        s.pending.find((a) => a.details?.stage === name && hasCounts(a.details)) ??
        fromQuery.find((a) => a.details?.stage === name) ??
        s.pending.find((a) => a.details?.stage === name) ??
        s.pending[0];
      const detail = p?.details ? describeDetails(p.details, o.barWidth) : 'starting';
      const retry =
        p && p.attempt > 1 ? ` (attempt ${p.attempt}${p.lastFailure ? `: ${p.lastFailure}` : ''})` : '';
      return `  ▶ ${label} ${detail}${retry}`;
    }
    return `  · ${label}`;
  });
  lines.push(`  ${finished ? s.status.toLowerCase() : 'running'} · ${duration(s.elapsedSeconds)} elapsed`);
  return lines;
}

/** Whether heartbeat details say more than that the activity runs (a step, a count). */
function hasCounts(d: Partial<ProgressDetails> | null): boolean {
  return !!d && (typeof d.done === 'number' || typeof d.step === 'string');
}
