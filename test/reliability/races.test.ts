import * as fs from 'node:fs';
import * as path from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { WorkflowHandle } from '@temporalio/client';
import type { LivePointer } from '../../contracts/registry';
import type { RunSummary } from '../../contracts/stages';
import { loadConfig } from '../../lib/config';
import {
  smallDataset,
  startTemporal,
  startWorkers,
  stopWorkers,
  tempDir,
  testOverrides,
  ROOT,
} from '../helpers/env';
import { MODE, report, rng, suiteSeed } from './support/harness';
import { readLiveState, registryDir, settledProblems, type Layout } from './support/live-state';

/**
 * Issue #16, races: two retrains of one dataset at once (one is refused as DatasetBusy and changes nothing), and
 * an operator's promote or rollback against a running retrain (the retrain's promotion either fails cleanly with
 * RegistryConflict — it was judged against a champion that is gone — or wins before the operator's move; never
 * two champions, never a half-moved pointer). The multi-process races of the privacy ledger and of bundled-data
 * generation are test/unit/privacy-ledger.test.ts and test/unit/datagen-race.test.ts, which the suite's runner
 * includes (test/reliability/jest.config.js).
 */

jest.setTimeout(MODE === 'nightly' ? 3_600_000 : 900_000);

const BUSY_ROUNDS = MODE === 'nightly' ? 10 : 3;
const OPERATOR_ROUNDS = MODE === 'nightly' ? 20 : 5;

const dataDir = tempDir('rel-races');
const layout: Layout = { dataDir, datasetId: 'synthetic' };
const overrides = testOverrides(dataDir);
let env: TestWorkflowEnvironment;
let workers: Awaited<ReturnType<typeof startWorkers>>;
let data: { interactions: string; items: string };
let seq = 0;

beforeAll(async () => {
  env = await startTemporal();
  workers = await startWorkers(env, loadConfig({ root: ROOT, overrides, env: {} }).config);
  data = await smallDataset(path.join(dataDir, 'input'));
});

afterAll(async () => {
  if (workers) await stopWorkers(workers);
  await env?.teardown();
});

const retrain = (): Promise<WorkflowHandle> =>
  env.client.workflow.start('retrainPipeline', {
    taskQueue: 'recforge-cpu',
    workflowId: `rel-race-${++seq}`,
    args: [{ interactions: data.interactions, items: data.items, overrides }],
  });

/** The failure type a workflow ended with (the innermost ApplicationFailure's), or 'completed'. */
async function outcome(h: WorkflowHandle): Promise<{ type: string; summary?: RunSummary; message?: string }> {
  try {
    const summary = (await h.result()) as RunSummary;
    return { type: summary.status, summary };
  } catch (err) {
    let e = err as { type?: string; message?: string; cause?: unknown } | undefined;
    let type = 'unknown';
    let message = '';
    while (e) {
      if (e.type) type = e.type;
      message = e.message ?? message;
      e = e.cause as typeof e;
    }
    return { type, message };
  }
}

const pointer = (): LivePointer | null => readLiveState(layout).pointer;
const records = (): string[] => {
  const dir = path.join(registryDir(layout), 'models');
  return fs.existsSync(dir) ? fs.readdirSync(dir).sort() : [];
};
const lockHolder = () =>
  (JSON.parse(fs.readFileSync(path.join(dataDir, 'locks', 'synthetic.json'), 'utf8')) as { holder: unknown })
    .holder;

const failures: string[] = [];
const counts = { busyRaces: 0, refusedBusy: 0, operatorRaces: 0, retrainLostToOperator: 0, retrainWon: 0 };

test(`two retrains of one dataset at once (${BUSY_ROUNDS} rounds): one runs, the other is refused as DatasetBusy and changes nothing`, async () => {
  for (let round = 0; round < BUSY_ROUNDS; round++) {
    counts.busyRaces++;
    const before = records();
    const [a, b] = await Promise.all([retrain(), retrain()]);
    const [oa, ob] = await Promise.all([outcome(a), outcome(b)]);
    const done = [oa, ob].filter((o) => o.type === 'completed');
    const busy = [oa, ob].filter((o) => o.type === 'DatasetBusy');
    if (done.length !== 1 || busy.length !== 1) {
      failures.push(
        `busy round ${round}: outcomes ${oa.type} (${oa.message ?? ''}), ${ob.type} (${ob.message ?? ''})`,
      );
      continue;
    }
    counts.refusedBusy++;
    const winner = done[0].summary!.modelVersion;
    const problems = settledProblems(layout);
    if (pointer()?.version !== winner) problems.push(`live ${pointer()?.version}, winner ${winner}`);
    // The refused run took nothing and left nothing: one new registry record (the winner's), the lock free (its
    // compensation must not have released the winner's lock while the winner ran: the winner completed).
    const added = records().filter((r) => !before.includes(r));
    if (added.length !== 1 || added[0] !== winner)
      problems.push(`registry records added: ${added.join(', ')}`);
    if (lockHolder() !== null) problems.push('dataset lock still held');
    if (problems.length) failures.push(`busy round ${round}: ${problems.join('; ')}`);
  }
  expect(failures).toEqual([]);
});

test(`promote / rollback against a running retrain (${OPERATOR_ROUNDS + 1} races): the retrain fails with RegistryConflict or wins; one champion`, async () => {
  const seed = suiteSeed('races');
  const r = rng(seed);
  // The retrain's own duration, to draw the operator's instant from.
  const t = Date.now();
  expect((await outcome(await retrain())).type).toBe('completed');
  const retrainMs = Date.now() - t;
  for (let round = 0; round <= OPERATOR_ROUNDS; round++) {
    counts.operatorRaces++;
    const p0 = pointer()!;
    expect(p0.previous).not.toBeNull();
    const h = await retrain();
    // Round 0: a rollback while the retrain trains or evaluates (judged against the champion being replaced);
    // later rounds: a promotion of the previous version at a random instant of the retrain.
    const rollback = round === 0;
    if (rollback) {
      for (;;) {
        const s = (await h.query<{ stage: string }>('progress').catch(() => ({ stage: 'plan' }))).stage;
        if (s === 'train' || s === 'evaluate') break;
        await new Promise((res) => setTimeout(res, 50));
      }
    } else await new Promise((res) => setTimeout(res, Math.round(r() * retrainMs)));
    const op = await env.client.workflow.execute(rollback ? 'rollbackModel' : 'promoteModel', {
      taskQueue: 'recforge-cpu',
      workflowId: `rel-race-op-${round}`,
      args: [rollback ? { reason: 'race', overrides } : { version: p0.previous, reason: 'race', overrides }],
    });
    const o = await outcome(h);
    const p = pointer()!;
    const problems = settledProblems(layout);
    const moves = p.history.slice(p0.history.length);
    const mine = h.workflowId;
    // One pointer, one line of moves: each move replaced the version the one before it made live.
    moves.forEach((m, i) => {
      const before = i === 0 ? p0.version : moves[i - 1].version;
      if (m.previous !== before) problems.push(`move ${i} replaced ${m.previous}, but ${before} was live`);
    });
    if (o.type === 'completed') {
      counts.retrainWon++;
      // It won: the operator's move came before its champion lookup (it was judged against the new champion)
      // or after its promotion; either way both moves are in the line, the retrain's once.
      if (moves.length !== 2 || moves.filter((m) => m.by === mine).length !== 1)
        problems.push(
          `retrain completed but the moves were ${JSON.stringify(moves.map((m) => [m.by, m.version]))}`,
        );
    } else if (o.type === 'RegistryConflict') {
      counts.retrainLostToOperator++;
      // It lost: only the operator moved the pointer; the retrain's version folder was discarded, its record
      // stays a candidate, and it gave the dataset back.
      if (moves.length !== 1 || moves[0].by === mine)
        problems.push(`moves after a conflict: ${JSON.stringify(moves)}`);
      const version = (await h.query<{ modelVersion?: string }>('progress')).modelVersion!;
      if (readLiveState(layout).versionFolders.includes(version))
        problems.push(`${version}'s folder was not discarded`);
      if (!records().includes(version)) problems.push(`${version} is not in the registry`);
    } else problems.push(`retrain ended ${o.type}: ${o.message}`);
    if (p.version !== (op as { champion: string }).champion && moves.at(-1)?.by !== mine)
      problems.push(
        `live ${p.version}, the operator's move made ${(op as { champion: string }).champion} champion`,
      );
    if (lockHolder() !== null) problems.push('dataset lock still held');
    if (problems.length) failures.push(`operator round ${round}: ${problems.join('; ')}`);
  }
  report('races', {
    seed,
    races: counts.busyRaces + counts.operatorRaces,
    ...counts,
    failures,
  });
  expect(failures).toEqual([]);
});
