import { ident, lit } from '../lib/duckdb';
import { INTERACTION_COLUMNS } from '../lib/interactions';
import type { ValueContract } from './input-contract';
import { contractReasonSql } from './input-contract';

/**
 * Many small CSV files with one header in one DuckDB scan (read_csv over the file list, filename = true),
 * instead of a dozen statements per file: a folder of 10,000 files went at ~30 files/s file by file. The
 * landed batch keeps the scan's order (files in list order, each file's records in order), so a file's rows
 * are one contiguous run of Parquet row numbers; its row k (from 1) is on physical line k + 1 whenever the file
 * has no blank lines, no quoted field spanning lines and no rejected line, which the caller establishes per
 * file (physical lines = 1 + rows, counted independently). Other files are loaded on their own.
 */

/** Batch members: which landed batch a file's rows are in, where its run starts, and its run-wide index. */
export const CREATE_BATCH_TABLES = `
CREATE OR REPLACE TABLE raw_batch_files (batch INTEGER, file_index INTEGER, source VARCHAR, start BIGINT);`;
export const DROP_BATCH_TABLES = `DROP TABLE IF EXISTS raw_batch_files;`;

export interface BatchScan {
  files: string[];
  /** Column names (resolved, unique) as every file in the batch declares them. */
  names: string[];
  /** Contract column → declared column. */
  source: Partial<Record<string, string>>;
  delim: ',' | '\t';
  compression: 'none' | 'gzip';
  maxLineBytes: number;
  tag: string;
  out: string;
  contract: ValueContract;
}

/** Lands every row of every file with its `filename` and value-contract verdict; rejects go to a table. */
export function landBatchSql(b: BatchScan): string {
  const columns = `{${b.names.map((h) => `${lit(h)}: 'VARCHAR'`).join(', ')}}`;
  const pick = INTERACTION_COLUMNS.map((c) => {
    const from = b.source[c];
    return `${from !== undefined ? `CAST(${ident(from)} AS VARCHAR)` : 'NULL::VARCHAR'} AS ${ident(c)}`;
  }).join(', ');
  const rej = `rej_${b.tag}`;
  return `
DROP TABLE IF EXISTS ${rej}; DROP TABLE IF EXISTS ${rej}_scan;
COPY (
  SELECT *, ${contractReasonSql(b.contract)} AS contract_reason FROM (
    SELECT ${pick}, filename
    FROM read_csv([${b.files.map(lit).join(', ')}], header = true, auto_detect = false, columns = ${columns},
                  delim = ${lit(b.delim)}, quote = '"', escape = '"', compression = ${lit(b.compression)},
                  strict_mode = false, max_line_size = ${Math.trunc(b.maxLineBytes)}, filename = true,
                  store_rejects = true, rejects_table = '${rej}', rejects_scan = '${rej}_scan')))
TO ${lit(b.out)} (FORMAT parquet, COMPRESSION snappy);`;
}

/** Files of the batch with at least one rejected line (they are loaded on their own, with exact lines). */
export function batchRejectedFilesSql(tag: string): string {
  return `SELECT DISTINCT s.file_path AS file FROM rej_${tag} r JOIN rej_${tag}_scan s USING (scan_id, file_id)`;
}

export function dropBatchTempSql(tag: string): string {
  return `DROP TABLE IF EXISTS rej_${tag}; DROP TABLE IF EXISTS rej_${tag}_scan;`;
}

/** Per file: where its rows start in the batch, how many there are, and how many break the value contract. */
export function batchFileStatsSql(out: string): string {
  return `SELECT filename AS file, min(file_row_number) AS start, max(file_row_number) AS last, count(*) AS n,
                 count(*) FILTER (WHERE contract_reason IS NOT NULL) AS bad
          FROM read_parquet(${lit(out)}, file_row_number = true) GROUP BY filename`;
}

export function addBatchMembersSql(
  batch: number,
  members: { fileIndex: number; file: string; start: number }[],
): string {
  if (members.length === 0) return 'SELECT 1';
  return `INSERT INTO raw_batch_files VALUES ${members
    .map((m) => `(${Math.trunc(batch)}, ${Math.trunc(m.fileIndex)}, ${lit(m.file)}, ${Math.trunc(m.start)})`)
    .join(', ')}`;
}

/**
 * The batch's rows in raw_events shape (members only: the join drops files loaded on their own). `violations`
 * adds contract_reason and keeps only the rows that break the contract.
 */
export function batchSelect(out: string, batch: number, rows: 'valid' | 'violations'): string {
  const ord = 'r.file_row_number - m.start + 1';
  return `SELECT (CAST(m.file_index AS BIGINT) << 40) + ${ord} AS rid, m.source AS source_file, ${ord} + 1 AS source_line,
         ${INTERACTION_COLUMNS.map((c) => `r.${ident(c)}`).join(', ')}${rows === 'violations' ? ', r.contract_reason' : ''}
  FROM read_parquet(${lit(out)}, file_row_number = true) r
  JOIN raw_batch_files m ON m.batch = ${Math.trunc(batch)} AND m.source = r.filename
  WHERE r.contract_reason IS ${rows === 'valid' ? 'NULL' : 'NOT NULL'}`;
}
