import * as fs from 'node:fs';
import * as path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import {
  cooccurrenceSensitivity,
  discreteGaussianSpend,
  itemUserCountSensitivity,
  openLedger,
  PrivacyBudgetExceededError,
  rhoForApproxDp,
  zcdpToEpsilon,
  type ContributionCaps,
  type PrivacySpend,
  type PrivacyLedger,
  type Sensitivity,
} from '../privacy';
import { dataPath, type RecforgeConfig } from '../lib/config';

/**
 * How the pipeline uses the privacy library. A run makes four releases, all exact discrete Gaussian after
 * per-user contribution bounding: item popularity and item-pair co-occurrence, each once on the training
 * split (for evaluation) and once on all data (for publishing). The run's (ε, δ) is converted to a zCDP
 * budget ρ and split between them; zCDP composes additively, so the four together spend exactly the
 * configured (ε, δ). Sensitivities come from the caps, never from a typed-in number.
 */
export type ReleaseName = 'popularity' | 'cooccurrence';

export interface PlannedRelease {
  name: ReleaseName;
  sensitivity: Sensitivity;
  rho: number;
}

export function capsOf(config: RecforgeConfig): ContributionCaps {
  return config.privacy.caps;
}

/** The per-variant releases (the same plan applies to the eval and the full variant). */
export function plannedReleases(config: RecforgeConfig): Record<ReleaseName, PlannedRelease> {
  const p = config.privacy;
  const rhoTotal = rhoForApproxDp(p.epsilon, p.delta);
  const caps = capsOf(config);
  // Two variants (training split, all data) of each release share the run's budget equally.
  return {
    popularity: {
      name: 'popularity',
      sensitivity: itemUserCountSensitivity(caps),
      rho: (rhoTotal * p.popularityShare) / 2,
    },
    cooccurrence: {
      name: 'cooccurrence',
      sensitivity: cooccurrenceSensitivity(caps),
      rho: (rhoTotal * (1 - p.popularityShare)) / 2,
    },
  };
}

/** The whole run's spend, known before any data is read (what the ledger reserves). */
export function plannedSpend(config: RecforgeConfig): PrivacySpend {
  const p = config.privacy;
  const r = plannedReleases(config);
  const pop = discreteGaussianSpend(r.popularity.sensitivity, { rho: r.popularity.rho, delta: p.delta });
  const co = discreteGaussianSpend(r.cooccurrence.sensitivity, { rho: r.cooccurrence.rho, delta: p.delta });
  const rho = 2 * ((pop.rho ?? 0) + (co.rho ?? 0));
  return {
    mechanism: 'discrete-gaussian',
    epsilon: zcdpToEpsilon(rho, p.delta),
    delta: p.delta,
    rho,
    sensitivity: {
      query: 'item-user-count + cooccurrence-user-count (x2 variants)',
      norm: 'L2',
      value: r.cooccurrence.sensitivity.l2,
    },
    params: {
      releases: 4,
      popularitySigma: Number(pop.params.sigma),
      cooccurrenceSigma: Number(co.params.sigma),
      maxEventsPerUser: p.caps.maxEventsPerUser,
      maxEventsPerUserItem: p.caps.maxEventsPerUserItem,
      maxItemsPerUser: p.caps.maxItemsPerUser,
      cooccurrenceItems: p.cooccurrenceItems,
    },
  };
}

export function ledgerDir(config: RecforgeConfig): string {
  return dataPath(config, 'privacy-ledger');
}

export function ledger(config: RecforgeConfig): PrivacyLedger {
  const dir = ledgerDir(config);
  fs.mkdirSync(dir, { recursive: true });
  return openLedger(dir);
}

/** The budget window a run spends in: its start's UTC month (`2026-11`) or day (`2026-11-23`). */
export function windowOf(startedAt: string, window: 'month' | 'day'): string {
  return window === 'month' ? startedAt.slice(0, 7) : startedAt.slice(0, 10);
}

export interface PrivacyReservation {
  window: string;
  spend: PrivacySpend;
  ledgerPath: string;
}

/**
 * Reserves the run's spend before any data is read. Refused (non-retryable) when it would exceed the
 * dataset's budget for the window; idempotent for the same run (activity retries do not double-spend).
 */
export async function reserveBudget(
  config: RecforgeConfig,
  datasetId: string,
  runId: string,
  startedAt: string,
): Promise<PrivacyReservation> {
  const spend = plannedSpend(config);
  const window = windowOf(startedAt, config.privacy.budget.window);
  try {
    await ledger(config).reserve(
      datasetId,
      window,
      spend,
      { epsilon: config.privacy.budget.epsilon, delta: config.privacy.budget.delta },
      runId,
    );
  } catch (err) {
    if (err instanceof PrivacyBudgetExceededError) {
      throw ApplicationFailure.nonRetryable(
        `${err.message} (dataset '${datasetId}', window ${window}; raise privacy.budget or wait for the next window)`,
        'PrivacyBudgetExceeded',
      );
    }
    throw err;
  }
  return { window, spend, ledgerPath: path.join(ledgerDir(config)) };
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
