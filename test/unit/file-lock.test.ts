import { fork, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Client } from '@temporalio/client';
import { openStorage, readDocument } from '../../lib/storage';
import { acquireDatasetLock, lockKey, releaseDatasetLock, type LockHolder } from '../../activities/lock';
import type { RunRef } from '../../contracts/run';
import { compileForChildren } from '../helpers/compile';
import { stageFailure } from '../helpers/stages';

/**
 * The dataset lock (activities/lock.ts): one retrain per dataset, as a compare-and-swap document on the run's
 * storage (`locks/<dataset>.json`). A holder whose workflow is gone is taken over in the same swap that judged it;
 * a live holder makes the next run fail with DatasetBusy. (Giving the lock back is tested with the saga's other
 * compensations in abandon-plan.test.ts.)
 */

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'recforge-dataset-lock-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
const fresh = () => fs.mkdtempSync(path.join(root, 't-'));

const runRef = (storage: string, runId: string, datasetId = 'ds'): RunRef => ({
  runId,
  workflowId: `wf-${runId}`,
  datasetId,
  storage,
  runKey: `runs/${datasetId}/${runId}`,
  startedAt: '2026-11-23T00:00:00.000Z',
  modelVersion: `${datasetId}-${runId}`,
  duckdb: { memoryLimit: '256MB', threads: 1 },
});

/** Temporal's answer about a holder's workflow: its status, or an error of the given name. */
type Answer = { status: string } | { error: string };

/** A Temporal client whose describe() answers per run id, counting the questions. */
function fakeClient(answer: (h: { workflowId: string; runId: string }) => Answer | Promise<Answer>) {
  const asked: string[] = [];
  const client = {
    workflow: {
      getHandle: (workflowId: string, runId: string) => ({
        describe: async () => {
          asked.push(runId);
          const a = await answer({ workflowId, runId });
          if ('error' in a) {
            const err = new Error(`${a.error} for ${workflowId}`);
            err.name = a.error;
            throw err;
          }
          return { status: { name: a.status } };
        },
      }),
    },
  } as unknown as Client;
  return { client, asked };
}

const running = () => fakeClient(() => ({ status: 'RUNNING' }));
const gone = () => fakeClient(() => ({ error: 'WorkflowNotFoundError' }));

async function lockDoc(storage: string, datasetId = 'ds') {
  const doc = await readDocument<{ holder: LockHolder | null; history: { event: string; runId: string }[] }>(
    openStorage(storage),
    lockKey(datasetId),
  );
  return doc?.value ?? null;
}

describe('dataset lock', () => {
  test('a free dataset is taken; the same run again (an activity retry) keeps it as it is', async () => {
    const dir = fresh();
    const a = runRef(dir, 'a');
    await acquireDatasetLock(a, undefined);
    const first = await lockDoc(dir);
    expect(first!.holder).toMatchObject({ workflowId: 'wf-a', runId: 'a' });
    await acquireDatasetLock(a, running().client);
    expect(await lockDoc(dir)).toEqual(first);
    // The document lives on the run's storage, per dataset: another dataset is independent.
    await acquireDatasetLock(runRef(dir, 'b', 'other'), undefined);
    expect((await lockDoc(dir, 'other'))!.holder).toMatchObject({ runId: 'b' });
  });

  test('a live holder (workflow RUNNING) makes the second run fail with DatasetBusy, naming the holder', async () => {
    const dir = fresh();
    await acquireDatasetLock(runRef(dir, 'a'), undefined);
    const { client, asked } = running();
    const err = await stageFailure(acquireDatasetLock(runRef(dir, 'b'), client));
    expect(err).toMatchObject({ type: 'DatasetBusy', nonRetryable: true });
    expect(err.message).toMatch(/dataset 'ds' is already being retrained by workflow wf-a \(run a,/);
    expect(asked).toEqual(['a']);
    expect((await lockDoc(dir))!.holder).toMatchObject({ runId: 'a' });
  });

  test('without a Temporal client a holder cannot be proved gone: refused, never stolen', async () => {
    const dir = fresh();
    await acquireDatasetLock(runRef(dir, 'a'), undefined);
    expect(await stageFailure(acquireDatasetLock(runRef(dir, 'b'), undefined))).toMatchObject({
      type: 'DatasetBusy',
    });
    expect((await lockDoc(dir))!.holder).toMatchObject({ runId: 'a' });
  });

  test('a holder whose workflow is gone (WorkflowNotFoundError) is taken over', async () => {
    const dir = fresh();
    await acquireDatasetLock(runRef(dir, 'a'), undefined);
    const { client, asked } = gone();
    await acquireDatasetLock(runRef(dir, 'b'), client);
    const doc = await lockDoc(dir);
    expect(doc!.holder).toMatchObject({ workflowId: 'wf-b', runId: 'b' });
    expect(doc!.history.map((h) => [h.event, h.runId])).toEqual([
      ['acquired', 'a'],
      ['taken-over', 'b'],
    ]);
    expect(asked).toEqual(['a']);
  });

  test.each(['COMPLETED', 'FAILED', 'CANCELLED', 'TERMINATED', 'TIMED_OUT'])(
    'a holder whose workflow ended (%s) without giving the lock back is taken over',
    async (status) => {
      const dir = fresh();
      await acquireDatasetLock(runRef(dir, 'a'), undefined);
      await acquireDatasetLock(runRef(dir, 'b'), fakeClient(() => ({ status })).client);
      expect((await lockDoc(dir))!.holder).toMatchObject({ runId: 'b' });
    },
  );

  test('a failure to ask Temporal (not "not found") steals nothing: the error surfaces, the holder stays', async () => {
    const dir = fresh();
    await acquireDatasetLock(runRef(dir, 'a'), undefined);
    const { client } = fakeClient(() => ({ error: 'ServiceError' }));
    await expect(acquireDatasetLock(runRef(dir, 'b'), client)).rejects.toMatchObject({
      name: 'ServiceError',
    });
    expect((await lockDoc(dir))!.holder).toMatchObject({ runId: 'a' });
  });

  test('a holder judged gone that was released and re-taken meanwhile is left to its new (live) holder', async () => {
    const dir = fresh();
    const a = runRef(dir, 'a');
    const c = runRef(dir, 'c');
    await acquireDatasetLock(a, undefined);
    // While run b asks about a, a gives the lock back and c takes it; then the answer comes: a is gone.
    const { client, asked } = fakeClient(async (h) => {
      if (h.runId !== 'a') return { status: 'RUNNING' };
      expect(await releaseDatasetLock(a)).toBe(true);
      await acquireDatasetLock(c, undefined);
      return { error: 'WorkflowNotFoundError' };
    });
    const err = await stageFailure(acquireDatasetLock(runRef(dir, 'b'), client));
    expect(err.type).toBe('DatasetBusy');
    expect(err.message).toMatch(/workflow wf-c \(run c,/);
    expect(asked).toEqual(['a', 'c']);
    expect((await lockDoc(dir))!.holder).toMatchObject({ runId: 'c' });
  });

  test('runs racing for a free dataset: exactly one takes it, every other one is DatasetBusy', async () => {
    const dir = fresh();
    const runs = Array.from({ length: 8 }, (_, i) => runRef(dir, `r${i}`));
    const { client } = running();
    const outcomes = await Promise.all(
      runs.map((r) =>
        acquireDatasetLock(r, client).then(
          () => 'taken',
          (e: unknown) => (e as { type?: string }).type,
        ),
      ),
    );
    expect(outcomes.filter((o) => o === 'taken')).toHaveLength(1);
    expect(outcomes.filter((o) => o === 'DatasetBusy')).toHaveLength(runs.length - 1);
    const winner = runs[outcomes.indexOf('taken')];
    expect((await lockDoc(dir))!.holder).toMatchObject({ runId: winner.runId });
  });

  test('runs racing to take over a gone holder: exactly one takes it over', async () => {
    const dir = fresh();
    await acquireDatasetLock(runRef(dir, 'dead'), undefined);
    const runs = Array.from({ length: 8 }, (_, i) => runRef(dir, `r${i}`));
    const { client } = fakeClient((h) =>
      h.runId === 'dead' ? { error: 'WorkflowNotFoundError' } : { status: 'RUNNING' },
    );
    const outcomes = await Promise.all(
      runs.map((r) =>
        acquireDatasetLock(r, client).then(
          () => 'taken',
          (e: unknown) => (e as { type?: string }).type,
        ),
      ),
    );
    expect(outcomes.filter((o) => o === 'taken')).toHaveLength(1);
    expect(outcomes.filter((o) => o === 'DatasetBusy')).toHaveLength(runs.length - 1);
    const doc = await lockDoc(dir);
    expect(doc!.history.filter((h) => h.event === 'taken-over')).toHaveLength(1);
    expect(doc!.holder).toMatchObject({ runId: runs[outcomes.indexOf('taken')].runId });
  });

  test('what a crashed writer leaves behind neither blocks the dataset nor hides a live holder', async () => {
    // The old lock file could be left empty by a crash between create and write. A swap now writes a whole
    // generation to a temporary and links it into the document's journal; the plain document is a reader copy.
    const dir = fresh();
    const a = runRef(dir, 'a');
    await acquireDatasetLock(a, undefined);
    const file = path.join(dir, 'locks', 'ds.json');
    const journal = path.join(dir, 'locks', '.ds.json.journal');
    expect(fs.existsSync(journal)).toBe(true);
    // A writer that crashed before its link leaves a temporary; a crash before the copy leaves a stale copy.
    fs.writeFileSync(path.join(journal, '.tmp-99999-deadbeef0000'), '{"holder":null,"his');
    fs.writeFileSync(file, JSON.stringify({ holder: null, history: [] }));
    // The live holder is still seen (the journal decides, not the copy).
    const busy = await stageFailure(acquireDatasetLock(runRef(dir, 'b'), running().client));
    expect(busy.type).toBe('DatasetBusy');
    // Once it is gone, the next run takes over.
    await acquireDatasetLock(runRef(dir, 'b'), gone().client);
    expect((await lockDoc(dir))!.holder).toMatchObject({ runId: 'b' });
    expect(JSON.parse(fs.readFileSync(file, 'utf8')).holder).toMatchObject({ runId: 'b' });
  });

  describe('8 processes repeatedly taking the lock, half the time "dying" while holding it', () => {
    let childScript: string;

    beforeAll(() => {
      // Child processes cannot load TypeScript: compile the lock and what it loads with swc.
      const build = compileForChildren(['contracts', 'lib', 'lib/storage', 'activities'], fresh());
      childScript = path.join(build, 'child.js');
      // Each round: take the lock (retrying while busy), record entry and exit in a shared log, then either give it
      // back or "die" holding it (its workflow is then not found), so that the others must take it over.
      fs.writeFileSync(
        childScript,
        `const fs = require('node:fs');
const path = require('node:path');
const { acquireDatasetLock, releaseDatasetLock } = require('./activities/lock.js');
const sleep = (ms) => new Promise((res) => setTimeout(res, ms));
process.on('message', async ({ storage, log, dead, rounds }) => {
  const client = { workflow: { getHandle: (workflowId, runId) => ({ describe: async () => {
    if (fs.existsSync(path.join(dead, runId))) {
      const err = new Error('workflow not found: ' + workflowId);
      err.name = 'WorkflowNotFoundError';
      throw err;
    }
    return { status: { name: 'RUNNING' } };
  } }) } };
  let busy = 0;
  for (let r = 0; r < rounds; r++) {
    const runId = process.pid + '-' + r;
    const run = { runId, workflowId: 'wf-' + runId, datasetId: 'ds', storage, runKey: 'runs/ds/' + runId,
      startedAt: new Date().toISOString(), modelVersion: 'v', duckdb: { memoryLimit: '256MB', threads: 1 } };
    for (;;) {
      try {
        await acquireDatasetLock(run, client);
        break;
      } catch (err) {
        if (err.type !== 'DatasetBusy' && err.type !== 'StateConflict' && err.name !== 'DocumentConflictError')
          throw err;
        busy++;
        await sleep(Math.random() * 3);
      }
    }
    fs.appendFileSync(log, 'enter ' + runId + '\\n');
    await sleep(2 + Math.random() * 4);
    fs.appendFileSync(log, 'exit ' + runId + '\\n');
    if (r % 2 === 0) fs.writeFileSync(path.join(dead, runId), '');
    else if (!(await releaseDatasetLock(run))) throw new Error('lost the lock while holding it');
  }
  process.send({ busy }, () => process.exit(0));
});
process.send({ ready: true });
`,
      );
    });

    test('never two holders at once', async () => {
      const dir = fresh();
      const log = path.join(dir, 'log');
      const dead = path.join(dir, 'dead');
      fs.mkdirSync(dead);
      const children: ChildProcess[] = Array.from({ length: 8 }, () =>
        fork(childScript, [], {
          stdio: 'ignore',
          env: { ...process.env, NODE_PATH: path.join(__dirname, '..', '..', 'node_modules') },
        }),
      );
      await Promise.all(children.map((c) => new Promise<void>((r) => c.once('message', () => r()))));
      const done = children.map(
        (c) =>
          new Promise<number>((resolve, reject) => {
            c.once('message', (m: { busy: number }) => resolve(m.busy));
            c.once('exit', (code) => (code === 0 ? undefined : reject(new Error(`child exited ${code}`))));
          }),
      );
      const rounds = 12;
      children.forEach((c) => c.send({ storage: dir, log, dead, rounds }));
      const busy = await Promise.all(done);
      const lines = fs.readFileSync(log, 'utf8').trim().split('\n');
      expect(lines).toHaveLength(8 * rounds * 2);
      // Mutual exclusion: the log alternates enter/exit of the same run.
      for (let i = 0; i < lines.length; i += 2) {
        expect(lines[i].startsWith('enter ')).toBe(true);
        expect(lines[i + 1]).toBe(lines[i].replace('enter', 'exit'));
      }
      // They did contend, and dead holders were taken over rather than waited out.
      expect(busy.reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
      expect((await lockDoc(dir))!.history.some((h) => h.event === 'taken-over')).toBe(true);
    }, 60_000);
  });
});
