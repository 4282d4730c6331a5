import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { LocalStorage, StorageKeyError, updateDocument, readDocument } from '../../lib/storage';
import { storageContract } from '../helpers/storage-contract';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'recforge-storage-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
const fresh = () => new LocalStorage(fs.mkdtempSync(path.join(root, 's-')));

describe('LocalStorage: the storage contract', () => {
  storageContract(
    async () => fresh(),
    () => process.env,
  );
});

describe('LocalStorage objects', () => {
  test('readers never see temporary files', async () => {
    const s = fresh();
    await s.put('a/b/one.json', '1');
    await s.put('a/two.json', Buffer.from('2'));
    expect((await s.get('a/b/one.json'))!.body.toString()).toBe('1');
    expect(await s.get('a/none.json')).toBeNull();
    expect(await s.list('a')).toEqual(['a/b/one.json', 'a/two.json']);
    expect(fs.readdirSync(path.join(s.root, 'a')).sort()).toEqual(['b', 'two.json']);
    await s.deletePrefix('a/b');
    expect(await s.list('a')).toEqual(['a/two.json']);
  });

  test('keys cannot leave the root', () => {
    const s = fresh();
    for (const bad of ['../x', 'a/../../x', '/etc/passwd', 'a//b', '', 'a/./b', 'a\\b', 'a\0b'])
      expect(() => s.uri(bad)).toThrow(StorageKeyError);
  });
});

describe('LocalStorage compare-and-swap', () => {
  test('create-if-absent, then only the holder of the current token writes', async () => {
    const s = fresh();
    const t1 = await s.putIfMatch('state/doc.json', 'v1', null);
    expect(t1).toBeTruthy();
    expect(await s.putIfMatch('state/doc.json', 'again', null)).toBeNull();
    const t2 = await s.putIfMatch('state/doc.json', 'v2', t1);
    expect(t2).toBeTruthy();
    expect(await s.putIfMatch('state/doc.json', 'stale', t1)).toBeNull();
    const cur = await s.get('state/doc.json');
    expect(cur).toEqual({ body: Buffer.from('v2'), token: t2 });
    // The reader copy outside the journal holds the newest generation.
    expect(fs.readFileSync(s.uri('state/doc.json'), 'utf8')).toBe('v2');
  });

  test('a plain file becomes journalled by a swap on its content hash', async () => {
    const s = fresh();
    await s.put('p.json', 'plain');
    const cur = (await s.get('p.json'))!;
    expect(cur.token.startsWith('h')).toBe(true);
    fs.writeFileSync(s.uri('p.json'), 'changed behind our back');
    expect(await s.putIfMatch('p.json', 'mine', cur.token)).toBeNull();
    const again = (await s.get('p.json'))!;
    expect(await s.putIfMatch('p.json', 'mine', again.token)).toBeTruthy();
    expect((await s.get('p.json'))!.body.toString()).toBe('mine');
  });

  test('a crash between the commit and the reader copy is repaired by the next sync, never half-written', async () => {
    const s = fresh();
    const t1 = (await s.putIfMatch('d.json', 'one', null))!;
    // Simulate a writer killed right after linking generation 2: the journal has it, the copy does not.
    const jdir = path.join(s.root, '.d.json.journal');
    fs.writeFileSync(path.join(jdir, 'g000000000002'), 'two');
    expect(fs.readFileSync(s.uri('d.json'), 'utf8')).toBe('one');
    const cur = (await s.get('d.json'))!;
    expect(cur.body.toString()).toBe('two'); // the journal head is the document
    expect(await s.putIfMatch('d.json', 'x', t1)).toBeNull(); // the old token lost
    await s.syncCopy('d.json');
    expect(fs.readFileSync(s.uri('d.json'), 'utf8')).toBe('two');
  });

  test('old generations are emptied but keep their names, so a writer holding an old token still loses', async () => {
    const s = fresh();
    let token = (await s.putIfMatch('d.json', '0', null))!;
    const first = token;
    for (let i = 1; i <= 40; i++) token = (await s.putIfMatch('d.json', String(i), token))!;
    const jdir = path.join(s.root, '.d.json.journal');
    const sizes = fs.readdirSync(jdir).map((n) => fs.statSync(path.join(jdir, n)).size);
    expect(sizes).toHaveLength(41);
    expect(sizes.filter((n) => n > 0).length).toBeLessThanOrEqual(32);
    expect(await s.putIfMatch('d.json', 'stale', first)).toBeNull();
    expect((await s.get('d.json'))!.body.toString()).toBe('40');
  });

  test("a writer's leftovers in the journal go at the next commit: linked ones at once, unlinked ones once old", async () => {
    const s = fresh();
    let token = (await s.putIfMatch('d.json', '1', null))!;
    for (let i = 2; i <= 32; i++) token = (await s.putIfMatch('d.json', String(i), token))!;
    const jdir = path.join(s.root, '.d.json.journal');
    const gen = (n: number) => path.join(jdir, `g${String(n).padStart(12, '0')}`);
    const tmp = (name: string) => path.join(jdir, name);
    const twoHoursAgo = new Date(Date.now() - 2 * 3_600_000);
    // Writers killed between link(2) and removing their temporary: one linked to generation 1, aged past the
    // hour (the next commit empties generation 1, which touches the shared inode's mtime), one young.
    fs.linkSync(gen(1), tmp('.tmp-101-aaaaaaaaaaaa'));
    fs.lutimesSync(tmp('.tmp-101-aaaaaaaaaaaa'), twoHoursAgo, twoHoursAgo);
    fs.linkSync(gen(20), tmp('.tmp-102-bbbbbbbbbbbb'));
    // Writers killed before linking: an old one (a crash leftover) and a young one (maybe a live writer's).
    fs.writeFileSync(tmp('.tmp-103-cccccccccccc'), 'old');
    fs.lutimesSync(tmp('.tmp-103-cccccccccccc'), twoHoursAgo, twoHoursAgo);
    fs.writeFileSync(tmp('.tmp-104-dddddddddddd'), 'young');
    await s.putIfMatch('d.json', '33', token);
    expect(fs.statSync(gen(1)).size).toBe(0); // emptied by this commit
    expect(fs.readdirSync(jdir).filter((n) => n.startsWith('.tmp-'))).toEqual(['.tmp-104-dddddddddddd']);
    expect((await s.get('d.json'))!.body.toString()).toBe('33');
  });

  test('updateDocument re-decides on the newest state after losing a swap', async () => {
    const s = fresh();
    let calls = 0;
    await updateDocument<{ n: number }, void>(s, 'c.json', (cur) => {
      calls++;
      if (calls === 1) {
        // Another writer slips in between our read and our swap.
        fs.mkdirSync(path.join(s.root, '.c.json.journal'), { recursive: true });
        fs.writeFileSync(path.join(s.root, '.c.json.journal', 'g000000000001'), JSON.stringify({ n: 10 }));
      }
      return { write: { n: (cur?.n ?? 0) + 1 }, result: undefined };
    });
    expect(calls).toBe(2);
    expect((await readDocument<{ n: number }>(s, 'c.json'))!.value).toEqual({ n: 11 });
  });
});
