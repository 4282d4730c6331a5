import * as crypto from 'node:crypto';
import * as fs from 'node:fs';

/**
 * Lock files created with O_EXCL, and the delicate steps around them: taking over a lock judged stale and
 * releasing one's own. Removing a stale lock by path is racy — between the check and the remove, its holder may
 * have released it and someone else taken a fresh one, which a plain `rm` would then delete (two holders).
 * So every step that removes or replaces an existing lock runs under a short-lived guard file and re-checks,
 * under the guard, that the lock is still exactly the one judged (same inode, same content). Creating a lock
 * needs no guard (O_EXCL is atomic), and a replacement is a rename over the old file, so there is never a
 * moment without a lock for a third party to slip into. The guard is held for microseconds (never across I/O
 * to other systems); one left by a crashed process is broken after GUARD_STALE_MS.
 * Assumes a local filesystem (atomic O_EXCL and rename, stable inodes), as the privacy ledger does.
 */

export interface LockSnapshot {
  text: string;
  ino: number;
  mtimeMs: number;
}

const GUARD_STALE_MS = 10_000;

/** A unique token for one acquisition, written into the lock so that only its owner releases it. */
export function lockToken(): string {
  return `${process.pid}-${crypto.randomBytes(8).toString('hex')}`;
}

/** Creates `file` exclusively with `content`; false when it exists. */
export function tryCreateLock(file: string, content: string): boolean {
  try {
    fs.writeFileSync(file, content, { flag: 'wx' });
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
}

export function readLockSnapshot(file: string): LockSnapshot | undefined {
  try {
    const st = fs.statSync(file);
    return { text: fs.readFileSync(file, 'utf8'), ino: st.ino, mtimeMs: st.mtimeMs };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

const sameLock = (a: LockSnapshot | undefined, b: LockSnapshot) =>
  a !== undefined && a.ino === b.ino && a.text === b.text;

async function underGuard<T>(file: string, fn: () => T): Promise<T> {
  const guard = `${file}.guard`;
  const token = lockToken();
  for (;;) {
    if (tryCreateLock(guard, token)) break;
    const seen = readLockSnapshot(guard);
    // Only a crash inside the few statements below leaves a guard behind.
    if (seen && Date.now() - seen.mtimeMs > GUARD_STALE_MS) {
      try {
        if (sameLock(readLockSnapshot(guard), seen)) fs.rmSync(guard, { force: true });
      } catch {
        // Gone meanwhile.
      }
    }
    await new Promise((r) => setTimeout(r, 2 + Math.random() * 8));
  }
  try {
    return fn();
  } finally {
    if (readLockSnapshot(guard)?.text === token) fs.rmSync(guard, { force: true });
  }
}

/**
 * Replaces the lock `seen` (judged stale by the caller) with a new one carrying `content`, only if it is still
 * that lock. True when this call now holds the lock; false when it was released or replaced meanwhile.
 */
export function replaceLockIfUnchanged(file: string, seen: LockSnapshot, content: string): Promise<boolean> {
  return underGuard(file, () => {
    if (!sameLock(readLockSnapshot(file), seen)) return false;
    const tmp = `${file}.new-${lockToken()}`;
    fs.writeFileSync(tmp, content);
    fs.renameSync(tmp, file);
    return true;
  });
}

/** Removes the lock `seen` if it is still that lock (e.g. one's own, read back before release). */
export function removeLockIfUnchanged(file: string, seen: LockSnapshot): Promise<boolean> {
  return underGuard(file, () => {
    if (!sameLock(readLockSnapshot(file), seen)) return false;
    fs.rmSync(file, { force: true });
    return true;
  });
}

/** Removes `file` if it still carries `token`: a lock taken over as stale by another process stays theirs. */
export async function releaseLockIfOwned(file: string, token: string): Promise<boolean> {
  const cur = readLockSnapshot(file);
  if (!cur || !cur.text.includes(token)) return false;
  return removeLockIfUnchanged(file, cur);
}
