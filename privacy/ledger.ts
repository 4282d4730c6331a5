import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { composeSpends, type ComposedSpend } from './accountant';
import { assertValidSpend, type PrivacySpend } from './spend';

/**
 * A persistent privacy-budget ledger: one JSON file per ledger directory, holding every reservation keyed by runId,
 * each for a (datasetId, window) pair.
 *
 * Semantics:
 *  - `reserve` is called before any data is read, with the spend computed from public parameters (the mechanisms'
 *    `xxxSpend` functions). It refuses with PrivacyBudgetExceededError when the composed spend of all live
 *    reservations of that dataset and window plus the request would exceed the budget.
 *  - A reservation counts as spent until `release`d, so a run that crashes after releasing data is never forgotten.
 *    `commit` marks a finished run; `release` returns the budget of a run that failed before releasing anything.
 *  - All three calls are idempotent per runId, so Temporal activity retries never double-spend.
 *  - Composition: basic (Σε, Σδ) always; zCDP (Σρ, converted at the budget's δ) when every spend carries ρ. A request
 *    is admitted when either composition fits, and the tighter one is reported.
 *
 * Concurrency: every read-modify-write runs under an exclusive lock file created with open(…, 'wx') (atomic
 * create-if-absent on local filesystems), so two processes cannot both take the last of a budget. A lock whose
 * owner process is dead (same host) or that is older than `staleLockMs` is broken. The ledger file is replaced
 * atomically (tmp file + fsync + rename + directory fsync), so readers and crashes never see a partial file.
 */

export interface PrivacyBudget {
  readonly epsilon: number;
  readonly delta: number;
}

export type ReservationStatus = 'reserved' | 'committed' | 'released';

export interface LedgerEntry {
  readonly runId: string;
  readonly datasetId: string;
  readonly window: string;
  readonly spend: PrivacySpend;
  /** The budget the reservation was checked against. */
  readonly budget: PrivacyBudget;
  readonly status: ReservationStatus;
  readonly reservedAt: string;
  readonly updatedAt: string;
}

interface LedgerFile {
  version: 1;
  entries: Record<string, LedgerEntry>;
}

export interface BudgetUsage {
  readonly datasetId: string;
  readonly window: string;
  /** Live (reserved or committed) entries. */
  readonly entries: readonly LedgerEntry[];
  readonly composed: ComposedSpend;
}

function fmt(x: number): string {
  return Number.isInteger(x) ? String(x) : x.toPrecision(6);
}

export class PrivacyBudgetExceededError extends Error {
  override readonly name = 'PrivacyBudgetExceededError';
  constructor(
    readonly datasetId: string,
    readonly window: string,
    readonly budget: PrivacyBudget,
    readonly spent: ComposedSpend['best'],
    readonly requested: PrivacySpend,
    readonly total: ComposedSpend['best'],
  ) {
    super(
      `privacy budget exceeded for dataset "${datasetId}" window "${window}": ` +
        `budget ε=${fmt(budget.epsilon)} δ=${fmt(budget.delta)}; ` +
        `spent ε=${fmt(spent.epsilon)} δ=${fmt(spent.delta)} (${spent.via}); ` +
        `requested ε=${fmt(requested.epsilon)} δ=${fmt(requested.delta)} (${requested.mechanism}); ` +
        `total would be ε=${fmt(total.epsilon)} δ=${fmt(total.delta)} (${total.via})`,
    );
  }
}

export class LedgerConflictError extends Error {
  override readonly name = 'LedgerConflictError';
}

export class LedgerLockTimeoutError extends Error {
  override readonly name = 'LedgerLockTimeoutError';
}

export interface LedgerOptions {
  /** How long to wait for the lock before giving up (default 30 s). */
  readonly lockTimeoutMs?: number;
  /** A lock older than this is considered abandoned (default 60 s; the critical section takes milliseconds). */
  readonly staleLockMs?: number;
  /** Clock, for tests. */
  readonly now?: () => Date;
}

/** Relative slack when comparing float sums with the budget, so 0.1 + 0.2 fits a budget of 0.3. */
const BUDGET_TOLERANCE = 1e-12;

const sameJson = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);

function checkId(name: string, v: string): void {
  if (typeof v !== 'string' || v.length === 0 || v.length > 1024) {
    throw new TypeError(`${name} must be a non-empty string of at most 1024 characters`);
  }
}

function checkBudget(b: PrivacyBudget): void {
  if (!(b.epsilon >= 0) || !Number.isFinite(b.epsilon))
    throw new RangeError(`budget epsilon invalid: ${b.epsilon}`);
  if (!(b.delta >= 0 && b.delta < 1)) throw new RangeError(`budget delta must be in [0, 1): ${b.delta}`);
}

function fits(total: { epsilon: number; delta: number }, budget: PrivacyBudget): boolean {
  return (
    total.epsilon <= budget.epsilon * (1 + BUDGET_TOLERANCE) &&
    total.delta <= budget.delta * (1 + BUDGET_TOLERANCE)
  );
}

/** Basic or zCDP composition, whichever fits the budget with the smaller epsilon. */
function bestWithin(c: ComposedSpend, budget: PrivacyBudget): ComposedSpend['best'] {
  const candidates: ComposedSpend['best'][] = [{ ...c.basic, via: 'basic' }];
  if (c.zcdp) candidates.push({ epsilon: c.zcdp.epsilon, delta: c.zcdp.delta, via: 'zcdp' });
  const ok = candidates.filter((x) => x.delta <= budget.delta * (1 + BUDGET_TOLERANCE));
  const pool = ok.length > 0 ? ok : candidates;
  return pool.reduce((a, b) => (b.epsilon < a.epsilon ? b : a));
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

interface LockInfo {
  pid: number;
  host: string;
  createdAt: number;
  token: string;
}

export class PrivacyLedger {
  readonly file: string;
  private readonly lockFile: string;
  private readonly lockTimeoutMs: number;
  private readonly staleLockMs: number;
  private readonly now: () => Date;

  constructor(
    readonly dir: string,
    opts: LedgerOptions = {},
  ) {
    this.file = path.join(dir, 'privacy-ledger.json');
    this.lockFile = path.join(dir, 'privacy-ledger.lock');
    this.lockTimeoutMs = opts.lockTimeoutMs ?? 30_000;
    this.staleLockMs = opts.staleLockMs ?? 60_000;
    this.now = opts.now ?? (() => new Date());
  }

  /**
   * Reserves `requested` against `budget` for (datasetId, window) under `runId`. Call before reading any data.
   * Idempotent: the same runId with the same request returns the existing reservation; a released runId is
   * re-reserved (checked again); the same runId with a different request or dataset is a LedgerConflictError.
   */
  async reserve(
    datasetId: string,
    window: string,
    requested: PrivacySpend,
    budget: PrivacyBudget,
    runId: string,
  ): Promise<LedgerEntry> {
    checkId('datasetId', datasetId);
    checkId('window', window);
    checkId('runId', runId);
    assertValidSpend(requested);
    checkBudget(budget);
    return this.withLock((ledger) => {
      const existing = ledger.entries[runId];
      if (existing) {
        if (
          existing.datasetId !== datasetId ||
          existing.window !== window ||
          !sameJson(existing.spend, requested)
        ) {
          throw new LedgerConflictError(
            `runId "${runId}" already holds a different reservation (${existing.datasetId}/${existing.window}, ` +
              `${existing.spend.mechanism} ε=${existing.spend.epsilon})`,
          );
        }
        if (existing.status !== 'released') return { ledger, result: existing, changed: false };
      }
      const live = this.liveEntries(ledger, datasetId, window).filter((e) => e.runId !== runId);
      const before = composeSpends(
        live.map((e) => e.spend),
        budget.delta,
      );
      const after = composeSpends([...live.map((e) => e.spend), requested], budget.delta);
      const afterBest = bestWithin(after, budget);
      if (!fits(afterBest, budget)) {
        throw new PrivacyBudgetExceededError(
          datasetId,
          window,
          budget,
          bestWithin(before, budget),
          requested,
          afterBest,
        );
      }
      const ts = this.now().toISOString();
      const entry: LedgerEntry = {
        runId,
        datasetId,
        window,
        spend: requested,
        budget: { epsilon: budget.epsilon, delta: budget.delta },
        status: 'reserved',
        reservedAt: existing?.reservedAt ?? ts,
        updatedAt: ts,
      };
      ledger.entries[runId] = entry;
      return { ledger, result: entry, changed: true };
    });
  }

  /** Marks a reservation as committed (the run released its results). Idempotent. */
  async commit(runId: string): Promise<LedgerEntry> {
    return this.transition(runId, 'committed');
  }

  /** Returns a reservation's budget (the run failed before releasing anything). Idempotent. */
  async release(runId: string): Promise<LedgerEntry> {
    return this.transition(runId, 'released');
  }

  /** The live entries and the composed spend for (datasetId, window), converting zCDP at `budgetDelta`. */
  usage(datasetId: string, window: string, budgetDelta: number): BudgetUsage {
    const entries = this.liveEntries(this.read(), datasetId, window);
    return {
      datasetId,
      window,
      entries,
      composed: composeSpends(
        entries.map((e) => e.spend),
        budgetDelta,
      ),
    };
  }

  /** Every entry (for audits), as stored. */
  entries(): LedgerEntry[] {
    return Object.values(this.read().entries);
  }

  private liveEntries(ledger: LedgerFile, datasetId: string, window: string): LedgerEntry[] {
    return Object.values(ledger.entries).filter(
      (e) => e.datasetId === datasetId && e.window === window && e.status !== 'released',
    );
  }

  private async transition(runId: string, to: 'committed' | 'released'): Promise<LedgerEntry> {
    checkId('runId', runId);
    return this.withLock((ledger) => {
      const e = ledger.entries[runId];
      if (!e) throw new LedgerConflictError(`no reservation for runId "${runId}"`);
      if (e.status === to) return { ledger, result: e, changed: false };
      if (e.status !== 'reserved') {
        // committed → released would un-spend budget whose results are public; released → committed would spend
        // budget that is no longer reserved.
        throw new LedgerConflictError(`runId "${runId}" is ${e.status}; cannot mark it ${to}`);
      }
      const next: LedgerEntry = { ...e, status: to, updatedAt: this.now().toISOString() };
      ledger.entries[runId] = next;
      return { ledger, result: next, changed: true };
    });
  }

  private read(): LedgerFile {
    let text: string;
    try {
      text = fs.readFileSync(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { version: 1, entries: {} };
      throw err;
    }
    const parsed = JSON.parse(text) as LedgerFile;
    if (parsed.version !== 1 || typeof parsed.entries !== 'object' || parsed.entries === null) {
      throw new Error(`unrecognised privacy ledger format in ${this.file}`);
    }
    return parsed;
  }

  private write(ledger: LedgerFile): void {
    const tmp = `${this.file}.tmp-${process.pid}-${randomUUID()}`;
    const fd = fs.openSync(tmp, 'wx');
    try {
      fs.writeSync(fd, JSON.stringify(ledger, null, 2) + '\n');
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, this.file);
    // Persist the rename itself; not every platform allows fsync on a directory.
    let dfd: number | undefined;
    try {
      dfd = fs.openSync(this.dir, 'r');
      fs.fsyncSync(dfd);
    } catch {
      // best effort
    } finally {
      if (dfd !== undefined) fs.closeSync(dfd);
    }
  }

  /** Runs a read-modify-write of the ledger under the lock; writes only when something changed. */
  private async withLock<T>(
    fn: (ledger: LedgerFile) => { ledger: LedgerFile; result: T; changed: boolean },
  ): Promise<T> {
    fs.mkdirSync(this.dir, { recursive: true });
    const token = await this.acquire();
    try {
      const { ledger, result, changed } = fn(this.read());
      if (changed) this.write(ledger);
      return result;
    } finally {
      this.releaseLock(token);
    }
  }

  private async acquire(): Promise<string> {
    const token = `${process.pid}-${randomUUID()}`;
    const info: LockInfo = { pid: process.pid, host: os.hostname(), createdAt: Date.now(), token };
    const deadline = Date.now() + this.lockTimeoutMs;
    for (let attempt = 0; ; attempt++) {
      try {
        const fd = fs.openSync(this.lockFile, 'wx');
        try {
          fs.writeSync(fd, JSON.stringify({ ...info, createdAt: Date.now() }));
          fs.fsyncSync(fd);
        } finally {
          fs.closeSync(fd);
        }
        return token;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      this.breakIfStale(token);
      if (Date.now() > deadline) {
        throw new LedgerLockTimeoutError(`could not lock ${this.lockFile} within ${this.lockTimeoutMs} ms`);
      }
      // Jittered backoff so racing processes do not retry in lockstep.
      await sleep(Math.min(50, 2 + attempt) * (0.5 + Math.random()));
    }
  }

  private readLock(file: string): { info?: LockInfo; mtimeMs: number } | undefined {
    try {
      const st = fs.statSync(file);
      const text = fs.readFileSync(file, 'utf8');
      try {
        return { info: JSON.parse(text) as LockInfo, mtimeMs: st.mtimeMs };
      } catch {
        return { mtimeMs: st.mtimeMs }; // being written right now, or truncated by a crash
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  /**
   * Breaks an abandoned lock. The lock is first renamed to a private name (atomic), then checked: if what we moved
   * is not the lock we judged stale (it was replaced in between), it is put back with link(), which fails rather
   * than overwrite a lock someone else has taken meanwhile.
   */
  private breakIfStale(myToken: string): void {
    const seen = this.readLock(this.lockFile);
    if (!seen) return;
    const age = Date.now() - (seen.info?.createdAt ?? seen.mtimeMs);
    const deadOwner = seen.info !== undefined && seen.info.host === os.hostname() && !pidAlive(seen.info.pid);
    const unreadableAndOld =
      seen.info === undefined && Date.now() - seen.mtimeMs > Math.min(this.staleLockMs, 5_000);
    if (!deadOwner && !unreadableAndOld && age <= this.staleLockMs) return;
    const moved = `${this.lockFile}.stale-${myToken}`;
    try {
      fs.renameSync(this.lockFile, moved);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return; // someone else broke or released it
      throw err;
    }
    const got = this.readLock(moved);
    if (got?.info?.token !== seen.info?.token) {
      try {
        fs.linkSync(moved, this.lockFile);
      } catch {
        // A new lock already exists; ours was a stale snapshot after all.
      }
    }
    fs.rmSync(moved, { force: true });
  }

  private releaseLock(token: string): void {
    const cur = this.readLock(this.lockFile);
    if (cur?.info?.token === token) fs.rmSync(this.lockFile, { force: true });
  }
}

/** Opens (lazily creates) the ledger in `dir`. */
export function openLedger(dir: string, opts?: LedgerOptions): PrivacyLedger {
  return new PrivacyLedger(dir, opts);
}
