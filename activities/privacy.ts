import * as fs from 'node:fs';
import { ApplicationFailure } from '@temporalio/common';
import { PrivacyLedger } from '../privacy';
import { isRecforgeError } from '../contracts/errors';
import { dataPath, type RecforgeConfig } from '../lib/config';
import { openStorage } from '../lib/storage';
import type { PreparedInput, RunPlan } from '../contracts/stages';
import {
  budgetLimits,
  plannedSpend,
  plannedUtility,
  windowOf,
  type ItemSelection,
} from '../privacy/run-plan';

/**
 * The privacy budget's two saga steps: reserve a run's planned spend in the ledger before any data is read,
 * settle it (commit, or give back) when the run knows whether noise was drawn. The arithmetic is in
 * privacy/run-plan.ts; the ledger's rules in privacy/ledger*.ts.
 */

export function ledgerDir(config: RecforgeConfig): string {
  return dataPath(config, 'privacy-ledger');
}

/** The ledger on the workers' storage (`privacy-ledger/ledger.json`): shared by every worker that shares it. */
export function ledger(config: RecforgeConfig): PrivacyLedger {
  return new PrivacyLedger(openStorage(config.storage.root || config.dataDir), { prefix: 'privacy-ledger' });
}

export type { PrivacyReservation } from '../contracts/privacy';
import type { PrivacyReservation } from '../contracts/privacy';

/** A RecforgeError from the privacy library as the Temporal failure of the same type (non-retryable as declared). */
function asFailure(err: unknown): never {
  if (isRecforgeError(err)) {
    throw ApplicationFailure.create({ message: err.message, type: err.type, nonRetryable: !err.retryable });
  }
  throw err;
}

/**
 * Reserves the run's spend before any data is read, charged to the worker's privacy unit, with the resolved
 * input locations bound to it. Refused (non-retryable) when it would exceed the unit's window or lifetime budget,
 * when an input is bound to another unit, or when the plan's own estimate says the lists would be noise and
 * `privacy.minSignalToNoise` asks to refuse. Idempotent for the same run (activity retries do not double-spend).
 */
export async function reserveBudget(
  config: RecforgeConfig,
  run: {
    runId: string;
    /** The dataset id: recorded as a label only. */
    label: string;
    inputs: string[];
    startedAt: string;
    items: ItemSelection;
    /** Public catalogue size (items file rows), for the utility estimate. */
    catalogueItems: number | null;
  },
): Promise<PrivacyReservation> {
  const unit = config.privacy.unit;
  if (!unit) throw ApplicationFailure.nonRetryable('privacy.enabled needs privacy.unit', 'ConfigError');
  const spend = plannedSpend(config, run.items);
  const utility = plannedUtility(config, run.items, run.catalogueItems);
  if (utility.cooccurrenceSignalToNoise < config.privacy.minSignalToNoise) {
    throw ApplicationFailure.nonRetryable(
      `privacy plan refused before spending: ${utility.note} (signal-to-noise ${utility.cooccurrenceSignalToNoise} < ` +
        `privacy.minSignalToNoise ${config.privacy.minSignalToNoise}; expectedUsers ${utility.expectedUsers})`,
      'ConfigError',
    );
  }
  const limits = budgetLimits(config);
  try {
    await ledger(config).reserve({
      runId: run.runId,
      unit,
      label: run.label,
      inputs: run.inputs,
      at: run.startedAt,
      spend,
      limits,
    });
  } catch (err) {
    asFailure(err);
  }
  return {
    unit,
    window: windowOf(run.startedAt, limits.window.kind),
    spend,
    ledgerPath: ledgerDir(config),
    inputs: [...new Set(run.inputs)].sort(),
    utility,
  };
}

/** Activity: reserves the planned run's spend (see reserveBudget), binding the files it will read. */
export async function reservePrivacyBudget(plan: RunPlan, input: PreparedInput): Promise<PrivacyReservation> {
  return reserveBudget(plan.config, {
    runId: plan.run.runId,
    label: plan.run.datasetId,
    inputs: input.interactionFiles.map((f) => fs.realpathSync(f)),
    startedAt: plan.run.startedAt,
    items: input.itemsFile ? 'public-catalogue' : 'dp-partition-selection',
    catalogueItems: catalogueSize(input.itemsFile),
  });
}

/** Rows of a CSV items file (lines after the header): the public catalogue's size for the utility estimate. */
function catalogueSize(file: string | null): number | null {
  if (!file || !/\.csv$/i.test(file)) return null;
  try {
    const text = fs.readFileSync(file);
    let lines = 0;
    for (const b of text) if (b === 10) lines++;
    if (text.length > 0 && text[text.length - 1] !== 10) lines++;
    return Math.max(0, lines - 1);
  } catch {
    return null;
  }
}

/**
 * Activity: commits the run's reservation once noise was released, or gives it back if nothing was. A run
 * that reserved nothing (it stopped before its reservation was written) has nothing to settle.
 */
export async function settlePrivacyBudget(plan: RunPlan, outcome: 'commit' | 'release'): Promise<void> {
  const l = ledger(plan.config);
  if (!(await l.entries()).some((e) => e.runId === plan.run.runId)) return;
  await settleBudget(plan.config, plan.run.runId, outcome);
}

export async function settleBudget(
  config: RecforgeConfig,
  runId: string,
  outcome: 'commit' | 'release',
): Promise<void> {
  const l = ledger(config);
  if (outcome === 'commit') await l.commit(runId);
  else await l.release(runId);
}
