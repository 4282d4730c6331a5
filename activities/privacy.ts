import * as fs from 'node:fs';
import * as path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import {
  calibrateNoiseMultiplier,
  composedDpSgdEpsilon,
  cooccurrenceSensitivity,
  quantizeSamplingRate,
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
 * configured (ε, δ). With DP-SGD training (challenger mf), the counts keep (1 − trainingShare) of ρ and σ is
 * calibrated so that training composed with them in RDP spends at most the configured (ε, δ).
 * Sensitivities come from the caps, never from a typed-in number.
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

/** Whether this run trains the learned challenger with DP-SGD (the only learned model allowed with privacy on). */
export function dpSgdEnabled(config: RecforgeConfig): boolean {
  return config.privacy.enabled && config.training.challenger === 'mf';
}

/** zCDP ρ of the four count releases: all of the run's budget, or what DP-SGD training leaves them. */
export function countsRho(config: RecforgeConfig): number {
  const p = config.privacy;
  const rhoTotal = rhoForApproxDp(p.epsilon, p.delta);
  return dpSgdEnabled(config) ? rhoTotal * (1 - p.dpSgd.trainingShare) : rhoTotal;
}

/** DP-SGD's parameters, from public configuration only (so they are known before any data is read). */
export interface DpSgdPlan {
  clipNorm: number;
  /** The quantised Poisson rate the sampler uses and the accountant is given. */
  samplingRate: number;
  noiseMultiplier: number;
  epochs: number;
  fullEpochs: number;
  stepsEval: number;
  stepsFull: number;
  /** ε at the run's δ of DP-SGD alone (for the record; the run is accounted jointly). */
  epsilonAlone: number;
}

/** Steps of a DP-SGD variant: ⌈1/q⌉ per expected pass (models/mf-dp.ts runs exactly this many). */
export function dpSgdStepCount(epochs: number, samplingRate: number): number {
  return epochs * Math.ceil(1 / samplingRate);
}

/**
 * σ for DP-SGD: the smallest noise multiplier for which both variants' steps, composed in RDP with the count
 * releases (ρ-zCDP is αρ-RDP), stay within the run's (ε, δ). Giving the counts their share in ρ and letting
 * DP-SGD fill the rest in RDP is tighter than converting each part to (ε, δ) and adding.
 */
export function plannedDpSgd(config: RecforgeConfig): DpSgdPlan {
  const p = config.privacy;
  const d = p.dpSgd;
  const q = quantizeSamplingRate(d.samplingRate).q;
  const stepsEval = dpSgdStepCount(d.epochs, q);
  const stepsFull = dpSgdStepCount(d.fullEpochs, q);
  const steps = stepsEval + stepsFull;
  const noiseMultiplier = calibrateNoiseMultiplier({
    samplingRate: q,
    steps,
    otherRho: countsRho(config),
    delta: p.delta,
    targetEpsilon: p.epsilon,
  });
  return {
    clipNorm: d.clipNorm,
    samplingRate: q,
    noiseMultiplier,
    epochs: d.epochs,
    fullEpochs: d.fullEpochs,
    stepsEval,
    stepsFull,
    epsilonAlone: composedDpSgdEpsilon({
      samplingRate: q,
      noiseMultiplier,
      steps,
      otherRho: 0,
      delta: p.delta,
    }),
  };
}

/** The DP-SGD plan a reservation was made for (what the training activity must use), read from its params. */
export function reservedDpSgd(spend: PrivacySpend): DpSgdPlan {
  const n = (k: string) => {
    const v = spend.params[k];
    if (typeof v !== 'number')
      throw new Error(`the run's privacy reservation has no DP-SGD parameter '${k}'`);
    return v;
  };
  return {
    clipNorm: n('dpSgdClipNorm'),
    samplingRate: n('dpSgdSamplingRate'),
    noiseMultiplier: n('dpSgdNoiseMultiplier'),
    epochs: n('dpSgdEpochs'),
    fullEpochs: n('dpSgdFullEpochs'),
    stepsEval: n('dpSgdStepsEval'),
    stepsFull: n('dpSgdStepsFull'),
    epsilonAlone: n('dpSgdEpsilon'),
  };
}

/**
 * Re-derives the run's total ε from what training is about to use (σ, q, steps) and the count releases, and
 * refuses to train if it exceeds the reservation: the run's total must stay within what the ledger holds.
 */
export function assertDpSgdWithinReservation(
  config: RecforgeConfig,
  reserved: PrivacySpend,
  used: DpSgdPlan,
): number {
  const epsilon = composedDpSgdEpsilon({
    samplingRate: used.samplingRate,
    noiseMultiplier: used.noiseMultiplier,
    steps: used.stepsEval + used.stepsFull,
    otherRho: countsRho(config),
    delta: reserved.delta,
  });
  if (!(epsilon <= reserved.epsilon * (1 + 1e-9)) || used.stepsEval + used.stepsFull <= 0) {
    throw new Error(
      `privacy accounting mismatch: DP-SGD (σ ${used.noiseMultiplier}, q ${used.samplingRate}, ${used.stepsEval}+${used.stepsFull} steps) with the count releases spends ε ${epsilon}, reserved ε ${reserved.epsilon}`,
    );
  }
  return epsilon;
}

/** The per-variant releases (the same plan applies to the eval and the full variant). */
export function plannedReleases(config: RecforgeConfig): Record<ReleaseName, PlannedRelease> {
  const p = config.privacy;
  const rhoTotal = countsRho(config);
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
  const counts = {
    releases: 4,
    countsRho: rho,
    popularitySigma: Number(pop.params.sigma),
    cooccurrenceSigma: Number(co.params.sigma),
    maxEventsPerUser: p.caps.maxEventsPerUser,
    maxEventsPerUserItem: p.caps.maxEventsPerUserItem,
    maxItemsPerUser: p.caps.maxItemsPerUser,
    cooccurrenceItems: p.cooccurrenceItems,
  };
  const sensitivity = {
    query: 'item-user-count + cooccurrence-user-count (x2 variants)',
    norm: 'L2' as const,
    value: r.cooccurrence.sensitivity.l2,
  };
  if (!dpSgdEnabled(config)) {
    return {
      mechanism: 'discrete-gaussian',
      epsilon: zcdpToEpsilon(rho, p.delta),
      delta: p.delta,
      rho,
      sensitivity,
      params: counts,
    };
  }
  // DP-SGD is RDP-accounted, not ρ-zCDP: the run's spend carries no ρ (the ledger composes it basically).
  const dp = plannedDpSgd(config);
  const epsilon = composedDpSgdEpsilon({
    samplingRate: dp.samplingRate,
    noiseMultiplier: dp.noiseMultiplier,
    steps: dp.stepsEval + dp.stepsFull,
    otherRho: rho,
    delta: p.delta,
  });
  return {
    mechanism: 'discrete-gaussian + dp-sgd',
    epsilon,
    delta: p.delta,
    sensitivity: {
      ...sensitivity,
      query: `${sensitivity.query}; per-user clipped gradient (L2 ${dp.clipNorm})`,
    },
    params: {
      ...counts,
      countsEpsilon: zcdpToEpsilon(rho, p.delta),
      composition: 'RDP (counts as zCDP) → (ε, δ), CKS20 conversion',
      dpSgdMechanism: 'dp-sgd',
      dpSgdEpsilon: dp.epsilonAlone,
      dpSgdDelta: p.delta,
      dpSgdNoiseMultiplier: dp.noiseMultiplier,
      dpSgdSamplingRate: dp.samplingRate,
      dpSgdSteps: dp.stepsEval + dp.stepsFull,
      dpSgdStepsEval: dp.stepsEval,
      dpSgdStepsFull: dp.stepsFull,
      dpSgdEpochs: dp.epochs,
      dpSgdFullEpochs: dp.fullEpochs,
      dpSgdClipNorm: dp.clipNorm,
      dpSgdTrainingShare: p.dpSgd.trainingShare,
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
