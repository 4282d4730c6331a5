/**
 * A run's privacy plan from public configuration only (known before any data is read): the releases and
 * their noise, DP-SGD's parameters, the spend the ledger reserves and the utility estimate. Pure.
 */
import {
  calibrateNoiseMultiplier,
  composedDpSgdEpsilon,
  cooccurrenceSensitivity,
  quantizeSamplingRate,
  discreteGaussianSpend,
  estimateUtility,
  itemUserCountSensitivity,
  planPartitionSelection,
  rhoForApproxDp,
  windowOf,
  zcdpToEpsilon,
  type ContributionCaps,
  type PrivacySpend,
  type Sensitivity,
  type UtilityEstimate,
} from '.';
import type { RecforgeConfig } from '../lib/config';
import { budgetLimits } from './budget-limits';

export { budgetLimits };

/**
 * How the pipeline uses the privacy library. A run makes four count releases, all exact discrete Gaussian after
 * per-user contribution bounding: item popularity and item-pair co-occurrence, each once on the training split
 * (for evaluation) and once on all data (for publishing) — plus, when no public item catalogue (items file) is
 * given, one DP partition selection that decides which item ids may be released at all. The run's (ε, δ) is
 * converted to a zCDP budget ρ (at δ minus the partition selection's threshold δ) and split between them; zCDP
 * composes additively, so together they spend exactly the configured (ε, δ). With DP-SGD training (challenger
 * mf), the counts keep (1 − trainingShare) of ρ and σ is calibrated so that training composed with them in RDP
 * spends at most the configured (ε, δ). Sensitivities come from the caps, never from a typed-in number.
 * Everything here is computed from public configuration, before any data is read.
 */
export type ReleaseName = 'popularity' | 'cooccurrence';

export interface PlannedRelease {
  name: ReleaseName;
  sensitivity: Sensitivity;
  rho: number;
}

/** Where the released item ids come from: the items file (public), or DP partition selection over the data. */
export type ItemSelection = 'public-catalogue' | 'dp-partition-selection';

export function capsOf(config: RecforgeConfig): ContributionCaps {
  return config.privacy.caps;
}

/** Whether this run trains the learned challenger with DP-SGD (the only learned model allowed with privacy on). */
export function dpSgdEnabled(config: RecforgeConfig): boolean {
  return config.privacy.enabled && config.training.challenger === 'mf';
}

/** The run's δ split: the threshold of partition selection (if any) and the rest, where ρ is converted. */
export function deltaSplit(
  config: RecforgeConfig,
  items: ItemSelection,
): { thresholdDelta: number; zcdpDelta: number } {
  const p = config.privacy;
  const thresholdDelta = items === 'dp-partition-selection' ? p.delta * p.partitionSelection.deltaShare : 0;
  return { thresholdDelta, zcdpDelta: p.delta - thresholdDelta };
}

/** zCDP ρ of the count releases (partition selection included): the run's budget, or what DP-SGD leaves them. */
export function countsRho(config: RecforgeConfig, items: ItemSelection = 'public-catalogue'): number {
  const p = config.privacy;
  const rhoTotal = rhoForApproxDp(p.epsilon, deltaSplit(config, items).zcdpDelta);
  return dpSgdEnabled(config) ? rhoTotal * (1 - p.dpSgd.trainingShare) : rhoTotal;
}

/** DP partition selection's share of the counts' ρ (0 with a public catalogue). */
export function partitionSelectionRho(config: RecforgeConfig, items: ItemSelection): number {
  return items === 'dp-partition-selection'
    ? countsRho(config, items) * config.privacy.partitionSelection.share
    : 0;
}

/** The partition selection's plan (σ, threshold, spend), or null with a public catalogue. */
export function plannedPartitionSelection(config: RecforgeConfig, items: ItemSelection) {
  if (items !== 'dp-partition-selection') return null;
  const { thresholdDelta, zcdpDelta } = deltaSplit(config, items);
  return planPartitionSelection(itemUserCountSensitivity(capsOf(config)), {
    rho: partitionSelectionRho(config, items),
    thresholdDelta,
    delta: zcdpDelta,
  });
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
export function plannedDpSgd(config: RecforgeConfig, items: ItemSelection = 'public-catalogue'): DpSgdPlan {
  const p = config.privacy;
  const d = p.dpSgd;
  const q = quantizeSamplingRate(d.samplingRate).q;
  const stepsEval = dpSgdStepCount(d.epochs, q);
  const stepsFull = dpSgdStepCount(d.fullEpochs, q);
  const steps = stepsEval + stepsFull;
  const { zcdpDelta } = deltaSplit(config, items);
  const noiseMultiplier = calibrateNoiseMultiplier({
    samplingRate: q,
    steps,
    otherRho: countsRho(config, items),
    delta: zcdpDelta,
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

/** How the reservation's item ids are released (recorded in its params at planning). */
export function reservedItemSelection(spend: PrivacySpend): ItemSelection {
  const v = spend.params.itemSelection;
  return v === 'dp-partition-selection' ? v : 'public-catalogue';
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
  const items = reservedItemSelection(reserved);
  const epsilon = composedDpSgdEpsilon({
    samplingRate: used.samplingRate,
    noiseMultiplier: used.noiseMultiplier,
    steps: used.stepsEval + used.stepsFull,
    otherRho: countsRho(config, items),
    delta: deltaSplit(config, items).zcdpDelta,
  });
  if (!(epsilon <= reserved.epsilon * (1 + 1e-9)) || used.stepsEval + used.stepsFull <= 0) {
    throw new Error(
      `privacy accounting mismatch: DP-SGD (σ ${used.noiseMultiplier}, q ${used.samplingRate}, ${used.stepsEval}+${used.stepsFull} steps) with the count releases spends ε ${epsilon}, reserved ε ${reserved.epsilon}`,
    );
  }
  return epsilon;
}

/** The per-variant releases (the same plan applies to the eval and the full variant). */
export function plannedReleases(
  config: RecforgeConfig,
  items: ItemSelection = 'public-catalogue',
): Record<ReleaseName, PlannedRelease> {
  const p = config.privacy;
  const rest = countsRho(config, items) - partitionSelectionRho(config, items);
  const caps = capsOf(config);
  // Two variants (training split, all data) of each release share what partition selection leaves equally.
  return {
    popularity: {
      name: 'popularity',
      sensitivity: itemUserCountSensitivity(caps),
      rho: (rest * p.popularityShare) / 2,
    },
    cooccurrence: {
      name: 'cooccurrence',
      sensitivity: cooccurrenceSensitivity(caps),
      rho: (rest * (1 - p.popularityShare)) / 2,
    },
  };
}

/** The whole run's spend, known before any data is read (what the ledger reserves). */
export function plannedSpend(
  config: RecforgeConfig,
  items: ItemSelection = 'public-catalogue',
): PrivacySpend {
  const p = config.privacy;
  const r = plannedReleases(config, items);
  const { zcdpDelta } = deltaSplit(config, items);
  const ps = plannedPartitionSelection(config, items);
  const pop = discreteGaussianSpend(r.popularity.sensitivity, { rho: r.popularity.rho, delta: zcdpDelta });
  const co = discreteGaussianSpend(r.cooccurrence.sensitivity, { rho: r.cooccurrence.rho, delta: zcdpDelta });
  const rho = 2 * ((pop.rho ?? 0) + (co.rho ?? 0)) + (ps?.spend.rho ?? 0);
  // What the threshold actually costs (<= the δ share set aside for it); ρ is converted at the rest of δ.
  const approxDelta = ps?.thresholdDelta ?? 0;
  const counts = {
    releases: ps ? 5 : 4,
    itemSelection: items,
    countsRho: rho,
    popularitySigma: Number(pop.params.sigma),
    cooccurrenceSigma: Number(co.params.sigma),
    maxEventsPerUser: p.caps.maxEventsPerUser,
    maxEventsPerUserItem: p.caps.maxEventsPerUserItem,
    maxItemsPerUser: p.caps.maxItemsPerUser,
    cooccurrenceItems: p.cooccurrenceItems,
    ...(ps
      ? {
          partitionSelectionSigma: ps.sigma,
          partitionSelectionThreshold: ps.threshold,
          partitionSelectionRho: ps.spend.rho ?? 0,
          partitionSelectionDelta: approxDelta,
        }
      : {}),
  };
  const sensitivity = {
    query: `item-user-count + cooccurrence-user-count (x2 variants)${ps ? ' + partition selection' : ''}`,
    norm: 'L2' as const,
    value: r.cooccurrence.sensitivity.l2,
  };
  const mechanism = ps ? 'discrete-gaussian + dp-partition-selection' : 'discrete-gaussian';
  if (!dpSgdEnabled(config)) {
    return {
      mechanism,
      epsilon: zcdpToEpsilon(rho, p.delta - approxDelta),
      delta: p.delta,
      rho,
      ...(ps ? { approxDelta } : {}),
      sensitivity,
      params: counts,
    };
  }
  // DP-SGD is RDP-accounted, not ρ-zCDP: the run's spend carries no ρ (the ledger composes it basically).
  const dp = plannedDpSgd(config, items);
  const epsilon = composedDpSgdEpsilon({
    samplingRate: dp.samplingRate,
    noiseMultiplier: dp.noiseMultiplier,
    steps: dp.stepsEval + dp.stepsFull,
    otherRho: rho,
    delta: zcdpDelta,
  });
  return {
    mechanism: `${mechanism} + dp-sgd`,
    epsilon,
    delta: p.delta,
    sensitivity: {
      ...sensitivity,
      query: `${sensitivity.query}; per-user clipped gradient (L2 ${dp.clipNorm})`,
    },
    params: {
      ...counts,
      countsEpsilon: zcdpToEpsilon(rho, zcdpDelta),
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

/** Signal against noise, from public parameters only: what the summary shows before anything is spent. */
export function plannedUtility(
  config: RecforgeConfig,
  items: ItemSelection,
  catalogueItems: number | null,
): UtilityEstimate {
  const spend = plannedSpend(config, items);
  const ps = plannedPartitionSelection(config, items);
  const caps = config.privacy.caps;
  return estimateUtility({
    expectedUsers: config.privacy.expectedUsers,
    maxItemsPerUser: Math.min(caps.maxItemsPerUser, caps.maxEventsPerUser),
    catalogueItems,
    cooccurrenceItems: config.privacy.cooccurrenceItems,
    popularitySigma: Number(spend.params.popularitySigma),
    cooccurrenceSigma: Number(spend.params.cooccurrenceSigma),
    partitionSelectionThreshold: ps?.threshold ?? null,
  });
}

export { windowOf };
