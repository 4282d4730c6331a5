import { fork } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { compileForChildren } from '../helpers/compile';
import { awsEnv, createBucket, startS3Server, type S3TestServer } from '../helpers/s3-server';
import { S3Storage } from '../../lib/storage';
import { ModelRegistry } from '../../registry/registry';
import type { LivePointer } from '../../contracts/registry';
import { lockKey } from '../../activities/lock';

jest.setTimeout(300_000);

/**
 * Compare-and-swap races on S3 between processes (issue #17): separate Node processes, each with its own S3 client,
 * move one live pointer (promotions, operator promotions, rollbacks) and take one dataset lock at the same time.
 * No move may be lost and no two processes may both win from the same state.
 */
const repoRoot = path.join(__dirname, '..', '..');
let server: S3TestServer;
let build: string;
const bucket = 'recforge-race';
let n = 0;

beforeAll(async () => {
  // Swaps are held a little before the server applies them, so every racer reads before the first write lands:
  // the widest race window a compare-and-swap can face (without the conditions, every racer would win).
  server = await startS3Server({
    delays: [{ method: 'PUT', pattern: '/(_current|locks/race)\\.json$', ms: 150 }],
  });
  await createBucket(server, bucket);
  build = compileForChildren(
    ['lib/storage', 'registry'],
    fs.mkdtempSync(path.join(os.tmpdir(), 'recforge-race-build-')),
  );
  // The lock module only needs storage and the error type: compiled alone, not the whole activities folder.
  compileOne('activities/lock.ts');
  compileOne('contracts/errors.ts');
  // The stores and the registry mark their fault points (lib/faults.ts, a no-op unless RECFORGE_FAULT is set).
  compileOne('lib/faults.ts');
  fs.writeFileSync(path.join(build, 'child.js'), CHILD);
}, 60_000);
afterAll(async () => server?.stop());

function compileOne(file: string): void {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { transformFileSync } = require('@swc/core') as typeof import('@swc/core');
  const { code } = transformFileSync(path.join(repoRoot, file), {
    swcrc: false,
    jsc: { parser: { syntax: 'typescript' }, target: 'es2022' },
    module: { type: 'commonjs' },
  });
  const target = path.join(build, file.replace(/\.ts$/, '.js'));
  fs.mkdirSync(path.dirname(target), { recursive: true });
  fs.writeFileSync(target, code);
}

/**
 * One racing process: waits for 'go' (so all start together), then runs its operations against the registry on
 * the bucket and reports, per operation, whether its own move is the one the pointer now ends with.
 */
const CHILD = `
const { openStorage } = require('./lib/storage/index.js');
const { ModelRegistry } = require('./registry/registry.js');
const { acquireDatasetLock } = require('./activities/lock.js');
process.on('message', async (m) => {
  const store = openStorage(m.root);
  const registry = new ModelRegistry(store, m.where);
  const out = [];
  try {
    for (const [i, op] of m.ops.entries()) {
      const ctx = { at: new Date().toISOString(), reason: 'race', by: m.id + '-' + i };
      try {
        let p;
        if (op.kind === 'set') p = await registry.setLive(op.version, ctx);
        else if (op.kind === 'rollback') p = await registry.rollBack(ctx);
        else if (op.kind === 'challenger') p = await registry.promoteChallenger(op.version, op.against, ctx);
        else if (op.kind === 'lock') {
          await acquireDatasetLock({ datasetId: 'race', workflowId: m.id, runId: m.id + '-run' }, undefined, store);
          out.push({ by: ctx.by, won: true });
          continue;
        }
        out.push({ by: ctx.by, won: p.history.some((h) => h.by === ctx.by) });
      } catch (err) {
        out.push({ by: ctx.by, won: false, error: err.name + ': ' + (err.code || err.type || '') + ' ' + err.message });
      }
    }
  } finally {
    process.send({ out }, () => process.exit(0));
  }
});
process.send('ready');
`;

interface Outcome {
  by: string;
  won: boolean;
  error?: string;
}

/** Forks one process per op list, starts them together, and returns each process's outcomes. */
async function race(root: string, where: object, opsPerProcess: object[][]): Promise<Outcome[][]> {
  const children = opsPerProcess.map((_ops, i) => {
    const c = fork(path.join(build, 'child.js'), [], {
      stdio: 'ignore',
      env: { ...process.env, ...awsEnv(server), NODE_PATH: path.join(repoRoot, 'node_modules') },
    });
    const ready = new Promise<void>((resolve) => c.once('message', () => resolve()));
    const done = ready.then(
      () =>
        new Promise<Outcome[]>((resolve, reject) => {
          c.once('message', (m: { out: Outcome[] }) => resolve(m.out));
          c.once('exit', (code) => (code === 0 ? undefined : reject(new Error(`child ${i} exited ${code}`))));
        }),
    );
    return { c, ready, done, i };
  });
  await Promise.all(children.map((x) => x.ready));
  for (const x of children) x.c.send({ root, where, id: `p${x.i}`, ops: opsPerProcess[x.i] });
  return Promise.all(children.map((x) => x.done));
}

async function freshRegistry(versions: string[]) {
  const root = `s3://${bucket}/r${++n}`;
  const store = new S3Storage(root, server.env);
  const where = { datasetId: 'race', registryPrefix: 'registry/race', outputPrefix: 'output/race' };
  const registry = new ModelRegistry(store, where);
  await registry.setLive(versions[0], { at: new Date().toISOString(), reason: 'seed', by: 'seed' });
  return { root, store, where, registry };
}

/** The pointer's history is one chain: every move starts from the version the move before it made live. */
function expectChain(p: LivePointer): void {
  for (let i = 1; i < p.history.length; i++) expect(p.history[i].previous).toBe(p.history[i - 1].version);
  expect(p.version).toBe(p.history.at(-1)!.version);
  expect(p.previous).toBe(p.history.at(-1)!.previous);
}

test('6 processes promoting and rolling back one pointer: every move kept once, in one chain', async () => {
  const versions = ['v0', 'v1', 'v2', 'v3'];
  const { root, where, registry } = await freshRegistry(versions);
  // Each process alternates an operator promotion of some version with a rollback, 8 operations each.
  const ops = Array.from({ length: 6 }, (_, p) =>
    Array.from({ length: 8 }, (_, i) =>
      i % 2 === 0 ? { kind: 'set', version: versions[1 + ((p + i) % 3)] } : { kind: 'rollback' },
    ),
  );
  const results = (await race(root, where, ops)).flat();
  expect(results.filter((r) => r.error)).toEqual([]);
  const pointer = (await registry.pointer())!;
  expectChain(pointer);
  const moves = pointer.history.filter((h) => h.by !== 'seed').map((h) => h.by);
  // Every move a process saw win is in the history exactly once; nothing else is (no lost and no phantom move).
  const won = results.filter((r) => r.won).map((r) => r.by);
  expect([...moves].sort()).toEqual([...won].sort());
  expect(new Set(moves).size).toBe(moves.length);
  // Rollbacks always move (a fresh reason each); promotions of the live version are the only no-ops.
  expect(won.length).toBeGreaterThanOrEqual(results.length / 2);
}, 180_000);

test('8 challengers evaluated against the same champion: exactly one goes live, the rest see ChampionChanged', async () => {
  const { root, where, registry } = await freshRegistry(['v0']);
  const ops = Array.from({ length: 8 }, (_, p) => [{ kind: 'challenger', version: `c${p}`, against: 'v0' }]);
  const results = (await race(root, where, ops)).flat();
  const winners = results.filter((r) => r.won);
  expect(winners).toHaveLength(1);
  for (const r of results.filter((x) => !x.won)) expect(r.error).toMatch(/PointerConflict: ChampionChanged/);
  const pointer = (await registry.pointer())!;
  expectChain(pointer);
  expect(pointer.history.map((h) => h.by)).toEqual(['seed', winners[0].by]);
  expect(pointer.previous).toBe('v0');
});

test('8 processes taking one dataset lock on S3: exactly one holds it, the others are told it is busy', async () => {
  const { root, where, store } = await freshRegistry(['v0']);
  const results = (
    await race(
      root,
      where,
      Array.from({ length: 8 }, () => [{ kind: 'lock' }]),
    )
  ).flat();
  const winners = results.filter((r) => r.won);
  expect(winners).toHaveLength(1);
  for (const r of results.filter((x) => !x.won)) expect(r.error).toMatch(/DatasetBusy/);
  const doc = JSON.parse((await store.get(lockKey('race')))!.body.toString('utf8')) as {
    holder: { workflowId: string };
    history: unknown[];
  };
  expect(`${doc.holder.workflowId}-0`).toBe(winners[0].by);
  expect(doc.history).toHaveLength(1);
});
