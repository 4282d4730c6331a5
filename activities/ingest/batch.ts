import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { ApplicationFailure } from '@temporalio/common';
import type { Db } from '../../lib/duckdb';
import { compressionOf, delimiterOf, firstLineOfBuffer, parseHeaderBytes } from '../../lib/csv-header';
import { LineScanner } from '../../lib/line-scan';
import { resolveColumns, type DriftPolicy, type ValueContract } from '../../analytics/input-contract';
import * as batchSql from '../../analytics/ingest-batch.sql';
import * as sql from '../../analytics/ingest.sql';
import type { IngestedFile } from '../../contracts/stages';

/**
 * Ingest of many small CSV files in one scan per header (see analytics/ingest-batch.sql.ts). Each file is
 * read whole once in Node (hash, gzip verification, header, physical lines: the same checks as the streaming
 * pass of a large file, without a stream per file), files with the same header go through one read_csv, and
 * a file whose rows cannot be numbered from the batch (a rejected line, a blank line, a quoted field spanning
 * lines) is handed back to be loaded on its own. Ineligible files (large, zstd, unreadable, a bad header) are
 * never batched: the per-file path reports their problems as it always has.
 */

/** Files up to this size (as stored) are read whole; beyond it the per-file streaming path is cheaper. */
export const SMALL_FILE_BYTES = 1 << 20;
/** Fewer files with one header than this are not worth a batch of their own. */
export const MIN_BATCH = 8;

export interface SmallFile {
  index: number;
  file: string;
  bytes: number;
  mtimeMs: number;
  sha256: string;
  lines: number;
  header: string[];
  names: string[];
  source: Partial<Record<string, string>>;
  warnings: string[];
  delim: ',' | '\t';
  compression: 'none' | 'gzip';
}

/** A small CSV file read and checked, or undefined when it is not one the batch can take. */
export function readSmall(file: string, index: number, policy: DriftPolicy): SmallFile | undefined {
  const compression = compressionOf(file);
  if (!/\.(csv|tsv)(\.gz)?$/i.test(file) || compression === 'zstd') return undefined;
  try {
    const st = fs.statSync(file);
    if (!st.isFile() || st.size === 0 || st.size > SMALL_FILE_BYTES) return undefined;
    const raw = fs.readFileSync(file);
    // gunzipSync checks every member's CRC and length: a corrupt or truncated file throws (and goes per file).
    const content = compression === 'gzip' ? zlib.gunzipSync(raw, { maxOutputLength: 16 << 20 }) : raw;
    const first = firstLineOfBuffer(content);
    const delim = delimiterOf(file);
    const header = parseHeaderBytes(first.bytes, first.complete, delim);
    const { names, source, warnings } = resolveColumns(header, policy);
    // A column named like the columns the batch adds would be ambiguous in its scan.
    if (names.some((n) => ['filename', 'contract_reason'].includes(n.toLowerCase()))) return undefined;
    const scanner = new LineScanner(sql.MAX_LINE_BYTES);
    scanner.feed(content);
    const lines = scanner.finish();
    if (scanner.long.length) return undefined;
    return {
      index,
      file,
      bytes: st.size,
      mtimeMs: st.mtimeMs,
      sha256: createHash('sha256').update(raw).digest('hex'),
      lines,
      header,
      names,
      source,
      warnings,
      delim,
      compression,
    };
  } catch {
    return undefined;
  }
}

/**
 * Most files in one scan: DuckDB's multi-file CSV reader holds state per file (10,000 files in one read_csv ran
 * out of a 1 GB limit) and slows down past a few thousand (1,000 files: 0.5 s; 2,000: 1.3 s).
 */
export const MAX_BATCH_FILES = 1000;

/**
 * Files that share delimiter, compression and column names, in input order, cut into scans of at most
 * MAX_BATCH_FILES; headers shared by fewer than MIN_BATCH files are left to the per-file path.
 */
export function groupBatches(files: SmallFile[]): SmallFile[][] {
  const groups = new Map<string, SmallFile[]>();
  for (const f of files) {
    const key = JSON.stringify([f.delim, f.compression, f.names]);
    const g = groups.get(key);
    if (g) g.push(f);
    else groups.set(key, [f]);
  }
  const out: SmallFile[][] = [];
  for (const g of groups.values()) {
    if (g.length < MIN_BATCH) continue;
    for (let i = 0; i < g.length; i += MAX_BATCH_FILES) out.push(g.slice(i, i + MAX_BATCH_FILES));
  }
  return out;
}

export interface BatchResult {
  /** Files fully ingested by the batch, by input index. */
  done: Map<number, IngestedFile & { warnings: string[] }>;
  landed?: sql.LandedFile;
  /** Input indices to load on their own. */
  fallback: number[];
}

export async function ingestBatch(
  db: Db,
  files: SmallFile[],
  batch: number,
  runDir: string,
  contract: ValueContract,
): Promise<BatchResult> {
  const tag = `b${batch}`;
  const out = path.join(runDir, 'raw', `${tag}.parquet`);
  const [first] = files;
  await db.run(
    batchSql.landBatchSql({
      files: files.map((f) => f.file),
      names: first.names,
      source: first.source,
      delim: first.delim,
      compression: first.compression,
      maxLineBytes: sql.MAX_LINE_BYTES,
      tag,
      out,
      contract,
    }),
  );
  const rejected = new Set(
    (await db.all<{ file: string }>(batchSql.batchRejectedFilesSql(tag))).map((r) => r.file),
  );
  await db.run(batchSql.dropBatchTempSql(tag));
  const stats = new Map(
    (
      await db.all<{ file: string; start: number; last: number; n: number; bad: number }>(
        batchSql.batchFileStatsSql(out),
      )
    ).map((s) => [s.file, s]),
  );
  const done = new Map<number, IngestedFile & { warnings: string[] }>();
  const members: { fileIndex: number; file: string; start: number }[] = [];
  const fallback: number[] = [];
  for (const f of files) {
    const s = stats.get(f.file) ?? { start: 0, last: -1, n: 0, bad: 0 };
    // Every physical line is the header or one row, in one contiguous run: row k is on line k + 1.
    const simple = !rejected.has(f.file) && f.lines === 1 + s.n && s.last - s.start + 1 === s.n;
    if (!simple) {
      fallback.push(f.index);
      continue;
    }
    const after = fs.statSync(f.file, { throwIfNoEntry: false });
    if (!after || after.size !== f.bytes || after.mtimeMs !== f.mtimeMs) {
      throw ApplicationFailure.retryable(`${f.file}: the file changed while it was read`, 'InputChanged');
    }
    members.push({ fileIndex: f.index, file: f.file, start: s.start });
    done.set(f.index, {
      path: f.file,
      format: 'csv',
      bytes: f.bytes,
      sha256: f.sha256,
      rows: s.n - s.bad,
      rejectedLines: s.bad,
      lines: f.lines,
      mtimeMs: f.mtimeMs,
      columns: f.header.map((name) => ({ name })),
      warnings: f.warnings,
    });
  }
  await db.run(batchSql.addBatchMembersSql(batch, members));
  if (members.length === 0) {
    fs.rmSync(out, { force: true });
    return { done, fallback };
  }
  const landed: sql.LandedFile = { landed: out, source: '', fileIndex: -1, lines: 'batch', batch };
  await db.run(sql.contractRejectsSql(landed, contract));
  return { done, landed, fallback };
}
