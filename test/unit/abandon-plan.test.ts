import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadConfig, type RecforgeConfig } from '../../lib/config';
import { openStorage, readDocument } from '../../lib/storage';
import { acquireDatasetLock, lockKey, releaseDatasetLock, type LockHolder } from '../../activities/lock';
import { ledger, reserveBudget, settlePrivacyBudget } from '../../activities/privacy';
import { directRun } from '../../activities/support/direct';
import type { RunRef } from '../../contracts/run';
import type { RunPlan } from '../../contracts/stages';
import { ROOT, tempDir } from '../helpers/env';

/**
 * What a run takes before it reads data — the dataset lock and the privacy reservation — the workflow's saga gives
 * back whatever happens (workflows/saga.ts; this replaces planRun's abandonPlan). Compensations may run again
 * (an activity retry, a replayed step), so each must be idempotent and touch only this run's lock and
 * reservation, never another run's.
 */

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

function setup(name: string, privacy = false): { config: RecforgeConfig; dataDir: string } {
  const dataDir = tempDir(name);
  dirs.push(dataDir);
  const overrides = {
    dataDir,
    privacy: privacy ? { enabled: true, unit: 'abandon-test' } : { enabled: false },
  };
  return { config: loadConfig({ root: ROOT, env: {}, overrides }).config, dataDir };
}

/** The plan of run `runId` of dataset `ds` (workflow `wf-<runId>`), as planRun would resolve it. */
function planOf(config: RecforgeConfig, runId: string): RunPlan {
  const plan = directRun({ config, datasetId: 'ds', runId, interactionFiles: [] }).plan;
  return { ...plan, run: { ...plan.run, workflowId: `wf-${runId}` } };
}
const runOf = (config: RecforgeConfig, runId: string): RunRef => planOf(config, runId).run;

async function holder(dataDir: string): Promise<LockHolder | null> {
  const doc = await readDocument<{ holder: LockHolder | null }>(openStorage(dataDir), lockKey('ds'));
  return doc?.value.holder ?? null;
}

describe('giving back the dataset lock (releaseDatasetLock)', () => {
  test('releases this run’s lock, once; a second release (a retry) changes nothing', async () => {
    const { config, dataDir } = setup('abandon-lock');
    const me = runOf(config, 'run-me');
    await acquireDatasetLock(me, undefined);
    expect(await holder(dataDir)).toMatchObject({ workflowId: 'wf-run-me', runId: 'run-me' });
    expect(await releaseDatasetLock(me)).toBe(true);
    expect(await holder(dataDir)).toBeNull();
    const before = await readDocument(openStorage(dataDir), lockKey('ds'));
    expect(await releaseDatasetLock(me)).toBe(false);
    // Nothing was written: the document's version is the same.
    expect((await readDocument(openStorage(dataDir), lockKey('ds')))!.token).toBe(before!.token);
    // Free again: the next run takes it without judging anyone.
    await acquireDatasetLock(runOf(config, 'run-next'), undefined);
    expect(await holder(dataDir)).toMatchObject({ runId: 'run-next' });
  });

  test('leaves a lock held by another run alone (same workflow id, another run too)', async () => {
    const { config, dataDir } = setup('abandon-other');
    const other = runOf(config, 'run-other');
    await acquireDatasetLock(other, undefined);
    expect(await releaseDatasetLock(runOf(config, 'run-me'))).toBe(false);
    // The same workflow id with another run id (a reset or continued-as-new run) is not the holder either.
    expect(await releaseDatasetLock({ ...runOf(config, 'run-me'), workflowId: other.workflowId })).toBe(
      false,
    );
    expect(await holder(dataDir)).toMatchObject({ workflowId: 'wf-run-other', runId: 'run-other' });
  });

  test('with no lock ever taken, releasing is harmless and writes nothing', async () => {
    const { config, dataDir } = setup('abandon-none');
    expect(await releaseDatasetLock(runOf(config, 'run-me'))).toBe(false);
    expect(fs.existsSync(path.join(dataDir, 'locks'))).toBe(false);
  });
});

describe('settling the privacy reservation (settlePrivacyBudget)', () => {
  const reservation = (config: RecforgeConfig, runId: string) =>
    reserveBudget(config, {
      runId,
      label: 'ds',
      inputs: ['/data/in.csv'],
      startedAt: '2026-11-23T00:00:00Z',
      items: 'public-catalogue',
      catalogueItems: null,
    });
  const statuses = async (config: RecforgeConfig) =>
    Object.fromEntries((await ledger(config).entries()).map((e) => [e.runId, e.status]));

  test('releases this run’s reservation and nothing of another run; idempotent', async () => {
    const { config } = setup('abandon-budget', true);
    await reservation(config, 'run-me');
    await reservation(config, 'run-other');
    await settlePrivacyBudget(planOf(config, 'run-me'), 'release');
    expect(await statuses(config)).toEqual({ 'run-me': 'released', 'run-other': 'reserved' });
    await settlePrivacyBudget(planOf(config, 'run-me'), 'release');
    expect(await statuses(config)).toEqual({ 'run-me': 'released', 'run-other': 'reserved' });
  });

  test('a commit (noise was released) is idempotent and can never be given back', async () => {
    const { config } = setup('abandon-commit', true);
    await reservation(config, 'run-me');
    await reservation(config, 'run-other');
    // After training the workflow commits, and its saga step commits again at the end.
    await settlePrivacyBudget(planOf(config, 'run-me'), 'commit');
    await settlePrivacyBudget(planOf(config, 'run-me'), 'commit');
    expect(await statuses(config)).toEqual({ 'run-me': 'committed', 'run-other': 'reserved' });
    // A release after the spend became public would un-spend it: refused, and the entry stays committed.
    await expect(settlePrivacyBudget(planOf(config, 'run-me'), 'release')).rejects.toThrow(/committed/);
    expect(await statuses(config)).toEqual({ 'run-me': 'committed', 'run-other': 'reserved' });
  });

  test('a run that reserved nothing changes nothing in the ledger', async () => {
    const { config } = setup('abandon-noreserve', true);
    await reservation(config, 'run-other');
    const before = await ledger(config).entries();
    await settlePrivacyBudget(planOf(config, 'run-me'), 'release').catch(() => undefined);
    expect(await ledger(config).entries()).toEqual(before);
  });
});
