import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fsyncDir } from '../../lib/fs-atomic';

/**
 * Exclusive, verified generation of the bundled dataset. Two runs that generate it at once once shared a
 * temporary file (same worker process, same pid-based name), deleted each other's generation.json, and
 * trained on a file that matched neither seed. So each generator writes into its own staging folder (created
 * by mkdtemp: O_EXCL semantics, never shared), and installs the finished folder with one rename(2), which
 * succeeds only while the target does not exist (or is empty): of several finished generators exactly one
 * installs, and the others find its dataset, verify it, and discard their own when it is the same one.
 * Readers verify the manifest's options and the files' checksums, so a dataset that does not match what
 * it claims is never used.
 */

export const MANIFEST_NAME = 'generation.json';

/** What a verified manifest must say; `files` hold checksums of the files beside it. */
export interface ManifestLike {
  generator: string;
  version: number;
  options: object;
  files: {
    interactions: { file: string; sha256: string; bytes: number };
    items: { file: string; sha256: string; bytes: number };
  };
}

/** Staging folders are named after their host and process, so a crashed generator's leftovers can be told apart. */
const stagingPrefix = (outDir: string) => path.join(path.dirname(outDir), `.${path.basename(outDir)}.gen-`);
const ownPrefix = (outDir: string) => `${stagingPrefix(outDir)}${os.hostname()}-${process.pid}-`;

/** A fresh staging folder for one generator (never shared, even between two calls in one process). */
export function createStaging(outDir: string): string {
  fs.mkdirSync(path.dirname(outDir), { recursive: true });
  sweepDeadStaging(outDir);
  return fs.mkdtempSync(ownPrefix(outDir));
}

/** Removes staging folders of generators that died on this host (their process no longer exists). */
function sweepDeadStaging(outDir: string): void {
  const parent = path.dirname(outDir);
  const prefix = path.basename(stagingPrefix(outDir)) + `${os.hostname()}-`;
  for (const name of fs.readdirSync(parent)) {
    if (!name.startsWith(prefix)) continue;
    const pid = Number(name.slice(prefix.length).split('-')[0]);
    if (Number.isInteger(pid) && pid > 0 && !alive(pid)) {
      fs.rmSync(path.join(parent, name), { recursive: true, force: true });
    }
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of fs.createReadStream(file, { highWaterMark: 1 << 20 }))
    hash.update(chunk as Buffer);
  return hash.digest('hex');
}

export type Verdict<M> = { ok: true; manifest: M } | { ok: false; why: string };

/**
 * Reads `outDir`'s manifest and checks it: generator and version, the wanted options (those given), and every
 * file's size and SHA-256. A streaming hash (about 1 s per GB here): paid once per run, before any data is read.
 */
export async function verifyDataset<M extends ManifestLike>(
  outDir: string,
  expect: { generator: string; version: number },
  want: Record<string, unknown> = {},
): Promise<Verdict<M>> {
  let m: M;
  try {
    m = JSON.parse(fs.readFileSync(path.join(outDir, MANIFEST_NAME), 'utf8')) as M;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return {
      ok: false,
      why: code === 'ENOENT' ? 'no manifest' : `unreadable manifest (${(err as Error).message})`,
    };
  }
  if (m.generator !== expect.generator || m.version !== expect.version) {
    return { ok: false, why: `manifest of another generator or version (${m.generator} ${m.version})` };
  }
  const options = m.options as Record<string, unknown>;
  for (const [k, v] of Object.entries(want)) {
    if (v !== undefined && options[k] !== v)
      return { ok: false, why: `${k} is ${String(options[k])}, not ${String(v)}` };
  }
  for (const f of [m.files?.interactions, m.files?.items]) {
    if (!f || typeof f.file !== 'string' || path.basename(f.file) !== f.file) {
      return { ok: false, why: 'manifest lists no files' };
    }
    const file = path.join(outDir, f.file);
    const size = fs.statSync(file, { throwIfNoEntry: false })?.size;
    if (size !== f.bytes)
      return { ok: false, why: `${f.file}: ${size ?? 'missing'} bytes, manifest says ${f.bytes}` };
    // A concurrent installer may move the folder aside between the stat and the read: that dataset is gone,
    // which is a verdict, not an error (CI once failed here with ENOENT in the four-process race).
    const digest = await sha256File(file).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined;
      throw err;
    });
    if (digest === undefined) return { ok: false, why: `${f.file}: removed while being verified` };
    if (digest !== f.sha256) return { ok: false, why: `${f.file}: checksum differs from the manifest` };
  }
  return { ok: true, manifest: m };
}

/** Files a generator writes (and leftovers of older versions of it); anything else in the folder is not ours. */
const GENERATED = /^(generation\.json|items\.csv|interactions\.(csv|jsonl))(\.tmp-\d+)?$/;

/**
 * Installs the finished `staging` folder as `outDir`. Returns 'installed', or 'kept' when another generator
 * installed an identical dataset first (same manifest: same options, same checksums), in which case `staging`
 * is removed. A stale or different dataset in `outDir` is moved aside and replaced; a folder holding files the
 * generator did not write is refused rather than replaced.
 */
export async function installDataset<M extends ManifestLike>(
  staging: string,
  outDir: string,
  manifest: M,
): Promise<'installed' | 'kept'> {
  for (let attempt = 0; attempt < 100; attempt++) {
    try {
      fs.renameSync(staging, outDir);
      fsyncDir(path.dirname(outDir));
      return 'installed';
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err;
    }
    const there = await verifyDataset<M>(outDir, manifest);
    if (there.ok && JSON.stringify(there.manifest) === JSON.stringify(manifest)) {
      fs.rmSync(staging, { recursive: true, force: true });
      return 'kept';
    }
    const foreign = listOrEmpty(outDir).filter((n) => !GENERATED.test(n));
    if (foreign.length) {
      fs.rmSync(staging, { recursive: true, force: true });
      throw new Error(
        `${outDir}: refusing to replace a folder that holds files the generator did not write (${foreign
          .slice(0, 5)
          .join(', ')}); generate into an empty folder`,
      );
    }
    // Move the old dataset aside (one rename: a racing installer finds either it or nothing) and try again.
    const aside = `${stagingPrefix(outDir)}old-${randomBytes(6).toString('hex')}`;
    try {
      fs.renameSync(outDir, aside);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    fs.rmSync(aside, { recursive: true, force: true });
  }
  throw new Error(`${outDir}: could not install the generated dataset (too many concurrent generators)`);
}

function listOrEmpty(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}
