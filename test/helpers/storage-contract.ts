import { fork } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { readDocument, updateDocument, type Storage } from '../../lib/storage';
import { compileForChildren } from './compile';

const repoRoot = path.join(__dirname, '..', '..');

/**
 * The behaviour every storage backend must have, run against each of them (local folder, S3 API server).
 * `make` returns a fresh, empty storage root; `env` is what a child process needs to open the same root.
 */
export function storageContract(make: () => Promise<Storage>, env: () => NodeJS.ProcessEnv): void {
  test('objects: put, get, exists, list, delete', async () => {
    const s = await make();
    await s.put('a/b/one.json', '1');
    await s.put('a/two.json', Buffer.from('2'));
    expect((await s.get('a/b/one.json'))!.body.toString()).toBe('1');
    expect(await s.get('a/none.json')).toBeNull();
    expect(await s.exists('a/two.json')).toBe(true);
    expect(await s.exists('a/three.json')).toBe(false);
    expect(await s.list('a')).toEqual(['a/b/one.json', 'a/two.json']);
    await s.deletePrefix('a/b');
    expect(await s.list('a')).toEqual(['a/two.json']);
    await s.delete('a/two.json');
    expect(await s.list('a')).toEqual([]);
  });

  test('compare-and-swap: create-if-absent, then only the current token writes', async () => {
    const s = await make();
    const t1 = await s.putIfMatch('state/doc.json', 'v1', null);
    expect(t1).toBeTruthy();
    expect(await s.putIfMatch('state/doc.json', 'again', null)).toBeNull();
    const t2 = await s.putIfMatch('state/doc.json', 'v2', t1);
    expect(t2).toBeTruthy();
    expect(await s.putIfMatch('state/doc.json', 'stale', t1)).toBeNull();
    expect((await s.get('state/doc.json'))!.body.toString()).toBe('v2');
    expect((await s.get('state/doc.json'))!.token).toBe(t2);
  });

  test('folders round-trip through localDir/putDir', async () => {
    const s = await make();
    const src = fs.mkdtempSync(path.join(os.tmpdir(), 'recforge-dir-'));
    fs.mkdirSync(path.join(src, 'sub'));
    fs.writeFileSync(path.join(src, 'a.bin'), Buffer.from([1, 2, 3]));
    fs.writeFileSync(path.join(src, 'sub', 'b.txt'), 'b');
    await s.putDir(src, 'models/m1');
    expect(await s.list('models/m1')).toEqual(['models/m1/a.bin', 'models/m1/sub/b.txt']);
    const local = await s.localDir('models/m1', fs.mkdtempSync(path.join(os.tmpdir(), 'recforge-cache-')));
    expect(fs.readFileSync(path.join(local, 'sub', 'b.txt'), 'utf8')).toBe('b');
    expect([...fs.readFileSync(path.join(local, 'a.bin'))]).toEqual([1, 2, 3]);
  });

  test('8 processes incrementing one document lose no update and never both win a swap', async () => {
    const s = await make();
    const build = compileForChildren(
      // lib/ for lib/faults.ts, which the local store's compare-and-swap imports.
      ['lib', 'lib/storage'],
      fs.mkdtempSync(path.join(os.tmpdir(), 'recforge-build-')),
    );
    const child = path.join(build, 'child.js');
    fs.writeFileSync(
      child,
      `const { openStorage, updateDocument } = require('./lib/storage/index.js');
process.on('message', async ({ root, rounds }) => {
  const s = openStorage(root);
  const won = [];
  for (let r = 0; r < rounds; r++) {
    won.push(await updateDocument(s, 'counter.json', (cur) => {
      const next = (cur ? cur.n : 0) + 1;
      return { write: { n: next, by: [...(cur ? cur.by : []), process.pid] }, result: next };
    }, 100000));
  }
  process.send({ won }, () => process.exit(0));
});
`,
    );
    const rounds = 20;
    const results = await Promise.all(
      Array.from({ length: 8 }, () => {
        const c = fork(child, [], {
          stdio: 'ignore',
          env: { ...env(), NODE_PATH: path.join(repoRoot, 'node_modules') },
        });
        return new Promise<number[]>((resolve, reject) => {
          c.once('message', (m: { won: number[] }) => resolve(m.won));
          c.once('exit', (code) => (code === 0 ? undefined : reject(new Error(`child exited ${code}`))));
          c.send({ root: s.root, rounds });
        });
      }),
    );
    const all = results.flat().sort((a, b) => a - b);
    expect(all).toEqual(Array.from({ length: 8 * rounds }, (_, i) => i + 1));
    const doc = (await readDocument<{ n: number; by: number[] }>(s, 'counter.json'))!.value;
    expect(doc.n).toBe(8 * rounds);
    expect(doc.by).toHaveLength(8 * rounds);
  }, 120_000);

  test('updateDocument can decide to keep the document', async () => {
    const s = await make();
    await updateDocument(s, 'k.json', () => ({ write: { v: 1 }, result: undefined }));
    const r = await updateDocument<{ v: number }, number>(s, 'k.json', (cur) => ({
      keep: true,
      result: cur!.v,
    }));
    expect(r).toBe(1);
  });
}
