/** What profiling hands the workflow: drift against the last published run. */

export type DriftStatus = 'ok' | 'warn' | 'alert';

/** The compact summary returned to the workflow (the full report is in profile.json). */
export interface DriftSummary {
  previousRunId: string;
  volumeChange: number;
  maxPsi: number;
  newUsersShare: number | null;
  newItemsShare: number | null;
  status: DriftStatus;
}
