import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { faultPoint } from '../faults';
import { checkKey, type Storage, type StoredObject } from './types';

/**
 * Storage on a local (or NFSv4) folder: the embedded default.
 *
 * Immutable objects are written to a temporary name, fsynced and renamed into place.
 *
 * State documents use a compare-and-swap with no lock to hold, so there is no lock a crashed holder can leave
 * behind: each document `dir/name` has a journal `dir/.name.journal/` of generations `g000000000001`, …; a write
 * of generation n+1 creates that file with link(2), which fails when it already exists — of two writers that
 * read generation n, exactly one wins. The journal's newest generation *is* the document; `dir/name` is a copy
 * kept for readers outside recforge (pyarrow reading `_current.json`), rewritten after every commit. A crash
 * between the commit and the copy leaves the copy one generation behind until the next write or `sync`
 * (the retried activity's), never a mix of two generations.
 */

const GEN_WIDTH = 12;
/**
 * Generations older than the newest KEEP_CONTENT are emptied, and those older than KEEP_NAMES removed. A name is
 * never reused while it exists, so emptying (not removing) is what keeps a paused writer holding an old token
 * from re-creating a generation: its link still fails. Only a writer paused across thousands of commits could
 * re-create a removed name, and its generation would sit below the head, where no reader looks.
 */
const KEEP_CONTENT = 32;
const KEEP_NAMES = 4096;

const genName = (n: number) => `g${String(n).padStart(GEN_WIDTH, '0')}`;
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

function readIfExists(file: string): Buffer | null {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

export function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch {
    // Not every filesystem supports it; the rename itself is still atomic.
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

function writeDurable(file: string, body: Buffer): void {
  const fd = fs.openSync(file, 'wx');
  try {
    fs.writeSync(fd, body);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * A writer's temporary file lives for the microseconds between its write and its link or rename; one older than
 * this was left by a process that crashed there, and is removed so crashes do not accumulate files.
 */
export const STALE_TEMPORARY_MS = 3_600_000;

/**
 * Removes `.tmp-*` entries of `dir` older than STALE_TEMPORARY_MS (crash leftovers); returns their names. With
 * `linked`, also files of any age that have a second link (see removeJournalTemporaries).
 */
export function removeStaleTemporaries(
  dir: string,
  prefixes: readonly string[] = ['.tmp-'],
  o: { linked?: boolean } = {},
): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  const now = Date.now();
  return names.filter((n) => {
    if (!prefixes.some((p) => n.startsWith(p))) return false;
    const st = fs.lstatSync(path.join(dir, n), { throwIfNoEntry: false });
    if (!st) return false;
    const linked = o.linked === true && st.isFile() && st.nlink > 1;
    if (!linked && now - st.mtimeMs <= STALE_TEMPORARY_MS) return false;
    fs.rmSync(path.join(dir, n), { recursive: true, force: true });
    return true;
  });
}

/**
 * Crash leftovers in a document's journal: a `.tmp-*` that is also linked as a generation (nlink > 1) is a
 * commit's source whose writer died between link(2) and removing it — its content lives on under the generation's
 * name, so it goes at once. Its age cannot be trusted anyway: the two names share an inode, and emptying the old
 * generation (prune) touches the inode's mtime, which made such a leftover look fresh again. Unlinked ones are
 * left to the age rule: a live writer's temporary is unlinked until the moment it commits.
 */
export function removeJournalTemporaries(jdir: string): string[] {
  return removeStaleTemporaries(jdir, ['.tmp-'], { linked: true });
}

const tmpName = (dir: string) => path.join(dir, `.tmp-${process.pid}-${randomBytes(6).toString('hex')}`);

/** Replaces `file` atomically with `body`. */
function replaceFile(file: string, body: Buffer): void {
  const dir = path.dirname(file);
  fs.mkdirSync(dir, { recursive: true });
  const tmp = tmpName(dir);
  writeDurable(tmp, body);
  faultPoint('storage:replace-before-rename');
  fs.renameSync(tmp, file);
  fsyncDir(dir);
}

export class LocalStorage implements Storage {
  readonly kind = 'local' as const;
  readonly root: string;

  constructor(root: string) {
    this.root = path.resolve(root);
  }

  uri(key: string): string {
    return path.join(this.root, checkKey(key));
  }

  private journalDir(key: string): string {
    const file = this.uri(key);
    return path.join(path.dirname(file), `.${path.basename(file)}.journal`);
  }

  /** The journal's generations, oldest first ([] when the document has none). */
  private generations(key: string): number[] {
    let names: string[];
    try {
      names = fs.readdirSync(this.journalDir(key));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    return names
      .filter((n) => /^g\d+$/.test(n))
      .map((n) => Number(n.slice(1)))
      .sort((a, b) => a - b);
  }

  private head(key: string): { gen: number; body: Buffer } | null {
    // A generation pruned between the listing and the read means a newer one exists: look again.
    for (;;) {
      const gens = this.generations(key);
      if (gens.length === 0) return null;
      const gen = gens[gens.length - 1];
      const body = readIfExists(path.join(this.journalDir(key), genName(gen)));
      if (body) return { gen, body };
    }
  }

  async get(key: string): Promise<StoredObject | null> {
    const head = this.head(key);
    if (head) return { body: head.body, token: genName(head.gen) };
    const body = readIfExists(this.uri(key));
    return body ? { body, token: `h${sha256(body)}` } : null;
  }

  async put(key: string, body: Buffer | string): Promise<void> {
    const buf = Buffer.isBuffer(body) ? body : Buffer.from(body);
    if (this.generations(key).length === 0) {
      replaceFile(this.uri(key), buf);
      return;
    }
    // A journalled document stays journalled: an unconditional write is a swap that retries until it wins.
    for (;;) {
      const cur = await this.get(key);
      if ((await this.putIfMatch(key, buf, cur?.token ?? null)) !== null) return;
    }
  }

  async putIfMatch(key: string, body: Buffer | string, token: string | null): Promise<string | null> {
    const buf = Buffer.isBuffer(body) ? body : Buffer.from(body);
    const file = this.uri(key);
    const head = this.head(key);
    let expected: number;
    if (token === null) {
      if (head || fs.existsSync(file)) return null;
      expected = 0;
    } else if (/^g\d+$/.test(token)) {
      expected = Number(token.slice(1));
      if (!head || head.gen !== expected) return null;
    } else if (token.startsWith('h')) {
      // A plain file (written before it was journalled): it must still hold what the caller read.
      const plain = readIfExists(file);
      if (head || !plain || `h${sha256(plain)}` !== token) return null;
      expected = 0;
    } else return null;

    const jdir = this.journalDir(key);
    fs.mkdirSync(jdir, { recursive: true });
    const tmp = tmpName(jdir);
    writeDurable(tmp, buf);
    faultPoint('storage:cas-before-link');
    const next = expected + 1;
    try {
      fs.linkSync(tmp, path.join(jdir, genName(next)));
      faultPoint('storage:cas-linked');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return null; // another writer won generation n+1
      throw err;
    } finally {
      fs.rmSync(tmp, { force: true });
    }
    fsyncDir(jdir);
    // The commit has happened (generation n+1 exists); what follows only refreshes the reader copy.
    faultPoint('storage:cas-before-copy');
    this.syncCopyNow(key);
    faultPoint('storage:cas-before-prune');
    this.prune(key);
    return genName(next);
  }

  private prune(key: string): void {
    const jdir = this.journalDir(key);
    // Before emptying generations: emptying one touches the mtime of any leftover linked to it.
    removeJournalTemporaries(jdir);
    const gens = this.generations(key);
    const head = gens[gens.length - 1];
    for (const g of gens) {
      if (g > head - KEEP_CONTENT) break;
      const file = path.join(jdir, genName(g));
      if (g <= head - KEEP_NAMES) fs.rmSync(file, { force: true });
      else if (fs.statSync(file, { throwIfNoEntry: false })?.size) fs.truncateSync(file, 0);
    }
  }

  /**
   * Brings the reader copy up to the journal's head (after a crash between a commit and its copy). Repeats
   * while the head moves, so a slow copier never leaves an older generation behind a faster one.
   */
  async syncCopy(key: string): Promise<void> {
    this.syncCopyNow(key);
  }

  private syncCopyNow(key: string): void {
    for (let i = 0; i < 100; i++) {
      const head = this.head(key);
      if (!head) return;
      const file = this.uri(key);
      const copy = readIfExists(file);
      if (copy && copy.equals(head.body)) return;
      replaceFile(file, head.body);
    }
  }

  async exists(key: string): Promise<boolean> {
    return this.head(key) !== null || fs.existsSync(this.uri(key));
  }

  async list(prefix: string): Promise<string[]> {
    const base = this.uri(prefix);
    const out: string[] = [];
    const walk = (dir: string, rel: string) => {
      let entries: fs.Dirent[];
      try {
        entries = fs.readdirSync(dir, { withFileTypes: true });
      } catch (err) {
        if (
          (err as NodeJS.ErrnoException).code === 'ENOENT' ||
          (err as NodeJS.ErrnoException).code === 'ENOTDIR'
        )
          return;
        throw err;
      }
      for (const e of entries) {
        if (e.name.startsWith('.')) continue; // temporary files and journals
        const r = rel ? `${rel}/${e.name}` : e.name;
        if (e.isDirectory()) walk(path.join(dir, e.name), r);
        else if (e.isFile() || e.isSymbolicLink()) out.push(`${prefix}/${r}`);
      }
    };
    walk(base, '');
    return out.sort();
  }

  async delete(key: string): Promise<void> {
    fs.rmSync(this.uri(key), { force: true });
    fs.rmSync(this.journalDir(key), { recursive: true, force: true });
  }

  async deletePrefix(prefix: string): Promise<void> {
    fs.rmSync(this.uri(prefix), { recursive: true, force: true });
  }

  async localDir(prefix: string): Promise<string> {
    return this.uri(prefix);
  }

  async putDir(localDir: string, prefix: string): Promise<void> {
    const target = this.uri(prefix);
    if (path.resolve(localDir) === target) return;
    // Copied next to the target and renamed into place: readers never see half a folder.
    fs.mkdirSync(path.dirname(target), { recursive: true });
    const tmp = path.join(path.dirname(target), `.tmp-dir-${process.pid}-${randomBytes(6).toString('hex')}`);
    fs.cpSync(localDir, tmp, { recursive: true });
    fs.rmSync(target, { recursive: true, force: true });
    fs.renameSync(tmp, target);
    fsyncDir(path.dirname(target));
  }
}
