import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { LivePointer, ModelRecord } from '../../../contracts/registry';
import { queryDuckDb } from '../../helpers/env';

/**
 * What a reader of a dataset's output sees, read with plain fs and an independent DuckDB (never through the code
 * under test), and every way it can disagree with itself. The live pointer's journal head is the truth
 * (lib/storage/local.ts): `_current.json` (reader copy) and the `current` symlink are derived from it, the
 * registry record and the version folder must exist for the version it names.
 */

export interface LiveState {
  /** The version the journal head names (null: nothing published yet). */
  version: string | null;
  pointer: LivePointer | null;
  /** The version `_current.json` names, and the one `current` points at. */
  readerCopy: string | null;
  symlink: string | null;
  /** Version folders (no dot names) under versions/. */
  versionFolders: string[];
  /** Temporary names left by interrupted writers: `.tmp-*` and `.current-*` files and folders, anywhere below. */
  leftovers: string[];
  /** Journal generations kept (names) and their total bytes. */
  journal: { names: number; bytes: number };
}

export interface Layout {
  dataDir: string;
  datasetId: string;
}

export const outputDir = (l: Layout) => path.join(l.dataDir, 'output', 'recommendations', l.datasetId);
export const registryDir = (l: Layout) => path.join(l.dataDir, 'registry', l.datasetId);
const journalDir = (l: Layout) => path.join(outputDir(l), '._current.json.journal');

function readJson<T>(file: string): T | null {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as T;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/** The journal's newest generation (the document's value), as bytes. */
function journalHead(l: Layout): Buffer | null {
  let names: string[];
  try {
    names = fs.readdirSync(journalDir(l)).filter((n) => /^g\d+$/.test(n));
  } catch {
    return null;
  }
  if (names.length === 0) return null;
  return fs.readFileSync(path.join(journalDir(l), names.sort().at(-1)!));
}

function findLeftovers(dir: string, rel = ''): string[] {
  const out: string[] = [];
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return out;
  }
  for (const e of entries) {
    const r = rel ? `${rel}/${e.name}` : e.name;
    if (/^\.(tmp-|current-)/.test(e.name)) out.push(r);
    else if (e.isDirectory()) out.push(...findLeftovers(path.join(dir, e.name), r));
  }
  return out;
}

export function readLiveState(l: Layout): LiveState {
  const out = outputDir(l);
  const head = journalHead(l);
  const pointer = head ? (JSON.parse(head.toString('utf8')) as LivePointer) : null;
  let symlink: string | null = null;
  try {
    symlink = fs.readlinkSync(path.join(out, 'current')).replace(/^versions\//, '');
  } catch {
    symlink = null;
  }
  let journal = { names: 0, bytes: 0 };
  try {
    const names = fs.readdirSync(journalDir(l));
    journal = {
      names: names.length,
      bytes: names.reduce((a, n) => a + fs.statSync(path.join(journalDir(l), n)).size, 0),
    };
  } catch {
    // No journal yet.
  }
  const versions = path.join(out, 'versions');
  return {
    version: pointer?.version ?? null,
    pointer,
    readerCopy: readJson<LivePointer>(path.join(out, '_current.json'))?.version ?? null,
    symlink,
    versionFolders: fs.existsSync(versions)
      ? fs
          .readdirSync(versions)
          .filter((n) => !n.startsWith('.'))
          .sort()
      : [],
    leftovers: [...findLeftovers(out), ...findLeftovers(registryDir(l)).map((r) => `registry/${r}`)],
    journal,
  };
}

const sha256 = (file: string) => createHash('sha256').update(fs.readFileSync(file)).digest('hex');

/** Problems with a version folder as a reader would meet it: manifest present, every file it lists intact. */
export function versionProblems(l: Layout, version: string): string[] {
  const dir = path.join(outputDir(l), 'versions', version);
  const manifest = readJson<{
    modelVersion: string;
    files: { path: string; bytes: number; sha256: string }[];
    fallback: { path: string; bytes: number; sha256: string };
  }>(path.join(dir, '_manifest.json'));
  if (!manifest) return [`version ${version}: no manifest`];
  const problems: string[] = [];
  if (manifest.modelVersion !== version)
    problems.push(`version ${version}: manifest names ${manifest.modelVersion}`);
  for (const f of [...manifest.files, manifest.fallback]) {
    const file = path.join(dir, f.path);
    if (!fs.existsSync(file)) problems.push(`version ${version}: ${f.path} missing`);
    else if (fs.statSync(file).size !== f.bytes || sha256(file) !== f.sha256)
      problems.push(`version ${version}: ${f.path} does not match its manifest`);
  }
  return problems;
}

/**
 * Everything that must hold once a run (or its retry) has finished: reader copy and symlink on the journal's
 * version, the version complete and registered, `previous` consistent with the history and still published.
 */
export function settledProblems(l: Layout, s = readLiveState(l)): string[] {
  const problems: string[] = [];
  if (!s.pointer) return s.symlink || s.readerCopy ? ['no pointer, but current or _current.json exists'] : [];
  const v = s.pointer.version;
  if (s.readerCopy !== v) problems.push(`_current.json names ${s.readerCopy}, the pointer ${v}`);
  const head = journalHead(l)!;
  const copy = fs.existsSync(path.join(outputDir(l), '_current.json'))
    ? fs.readFileSync(path.join(outputDir(l), '_current.json'))
    : null;
  if (s.readerCopy === v && (!copy || !copy.equals(head)))
    problems.push('_current.json differs from the pointer');
  if (s.symlink !== v) problems.push(`current -> ${s.symlink}, the pointer names ${v}`);
  problems.push(...versionProblems(l, v));
  const record = readJson<ModelRecord>(path.join(registryDir(l), 'models', v, 'model.json'));
  if (!record || record.version !== v) problems.push(`live version ${v} is not in the registry`);
  const last = s.pointer.history.at(-1);
  if (!last || last.version !== v) problems.push(`the pointer's last move names ${last?.version}, not ${v}`);
  if (s.pointer.previous !== (last?.previous ?? null))
    problems.push(`previous ${s.pointer.previous} but the last move replaced ${last?.previous}`);
  if (s.pointer.previous) problems.push(...versionProblems(l, s.pointer.previous));
  return problems;
}

/**
 * What must hold at every instant, even right after a crash and before any retry: whatever a reader reaches —
 * through the pointer, `_current.json` or `current` — is a complete, intact version.
 */
export function readerProblems(l: Layout, s = readLiveState(l)): string[] {
  const seen = new Set([s.version, s.readerCopy, s.symlink].filter((v): v is string => v !== null));
  return [...seen].flatMap((v) => versionProblems(l, v));
}

/**
 * The published content of a version, read through the path a reader uses (`current` when `version` is omitted)
 * by a DuckDB of the test's own: a canonical checksum of the lists — (user_id, rank, item_id) in order — and the
 * scores in the same order. Scores are compared with a tolerance (`contentDiff`), not hashed: DuckDB's parallel
 * floating-point sums are not bit-reproducible, and two clean runs of the same input differ in the last bits of
 * some scores (measured: 631 of 6,000 scores, by at most 3.6e-15), which any rounding before hashing turns into a
 * flaky mismatch whenever a value sits on a rounding boundary.
 */
export async function contentChecksum(
  l: Layout,
  version?: string,
): Promise<{ rows: number; sha256: string; scores: number[] }> {
  const dir = version ? path.join(outputDir(l), 'versions', version) : path.join(outputDir(l), 'current');
  const glob = path.join(dir, 'part-*.parquet').replace(/'/g, "''");
  const rows = await queryDuckDb(
    `SELECT user_id, rank, item_id, score FROM read_parquet('${glob}') ORDER BY user_id, rank`,
  );
  const h = createHash('sha256');
  for (const r of rows) h.update(`${String(r.user_id)}\t${String(r.rank)}\t${String(r.item_id)}\n`);
  return { rows: rows.length, sha256: h.digest('hex'), scores: rows.map((r) => Number(r.score)) };
}

/** Why two contents differ (null: the same lists, every score within 1e-9 relative). */
export function contentDiff(
  a: { rows: number; sha256: string; scores: number[] },
  b: { rows: number; sha256: string; scores: number[] },
): string | null {
  if (a.rows !== b.rows) return `${a.rows} rows vs ${b.rows}`;
  if (a.sha256 !== b.sha256) return 'different (user_id, rank, item_id) lists';
  const i = a.scores.findIndex((x, k) => Math.abs(x - b.scores[k]) > 1e-9 * Math.max(1, Math.abs(x)));
  return i < 0 ? null : `score of row ${i}: ${a.scores[i]} vs ${b.scores[i]}`;
}
