import { ApplicationFailure } from '@temporalio/common';
import { isRecforgeError } from '../../contracts/errors';

/**
 * The shared error contract at the activity boundary: a RecforgeError (contracts/errors.ts) becomes a Temporal
 * ApplicationFailure of the same type, non-retryable when its type says so; anything else is left as it is.
 */
export function asFailure(err: unknown): unknown {
  if (!isRecforgeError(err)) return err;
  return ApplicationFailure.create({
    message: err.message,
    type: err.type,
    nonRetryable: !err.retryable,
    ...(err.details !== undefined ? { details: [err.details] } : {}),
  });
}
