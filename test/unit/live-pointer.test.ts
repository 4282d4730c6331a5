import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  promoteChallenger,
  rollBack,
  setLive,
  retainedVersions,
  PointerConflict,
} from '../../registry/pointer';
import { ModelRegistry } from '../../registry/registry';
import { LocalStorage } from '../../lib/storage';

const ctx = (reason = 'r', by = 'wf') => ({ datasetId: 'ds', at: '2026-12-01T00:00:00Z', reason, by });

describe('live pointer transitions (pure)', () => {
  test('a challenger goes live only against the champion it was evaluated against', () => {
    const p1 = promoteChallenger(null, 'v1', null, ctx())!;
    expect(p1).toMatchObject({ version: 'v1', previous: null, path: 'versions/v1' });
    const p2 = promoteChallenger(p1, 'v2', 'v1', ctx())!;
    expect(p2).toMatchObject({ version: 'v2', previous: 'v1' });
    expect(() => promoteChallenger(p2, 'v3', 'v1', ctx())).toThrow(PointerConflict);
    // A retry after the swap succeeded changes nothing.
    expect(promoteChallenger(p2, 'v2', 'v1', ctx())).toBeNull();
  });

  test('rollback swaps live and previous; its retry does not swap back; nothing to roll back is an error', () => {
    const p2 = promoteChallenger(promoteChallenger(null, 'v1', null, ctx())!, 'v2', 'v1', ctx())!;
    const back = rollBack(p2, ctx('bad ctr', 'wf-r'))!;
    expect(back).toMatchObject({ version: 'v1', previous: 'v2' });
    expect(rollBack(back, ctx('bad ctr', 'wf-r'))).toBeNull();
    expect(() => rollBack(promoteChallenger(null, 'v1', null, ctx()), ctx())).toThrow(/no previous champion/);
  });

  test('retention keeps live, previous and the most recently live up to keep', () => {
    let p = promoteChallenger(null, 'v1', null, ctx())!;
    for (const v of ['v2', 'v3', 'v4', 'v5']) p = setLive(p, v, ctx())!;
    expect([...retainedVersions(p, 3)].sort()).toEqual(['v3', 'v4', 'v5']);
    expect([...retainedVersions(p, 1)].sort()).toEqual(['v4', 'v5']);
    expect(retainedVersions(null, 3).size).toBe(0);
  });
});

describe('ModelRegistry on local storage', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'recforge-registry-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
  const reg = new ModelRegistry(new LocalStorage(dir), {
    datasetId: 'ds',
    registryPrefix: 'registry/ds',
    outputPrefix: 'output/ds',
  });
  const out = path.join(dir, 'output', 'ds');

  test('the pointer, its reader copy and `current` move together; a stale derived link heals on sync', async () => {
    fs.mkdirSync(path.join(out, 'versions', 'v1'), { recursive: true });
    fs.mkdirSync(path.join(out, 'versions', 'v2'), { recursive: true });
    await reg.promoteChallenger('v1', null, { at: 'a', reason: 'r', by: 'w' });
    await reg.promoteChallenger('v2', 'v1', { at: 'b', reason: 'r', by: 'w' });
    expect(fs.readlinkSync(path.join(out, 'current'))).toBe('versions/v2');
    expect(JSON.parse(fs.readFileSync(path.join(out, '_current.json'), 'utf8')).version).toBe('v2');
    // A process killed after the swap and before relinking leaves `current` behind: the retry's sync heals it.
    fs.rmSync(path.join(out, 'current'));
    fs.symlinkSync('versions/v1', path.join(out, 'current'));
    await reg.syncDerived();
    expect(fs.readlinkSync(path.join(out, 'current'))).toBe('versions/v2');
  });

  test('records are written once: the same run gets its record back, another run is refused', async () => {
    const rec = {
      version: 'v9',
      runId: 'run-a',
      gate: { decision: 'reject' as const, checks: [] },
    } as unknown as Parameters<typeof reg.register>[0];
    await reg.register(rec);
    expect((await reg.register(rec)).runId).toBe('run-a');
    await expect(reg.register({ ...rec, runId: 'run-b' })).rejects.toThrow(/already registered by run run-a/);
    expect(await reg.status(await reg.require('v9'))).toBe('rejected');
  });
});
