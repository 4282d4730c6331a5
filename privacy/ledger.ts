import { LocalStorage } from '../lib/storage/local';
import { readDocument, updateDocument } from '../lib/storage/documents';
import type { Storage } from '../lib/storage/types';
import {
  checkLedgerDocument,
  decideReservation,
  decideTransition,
  emptyLedger,
  liveEntries,
  migrateLegacyLedger,
  usageOf,
  windowEntries,
  windowOf,
  type BudgetLimits,
  type BudgetUsage,
  type LedgerDocument,
  type LedgerEntry,
  type ReservationRequest,
} from './budget';

/**
 * The persistent privacy-budget ledger: one JSON state document (`ledger.json`) changed only by
 * compare-and-swap (lib/storage `updateDocument`), the commit protocol the live-version pointer, the registry
 * and the dataset lock use too. There is no lock file, so there is no lock a crashed holder leaves behind and no
 * stale-lock takeover to get wrong: every reservation is decided on the latest document (privacy/budget.ts) and
 * written only if nobody wrote in between; otherwise it is decided again. Two workers can never both take the
 * last of a budget, on a local folder or (with an If-Match backend) on object storage.
 *
 * Semantics (privacy/budget.ts): budgets per privacy unit, per window and over the lifetime; input locations bound
 * to their unit; reservations idempotent per runId; a reservation is a spend until released.
 */

export const LEDGER_KEY = 'ledger.json';
/** The single-file ledger of earlier versions (per dataset id), migrated on first use. */
export const LEGACY_LEDGER_KEY = 'privacy-ledger.json';

/** Reservations are rare; a crowd of workers starting at once still gets through (each attempt backs off). */
const MAX_SWAP_ATTEMPTS = 500;

export interface LedgerOptions {
  /** Clock, for tests. */
  readonly now?: () => Date;
  /** Folder of the ledger inside its storage ('' for the root): the ledger lives beside runs on a shared bucket. */
  readonly prefix?: string;
}

export class PrivacyLedger {
  private readonly now: () => Date;
  private readonly key: string;
  private readonly legacyKey: string;

  constructor(
    readonly store: Storage,
    opts: LedgerOptions = {},
  ) {
    this.now = opts.now ?? (() => new Date());
    const dir = opts.prefix ? `${opts.prefix}/` : '';
    this.key = `${dir}${LEDGER_KEY}`;
    this.legacyKey = `${dir}${LEGACY_LEDGER_KEY}`;
  }

  /** Reserves the run's spend. Call before reading any data (the spend comes from public parameters). */
  async reserve(req: ReservationRequest): Promise<LedgerEntry> {
    return this.update((doc) => decideReservation(doc, req, this.now().toISOString()));
  }

  /** Marks a reservation as committed (the run released its results). Idempotent. */
  async commit(runId: string): Promise<LedgerEntry> {
    return this.update((doc) => decideTransition(doc, runId, 'committed', this.now().toISOString()));
  }

  /** Returns a reservation's budget (the run failed before releasing anything). Idempotent. */
  async release(runId: string): Promise<LedgerEntry> {
    return this.update((doc) => decideTransition(doc, runId, 'released', this.now().toISOString()));
  }

  /** Live spends of `unit` in the window holding `at` and over its lifetime, composed at the limits' δ. */
  async usage(
    unit: string,
    at: string,
    limits: BudgetLimits,
  ): Promise<{ window: BudgetUsage & { label: string }; lifetime: BudgetUsage }> {
    const doc = await this.read();
    return {
      window: {
        ...usageOf(windowEntries(doc, unit, at, limits.window.kind), unit, limits.window.delta),
        label: windowOf(at, limits.window.kind),
      },
      lifetime: usageOf(liveEntries(doc, unit), unit, limits.lifetime.delta),
    };
  }

  /** Every entry (for audits), as stored. */
  async entries(): Promise<LedgerEntry[]> {
    return Object.values((await this.read()).entries);
  }

  /** Input location → unit bindings (for audits). */
  async bindings(): Promise<LedgerDocument['bindings']> {
    return (await this.read()).bindings;
  }

  private async read(): Promise<LedgerDocument> {
    const cur = await readDocument<unknown>(this.store, this.key);
    return cur ? checkLedgerDocument(cur.value) : this.legacy();
  }

  private async legacy(): Promise<LedgerDocument> {
    const old = await readDocument<unknown>(this.store, this.legacyKey);
    return old ? migrateLegacyLedger(old.value) : emptyLedger();
  }

  private async update(
    decide: (doc: LedgerDocument) => { document: LedgerDocument | null; entry: LedgerEntry },
  ): Promise<LedgerEntry> {
    return updateDocument<LedgerDocument, LedgerEntry>(
      this.store,
      this.key,
      async (current) => {
        const doc = current ? checkLedgerDocument(current) : await this.legacy();
        const { document, entry } = decide(doc);
        // A first write also persists a migrated legacy ledger, even when the decision itself changed nothing.
        if (document) return { write: document, result: entry };
        return current ? { keep: true, result: entry } : { write: doc, result: entry };
      },
      MAX_SWAP_ATTEMPTS,
    );
  }
}

/** Opens (lazily creates) the ledger kept in a local folder. */
export function openLedger(dir: string, opts?: LedgerOptions): PrivacyLedger {
  return new PrivacyLedger(new LocalStorage(dir), opts);
}
