import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { planRun, prepareInput } from '../../activities/plan';
import { ledger, reservePrivacyBudget } from '../../activities/privacy';
import type { ActivityDeps } from '../../activities/support/context';
import type { RetrainInput, StageRun } from '../../contracts/stages';
import { ROOT, tempDir } from '../helpers/env';

/**
 * Each way around the privacy budget that was reproduced against the earlier code is tried here through the real
 * planning activities (config layering, input resolution, the ledger reservation) and must be refused with a clear
 * error:
 *  - two dataset ids (and a copy of the file) over one population spent a budget each;
 *  - a workflow input `{"config": "configs/two-tower.yaml"}` replaced the worker's config and lifted privacy;
 *  - overrides or a config file naming another ledger (dataDir) or budget;
 *  - the CLI choosing another ledger with `--config`;
 *  - nightly windows that reset forever (no lifetime bound);
 *  - one file spent under two units.
 */

const dir = tempDir('bypass');
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** A small interactions file and a catalogue. */
function inputs(): { interactions: string; items: string } {
  const interactions = path.join(dir, 'events.csv');
  const items = path.join(dir, 'items.csv');
  if (!fs.existsSync(interactions)) {
    const lines = ['user_id,item_id,event_type,rating,timestamp'];
    for (let u = 0; u < 30; u++)
      for (let d = 1; d <= 20; d++)
        lines.push(`u${u},i${(u * d) % 17},view,,2026-10-${String(d).padStart(2, '0')}T10:00:00Z`);
    fs.writeFileSync(interactions, lines.join('\n') + '\n');
    fs.writeFileSync(
      items,
      'item_id,category,price,title,in_stock\n' +
        Array.from({ length: 17 }, (_, i) => `i${i},c,1,t,true`).join('\n') +
        '\n',
    );
  }
  return { interactions, items };
}

/** A worker whose config (RECFORGE_CONFIG overlay, data dir) is private for `unit`. */
function privateWorker(
  name: string,
  unit: string,
  budget = 'epsilon: 12, delta: 1.0e-5, window: day, lifetime: { epsilon: 20, delta: 1.0e-4 }',
): ActivityDeps {
  const overlay = path.join(dir, `${name}.yaml`);
  fs.writeFileSync(
    overlay,
    `privacy:\n  enabled: true\n  unit: ${unit}\n  epsilon: 4\n  delta: 1.0e-6\n  budget: { ${budget} }\n`,
  );
  const dataDir = path.join(dir, `data-${name}`);
  return { root: ROOT, dataDir, env: { RECFORGE_CONFIG: overlay, RECFORGE_DATA_DIR: dataDir } };
}

let runNo = 0;
/**
 * Plans one run and reserves its budget, as the workflow's first steps do: planRun, prepareInput, then
 * reservePrivacyBudget before any data is read (the dataset lock, taken in between, plays no part here).
 */
async function plan(
  deps: ActivityDeps,
  input: RetrainInput,
  startedAt = '2026-11-23T02:00:00.000Z',
): Promise<Omit<StageRun, 'incremental'>> {
  runNo++;
  const p = await planRun(deps, input, {
    workflowId: `wf-${runNo}`,
    runId: `run-${String(runNo).padStart(4, '0')}`,
    startedAt,
  });
  const prepared = await prepareInput(deps, p);
  const privacy = p.config.privacy.enabled ? await reservePrivacyBudget(p, prepared) : null;
  return { plan: p, input: prepared, privacy };
}

async function refusal(
  deps: ActivityDeps,
  input: RetrainInput,
  startedAt?: string,
): Promise<{ type: string; message: string }> {
  try {
    await plan(deps, input, startedAt);
  } catch (err) {
    return { type: String((err as { type?: string }).type), message: (err as Error).message };
  }
  throw new Error('expected the run to be refused');
}

describe('the budget cannot be forked or lifted by whoever starts a workflow', () => {
  test('two dataset ids and a copy of the file share one unit’s budget: together they get what one label gets', async () => {
    const { interactions, items } = inputs();
    const copy = path.join(dir, 'events-copy.csv');
    fs.copyFileSync(interactions, copy);
    // How many runs one label alone gets (zCDP composition of ε 4 runs against 12 a day).
    const alone = privateWorker('alone', 'alone-unit');
    let single = 0;
    for (;;) {
      try {
        await plan(alone, { datasetId: 'synthetic', interactions, items });
        single++;
      } catch (err) {
        expect((err as { type?: string }).type).toBe('PrivacyBudgetExceeded');
        break;
      }
    }
    expect(single).toBe(7); // seven runs of ε 4 (δ 1e-6) compose to ε <= 12 at δ 1e-5 in zCDP
    // Alternating labels and a copy of the file under another path: still one budget, the same number of runs.
    const deps = privateWorker('labels', 'shoppers');
    const variants: RetrainInput[] = [
      { datasetId: 'synthetic', interactions, items },
      { datasetId: 'synthetic-copy', interactions, items },
      { datasetId: 'synthetic-copy', interactions: copy, items },
    ];
    let admitted = 0;
    let refused: { type?: string; message: string } | undefined;
    let first: Awaited<ReturnType<typeof plan>> | undefined;
    for (let i = 0; i < 4 * single && !refused; i++) {
      try {
        const p = await plan(deps, variants[i % variants.length]);
        first ??= p;
        admitted++;
      } catch (err) {
        refused = err as { type?: string; message: string };
      }
    }
    expect(admitted).toBe(single);
    expect(refused?.type).toBe('PrivacyBudgetExceeded');
    expect(refused?.message).toMatch(
      /privacy budget exceeded for unit "shoppers" window "2026-11-23": budget ε=12/,
    );
    expect(first!.privacy).toMatchObject({ unit: 'shoppers', inputs: [fs.realpathSync(interactions)] });
    // Every spend is under the unit; the labels are recorded, and decide nothing.
    const entries = await ledger(first!.plan.config).entries();
    expect(new Set(entries.map((e) => e.unit))).toEqual(new Set(['shoppers']));
    expect(new Set(entries.map((e) => e.label))).toEqual(new Set(['synthetic', 'synthetic-copy']));
    expect(entries).toHaveLength(single);
  });

  test('lifetime: the next day’s window is open, but the unit’s lifetime bound stops it', async () => {
    const deps = privateWorker(
      'lifetime',
      'lifetime-unit',
      'epsilon: 12, delta: 1.0e-5, window: day, lifetime: { epsilon: 14, delta: 1.0e-5 }',
    );
    const { interactions, items } = inputs();
    const until = async (day: string) => {
      for (let n = 0; ; n++) {
        try {
          await plan(deps, { interactions, items }, `${day}T02:00:00.000Z`);
        } catch (err) {
          expect((err as { type?: string }).type).toBe('PrivacyBudgetExceeded');
          return { n, message: (err as Error).message };
        }
      }
    };
    const day1 = await until('2026-11-23');
    expect(day1.message).toMatch(/unit "lifetime-unit" window "2026-11-23"/);
    const day2 = await until('2026-11-24');
    expect(day2.n).toBeLessThan(day1.n);
    expect(day2.message).toMatch(/unit "lifetime-unit" lifetime: budget ε=14 .*lifetime budget/);
    const day30 = await until('2026-12-23');
    expect(day30.n).toBe(0);
  });

  test('a file spent under one unit cannot be spent under another (two worker pools, one ledger)', async () => {
    const a = privateWorker('unit-a', 'unit-a');
    const { interactions, items } = inputs();
    await plan(a, { interactions, items });
    // Same data dir (ledger), another unit.
    const b: ActivityDeps = {
      root: ROOT,
      dataDir: a.dataDir,
      env: { ...privateWorker('unit-b', 'unit-b').env, RECFORGE_DATA_DIR: a.env!.RECFORGE_DATA_DIR },
    };
    const r = await refusal(b, { interactions, items });
    expect(r.type).toBe('ConfigError');
    expect(r.message).toContain(`input ${fs.realpathSync(interactions)} belongs to privacy unit "unit-a"`);
    expect(r.message).toContain(`this worker's unit is "unit-b"`);
  });

  test('{"config": "configs/two-tower.yaml"} cannot lift privacy: refused naming the key and the file', async () => {
    const deps = privateWorker('layers', 'layers');
    const { interactions, items } = inputs();
    const r = await refusal(deps, { interactions, items, config: 'configs/two-tower.yaml' });
    expect(r.type).toBe('ConfigError');
    expect(r.message).toContain(path.join(ROOT, 'configs', 'two-tower.yaml'));
    expect(r.message).toMatch(
      /may not change the protected key privacy\.enabled \(worker: true, run: false\)/,
    );
    // A run layer that changes nothing protected is merged over the worker's config (privacy stays on).
    const ok = await plan(deps, { interactions, items, config: 'configs/mf-dp.yaml' });
    expect(ok.plan.config.training.challenger).toBe('mf');
    expect(ok.plan.config.privacy).toMatchObject({ enabled: true, unit: 'layers' });
  });

  test('overrides of protected keys are refused, whichever layer and however deep', async () => {
    const deps = privateWorker('overrides', 'overrides');
    const { interactions, items } = inputs();
    for (const [overrides, key] of [
      [{ privacy: { budget: { epsilon: 1000 } } }, 'privacy.budget.epsilon'],
      [{ privacy: { unit: 'fresh-budget' } }, 'privacy.unit'],
      [{ privacy: { enabled: false } }, 'privacy.enabled'],
      [{ dataDir: path.join(dir, 'elsewhere') }, 'dataDir'],
      [{ publish: { outputDir: '/tmp/out' } }, 'publish.outputDir'],
      [{ temporal: { taskQueues: { training: 'mine' } } }, 'temporal.taskQueues.training'],
    ] as const) {
      const r = await refusal(deps, { interactions, items, overrides });
      expect(r.type).toBe('ConfigError');
      expect(r.message).toContain(`workflow input overrides: may not change the protected key ${key}`);
    }
    // Setting a protected key to the worker's own value changes nothing and is accepted.
    await plan(deps, {
      interactions,
      items,
      overrides: { privacy: { enabled: true }, publish: { topN: 5 } },
    });
  });

  test('the run config file must live under configs/: no arbitrary files on the worker', async () => {
    const deps = privateWorker('files', 'files');
    const { interactions, items } = inputs();
    const outside = path.join(dir, 'lift.yaml');
    fs.writeFileSync(outside, 'publish:\n  topN: 5\n');
    for (const config of [
      outside,
      'configs/../package.json',
      '../configs/default.yaml',
      'configs/none.yaml',
    ]) {
      const r = await refusal(deps, { interactions, items, config });
      expect(r.type).toBe('ConfigError');
      expect(r.message).toMatch(/a run's config must be a \.yaml, \.yml or \.json file under .*configs/);
    }
  });

  test('k-core is refused with privacy on, naming the key and why', async () => {
    const deps = privateWorker('kcore', 'kcore');
    const { interactions, items } = inputs();
    const r = await refusal(deps, {
      interactions,
      items,
      overrides: { cleaning: { kCore: { users: 3, items: 0 } } },
    });
    expect(r.type).toBe('ConfigError');
    expect(r.message).toMatch(/cleaning\.kCore: not allowed with privacy\.enabled.*other users' rows/);
  });
});

describe('the CLI passes --config as the run layer', () => {
  // The real `recforge` command (bin/recforge.js: dist, rebuilt first if a source changed).
  beforeAll(() => {
    execFileSync(process.execPath, [path.join(ROOT, 'bin', 'build.js')], { cwd: ROOT, stdio: 'ignore' });
  });
  const cli = (args: string[], env: NodeJS.ProcessEnv) =>
    spawnSync(process.execPath, [path.join(ROOT, 'bin', 'recforge.js'), 'run', ...args], {
      cwd: ROOT,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
      encoding: 'utf8',
      timeout: 60_000,
    });

  test('--config naming another ledger, budget or privacy setting is refused before anything starts', () => {
    const deps = privateWorker('cli', 'cli-unit');
    const otherLedger = path.join(dir, 'other-ledger.yaml');
    fs.writeFileSync(otherLedger, `dataDir: ${path.join(dir, 'fresh-ledger')}\n`);
    const out = cli(['--config', otherLedger], deps.env!);
    expect(out.stderr).not.toMatch(/Cannot find module/);
    expect(out.status).toBe(1);
    expect(out.stderr).toMatch(/a run's config must be a \.yaml, \.yml or \.json file under/);
    const lift = cli(['--config', 'configs/two-tower.yaml'], deps.env!);
    expect(lift.status).toBe(1);
    expect(lift.stderr).toMatch(
      /configs\/two-tower\.yaml: may not change the protected key privacy\.enabled/,
    );
    // Nothing was started or spent.
    expect(fs.existsSync(path.join(dir, 'fresh-ledger'))).toBe(false);
    expect(fs.existsSync(path.join(deps.env!.RECFORGE_DATA_DIR!, 'privacy-ledger'))).toBe(false);
  }, 120_000);
});
