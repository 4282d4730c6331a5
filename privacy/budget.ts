import { RecforgeError } from '../contracts/errors';
import { composeSpends, type ComposedSpend } from './accountant';
import { assertValidSpend, type PrivacySpend } from './spend';

/**
 * The privacy-budget ledger's rules, as pure functions over the ledger document (privacy/ledger.ts stores it with
 * compare-and-swap). No I/O and no clock: every decision is a function of the document and the request, so it is
 * decided again on the latest document whenever a concurrent writer won the swap.
 *
 * - The budget belongs to a **privacy unit** — the population of users the data describes (config
 *   `privacy.unit`, a protected key) — never to a dataset label a workflow input can choose.
 * - Every reservation records the input locations it reads; the first reservation that reads a location binds it
 *   to its unit, for good. A location bound to one unit cannot be spent under another (two units over one file
 *   would each think they own the whole budget).
 * - Two limits hold at once: per window (the UTC day or month of the run's start) and over the unit's lifetime.
 * - A reservation counts as spent until released (a run that failed before releasing anything); committed ones
 *   can never be released.
 */

export interface PrivacyBudget {
  readonly epsilon: number;
  readonly delta: number;
}

export type WindowKind = 'day' | 'month';

export interface BudgetLimits {
  readonly window: PrivacyBudget & { readonly kind: WindowKind };
  readonly lifetime: PrivacyBudget;
}

export type ReservationStatus = 'reserved' | 'committed' | 'released';

/** Entries migrated from the per-dataset ledger of earlier versions carry this unit: they count against every unit. */
export const ANY_UNIT = '*';

export interface LedgerEntry {
  readonly runId: string;
  readonly unit: string;
  /** Free label (the dataset id), for audits only: it decides nothing. */
  readonly label: string;
  /** Resolved input locations the run reads. */
  readonly inputs: readonly string[];
  /** The run's start instant: decides which windows the spend counts in. */
  readonly at: string;
  /** The window the reservation was made in (for audits; membership is recomputed from `at`). */
  readonly window: string;
  readonly spend: PrivacySpend;
  /** The limits the reservation was checked against. */
  readonly limits: BudgetLimits;
  readonly status: ReservationStatus;
  readonly reservedAt: string;
  readonly updatedAt: string;
}

export interface Binding {
  readonly unit: string;
  readonly runId: string;
  readonly boundAt: string;
}

export interface LedgerDocument {
  version: 2;
  entries: Record<string, LedgerEntry>;
  /** Input location → the unit it belongs to. Never removed. */
  bindings: Record<string, Binding>;
}

export interface ReservationRequest {
  readonly runId: string;
  readonly unit: string;
  readonly label: string;
  readonly inputs: readonly string[];
  /** ISO instant of the run's start. */
  readonly at: string;
  readonly spend: PrivacySpend;
  readonly limits: BudgetLimits;
}

export const emptyLedger = (): LedgerDocument => ({ version: 2, entries: {}, bindings: {} });

/** Relative slack when comparing float sums with the budget, so 0.1 + 0.2 fits a budget of 0.3. */
const BUDGET_TOLERANCE = 1e-12;

function fmt(x: number): string {
  return Number.isInteger(x) ? String(x) : x.toPrecision(6);
}

/** The window label of an instant: its UTC day (`2026-11-23`) or month (`2026-11`). */
export function windowOf(at: string, kind: WindowKind): string {
  const iso = new Date(at).toISOString();
  return kind === 'month' ? iso.slice(0, 7) : iso.slice(0, 10);
}

export class PrivacyBudgetExceededError extends RecforgeError {
  constructor(
    readonly unit: string,
    /** Which limit refused: the window's or the lifetime's. */
    readonly scope: 'window' | 'lifetime',
    readonly window: string,
    readonly budget: PrivacyBudget,
    readonly spent: ComposedSpend['best'],
    readonly requested: PrivacySpend,
    readonly total: ComposedSpend['best'],
  ) {
    super(
      'PrivacyBudgetExceeded',
      `privacy budget exceeded for unit "${unit}" ${scope === 'window' ? `window "${window}"` : 'lifetime'}: ` +
        `budget ε=${fmt(budget.epsilon)} δ=${fmt(budget.delta)}; ` +
        `spent ε=${fmt(spent.epsilon)} δ=${fmt(spent.delta)} (${spent.via}); ` +
        `requested ε=${fmt(requested.epsilon)} δ=${fmt(requested.delta)} (${requested.mechanism}); ` +
        `total would be ε=${fmt(total.epsilon)} δ=${fmt(total.delta)} (${total.via})` +
        (scope === 'lifetime'
          ? '; the unit has spent its lifetime budget: no further run may read this population'
          : '; wait for the next window'),
    );
  }
}

/** An input location already spent under another privacy unit. */
export class PrivacyUnitConflictError extends RecforgeError {
  constructor(
    readonly location: string,
    readonly boundTo: Binding,
    readonly unit: string,
  ) {
    super(
      'ConfigError',
      `input ${location} belongs to privacy unit "${boundTo.unit}" (first spent by run ${boundTo.runId} at ${boundTo.boundAt}); ` +
        `this worker's unit is "${unit}": one population's data cannot be spent under another unit's budget. ` +
        "Fix privacy.unit in the workers' config",
    );
  }
}

/** A runId reused for a different reservation, or a transition the state machine forbids. */
export class LedgerConflictError extends Error {
  override readonly name = 'LedgerConflictError';
}

function checkId(name: string, v: string): void {
  if (typeof v !== 'string' || v.length === 0 || v.length > 1024) {
    throw new TypeError(`${name} must be a non-empty string of at most 1024 characters`);
  }
}

function checkBudget(name: string, b: PrivacyBudget): void {
  if (!(b.epsilon >= 0) || !Number.isFinite(b.epsilon))
    throw new RangeError(`${name} epsilon invalid: ${b.epsilon}`);
  if (!(b.delta >= 0 && b.delta < 1)) throw new RangeError(`${name} delta must be in [0, 1): ${b.delta}`);
}

function fits(total: { epsilon: number; delta: number }, budget: PrivacyBudget): boolean {
  return (
    total.epsilon <= budget.epsilon * (1 + BUDGET_TOLERANCE) &&
    total.delta <= budget.delta * (1 + BUDGET_TOLERANCE)
  );
}

/** Basic or zCDP composition, whichever fits the budget with the smaller epsilon. */
export function bestWithin(c: ComposedSpend, budget: PrivacyBudget): ComposedSpend['best'] {
  const candidates: ComposedSpend['best'][] = [{ ...c.basic, via: 'basic' }];
  if (c.zcdp) candidates.push({ epsilon: c.zcdp.epsilon, delta: c.zcdp.delta, via: 'zcdp' });
  const ok = candidates.filter((x) => x.delta <= budget.delta * (1 + BUDGET_TOLERANCE));
  const pool = ok.length > 0 ? ok : candidates;
  return pool.reduce((a, b) => (b.epsilon < a.epsilon ? b : a));
}

const sameJson = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);

/** Live (reserved or committed) entries that count against `unit`; legacy entries count against every unit. */
export function liveEntries(doc: LedgerDocument, unit: string): LedgerEntry[] {
  return Object.values(doc.entries).filter(
    (e) => (e.unit === unit || e.unit === ANY_UNIT) && e.status !== 'released',
  );
}

/** Live entries of the unit in the window (`kind`) that contains `at`. */
export function windowEntries(
  doc: LedgerDocument,
  unit: string,
  at: string,
  kind: WindowKind,
): LedgerEntry[] {
  const w = windowOf(at, kind);
  return liveEntries(doc, unit).filter((e) => windowOf(e.at, kind) === w);
}

export interface BudgetUsage {
  readonly unit: string;
  readonly entries: readonly LedgerEntry[];
  readonly composed: ComposedSpend;
}

export function usageOf(entries: LedgerEntry[], unit: string, delta: number): BudgetUsage {
  return {
    unit,
    entries,
    composed: composeSpends(
      entries.map((e) => e.spend),
      delta,
    ),
  };
}

/** Throws PrivacyBudgetExceededError when `others` plus `requested` do not fit `budget`. */
function checkLimit(
  others: LedgerEntry[],
  requested: PrivacySpend,
  budget: PrivacyBudget,
  unit: string,
  scope: 'window' | 'lifetime',
  window: string,
): void {
  const before = composeSpends(
    others.map((e) => e.spend),
    budget.delta,
  );
  const after = composeSpends([...others.map((e) => e.spend), requested], budget.delta);
  const afterBest = bestWithin(after, budget);
  if (!fits(afterBest, budget)) {
    throw new PrivacyBudgetExceededError(
      unit,
      scope,
      window,
      budget,
      bestWithin(before, budget),
      requested,
      afterBest,
    );
  }
}

/**
 * Decides a reservation on the current document: the new document and the entry, or a refusal. Idempotent per
 * runId: the same request again returns the existing entry (no double spend); a released runId is re-reserved only
 * if it fits again; the same runId with a different request is a LedgerConflictError.
 */
export function decideReservation(
  current: LedgerDocument,
  req: ReservationRequest,
  now: string,
): { document: LedgerDocument | null; entry: LedgerEntry } {
  checkId('runId', req.runId);
  checkId('unit', req.unit);
  if (req.unit === ANY_UNIT) throw new RangeError(`'${ANY_UNIT}' is not a privacy unit`);
  if (!Array.isArray(req.inputs) || req.inputs.length === 0)
    throw new RangeError('a reservation must name the input locations it reads');
  for (const i of req.inputs) checkId('input location', i);
  if (!Number.isFinite(Date.parse(req.at))) throw new RangeError(`invalid run instant: ${req.at}`);
  assertValidSpend(req.spend);
  checkBudget('window budget', req.limits.window);
  checkBudget('lifetime budget', req.limits.lifetime);

  const inputs = [...new Set(req.inputs)].sort();
  const window = windowOf(req.at, req.limits.window.kind);
  const existing = current.entries[req.runId];
  if (existing) {
    if (
      existing.unit !== req.unit ||
      existing.at !== req.at ||
      !sameJson(existing.inputs, inputs) ||
      !sameJson(existing.spend, req.spend)
    ) {
      throw new LedgerConflictError(
        `runId "${req.runId}" already holds a different reservation (unit ${existing.unit}, window ${existing.window}, ` +
          `${existing.spend.mechanism} ε=${existing.spend.epsilon})`,
      );
    }
    if (existing.status !== 'released') return { document: null, entry: existing };
  }
  for (const loc of inputs) {
    const b = current.bindings[loc];
    if (b && b.unit !== req.unit) throw new PrivacyUnitConflictError(loc, b, req.unit);
  }
  const others = (es: LedgerEntry[]) => es.filter((e) => e.runId !== req.runId);
  checkLimit(
    others(windowEntries(current, req.unit, req.at, req.limits.window.kind)),
    req.spend,
    req.limits.window,
    req.unit,
    'window',
    window,
  );
  checkLimit(
    others(liveEntries(current, req.unit)),
    req.spend,
    req.limits.lifetime,
    req.unit,
    'lifetime',
    window,
  );

  const entry: LedgerEntry = {
    runId: req.runId,
    unit: req.unit,
    label: req.label,
    inputs,
    at: req.at,
    window,
    spend: req.spend,
    limits: req.limits,
    status: 'reserved',
    reservedAt: existing?.reservedAt ?? now,
    updatedAt: now,
  };
  const bindings = { ...current.bindings };
  for (const loc of inputs) bindings[loc] ??= { unit: req.unit, runId: req.runId, boundAt: now };
  return {
    document: { ...current, entries: { ...current.entries, [req.runId]: entry }, bindings },
    entry,
  };
}

/** committed or released, from reserved; idempotent. committed → released and released → committed are refused. */
export function decideTransition(
  current: LedgerDocument,
  runId: string,
  to: 'committed' | 'released',
  now: string,
): { document: LedgerDocument | null; entry: LedgerEntry } {
  checkId('runId', runId);
  const e = current.entries[runId];
  if (!e) throw new LedgerConflictError(`no reservation for runId "${runId}"`);
  if (e.status === to) return { document: null, entry: e };
  if (e.status !== 'reserved') {
    // committed → released would un-spend budget whose results are public; released → committed would spend
    // budget that is no longer reserved.
    throw new LedgerConflictError(`runId "${runId}" is ${e.status}; cannot mark it ${to}`);
  }
  const next: LedgerEntry = { ...e, status: to, updatedAt: now };
  return { document: { ...current, entries: { ...current.entries, [runId]: next } }, entry: next };
}

/** Checks a ledger document read from storage. */
export function checkLedgerDocument(value: unknown): LedgerDocument {
  const d = value as Partial<LedgerDocument> | null;
  if (
    !d ||
    d.version !== 2 ||
    typeof d.entries !== 'object' ||
    d.entries === null ||
    typeof d.bindings !== 'object'
  )
    throw new Error('unrecognised privacy ledger format (expected version 2 with entries and bindings)');
  return d as LedgerDocument;
}

/**
 * The ledger of earlier versions (one file, entries per (datasetId, window), no unit): its live entries are kept
 * as spent against every unit (`*`), since nobody recorded whose population they read — conservative, never
 * forgetting a spend.
 */
export function migrateLegacyLedger(value: unknown): LedgerDocument {
  const old = value as {
    version?: number;
    entries?: Record<
      string,
      {
        runId: string;
        datasetId: string;
        window: string;
        spend: PrivacySpend;
        budget: PrivacyBudget;
        status: ReservationStatus;
        reservedAt: string;
        updatedAt: string;
      }
    >;
  } | null;
  if (!old || old.version !== 1 || typeof old.entries !== 'object' || old.entries === null)
    throw new Error('unrecognised legacy privacy ledger format (expected version 1)');
  const doc = emptyLedger();
  for (const e of Object.values(old.entries)) {
    doc.entries[e.runId] = {
      runId: e.runId,
      unit: ANY_UNIT,
      label: e.datasetId,
      inputs: [],
      at: e.reservedAt,
      window: e.window,
      spend: e.spend,
      limits: {
        window: { ...e.budget, kind: /^\d{4}-\d{2}$/.test(e.window) ? 'month' : 'day' },
        lifetime: e.budget,
      },
      status: e.status,
      reservedAt: e.reservedAt,
      updatedAt: e.updatedAt,
    };
  }
  return doc;
}
