import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Transform, Writable } from 'node:stream';
import * as zlib from 'node:zlib';
import { Db } from '../lib/duckdb';
import { lit } from '../lib/duckdb';
import { compressionOf } from '../lib/csv-header';

export type InputFormat = 'csv' | 'parquet' | 'jsonl';

/** The format a file is read as, from its extension (compression suffixes allowed for CSV and JSON Lines). */
export function formatOf(file: string): InputFormat | undefined {
  const lower = file.toLowerCase();
  const name = lower.replace(/\.(gz|zst)$/, '');
  if (name.endsWith('.csv') || name.endsWith('.tsv')) return 'csv';
  // Parquet compresses internally; an outer .gz/.zst would need unpacking first.
  if (name.endsWith('.parquet')) return name === lower ? 'parquet' : undefined;
  if (name.endsWith('.jsonl') || name.endsWith('.ndjson')) return 'jsonl';
  return undefined;
}

const hasWildcard = (p: string) => /[*?[]/.test(p);

function statOrUndefined(p: string): fs.Stats | undefined {
  try {
    return fs.statSync(p);
  } catch {
    return undefined;
  }
}

/**
 * Resolves a file, folder or glob into a sorted list of readable data files. Errors name what was asked for,
 * so an operator can fix the input from the message alone.
 */
export async function resolveInputFiles(spec: string): Promise<string[]> {
  let files: string[];
  // A path that exists is taken literally even if it holds glob characters (e.g. `export[1].csv`).
  const literal = statOrUndefined(spec);
  if (!literal && hasWildcard(spec)) {
    const db = await Db.open(':memory:', { memoryLimit: '256MB', threads: 1 });
    try {
      files = (await db.all<{ file: string }>(`SELECT file FROM glob(${lit(spec)})`)).map((r) => r.file);
    } finally {
      db.close();
    }
    files = files.filter((f) => statOrUndefined(f)?.isFile());
    if (files.length === 0) throw new Error(`input '${spec}': the glob matches no files`);
  } else if (!literal) {
    throw new Error(`input '${spec}': no such file or folder`);
  } else if (literal.isDirectory()) {
    files = [];
    for (const n of fs.readdirSync(spec)) {
      if (n.startsWith('.') || n.startsWith('_')) continue;
      const f = path.join(spec, n);
      if (formatOf(f) === undefined) continue;
      const st = statOrUndefined(f);
      // A dangling link or a file deleted while listing is named, not skipped: silently reading less is worse.
      if (!st) throw new Error(`input '${f}': listed in the folder but cannot be read (dangling link?)`);
      if (st.isFile()) files.push(f);
    }
    if (files.length === 0) {
      throw new Error(
        `input '${spec}': the folder holds no .csv, .tsv, .parquet or .jsonl files (optionally .gz)`,
      );
    }
  } else if (!literal.isFile()) {
    // A FIFO or device would block the reader forever.
    throw new Error(`input '${spec}': not a regular file`);
  } else {
    files = [spec];
  }
  for (const f of files) {
    if (!formatOf(f))
      throw new Error(
        `input '${f}': unsupported file type (expected .csv, .tsv, .parquet, .jsonl, .ndjson; CSV and JSON Lines optionally .gz or .zst)`,
      );
  }
  return [...new Set(files.map((f) => path.resolve(f)))].sort();
}

export interface FileDigest {
  sha256: string;
  bytes: number;
}

/** A gzip stream that fails verification (DuckDB reads such files partially, without an error). */
export class CorruptCompressionError extends Error {
  override name = 'CorruptCompressionError';
}

/**
 * SHA-256 of the file and, for gzip, a full decompression that checks the CRC and length trailer, in one
 * streaming pass. DuckDB's gzip reader stops quietly at a corrupt block or a truncated end, which would load
 * part of a file as if it were all of it; this pass turns that into an error.
 */
export async function digestFile(file: string, signal?: AbortSignal): Promise<FileDigest> {
  const hash = createHash('sha256');
  let bytes = 0;
  const source = fs.createReadStream(file, { highWaterMark: 1 << 20 });
  const hasher = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      bytes += chunk.length;
      cb(null, chunk);
    },
  });
  const sink = () => new Writable({ write: (_c, _e, cb) => cb() });
  if (compressionOf(file) === 'gzip') {
    try {
      await pipeline(source, hasher, zlib.createGunzip(), sink(), { signal });
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      if (e.code === 'ENOENT' || e.name === 'AbortError') throw err;
      throw new CorruptCompressionError(
        /incorrect header check/.test(e.message)
          ? `not a readable gzip file (${e.message})`
          : `corrupt or truncated gzip data after ${bytes} compressed bytes (${e.message})`,
      );
    }
  } else {
    await pipeline(source, hasher, sink(), { signal });
  }
  return { sha256: hash.digest('hex'), bytes };
}

/**
 * SHA-256 of a file's first `bytes` bytes and how many line feeds they hold: whether an earlier delivery is a
 * prefix of the file now (it grew by appending), and how many physical lines that delivery had.
 */
export async function digestPrefix(file: string, bytes: number): Promise<{ sha256: string; lines: number }> {
  const hash = createHash('sha256');
  let lines = 0;
  if (bytes > 0) {
    for await (const chunk of fs.createReadStream(file, {
      start: 0,
      end: bytes - 1,
      highWaterMark: 1 << 20,
    })) {
      const b = chunk as Buffer;
      hash.update(b);
      for (let i = b.indexOf(10); i !== -1; i = b.indexOf(10, i + 1)) lines++;
    }
  }
  return { sha256: hash.digest('hex'), lines };
}
