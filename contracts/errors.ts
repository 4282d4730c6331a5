/**
 * Every failure recforge raises on purpose, in one place. Domain code throws these plain errors; the activity
 * adapter turns them into Temporal ApplicationFailures of the same `type`, non-retryable when `retryable` is
 * false, and workflows hand NON_RETRYABLE to their retry policies. This module imports nothing.
 */

export const ERROR_TYPES = {
  /** Input data or a workflow-input value that no retry can fix (names file, row and field). */
  BadInput: { retryable: false },
  /** Invalid or forbidden configuration (names the key and the file). */
  ConfigError: { retryable: false },
  /** The data-quality gate stopped a run that is too dirty. */
  QualityGateFailed: { retryable: false },
  /** Another run holds the dataset. */
  DatasetBusy: { retryable: false },
  /** The privacy ledger refused the run's spend. */
  PrivacyBudgetExceeded: { retryable: false },
  /** An incremental run found no new input. */
  NoNewData: { retryable: false },
  /** A fixed DuckDB memory limit is too small for the data: the same limit fails the same way again. */
  OutOfMemory: { retryable: false },
  /** The input changed or vanished while it was read (a later attempt may see a complete file). */
  InputChanged: { retryable: true },
  /** Promotion and rollback. */
  VersionRejected: { retryable: false },
  VersionNotPublished: { retryable: false },
  NothingToRollBack: { retryable: false },
  RegistryNotFound: { retryable: false },
  /** The live pointer moved under a promotion (a concurrent promote/rollback): this run's comparison is void. */
  RegistryConflict: { retryable: false },
  RegistryInvalid: { retryable: false },
  /** Too many concurrent writers on one state document: worth another attempt. */
  StateConflict: { retryable: true },
} as const;

export type ErrorType = keyof typeof ERROR_TYPES;

/** The error types no retry can fix: the one list every workflow's retry policy uses. */
export const NON_RETRYABLE: readonly ErrorType[] = (Object.keys(ERROR_TYPES) as ErrorType[]).filter(
  (t) => !ERROR_TYPES[t].retryable,
);

export class RecforgeError extends Error {
  readonly retryable: boolean;
  constructor(
    readonly type: ErrorType,
    message: string,
    /** Small JSON-safe details shown with the failure (never file contents). */
    readonly details?: unknown,
  ) {
    super(message);
    this.name = type;
    this.retryable = ERROR_TYPES[type].retryable;
  }
}

export const badInput = (message: string, details?: unknown) =>
  new RecforgeError('BadInput', message, details);
export const configError = (message: string, details?: unknown) =>
  new RecforgeError('ConfigError', message, details);

export function isRecforgeError(err: unknown, type?: ErrorType): err is RecforgeError {
  return err instanceof RecforgeError && (type === undefined || err.type === type);
}
