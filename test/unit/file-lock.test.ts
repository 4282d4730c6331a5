import { fork, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { transformFileSync } from '@swc/core';
import {
  readLockSnapshot,
  releaseLockIfOwned,
  removeLockIfUnchanged,
  replaceLockIfUnchanged,
  tryCreateLock,
} from '../../lib/file-lock';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'recforge-file-lock-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
const fresh = () => fs.mkdtempSync(path.join(root, 't-'));

describe('file locks', () => {
  test('exclusive create: the second creator is refused', () => {
    const f = path.join(fresh(), 'a.lock');
    expect(tryCreateLock(f, 'one')).toBe(true);
    expect(tryCreateLock(f, 'two')).toBe(false);
    expect(fs.readFileSync(f, 'utf8')).toBe('one');
  });

  test('a stale lock judged and unchanged is replaced in one step', async () => {
    const f = path.join(fresh(), 'a.lock');
    tryCreateLock(f, 'dead holder');
    const seen = readLockSnapshot(f)!;
    expect(await replaceLockIfUnchanged(f, seen, 'me')).toBe(true);
    expect(fs.readFileSync(f, 'utf8')).toBe('me');
    expect(fs.readdirSync(path.dirname(f))).toEqual(['a.lock']); // no guard or temporary left behind
  });

  test('a lock released and re-taken after it was judged stale is left to its new holder', async () => {
    const f = path.join(fresh(), 'a.lock');
    tryCreateLock(f, 'dead holder');
    const seen = readLockSnapshot(f)!;
    fs.rmSync(f);
    tryCreateLock(f, 'new live holder');
    expect(await replaceLockIfUnchanged(f, seen, 'me')).toBe(false);
    expect(await removeLockIfUnchanged(f, seen)).toBe(false);
    expect(fs.readFileSync(f, 'utf8')).toBe('new live holder');
  });

  test('same content but a new file (new inode) still counts as changed', async () => {
    const dir = fresh();
    const f = path.join(dir, 'a.lock');
    tryCreateLock(f, 'same');
    const seen = readLockSnapshot(f)!;
    // Make sure the new file gets another inode than the one removed.
    fs.writeFileSync(path.join(dir, 'pin'), 'x');
    fs.renameSync(f, path.join(dir, 'old'));
    tryCreateLock(f, 'same');
    expect(readLockSnapshot(f)!.ino).not.toBe(seen.ino);
    expect(await removeLockIfUnchanged(f, seen)).toBe(false);
    expect(fs.existsSync(f)).toBe(true);
  });

  test('release removes only a lock carrying our token', async () => {
    const f = path.join(fresh(), 'a.lock');
    tryCreateLock(f, JSON.stringify({ token: 'theirs' }));
    expect(await releaseLockIfOwned(f, 'mine')).toBe(false);
    expect(fs.existsSync(f)).toBe(true);
    expect(await releaseLockIfOwned(f, 'theirs')).toBe(true);
    expect(fs.existsSync(f)).toBe(false);
    expect(await releaseLockIfOwned(f, 'theirs')).toBe(false);
  });

  test('a guard left by a crashed process is broken once it is old', async () => {
    const f = path.join(fresh(), 'a.lock');
    tryCreateLock(f, 'dead holder');
    fs.writeFileSync(`${f}.guard`, 'crashed');
    const old = new Date(Date.now() - 60_000);
    fs.utimesSync(`${f}.guard`, old, old);
    expect(await replaceLockIfUnchanged(f, readLockSnapshot(f)!, 'me')).toBe(true);
  });

  describe('8 processes repeatedly taking over locks whose holders "died"', () => {
    let childScript: string;

    beforeAll(() => {
      // Child processes cannot load TypeScript: compile the module under test with swc.
      const build = fresh();
      const { code } = transformFileSync(path.join(__dirname, '..', '..', 'lib', 'file-lock.ts'), {
        swcrc: false,
        jsc: { parser: { syntax: 'typescript' }, target: 'es2022' },
        module: { type: 'commonjs' },
      });
      fs.writeFileSync(path.join(build, 'file-lock.js'), code);
      childScript = path.join(build, 'child.js');
      // Each round: take the lock (create, or take over a lock marked dead), record entry and exit in a shared
      // log, then "die" holding it half the time (mark it dead in place) so that others must take it over.
      fs.writeFileSync(
        childScript,
        `const fs = require('node:fs');
const L = require('./file-lock.js');
process.on('message', async ({ lock, log, rounds }) => {
  const me = String(process.pid);
  for (let r = 0; r < rounds; r++) {
    const content = JSON.stringify({ token: me + '-' + r });
    for (;;) {
      if (L.tryCreateLock(lock, content)) break;
      const seen = L.readLockSnapshot(lock);
      if (seen && seen.text.startsWith('dead') && (await L.replaceLockIfUnchanged(lock, seen, content))) break;
      await new Promise((res) => setTimeout(res, Math.random() * 3));
    }
    fs.appendFileSync(log, 'enter ' + me + '\\n');
    await new Promise((res) => setTimeout(res, 2 + Math.random() * 4));
    fs.appendFileSync(log, 'exit ' + me + '\\n');
    if (r % 2 === 0) fs.writeFileSync(lock, 'dead ' + me);
    else await L.releaseLockIfOwned(lock, me + '-' + r);
  }
  process.send({ done: true }, () => process.exit(0));
});
process.send({ ready: true });
`,
      );
    });

    test('never two holders at once', async () => {
      const dir = fresh();
      const lock = path.join(dir, 'x.lock');
      const log = path.join(dir, 'log');
      fs.writeFileSync(lock, 'dead initial');
      const children: ChildProcess[] = Array.from({ length: 8 }, () =>
        fork(childScript, [], { stdio: 'ignore' }),
      );
      await Promise.all(children.map((c) => new Promise<void>((r) => c.once('message', () => r()))));
      const done = children.map(
        (c) =>
          new Promise<void>((resolve, reject) => {
            c.once('message', () => resolve());
            c.once('exit', (code) => (code === 0 ? undefined : reject(new Error(`child exited ${code}`))));
          }),
      );
      const rounds = 12;
      children.forEach((c) => c.send({ lock, log, rounds }));
      await Promise.all(done);
      const lines = fs.readFileSync(log, 'utf8').trim().split('\n');
      expect(lines).toHaveLength(8 * rounds * 2);
      // Mutual exclusion: the log alternates enter/exit of the same process.
      for (let i = 0; i < lines.length; i += 2) {
        expect(lines[i].startsWith('enter ')).toBe(true);
        expect(lines[i + 1]).toBe(lines[i].replace('enter', 'exit'));
      }
    }, 60_000);
  });
});

describe('dataset lock', () => {
  test('an empty lock file left by a crash between create and write is taken over once it is old', async () => {
    const { acquireDatasetLock, lockFile } = await import('../../activities/lock');
    const dataDir = fresh();
    const f = lockFile(dataDir, 'ds');
    fs.mkdirSync(path.dirname(f), { recursive: true });
    fs.writeFileSync(f, '');
    const old = new Date(Date.now() - 60_000);
    fs.utimesSync(f, old, old);
    const me = { workflowId: 'w', runId: 'r', acquiredAt: 'now' };
    await acquireDatasetLock(dataDir, 'ds', me, undefined);
    expect(JSON.parse(fs.readFileSync(f, 'utf8'))).toEqual(me);
  });

  test('a fresh empty lock file (a holder mid-write) is not taken over', async () => {
    const { acquireDatasetLock, lockFile } = await import('../../activities/lock');
    const dataDir = fresh();
    const f = lockFile(dataDir, 'ds');
    fs.mkdirSync(path.dirname(f), { recursive: true });
    fs.writeFileSync(f, '');
    await expect(
      acquireDatasetLock(dataDir, 'ds', { workflowId: 'w', runId: 'r', acquiredAt: 'now' }, undefined),
    ).rejects.toThrow(/could not acquire the lock/);
    expect(fs.readFileSync(f, 'utf8')).toBe('');
  });
});
