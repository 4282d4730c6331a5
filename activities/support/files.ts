import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Transform, Writable, type Readable } from 'node:stream';
import * as zlib from 'node:zlib';
import { spawn } from 'node:child_process';
import { LineScanner, type LongLine } from '../../lib/line-scan';
import { Db } from '../../lib/duckdb';
import { lit } from '../../lib/duckdb';
import { compressionOf } from '../../lib/csv-header';

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
  /** Size of the file as stored (compressed bytes for .gz/.zst). */
  bytes: number;
  /** Physical lines of the (decompressed) content, delimited as DuckDB delimits them. */
  lines: number;
  /** Lines longer than the line limit (DuckDB cannot be trusted with them: see lib/line-scan.ts). */
  longLines: LongLine[];
}

/** A compressed stream that fails verification (DuckDB reads such files partially, without an error). */
export class CorruptCompressionError extends Error {
  override name = 'CorruptCompressionError';
}

/** This worker cannot verify the file (no zstd decoder): an environment problem, not the data's. */
export class UnverifiableInputError extends Error {
  override name = 'UnverifiableInputError';
}

const sink = (scanner: LineScanner) =>
  new Writable({
    write(chunk: Buffer, _e, cb) {
      scanner.feed(chunk);
      cb();
    },
  });

/**
 * One streaming pass over a file: its SHA-256 (over the stored bytes), a full decompression for .gz and .zst
 * (DuckDB's readers stop quietly at a truncated end, which would load part of a file as if it were all of it;
 * the decoders here check the end of every frame or member and the checksums, and turn that into an error),
 * and the physical lines of the content with the over-long ones (lib/line-scan.ts). `maxLineBytes`: the line
 * limit the loader uses.
 */
export async function digestFile(
  file: string,
  signal?: AbortSignal,
  maxLineBytes = Number.MAX_SAFE_INTEGER,
): Promise<FileDigest> {
  const hash = createHash('sha256');
  let bytes = 0;
  const scanner = new LineScanner(maxLineBytes);
  const source = fs.createReadStream(file, { highWaterMark: 1 << 20 });
  const hasher = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      bytes += chunk.length;
      cb(null, chunk);
    },
  });
  const compression = compressionOf(file);
  if (compression === 'gzip') {
    try {
      await pipeline(source, hasher, zlib.createGunzip(), sink(scanner), { signal });
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      if (e.code === 'ENOENT' || e.name === 'AbortError') throw err;
      throw new CorruptCompressionError(
        /incorrect header check/.test(e.message)
          ? `not a readable gzip file (${e.message})`
          : `corrupt or truncated gzip data after ${bytes} compressed bytes (${e.message})`,
      );
    }
  } else if (compression === 'zstd') {
    await zstdPass(source, hasher, sink(scanner), signal, () => bytes);
  } else {
    await pipeline(source, hasher, sink(scanner), { signal });
  }
  const lines = scanner.finish();
  return { sha256: hash.digest('hex'), bytes, lines, longLines: scanner.long };
}

/**
 * zstd through Node's own decoder where it has one (Node >= 22.15), else the `zstd` command (Debian package
 * zstd) as a filter. Both verify every frame's end and its content checksum; a truncated frame is an error.
 */
async function zstdPass(
  source: fs.ReadStream,
  hasher: Transform,
  out: Writable,
  signal: AbortSignal | undefined,
  read: () => number,
): Promise<void> {
  const corrupt = (why: string) =>
    new CorruptCompressionError(`corrupt or truncated zstd data after ${read()} compressed bytes (${why})`);
  const native = (zlib as unknown as { createZstdDecompress?: () => Transform }).createZstdDecompress;
  if (native) {
    try {
      await pipeline(source, hasher, native(), out, { signal });
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      if (e.code === 'ENOENT' || e.name === 'AbortError') throw err;
      throw corrupt(e.message);
    }
    return;
  }
  const child = spawn('zstd', ['-d', '-c', '-q'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-500)));
  const exited = new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve(code));
  });
  const stop = () => child.kill('SIGKILL');
  signal?.addEventListener('abort', stop, { once: true });
  try {
    const piped = await Promise.allSettled([
      pipeline(source, hasher, child.stdin, { signal }),
      pipeline(child.stdout, out, { signal }),
    ]);
    let code: number | null;
    try {
      code = await exited;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new UnverifiableInputError(
          'zstd input cannot be verified on this worker: it needs Node.js >= 22.15 or the zstd command ' +
            '(Debian package zstd)',
        );
      }
      throw err;
    }
    for (const p of piped) {
      const e = p.status === 'rejected' ? (p.reason as NodeJS.ErrnoException) : undefined;
      if (e && (e.code === 'ENOENT' || e.name === 'AbortError')) throw e;
    }
    // The decoder's verdict first: a write to a decoder that gave up fails with EPIPE, which says nothing.
    if (code !== 0) throw corrupt(lastLine(stderr) || `zstd exited with ${code}`);
    for (const p of piped) if (p.status === 'rejected') throw p.reason;
  } finally {
    signal?.removeEventListener('abort', stop);
  }
}

/** zstd's last message without its file-name prefix ('(stdin) : Read error (39) : premature end'). */
function lastLine(text: string): string {
  const line = text.trim().split('\n').pop() ?? '';
  return line.replace(/^.*?\s:\s/, '').slice(0, 200);
}

/** The decompressed content of a verified file (digestFile has checked it; errors here are I/O errors). */
function content(file: string): Readable {
  const source = fs.createReadStream(file, { highWaterMark: 1 << 20 });
  const compression = compressionOf(file);
  if (compression === 'gzip') return source.pipe(zlib.createGunzip());
  if (compression !== 'zstd') return source;
  const native = (zlib as unknown as { createZstdDecompress?: () => Transform }).createZstdDecompress;
  if (native) return source.pipe(native());
  const child = spawn('zstd', ['-d', '-c', '-q'], { stdio: ['pipe', 'pipe', 'ignore'] });
  source.pipe(child.stdin);
  return child.stdout;
}

/**
 * Writes the file's content to `out` (uncompressed) with the bytes of each over-long line left out, its line
 * break kept: the line becomes blank, which DuckDB skips and still counts, so every other line keeps its number.
 */
export async function writeBlanked(
  file: string,
  out: string,
  long: LongLine[],
  signal?: AbortSignal,
): Promise<void> {
  const cuts = [...long].sort((a, b) => a.offset - b.offset);
  let at = 0;
  let k = 0;
  const skip = new Transform({
    transform(chunk: Buffer, _e, cb) {
      const start = at;
      at += chunk.length;
      let pos = 0;
      const keep: Buffer[] = [];
      while (pos < chunk.length) {
        while (k < cuts.length && cuts[k].offset + cuts[k].bytes <= start + pos) k++;
        const cut = cuts[k];
        if (!cut || cut.offset >= at) {
          keep.push(chunk.subarray(pos));
          break;
        }
        const from = Math.max(cut.offset - start, pos);
        if (from > pos) keep.push(chunk.subarray(pos, from));
        pos = Math.min(cut.offset + cut.bytes - start, chunk.length);
      }
      cb(null, Buffer.concat(keep));
    },
  });
  await pipeline(content(file), skip, fs.createWriteStream(out), { signal });
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
