/**
 * recforge's differential-privacy library. See docs/privacy.md.
 *
 * Deliberately NOT exported: `issueSensitivity` (sensitivities come only from the bounding functions) and the raw
 * samplers of `discrete.ts` (pipeline code goes through the mechanisms, which also produce the spend record).
 */
export { createSecureRng, createSeededRng, CryptoRandomSource, SecureRng, SeededRandomSource } from './rng';
export type { RandomSource } from './rng';

export type { Sensitivity, SensitivityValues } from './sensitivity';
export type { PrivacySpend } from './spend';
export { assertValidSpend } from './spend';

export {
  boundContributions,
  buildBoundingSql,
  cooccurrenceEventSensitivity,
  cooccurrenceSensitivity,
  distinctUserCountSensitivity,
  itemEventCountSensitivity,
  itemUserCountSensitivity,
  itemValueSumSensitivity,
  sqlIdent,
  sqlString,
  totalEventCountSensitivity,
} from './bounding';
export type {
  BoundingSqlOptions,
  BoundingSqlPlan,
  BoundingStats,
  ContributionCaps,
  RowKeys,
} from './bounding';

export {
  discreteGaussianMechanism,
  discreteGaussianSpend,
  discreteLaplaceMechanism,
  discreteLaplaceSpend,
  gaussianMechanism,
  gaussianSpend,
  laplaceMechanism,
  laplaceSpend,
} from './mechanisms';
export type {
  EpsilonParams,
  GaussianParams,
  RealGaussianParams,
  Release,
  SnappingParams,
} from './mechanisms';

export {
  analyticGaussianSigma,
  discreteGaussianDelta,
  discreteGaussianSigma,
  discreteGaussianTailUpper,
  gaussianDelta,
  gaussianRho,
  gaussianSigmaForRho,
  pureDpToRho,
  rhoForApproxDp,
  zcdpToDelta,
  zcdpToEpsilon,
} from './calibration';

export {
  composeSpends,
  composeZcdp,
  computeRdp,
  DEFAULT_RDP_ORDERS,
  RdpAccountant,
  rdpSubsampledGaussian,
  rdpToDelta,
  rdpToEpsilon,
  rdpToEpsilonClassic,
  TF_PRIVACY_ORDERS,
} from './accountant';
export type { ComposedSpend, EpsilonAtOrder } from './accountant';

export {
  addGaussianNoise,
  calibrateNoiseMultiplier,
  composedDpSgdEpsilon,
  poissonSubsample,
  quantizeSamplingRate,
  secureDpSgdRandomness,
} from './dp-sgd';
export type { DpSgdAccounting, DpSgdRandomness } from './dp-sgd';

export {
  ANY_UNIT,
  bestWithin,
  decideReservation,
  decideTransition,
  emptyLedger,
  LedgerConflictError,
  PrivacyBudgetExceededError,
  PrivacyUnitConflictError,
  windowOf,
} from './budget';
export type {
  Binding,
  BudgetLimits,
  BudgetUsage,
  LedgerDocument,
  LedgerEntry,
  PrivacyBudget,
  ReservationRequest,
  ReservationStatus,
  WindowKind,
} from './budget';
export { LEDGER_KEY, openLedger, PrivacyLedger } from './ledger';
export type { LedgerOptions } from './ledger';

export { partitionSelectionThreshold, planPartitionSelection, selectPartitions } from './partition-selection';
export type { PartitionSelectionParams, PartitionSelectionPlan } from './partition-selection';

export { estimateUtility } from './utility';
export type { UtilityEstimate, UtilityInputs, UtilityVerdict } from './utility';
