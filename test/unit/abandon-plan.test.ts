import * as fs from 'node:fs';
import { loadConfig } from '../../lib/config';
import { abandonPlan } from '../../activities/plan';
import { acquireDatasetLock, lockFile } from '../../activities/lock';
import { ledger, reserveBudget } from '../../activities/privacy';
import { ROOT, tempDir } from '../helpers/env';

/** What a planRun cancelled half-way may leave behind — a lock and a reservation — is given back. */
describe('abandonPlan', () => {
  const me = { workflowId: 'wf-cancelled', runId: 'run-cancelled' };
  const deps = { root: ROOT, allowProtectedOverrides: true } as never;

  test('releases this run’s reservation and dataset lock, and nothing of another run', async () => {
    const dataDir = tempDir('abandon');
    const overrides = { dataDir, privacy: { enabled: true, unit: 'abandon-test' } };
    const { config } = loadConfig({ root: ROOT, env: {}, overrides });
    await acquireDatasetLock(dataDir, 'ds', { ...me, acquiredAt: 'now' }, undefined);
    const run = (runId: string) => ({
      runId,
      label: 'ds',
      inputs: ['/data/in.csv'],
      startedAt: '2026-11-23T00:00:00Z',
      items: 'public-catalogue' as const,
      catalogueItems: null,
    });
    await reserveBudget(config, run(me.runId));
    await reserveBudget(config, run('other-run'));

    await abandonPlan(deps, { datasetId: 'ds', overrides }, me);
    const status = Object.fromEntries((await ledger(config).entries()).map((e) => [e.runId, e.status]));
    expect(status).toEqual({ [me.runId]: 'released', 'other-run': 'reserved' });
    expect(fs.existsSync(lockFile(dataDir, 'ds'))).toBe(false);
    // Idempotent, and harmless when nothing was taken.
    await abandonPlan(deps, { datasetId: 'ds', overrides }, me);
    await abandonPlan(deps, { datasetId: 'other', overrides }, me);
  });

  test('leaves a lock held by another run alone', async () => {
    const dataDir = tempDir('abandon-other');
    await acquireDatasetLock(dataDir, 'ds', { workflowId: 'w2', runId: 'r2', acquiredAt: 'now' }, undefined);
    await abandonPlan(deps, { datasetId: 'ds', overrides: { dataDir } }, me);
    expect(JSON.parse(fs.readFileSync(lockFile(dataDir, 'ds'), 'utf8')).runId).toBe('r2');
  });
});
