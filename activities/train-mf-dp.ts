import * as fs from 'node:fs';
import * as path from 'node:path';
import { withDb } from '../lib/duckdb';
import { readJsonIfExists, writeJsonAtomic } from '../lib/fs-atomic';
import type { ModelRecord } from '../contracts/registry';
import type { ModelRegistry } from '../registry/registry';
import { loadMFModel, saveMFModel, selectBackend, trainMFDp, type DpNoise, type MFModel } from '../models';
import { createSecureRng, secureDpSgdRandomness } from '../privacy';
import type { RunPlan } from '../workflows/types';
import { finishLearned, runWithCheckpoints, type LearnedResult, type VariantRun } from './checkpoints';
import { limitsOf, log } from './context';
import { assertDpSgdWithinReservation, reservedDpSgd, type DpSgdPlan } from './privacy';
import { fit, mfConfig, readInteractions, type Data } from './train-mf';

/**
 * The learned challenger `mf` with privacy on: BPR-MF trained with user-level DP-SGD (models/mf-dp.ts).
 *
 * - Reads only the contribution-bounded tables (train_bounded, all_bounded), like the DP count releases.
 * - Trains with the σ, q, steps and C the run RESERVED (plan.privacy), after re-checking that they compose with
 *   the count releases within the reservation; never with values recomputed from a possibly different config.
 * - No validation split and no early stopping: picking an epoch by a metric on private data is a release the
 *   accountant does not cover. Both variants run their full, fixed step counts (eval, then full fine-tuned
 *   from it), and both are in the accounting.
 * - Warm start only from a champion that was itself trained with DP-SGD (its spend is in the ledger already);
 *   otherwise a data-independent seeded initialisation.
 * - Retry safety: a finished variant is saved with a marker (`dp-sgd-release-<variant>.json`, the same pattern
 *   as train-dp.ts) before its checkpoint is removed, so a retried activity reuses it instead of drawing new
 *   noise; an interrupted variant resumes from its checkpoint and runs only the remaining steps.
 */

interface ReleasedVariant {
  modelDir: string;
  steps: number;
  epochsRun: number;
  examplesPerSec: number;
}

function championIsDp(champion: ModelRecord | undefined): boolean {
  return champion?.model === 'mf' && champion.privacy?.params['dpSgdMechanism'] === 'dp-sgd';
}

async function trainVariant(
  plan: RunPlan,
  name: string,
  data: Data,
  dp: DpSgdPlan,
  epochs: number,
  steps: number,
  noise: DpNoise,
  warm: MFModel | undefined,
): Promise<VariantRun<MFModel>> {
  const dir = path.join(plan.runDir, 'models');
  const marker = path.join(dir, `dp-sgd-release-${name}.json`);
  const released = readJsonIfExists<ReleasedVariant>(marker);
  if (released && fs.existsSync(released.modelDir)) {
    log('dp-sgd: reusing the released model of an earlier attempt', { variant: name, steps: released.steps });
    return {
      model: (await loadMFModel(released.modelDir)).model,
      resumedFrom: released.steps,
      examplesPerSec: released.examplesPerSec,
      epochsRun: released.epochsRun,
    };
  }
  const modelDir = path.join(dir, `${name}.dp-release.model`);
  const m = plan.config.training.mf;
  const cfg = {
    ...mfConfig(plan, epochs),
    lr: plan.config.privacy.dpSgd.lr,
    negativeSampling: 'uniform' as const,
  };
  // The loop counts one "example" per step; report examples as steps/s times the expected examples per step.
  const perStep = dp.samplingRate * data.userIdx.length;
  let examplesPerSec = 0;
  const run = await runWithCheckpoints<MFModel>(plan, name, async (hooks, resumeFrom) => {
    const res = await trainMFDp(
      {
        userIdx: data.userIdx,
        itemIdx: data.itemIdx,
        weight: data.weight,
        numUsers: data.numUsers,
        numItems: data.numItems,
      },
      cfg,
      { clipNorm: dp.clipNorm, noiseMultiplier: dp.noiseMultiplier, samplingRate: dp.samplingRate, epochs },
      noise,
      {
        ...hooks,
        onProgress: (p) => {
          examplesPerSec = p.examplesPerSec * perStep;
          return hooks.onProgress?.(p);
        },
      },
      resumeFrom ? { resumeFrom } : warm ? { initialWeights: fit(warm, data, m.seed) } : {},
    );
    if (res.globalStep !== steps) {
      throw new Error(
        `dp-sgd ran ${res.globalStep} steps for ${name}, the reservation accounts for ${steps}`,
      );
    }
    // Released (model + marker) before runWithCheckpoints removes the checkpoint: whenever an attempt dies, the
    // next finds the marker or the checkpoint, never neither.
    await saveMFModel(modelDir, res.model, { runId: plan.runId, variant: name, dpSgd: { ...dp } });
    writeJsonAtomic(marker, {
      modelDir,
      steps,
      epochsRun: res.epochsRun,
      examplesPerSec,
    } satisfies ReleasedVariant);
    return res;
  });
  return { ...run, examplesPerSec };
}

export async function trainLearnedDp(
  plan: RunPlan,
  registry: ModelRegistry,
  champion: ModelRecord | undefined,
): Promise<LearnedResult> {
  if (!plan.privacy) throw new Error('DP-SGD training needs the run privacy reservation (plan.privacy)');
  const dp = reservedDpSgd(plan.privacy.spend);
  const epsilon = assertDpSgdWithinReservation(plan.config, plan.privacy.spend, dp);
  log('dp-sgd', { ...dp, runEpsilon: epsilon, reserved: plan.privacy.spend.epsilon });
  const selection = await selectBackend(plan.config.training.backend);
  fs.mkdirSync(path.join(plan.runDir, 'models'), { recursive: true });
  const mf = plan.config.training.mf;
  const { trainData, allData } = await withDb(plan.dbPath, limitsOf(plan), async (db) => ({
    trainData: await readInteractions(db, 'train_bounded', 0, mf.eventWeights),
    allData: await readInteractions(db, 'all_bounded', 0, mf.eventWeights),
  }));
  const championModels =
    champion?.model === 'mf' && champion.modelDirs
      ? {
          eval: (await loadMFModel(registry.store.uri(champion.modelDirs.eval))).model,
        }
      : undefined;
  // Fresh secure randomness per attempt: the sample of users and the noise must be unpredictable.
  const noise = secureDpSgdRandomness(createSecureRng(), dp.samplingRate);
  const evalRun = await trainVariant(
    plan,
    'mf',
    trainData,
    dp,
    dp.epochs,
    dp.stepsEval,
    noise,
    championIsDp(champion) ? championModels?.eval : undefined,
  );
  const fullRun =
    dp.fullEpochs > 0
      ? await trainVariant(plan, 'mf-full', allData, dp, dp.fullEpochs, dp.stepsFull, noise, evalRun.model)
      : { ...evalRun, resumedFrom: null };
  return finishLearned<MFModel, Data>(plan, {
    family: 'mf',
    backend: selection,
    eval: { run: evalRun, data: trainData },
    full: { run: fullRun, data: allData },
    // Re-scoring the champion only feeds the evaluation report (like the other models' metrics), not a release.
    championEval: championModels ? fit(championModels.eval, trainData, mf.seed) : null,
    save: saveMFModel,
    factors: (model) => model,
  });
}
