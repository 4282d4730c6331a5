import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  ConfigError,
  loadConfig,
  loadRunConfig,
  loadWorkerConfig,
  PROTECTED_KEYS,
  resolveRunConfigFile,
} from '../../lib/config';
import { decideGates, EXACT_MOSTPOP } from '../../evaluation/gates';
import { ROOT, tempDir } from '../helpers/env';

const dir = tempDir('privacy-config');
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const f = path.join(dir, name);
  fs.writeFileSync(f, text);
  return f;
}

function errorOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('expected a ConfigError');
}

describe('privacy keys', () => {
  test('privacy is an explicit opt-in: off by default, and on it needs the privacy unit', () => {
    expect(loadConfig({ root: ROOT, env: {} }).config.privacy.enabled).toBe(false);
    expect(
      errorOf(() => loadConfig({ root: ROOT, env: {}, overrides: { privacy: { enabled: true } } })),
    ).toMatch(/overrides: privacy\.unit: required with privacy\.enabled/);
    const on = loadConfig({
      root: ROOT,
      env: {},
      overlay: path.join(ROOT, 'configs', 'private.yaml'),
    }).config;
    expect(on.privacy).toMatchObject({ enabled: true, unit: 'bundled-synthetic-shoppers' });
    expect(on.evaluation.cutoff).toBe('2026-10-06T00:00:00Z');
  });

  test('with privacy on, k-core is refused; off, it is allowed; the lifetime budget must cover a window', () => {
    const kCore = { cleaning: { kCore: { users: 2, items: 2, maxIterations: 5 } } };
    expect(loadConfig({ root: ROOT, env: {}, overrides: kCore }).config.cleaning.kCore.users).toBe(2);
    const overlay = path.join(ROOT, 'configs', 'private.yaml');
    expect(errorOf(() => loadConfig({ root: ROOT, env: {}, overlay, overrides: kCore }))).toMatch(
      /cleaning\.kCore: not allowed with privacy\.enabled/,
    );
    expect(
      errorOf(() =>
        loadConfig({
          root: ROOT,
          env: {},
          overlay,
          overrides: { privacy: { budget: { lifetime: { epsilon: 1, delta: 1e-4 } } } },
        }),
      ),
    ).toMatch(/privacy\.budget\.lifetime: must be at least the per-window budget/);
  });
});

describe('config layers: the worker’s, then the run’s, protected keys checked on the merged result', () => {
  test('RECFORGE_CONFIG is a comma-separated list of worker overlays, merged in order', () => {
    const a = file('a.yaml', 'publish:\n  topN: 7\nevaluation:\n  k: 5\n');
    const b = file('b.yaml', 'publish:\n  topN: 9\n');
    const { config, sources } = loadWorkerConfig({ root: ROOT, env: { RECFORGE_CONFIG: `${a}, ${b}` } });
    expect(config.publish.topN).toBe(9);
    expect(config.evaluation.k).toBe(5);
    expect(sources).toEqual([path.join(ROOT, 'configs', 'default.yaml'), a, b]);
  });

  test('a run layer merges over the worker config (not over the defaults) and keeps its protected values', () => {
    const worker = file(
      'worker.yaml',
      'privacy:\n  enabled: true\n  unit: pop\npublish:\n  keepVersions: 3\n',
    );
    const env = { RECFORGE_CONFIG: worker, RECFORGE_DATA_DIR: path.join(dir, 'data') };
    const run = loadRunConfig({
      root: ROOT,
      env,
      config: 'configs/mf-dp.yaml',
      overrides: { publish: { topN: 5 } },
    });
    expect(run.config.training.challenger).toBe('mf');
    expect(run.config.publish).toMatchObject({ topN: 5, keepVersions: 3 });
    expect(run.config.privacy).toEqual(run.worker.privacy);
    expect(run.config.dataDir).toBe(path.join(dir, 'data'));
    expect(run.sources.at(-1)).toBe('workflow input overrides');
  });

  test('every protected key is guarded, in files and overrides, and the message names key, layer and values', () => {
    expect([...PROTECTED_KEYS]).toEqual([
      'dataDir',
      'storage',
      'privacy',
      'temporal',
      'registry',
      'publish.outputDir',
      'dataset.inputRoots',
    ]);
    const env = { RECFORGE_CONFIG: file('w2.yaml', 'privacy:\n  enabled: true\n  unit: pop\n') };
    expect(
      errorOf(() => loadRunConfig({ root: ROOT, env, overrides: { registry: { dir: 'other-registry' } } })),
    ).toBe(
      'workflow input overrides: may not change the protected key registry.dir (worker: "registry", run: "other-registry"). ' +
        "Protected keys (dataDir, storage, privacy, temporal, registry, publish.outputDir, dataset.inputRoots) are set only in the workers' config " +
        '(configs/default.yaml, RECFORGE_CONFIG, environment): a run cannot choose another privacy ledger, lift the budget or move state',
    );
    expect(errorOf(() => loadRunConfig({ root: ROOT, env, config: 'configs/mf.yaml' }))).toMatch(
      /configs\/mf\.yaml: may not change the protected key privacy\.enabled \(worker: true, run: false\)/,
    );
    // Tests (and only tests) may let run layers change protected keys.
    expect(
      loadRunConfig({ root: ROOT, env, overrides: { dataDir: dir }, allowProtected: true }).config.dataDir,
    ).toBe(dir);
  });

  test('the run config file resolves under configs/ only (symlinks followed first)', () => {
    expect(resolveRunConfigFile(ROOT, 'configs/movielens.yaml')).toBe(
      path.join(ROOT, 'configs', 'movielens.yaml'),
    );
    expect(resolveRunConfigFile(ROOT, path.join(ROOT, 'configs', 'mf.yaml'))).toBe(
      path.join(ROOT, 'configs', 'mf.yaml'),
    );
    for (const bad of [
      '/etc/passwd',
      'package.json',
      'configs/../tsconfig.json',
      'configs',
      file('x.yaml', '{}'),
    ])
      expect(errorOf(() => resolveRunConfigFile(ROOT, bad))).toMatch(/a run's config must be/);
  });
});

describe('the gate with privacy on', () => {
  test('the challenger must beat MostPop on exact counts, not the noisy MostPop beside it', () => {
    const metrics = {
      itemitem: { 'ndcg@10': 0.1, coverage: 0.1 },
      mostpop: { 'ndcg@10': 0.05 },
      [EXACT_MOSTPOP]: { 'ndcg@10': 0.099 },
    };
    const gates = { minimums: {}, maxRegression: 0.02, mostPopMargin: 0.05, minUsers: 50 };
    // evaluate() names the exact MostPop as the baseline whenever it was scored (privacy on).
    const baseline = (m: Record<string, unknown>) => (m[EXACT_MOSTPOP] ? EXACT_MOSTPOP : 'mostpop');
    const run = (m: Record<string, Record<string, number>>) =>
      decideGates({
        k: 10,
        challenger: 'itemitem',
        metrics: m,
        gates,
        evaluatedUsers: 500,
        baseline: baseline(m),
      });
    const d = run(metrics);
    expect(d.decision).toBe('reject');
    const check = d.checks.find((c) => c.name.includes('beats'))!;
    expect(check).toMatchObject({
      name: 'itemitem ndcg@10 beats mostpop-exact by 5%',
      value: 0.1,
      passed: false,
    });
    expect(check.threshold).toBeCloseTo(0.099 * 1.05, 12);
    // Without privacy the (exact) mostpop is the reference, as before.
    const { [EXACT_MOSTPOP]: _exact, ...plain } = metrics;
    expect(run(plain).decision).toBe('promote');
  });
});
