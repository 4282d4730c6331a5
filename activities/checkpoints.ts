import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  saveTrainingState,
  loadTrainingState,
  type TrainingState,
  type TrainHooks,
  type TrainResult,
} from '../models';
import type { RunPlan } from '../workflows/types';
import { progress } from './context';

/**
 * Checkpoint/resume and progress reporting shared by the learned challengers: a variant checkpoints under the
 * run folder; a retried activity (worker crash) finds the checkpoint and resumes from it; heartbeats carry
 * epoch, step, loss, speed and where it resumed from.
 */
export interface VariantRun<M> {
  model: M;
  resumedFrom: number | null;
  examplesPerSec: number;
  epochsRun: number;
}

export async function runWithCheckpoints<M>(
  plan: RunPlan,
  name: string,
  train: (hooks: TrainHooks<M>, resumeFrom: TrainingState | undefined) => Promise<TrainResult<M>>,
  evaluate?: TrainHooks<M>['evaluate'],
): Promise<VariantRun<M>> {
  const ckpt = path.join(plan.runDir, 'models', `${name}.ckpt`);
  let resumeFrom: TrainingState | undefined;
  if (fs.existsSync(ckpt)) {
    try {
      resumeFrom = await loadTrainingState(ckpt);
    } catch {
      resumeFrom = undefined; // A checkpoint cut short by the crash: start over.
    }
  }
  let rate = 0;
  const result = await train(
    {
      evaluate,
      onProgress: (p) => {
        rate = p.examplesPerSec;
        progress({
          stage: 'train',
          model: name,
          epoch: p.epoch,
          step: p.step,
          totalSteps: p.totalSteps,
          loss: Number(p.loss.toFixed(5)),
          examplesPerSec: Math.round(p.examplesPerSec),
          resumedFrom: resumeFrom?.globalStep ?? null,
        });
      },
      onCheckpoint: (state) => saveTrainingState(ckpt, state),
    },
    resumeFrom,
  );
  fs.rmSync(ckpt, { recursive: true, force: true });
  return {
    model: result.model,
    resumedFrom: resumeFrom?.globalStep ?? null,
    examplesPerSec: rate,
    epochsRun: result.epochsRun,
  };
}
