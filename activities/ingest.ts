import * as fs from 'node:fs';
import * as path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { dropRelation, withDb, type Db } from '../lib/duckdb';
import {
  compressionOf,
  CsvHeaderError,
  delimiterOf,
  parseHeaderBytes,
  readCsvHeader,
  type Compression,
} from '../lib/csv-header';
import type { InteractionColumn } from '../lib/interactions';
import * as sql from '../analytics/ingest.sql';
import {
  ContractError,
  resolveColumns,
  resolveItemColumns,
  retypedColumns,
  type DriftPolicy,
} from '../analytics/input-contract';
import { compareSchemas, describeDrift, quarantineFileSql } from '../analytics/schema-drift';
import { readSchemaRecord } from './incremental';
import type { IngestResult, IngestedFile, RunPlan } from '../workflows/types';
import { CorruptCompressionError, digestFile, formatOf, type InputFormat } from './files';
import { limitsOf, log, progress } from './context';

function badInput(message: string): ApplicationFailure {
  return ApplicationFailure.nonRetryable(message, 'BadInput');
}

/** A file that disappeared or changed under us is an infrastructure hiccup (a sync in progress): retry. */
function vanished(file: string, when: string): ApplicationFailure {
  return ApplicationFailure.retryable(`${file}: the file disappeared ${when}`, 'InputVanished');
}

const firstLine = (err: unknown) => String((err as Error)?.message ?? err).split('\n')[0];

/** The column names a CSV file declares: Node reads plain and gzip headers, DuckDB reads zstd ones. */
async function csvHeader(db: Db, file: string, compression: Compression): Promise<string[]> {
  if (compression !== 'zstd') return readCsvHeader(file);
  const rows = await db.all<{ line: string | null }>(sql.firstLineSql(file, compression));
  if (rows.length === 0) throw new CsvHeaderError('the file is empty (expected a header line)');
  return parseHeaderBytes(Buffer.from(rows[0].line ?? '', 'utf8'), true, delimiterOf(file));
}

/** What loading a file learnt about its schema: declared columns and the drift warnings it let through. */
interface FileSchema {
  columns?: { name: string; type?: string }[];
  warnings: string[];
}

/** Where one input file's rows land (the run's landing zone, one Parquet file per input file). */
function landedPath(plan: Pick<RunPlan, 'runDir'>, fileIndex: number): string {
  return path.join(plan.runDir, 'raw', `f${fileIndex}.parquet`);
}

/**
 * Lands one file's rows at `out` and its malformed lines in raw_rejects. Returns how the landed rows' lines
 * are known (none: nothing to keep, e.g. a file quarantined whole for a retyped column). Throws ContractError /
 * CsvHeaderError for bad files.
 */
async function loadFile(
  db: Db,
  file: string,
  format: InputFormat,
  fileIndex: number,
  out: string,
  drift: RunPlan['config']['schema']['drift'],
): Promise<FileSchema & { lines: sql.LandedFile['lines'] | 'none'; landed: string }> {
  const tag = `f${fileIndex}`;
  const compression = compressionOf(file);
  const policy: DriftPolicy = drift;
  if (format === 'csv') {
    const header = await csvHeader(db, file, compression);
    const { names, source, warnings } = resolveColumns(header, policy);
    const dialect: sql.CsvDialect = { delim: delimiterOf(file), compression, strict: true };
    try {
      await db.run(sql.scanCsv(file, names, source, tag, dialect, out));
    } catch (err) {
      // Mixed CRLF/LF line endings trip strict mode for the whole file; non-strict reads them fine.
      if (!/state machine reached an invalid state/i.test(firstLine(err))) throw err;
      await db.run(sql.scanCsv(file, names, source, tag, { ...dialect, strict: false }, out));
    }
    const schema = { columns: header.map((name) => ({ name })), warnings };
    const lines = await db.one<{ physical: number; records: number }>(
      sql.lineCountsSql(file, tag, compression, out),
    );
    if (lines.physical === lines.records) {
      const rejected = Number(await db.scalar(`SELECT count(*) FROM rejlines_${tag}`));
      const rows = Number(await db.scalar(sql.landedRowsSql(out)));
      await db.run(sql.rejectsAndShiftsCsv(file, fileIndex, tag, out, sql.shiftWidth(rows, rejected)));
      return { ...schema, lines: rejected ? 'shifted' : 'ordinal', landed: out };
    }
    // Blank lines or quoted fields spanning lines: a raw pass finds them, and the rows land again with lines.
    await db.run(sql.rawPassCsv(file, tag, compression));
    const multiline = (await db.scalar<number>(`SELECT count(*) FROM cont_${tag}`)) > 0;
    const withLines = out.replace(/\.parquet$/, '-lines.parquet');
    await db.run(sql.landCsvAfterRawPass(file, fileIndex, tag, multiline, out, withLines));
    fs.rmSync(out, { force: true });
    return { ...schema, lines: 'stored', landed: withLines };
  } else if (format === 'parquet') {
    const cols = await db.all<{ name: string; type: string }>(sql.describeParquetColumns(file));
    const declared = cols.map((c) => c.name);
    const { source, warnings } = resolveColumns(declared, policy);
    // resolveColumns names contract columns canonically; Parquet columns keep their own (case may differ).
    const actual: Partial<Record<InteractionColumn, string>> = {};
    for (const [c, i] of Object.entries(source)) {
      actual[c as InteractionColumn] = declared.find((d) => d.trim().toLowerCase() === i.toLowerCase());
    }
    const retyped = retypedColumns(source, cols);
    if (retyped.length && drift.retypedColumns === 'fail') {
      throw new ContractError(`${retyped.join('; ')} (schema.drift.retypedColumns: fail)`);
    }
    await db.run(sql.landParquet(file, fileIndex, actual, out));
    if (retyped.length) {
      await db.run(quarantineFileSql(out, retyped.join('; ')));
      warnings.push(`${retyped.join('; ')}: every row quarantined as retyped_column`);
    }
    const columns = cols.map((c) => ({ name: c.name, type: c.type }));
    return { columns, warnings, lines: retyped.length ? 'none' : 'stored', landed: out };
  } else {
    await db.run(sql.landJsonl(file, fileIndex, tag, compression, out));
    // JSON Lines has no header: a required field that no line carries is the same contract violation.
    const present = await db.one<Record<InteractionColumn, number>>(sql.fieldPresenceSql(out));
    const rows = present.user_id + present.item_id + present.timestamp + present.event_type + present.rating;
    if (rows > 0) {
      for (const c of ['user_id', 'item_id', 'timestamp'] as const) {
        if (present[c] === 0)
          throw new ContractError(`missing required field '${c}': no line has a value for it`);
      }
      if (present.event_type === 0 && present.rating === 0) {
        throw new ContractError(`needs an 'event_type' or a 'rating' field: no line has a value for either`);
      }
    }
    return { warnings: [], lines: 'stored', landed: out };
  }
}

async function rejectCount(db: Db): Promise<number> {
  return Number(await db.scalar(`SELECT count(*) FROM raw_rejects`));
}

/**
 * One file: load and checksum concurrently (the checksum pass also verifies gzip, which DuckDB does not),
 * then classify any failure: gone → retryable; bad content → non-retryable, naming the file and the problem.
 */
async function ingestOne(
  db: Db,
  file: string,
  fileIndex: number,
  plan: RunPlan,
): Promise<IngestedFile & FileSchema & { landed?: sql.LandedFile }> {
  const format = formatOf(file);
  if (!format) throw badInput(`${file}: unsupported file type`);
  let before: fs.Stats;
  try {
    before = fs.statSync(file);
  } catch {
    throw vanished(file, 'before it was read');
  }
  if (!before.isFile()) throw badInput(`${file}: not a regular file`);
  const rejectedBefore = await rejectCount(db);
  const out = landedPath(plan, fileIndex);
  const abort = new AbortController();
  const digest = digestFile(file, abort.signal);
  digest.catch(() => undefined); // settled below; avoids an unhandled rejection if the load fails first
  let schema: Awaited<ReturnType<typeof loadFile>>;
  try {
    schema = await loadFile(db, file, format, fileIndex, out, plan.config.schema.drift);
  } catch (err) {
    if (!fs.existsSync(file)) throw vanished(file, 'while it was read');
    // A corrupt gzip stream is the root cause of whatever DuckDB made of it: report that.
    if (compressionOf(file) === 'gzip') {
      const d = await digest.then(
        () => undefined,
        (e: unknown) => e,
      );
      if (d instanceof CorruptCompressionError) throw badInput(`${file}: ${d.message}`);
    } else {
      abort.abort();
    }
    if (err instanceof ApplicationFailure) throw err;
    if (err instanceof ContractError || err instanceof CsvHeaderError)
      throw badInput(`${file}: ${err.message}`);
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw vanished(file, 'while it was read');
    throw badInput(`${file}: cannot read as ${format}: ${firstLine(err)}`);
  }
  let sha256: string;
  try {
    sha256 = (await digest).sha256;
  } catch (err) {
    if (err instanceof CorruptCompressionError) throw badInput(`${file}: ${err.message}`);
    throw vanished(file, `while it was read (${firstLine(err)})`);
  }
  const after = fs.statSync(file, { throwIfNoEntry: false });
  if (!after) throw vanished(file, 'while it was read');
  if (after.size !== before.size || after.mtimeMs !== before.mtimeMs) {
    throw ApplicationFailure.retryable(`${file}: the file changed while it was read`, 'InputChanged');
  }
  const { lines, landed, ...fileSchema } = schema;
  const rows = lines === 'none' ? 0 : Number(await db.scalar(sql.landedRowsSql(landed)));
  if (lines === 'none' || rows === 0) fs.rmSync(landed, { force: true });
  return {
    path: file,
    format,
    bytes: before.size,
    sha256,
    rows,
    rejectedLines: (await rejectCount(db)) - rejectedBefore,
    mtimeMs: before.mtimeMs,
    ...fileSchema,
    ...(lines !== 'none' && rows > 0 ? { landed: { landed, source: file, fileIndex, lines } } : {}),
  };
}

async function loadItems(db: Db, file: string): Promise<void> {
  try {
    const names = resolveItemColumns(await csvHeader(db, file, compressionOf(file)));
    await db.run(
      sql.loadItemsCsv(file, names, {
        delim: delimiterOf(file),
        compression: compressionOf(file),
        strict: false,
      }),
    );
  } catch (err) {
    if (!fs.existsSync(file)) throw vanished(file, 'while it was read');
    if (err instanceof ContractError || err instanceof CsvHeaderError)
      throw badInput(`${file}: ${err.message}`);
    throw badInput(`${file}: cannot read the item file: ${firstLine(err)}`);
  }
}

/** Why a file gave no rows, for the "nothing readable" error. */
async function whyEmpty(db: Db, f: IngestedFile): Promise<string> {
  if (f.rejectedLines === 0) return `${f.path}: no data rows (header only or empty)`;
  const r = await db.one<{ line: number; detail: string }>(sql.firstRejectSql(f.path));
  return `${f.path}: all ${f.rejectedLines} data lines malformed (first: line ${r.line}: ${r.detail})`;
}

/** Removes everything ingest creates, so a failed ingest never leaves half-loaded input behind. */
async function dropRaw(db: Db, plan: RunPlan): Promise<void> {
  await dropRelation(db, 'raw_events');
  await db.run(sql.DROP_RAW_TABLES);
  fs.rmSync(path.join(plan.runDir, 'raw'), { recursive: true, force: true });
}

/**
 * Loads every input file as text columns with source file and line: the rows land as Parquet in the run's
 * folder (raw/), united by the `raw_events` view in the run's DuckDB file; malformed lines go to raw_rejects.
 * Idempotent: everything is recreated, so a retry after a crash starts clean; a failure removes it, so no
 * later stage can mistake half-loaded input for the input.
 */
export async function ingest(plan: RunPlan): Promise<IngestResult> {
  return withDb(plan.dbPath, limitsOf(plan), async (db) => {
    try {
      return await ingestAll(db, plan);
    } catch (err) {
      await dropRaw(db, plan).catch(() => undefined);
      throw err;
    }
  });
}

async function ingestAll(db: Db, plan: RunPlan): Promise<IngestResult> {
  // Typed Parquet timestamps are rendered as text; in UTC they carry '+00', which the cleaner reads correctly.
  await db.run(`SET TimeZone = 'UTC'`);
  await dropRaw(db, plan);
  fs.mkdirSync(path.join(plan.runDir, 'raw'), { recursive: true });
  await db.run(sql.CREATE_RAW_TABLES);
  const files: IngestedFile[] = [];
  const landed: sql.LandedFile[] = [];
  const warnings: string[] = [];
  for (const [i, file] of plan.interactionFiles.entries()) {
    progress({ stage: 'ingest', file, done: i, total: plan.interactionFiles.length });
    const { warnings: w, landed: out, ...f } = await ingestOne(db, file, i, plan);
    files.push(f);
    if (out) landed.push(out);
    warnings.push(...w.map((m) => `${file}: ${m}`));
    log('ingested file', { file, rows: f.rows, rejected: f.rejectedLines });
  }
  await db.run(sql.rawEventsViewSql(landed));
  const schemaDrift = compareSchemas(readSchemaRecord(plan), files);
  for (const d of schemaDrift) log('schema drift against the previous run', { drift: describeDrift(d) });
  await db.run(sql.CREATE_RAW_ITEMS);
  if (plan.itemsFile) await loadItems(db, plan.itemsFile);
  await db.run('CHECKPOINT');
  const totals = await db.one<{ rows: number; rejected: number; items: number }>(
    `SELECT (SELECT count(*) FROM raw_events) AS rows, (SELECT count(*) FROM raw_rejects) AS rejected,
            (SELECT count(*) FROM raw_items) AS items`,
  );
  if (totals.rows === 0) {
    const why: string[] = [];
    for (const f of files) why.push(await whyEmpty(db, f));
    throw badInput(`no readable interaction rows: ${why.join('; ')}`);
  }
  return {
    rows: totals.rows,
    rejectedLines: totals.rejected,
    files,
    itemRows: totals.items,
    warnings,
    schemaDrift,
  };
}
