import * as fs from 'node:fs';
import * as zlib from 'node:zlib';

/**
 * Reads and checks the header line of a CSV file (plain or .gz) without trusting DuckDB's sniffer, which gives
 * up on exactly the dirty files we must quarantine row by row. Only the first line is read (streamed, bounded),
 * so a multi-gigabyte file costs the same as a small one.
 */

export type Compression = 'none' | 'gzip' | 'zstd';

/** Compression from the file name, case-insensitively (DuckDB's own detection is case-sensitive). */
export function compressionOf(file: string): Compression {
  const f = file.toLowerCase();
  if (f.endsWith('.gz')) return 'gzip';
  if (f.endsWith('.zst')) return 'zstd';
  return 'none';
}

/** `.tsv` (optionally compressed) is tab-separated; everything else is comma-separated. */
export function delimiterOf(file: string): ',' | '\t' {
  return /\.tsv(\.(gz|zst))?$/i.test(file) ? '\t' : ',';
}

/** A header problem an operator can fix from the message; the caller adds the file name. */
export class CsvHeaderError extends Error {
  override name = 'CsvHeaderError';
}

export const MAX_HEADER_BYTES = 1 << 20;

/** Magic numbers of formats that are commonly misnamed `.csv`; naming them makes the fix obvious. */
const MAGIC: Array<[Buffer, string]> = [
  [Buffer.from([0x1f, 0x8b]), 'gzip-compressed data (name it .csv.gz)'],
  [Buffer.from([0x28, 0xb5, 0x2f, 0xfd]), 'zstd-compressed data (name it .csv.zst)'],
  [Buffer.from('PAR1'), 'a Parquet file (name it .parquet)'],
  [Buffer.from([0x50, 0x4b, 0x03, 0x04]), 'a ZIP archive (Excel or zipped CSV; export or unzip it as CSV)'],
];

/**
 * The first line's bytes (without its line break), at most `maxBytes` of decompressed data. Streams, so it
 * never reads more than it needs. `complete` is false when no line break came within the limit.
 */
export async function readFirstLineBytes(
  file: string,
  compression: Compression,
  maxBytes = MAX_HEADER_BYTES,
): Promise<{ bytes: Buffer; complete: boolean; eof: boolean }> {
  if (compression === 'zstd') throw new Error('zstd headers are read with DuckDB');
  const source = fs.createReadStream(file, { highWaterMark: 64 * 1024 });
  const stream: NodeJS.ReadableStream =
    compression === 'gzip'
      ? source.pipe(zlib.createGunzip({ finishFlush: zlib.constants.Z_SYNC_FLUSH }))
      : source;
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      const nl = lineBreak(chunk);
      if (nl !== -1 && total + nl <= maxBytes) {
        chunks.push(chunk.subarray(0, nl));
        return { bytes: stripCr(Buffer.concat(chunks)), complete: true, eof: false };
      }
      chunks.push(chunk);
      total += chunk.length;
      if (total > maxBytes) {
        return { bytes: Buffer.concat(chunks).subarray(0, maxBytes), complete: false, eof: false };
      }
    }
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ENOENT') throw err;
    if (compression === 'gzip') throw new CsvHeaderError(`not a readable gzip file (${e.message})`);
    throw err;
  } finally {
    source.destroy();
  }
  // End of file without a line break: the whole file is one line (e.g. a header without a newline).
  return { bytes: stripCr(Buffer.concat(chunks)), complete: true, eof: true };
}

/** The first line of content already in memory (small files read whole), as readFirstLineBytes returns it. */
export function firstLineOfBuffer(
  buf: Buffer,
  maxBytes = MAX_HEADER_BYTES,
): { bytes: Buffer; complete: boolean; eof: boolean } {
  const nl = lineBreak(buf);
  if (nl !== -1 && nl <= maxBytes) return { bytes: stripCr(buf.subarray(0, nl)), complete: true, eof: false };
  if (buf.length > maxBytes) return { bytes: buf.subarray(0, maxBytes), complete: false, eof: false };
  return { bytes: stripCr(buf), complete: true, eof: true };
}

/** First LF or CR: DuckDB accepts LF, CRLF and old-Mac CR-only line endings, so the header ends at either. */
function lineBreak(chunk: Buffer): number {
  const lf = chunk.indexOf(0x0a);
  const cr = chunk.indexOf(0x0d);
  return lf === -1 ? cr : cr === -1 ? lf : Math.min(lf, cr);
}

function stripCr(b: Buffer): Buffer {
  return b.length && b[b.length - 1] === 0x0d ? b.subarray(0, b.length - 1) : b;
}

/**
 * Checks that the first line is a text header and splits it. Binary data, misnamed formats, invalid UTF-8 and
 * an over-long first line are reported as such, instead of as a confusing "missing column".
 */
export function parseHeaderBytes(bytes: Buffer, complete: boolean, delimiter = ','): string[] {
  for (const [magic, what] of MAGIC) {
    if (bytes.length >= magic.length && bytes.subarray(0, magic.length).equals(magic)) {
      throw new CsvHeaderError(`the file holds ${what}, not CSV text`);
    }
  }
  if (!complete) {
    throw new CsvHeaderError(
      `no line break within the first ${MAX_HEADER_BYTES} bytes: not a CSV header line`,
    );
  }
  if (bytes.includes(0))
    throw new CsvHeaderError('the first line holds NUL bytes: a binary file, not CSV text');
  let line: string;
  try {
    line = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new CsvHeaderError('the first line is not valid UTF-8 text (a binary file, or not UTF-8 encoded)');
  }
  line = line.replace(/^\uFEFF/, '');
  // Control characters other than tab have no business in a header line; they mean binary data.
  // (CR cannot occur here: readFirstLineBytes ends the line at the first CR or LF.)
  if (bytes.some((b) => (b < 0x20 && b !== 0x09) || b === 0x7f)) {
    throw new CsvHeaderError('the first line holds control characters: a binary file, not CSV text');
  }
  if (line.trim() === '') throw new CsvHeaderError('the first line is empty (expected a header line)');
  return parseCsvLine(line, delimiter);
}

/** Reads the header line of a plain or gzip CSV file and returns the column names (trimmed, as written). */
export async function readCsvHeader(file: string, delimiter = delimiterOf(file)): Promise<string[]> {
  const compression = compressionOf(file);
  if (compression === 'none' && fs.statSync(file).size === 0) {
    throw new CsvHeaderError('the file is empty (0 bytes; expected a header line)');
  }
  const { bytes, complete, eof } = await readFirstLineBytes(file, compression);
  if (bytes.length === 0 && eof) throw new CsvHeaderError('the file is empty (expected a header line)');
  return parseHeaderBytes(bytes, complete, delimiter);
}

/** RFC 4180 field split of one line (quotes doubled inside quoted fields). */
export function parseCsvLine(line: string, delimiter = ','): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i];
    if (quoted) {
      if (ch === '"' && line[i + 1] === '"') {
        cur += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else cur += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === delimiter) {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  out.push(cur);
  return out.map((s) => s.trim());
}
