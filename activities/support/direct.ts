import type { RecforgeConfig } from '../../lib/config';
import type { IncrementalPlan, StageRun } from '../../contracts/stages';
import type { PrivacyReservation } from '../../contracts/privacy';

/**
 * A run for calling stage activities directly, outside a workflow (benchmarks, tests): what planRun,
 * prepareInput and the saga steps would have produced, on the config's storage.
 */
export function directRun(o: {
  config: RecforgeConfig;
  datasetId?: string;
  runId?: string;
  startedAt?: string;
  runDate?: string;
  interactionFiles: string[];
  itemsFile?: string | null;
  privacy?: PrivacyReservation | null;
  incremental?: IncrementalPlan | null;
}): StageRun {
  const datasetId = o.datasetId ?? o.config.dataset.id;
  const runId = o.runId ?? 'direct-run';
  const startedAt = o.startedAt ?? new Date().toISOString();
  return {
    plan: {
      run: {
        runId,
        workflowId: 'direct',
        datasetId,
        storage: o.config.storage.root || o.config.dataDir,
        runKey: `runs/${datasetId}/${runId}`,
        startedAt,
        modelVersion: `${datasetId}-${runId}`,
        duckdb: { memoryLimit: o.config.duckdb.memoryLimit, threads: o.config.duckdb.threads },
      },
      config: o.config,
      runDate: o.runDate ?? startedAt.slice(0, 10),
      interactions: o.interactionFiles[0] ?? '',
      items: o.itemsFile ?? null,
      itemsRequired: false,
      generate: null,
    },
    input: { interactionFiles: o.interactionFiles, itemsFile: o.itemsFile ?? null, generatedData: false },
    privacy: o.privacy ?? null,
    incremental: o.incremental ?? null,
  };
}
