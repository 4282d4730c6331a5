/** What evaluation produces and gates decide on: shared by evaluation/, activities, workflows and reports. */

export type ModelMetrics = Record<string, number>;

export interface GateCheck {
  name: string;
  value: number;
  threshold: number;
  passed: boolean;
  /** 95% bootstrap interval of the value, where the check uses one. */
  ci?: [number, number];
  /** Users behind the value (a check with too few users fails, whatever its value). */
  users?: number;
  /** Why it failed, in words, when that is not plain from value and threshold. */
  reason?: string;
}

export type GateDecisionName = 'promote' | 'reject';

export interface GateDecision {
  decision: GateDecisionName;
  checks: GateCheck[];
}
