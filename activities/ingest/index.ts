import * as fs from 'node:fs';
import * as path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { dropRelation, lit, type Db } from '../../lib/duckdb';
import { asFailure } from '../support/failure';
import { currentSignal, throwIfCancelled } from '../../lib/cancellation';
import {
  compressionOf,
  CsvHeaderError,
  delimiterOf,
  parseHeaderBytes,
  readCsvHeader,
  type Compression,
} from '../../lib/csv-header';
import type { InteractionColumn } from '../../lib/interactions';
import * as sql from '../../analytics/ingest.sql';
import * as batchSql from '../../analytics/ingest-batch.sql';
import { groupBatches, ingestBatch, readSmall } from './batch';
import {
  ContractError,
  resolveColumns,
  resolveItemColumns,
  retypedColumns,
  type DriftPolicy,
} from '../../analytics/input-contract';
import { compareSchemas, describeDrift, quarantineFileSql } from '../../analytics/schema-drift';
import { readSchemaRecord } from '../support/dataset-state';
import type { IngestResult, IngestedFile, LandedRef, StageRun } from '../../contracts/stages';
import type { RecforgeConfig } from '../../lib/config';
import { RunIO } from '../support/run-io';
import { parquetArtifact } from '../support/artifacts';
import type { ActivityDeps } from '../support/context';
import {
  CorruptCompressionError,
  digestFile,
  formatOf,
  UnverifiableInputError,
  writeBlanked,
  type FileDigest,
  type InputFormat,
} from '../support/files';
import { excerpt } from '../../lib/excerpt';
import { log, progress } from '../support/context';

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
function landedPath(io: RunIO, fileIndex: number): string {
  return io.local(io.key(`raw/f${fileIndex}.parquet`));
}

type SchemaConfig = RecforgeConfig['schema'];

/** Where a file is read from: itself, or a copy with its over-long lines blanked (see ingestOne). */
interface Source {
  /** The input file: the name rows and rejects carry. */
  file: string;
  /** What DuckDB reads. */
  read: string;
  compression: Compression;
  /** Distinguishes the temporary tables of a second load of the same file. */
  tag: string;
}

type Loaded = FileSchema & {
  lines: sql.LandedFile['lines'] | 'none';
  landed: string;
  /** Physical lines DuckDB saw (read or rejected); absent for Parquet, which has no lines. */
  physical?: number;
};

/**
 * Lands one file's rows at `out` and its malformed lines in raw_rejects; rows that break the value contract
 * (analytics/input-contract.ts) are landed too, marked, and quarantined from there. Returns how the landed
 * rows' lines are known (none: nothing to keep, e.g. a file quarantined whole for a retyped column). Throws
 * ContractError / CsvHeaderError for bad files.
 */
async function loadFile(
  db: Db,
  src: Source,
  format: InputFormat,
  fileIndex: number,
  out: string,
  schemaConfig: SchemaConfig,
): Promise<Loaded> {
  const loaded = await landFile(db, src, format, fileIndex, out, schemaConfig);
  if (loaded.lines !== 'none') {
    const landed = { landed: loaded.landed, source: src.file, fileIndex, lines: loaded.lines };
    await db.run(sql.contractRejectsSql(landed, contractOf(schemaConfig)));
  }
  if (format === 'parquet') return loaded;
  const physical = await db.scalar<number | null>(
    `SELECT sum(lines) FROM raw_physical WHERE file_index = ${Math.trunc(fileIndex)}`,
  );
  return { ...loaded, physical: Number(physical ?? 0) };
}

const contractOf = (schema: SchemaConfig) => ({ maxIdLength: schema.maxIdLength });

async function landFile(
  db: Db,
  src: Source,
  format: InputFormat,
  fileIndex: number,
  out: string,
  schemaConfig: SchemaConfig,
): Promise<Loaded> {
  const { file, read, compression, tag } = src;
  const drift = schemaConfig.drift;
  const contract = contractOf(schemaConfig);
  const policy: DriftPolicy = drift;
  if (format === 'csv') {
    const header = await csvHeader(db, read, compression);
    const { names, source, warnings } = resolveColumns(header, policy);
    const dialect: sql.CsvDialect = { delim: delimiterOf(file), compression, strict: true };
    try {
      await db.run(sql.scanCsv(read, names, source, tag, dialect, out, contract));
    } catch (err) {
      // Mixed CRLF/LF line endings trip strict mode for the whole file; non-strict reads them fine.
      if (!/state machine reached an invalid state/i.test(firstLine(err))) throw err;
      await db.run(sql.scanCsv(read, names, source, tag, { ...dialect, strict: false }, out, contract));
    }
    const schema = { columns: header.map((name) => ({ name })), warnings };
    const lines = await db.one<{ physical: number; records: number }>(
      sql.lineCountsSql(read, tag, compression, out),
    );
    if (lines.physical === lines.records) {
      await db.run(sql.countedLinesSql(fileIndex, tag, lines.physical));
      const rejected = Number(await db.scalar(`SELECT count(*) FROM rejlines_${tag}`));
      const rows = Number(await db.scalar(sql.landedRowsSql(out)));
      await db.run(sql.rejectsAndShiftsCsv(file, fileIndex, tag, out, sql.shiftWidth(rows, rejected)));
      return { ...schema, lines: rejected ? 'shifted' : 'ordinal', landed: out };
    }
    // Blank lines or quoted fields spanning lines: a raw pass finds them, and the rows land again with lines.
    await db.run(`DROP TABLE IF EXISTS rawcnt_${tag}; DROP TABLE IF EXISTS rawcnt_${tag}_scan;`);
    await db.run(sql.rawPassCsv(read, fileIndex, tag, compression));
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
    await db.run(sql.landParquet(file, fileIndex, actual, out, contract));
    if (retyped.length) {
      await db.run(quarantineFileSql(out, retyped.join('; ')));
      warnings.push(`${retyped.join('; ')}: every row quarantined as retyped_column`);
    }
    const columns = cols.map((c) => ({ name: c.name, type: c.type }));
    return { columns, warnings, lines: retyped.length ? 'none' : 'stored', landed: out };
  } else {
    await db.run(sql.landJsonl(file, fileIndex, tag, compression, out, contract, read));
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
 * One file: load and verify concurrently. The verifying pass (files.ts digestFile) hashes the file, fully
 * decompresses .gz and .zst (DuckDB loads a truncated stream partly, without an error) and counts the physical
 * lines, noting the over-long ones. Then every line must be accounted for: DuckDB drops a line longer than its
 * buffer without a trace and numbers the following lines one too low, so a file with over-long lines is loaded
 * again from a copy where those lines are blank (blank lines keep their numbers), and they are quarantined as
 * line_too_long. Finally DuckDB's line count must equal the file's. Failures are classified: gone → retryable;
 * bad content → non-retryable, naming the file and the problem.
 */
async function ingestOne(
  db: Db,
  file: string,
  fileIndex: number,
  io: RunIO,
  config: SchemaConfig,
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
  const out = landedPath(io, fileIndex);
  const abort = new AbortController();
  // The verifying pass stops with the load, or as soon as the activity is cancelled.
  const cancelled = currentSignal();
  const signal = cancelled ? AbortSignal.any([abort.signal, cancelled]) : abort.signal;
  // Parquet is binary: no lines to count (its pages carry their own checks).
  const digest = digestFile(file, signal, format === 'parquet' ? undefined : sql.MAX_LINE_BYTES);
  digest.catch(() => undefined); // settled below; avoids an unhandled rejection if the load fails first
  const src: Source = { file, read: file, compression: compressionOf(file), tag: `f${fileIndex}` };
  let loaded: Loaded | undefined;
  let loadError: unknown;
  try {
    loaded = await loadFile(db, src, format, fileIndex, out, config);
  } catch (err) {
    if (cancelled?.aborted) {
      abort.abort();
      throw err;
    }
    if (!fs.existsSync(file)) throw vanished(file, 'while it was read');
    // A bad header of a plain file needs no verdict on the rest of it; in a compressed one, corruption may be
    // what made the header unreadable, and the verifying pass says so.
    if ((err instanceof ContractError || err instanceof CsvHeaderError) && src.compression === 'none') {
      abort.abort();
      throw badInput(`${file}: ${err.message}`);
    }
    loadError = err;
  }
  let verified: FileDigest;
  try {
    verified = await digest;
  } catch (err) {
    throwIfCancelled();
    // A corrupt stream is the root cause of whatever DuckDB made of it: report that.
    if (err instanceof CorruptCompressionError) throw badInput(`${file}: ${err.message}`);
    if (err instanceof UnverifiableInputError)
      throw ApplicationFailure.nonRetryable(err.message, 'ConfigError');
    throw vanished(file, `while it was read (${excerpt(firstLine(err))})`);
  }
  if (format !== 'parquet' && verified.longLines.length > 0) {
    await forgetFile(db, file, fileIndex, out);
    const copy = path.join(path.dirname(out), `f${fileIndex}-blanked`);
    await writeBlanked(file, copy, verified.longLines, cancelled);
    try {
      const again = { ...src, read: copy, compression: 'none' as const, tag: `f${fileIndex}b` };
      loaded = await loadFile(db, again, format, fileIndex, out, config);
      loadError = undefined;
    } catch (err) {
      loaded = undefined;
      loadError = err;
    } finally {
      fs.rmSync(copy, { force: true });
    }
    await db.run(sql.longLineRejectsSql(file, verified.longLines, sql.MAX_LINE_BYTES));
  }
  if (loadError !== undefined || !loaded) throw classify(file, format, loadError);
  if (loaded.physical !== undefined && loaded.physical !== verified.lines) {
    throw badInput(
      `${file}: the file has ${verified.lines} lines but ${loaded.physical} were read; ` +
        'refusing to load it partly (every line must be ingested or quarantined)',
    );
  }
  const after = fs.statSync(file, { throwIfNoEntry: false });
  if (!after) throw vanished(file, 'while it was read');
  if (after.size !== before.size || after.mtimeMs !== before.mtimeMs) {
    throw ApplicationFailure.retryable(`${file}: the file changed while it was read`, 'InputChanged');
  }
  const { lines, landed, physical: _physical, ...fileSchema } = loaded;
  const rows = lines === 'none' ? 0 : Number(await db.scalar(sql.validRowsSql(landed)));
  if (lines === 'none' || rows === 0) fs.rmSync(landed, { force: true });
  return {
    path: file,
    format,
    bytes: before.size,
    sha256: verified.sha256,
    rows,
    rejectedLines: (await rejectCount(db)) - rejectedBefore,
    ...(format === 'parquet' ? {} : { lines: verified.lines }),
    mtimeMs: before.mtimeMs,
    ...fileSchema,
    ...(lines !== 'none' && rows > 0 ? { landed: { landed, source: file, fileIndex, lines } } : {}),
  };
}

/** A load failure as the activity reports it. */
function classify(file: string, format: InputFormat, err: unknown): ApplicationFailure {
  if (err instanceof ApplicationFailure) return err;
  if (err instanceof ContractError || err instanceof CsvHeaderError)
    return badInput(`${file}: ${err.message}`);
  if ((err as NodeJS.ErrnoException).code === 'ENOENT') return vanished(file, 'while it was read');
  const typed = asFailure(err);
  if (typed instanceof ApplicationFailure) return typed; // e.g. OutOfMemory (lib/duckdb.ts)
  return badInput(`${file}: cannot read as ${format}: ${excerpt(firstLine(err))}`);
}

/** Undoes what loading a file left behind, before it is loaded again. */
async function forgetFile(db: Db, file: string, fileIndex: number, out: string): Promise<void> {
  const i = Math.trunc(fileIndex);
  await db.run(`DELETE FROM raw_rejects WHERE source_file = ${lit(file)};
    DELETE FROM raw_line_shifts WHERE file_index = ${i}; DELETE FROM raw_physical WHERE file_index = ${i};`);
  fs.rmSync(out, { force: true });
  fs.rmSync(out.replace(/\.parquet$/, '-lines.parquet'), { force: true });
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
    throw badInput(`${file}: cannot read the item file: ${excerpt(firstLine(err))}`);
  }
}

/** Why a file gave no rows, for the "nothing readable" error. */
async function whyEmpty(db: Db, f: IngestedFile): Promise<string> {
  if (f.rejectedLines === 0) return `${f.path}: no data rows (header only or empty)`;
  const r = await db.one<{ line: number; detail: string }>(sql.firstRejectSql(f.path));
  return `${f.path}: all ${f.rejectedLines} data lines malformed (first: line ${r.line}: ${excerpt(r.detail)})`;
}

/** Removes everything ingest creates, so a failed ingest never leaves half-loaded input behind. */
async function dropRaw(db: Db, io: RunIO): Promise<void> {
  // The landed files first: after a cancellation every statement refuses to run, and the scratch tables go
  // with the scratch database anyway — the files are what a later attempt could mistake for input.
  fs.rmSync(path.join(io.runDir, 'raw'), { recursive: true, force: true });
  await dropRelation(db, 'raw_events');
  await db.run(sql.DROP_RAW_TABLES);
  await db.run(batchSql.DROP_BATCH_TABLES);
}

/**
 * Loads every input file as text columns with source file and line: the rows land as Parquet in the run's
 * folder (raw/f<N>.parquet), malformed lines in raw/rejects.parquet, the items in raw/items.parquet, and the
 * small tables that give every landed row its physical line beside them. What the next stages get is the list
 * of those artifacts (RawArtifacts): any worker that sees the run's storage can build the `raw_events` view from
 * it. Idempotent: everything is recreated, so a retry after a crash starts clean; a failure removes it, so no
 * later stage can mistake half-loaded input for the input.
 */
export async function ingest(deps: ActivityDeps, run: StageRun): Promise<IngestResult> {
  const io = new RunIO(run.plan.run, deps.dataDir);
  try {
    return await io.withDb('ingest', async (db) => {
      try {
        return await ingestAll(db, io, run);
      } catch (err) {
        await dropRaw(db, io).catch(() => undefined);
        throw err;
      }
    });
  } catch (err) {
    throw asFailure(err);
  }
}

async function ingestAll(db: Db, io: RunIO, run: StageRun): Promise<IngestResult> {
  const schema = run.plan.config.schema;
  await dropRaw(db, io);
  const rawDir = path.join(io.runDir, 'raw');
  fs.mkdirSync(rawDir, { recursive: true });
  await db.run(sql.CREATE_RAW_TABLES);
  await db.run(batchSql.CREATE_BATCH_TABLES);
  const inputs = run.input.interactionFiles;
  const byIndex = new Map<number, IngestedFile & { warnings: string[] }>();
  const landed: sql.LandedFile[] = [];
  // Small CSV files sharing a header: one scan per batch (activities/ingest-batch.ts); the rest one by one.
  const policy: DriftPolicy = schema.drift;
  const small = inputs.flatMap((file, i) => readSmall(file, i, policy) ?? []);
  const batches = groupBatches(small);
  // Progress in bytes read (files landed plus DuckDB's progress through the one being read).
  const sizes = inputs.map(fileBytes);
  const totalBytes = sizes.reduce((a, b) => a + b, 0);
  let bytesDone = 0;
  for (const [k, batch] of batches.entries()) {
    const batchBytes = batch.reduce((a, f) => a + (sizes[f.index] ?? 0), 0);
    progress({
      stage: 'ingest',
      step: 'batch',
      files: `${byIndex.size}/${inputs.length}`,
      done: bytesDone,
      total: totalBytes,
      unit: 'bytes',
      statementSpan: batchBytes,
    });
    const r = await ingestBatch(db, batch, k, io.runDir, contractOf(schema));
    for (const [i, f] of r.done) byIndex.set(i, f);
    for (const [i] of r.done) bytesDone += sizes[i] ?? 0;
    if (r.landed) landed.push(r.landed);
    log('ingested a batch of small files', { files: batch.length, alone: r.fallback.length });
  }
  for (const [i, file] of inputs.entries()) {
    if (byIndex.has(i)) continue;
    progress({
      stage: 'ingest',
      step: 'files',
      file,
      files: `${byIndex.size}/${inputs.length}`,
      done: bytesDone,
      total: totalBytes,
      unit: 'bytes',
      statementSpan: sizes[i],
    });
    const { landed: out, ...f } = await ingestOne(db, file, i, io, schema);
    byIndex.set(i, f);
    bytesDone += sizes[i];
    if (out) landed.push(out);
    log('ingested file', { file, rows: f.rows, rejected: f.rejectedLines });
  }
  const files: IngestedFile[] = [];
  const warnings: string[] = [];
  for (const [i, file] of inputs.entries()) {
    const { warnings: w, ...f } = byIndex.get(i)!;
    files.push(f);
    warnings.push(...w.map((m) => `${file}: ${m}`));
  }
  await db.run(sql.rawEventsViewSql(landed));
  const schemaDrift = compareSchemas(await readSchemaRecord(io.store, run.plan.run.datasetId), files);
  for (const d of schemaDrift) log('schema drift against the previous run', { drift: describeDrift(d) });
  await db.run(sql.CREATE_RAW_ITEMS);
  if (run.input.itemsFile) await loadItems(db, run.input.itemsFile);
  const totals = await db.one<{ rows: number; rejected: number; items: number }>(
    `SELECT (SELECT count(*) FROM raw_events) AS rows, (SELECT count(*) FROM raw_rejects) AS rejected,
            (SELECT count(*) FROM raw_items) AS items`,
  );
  if (totals.rows === 0) {
    const why: string[] = [];
    for (const f of files) why.push(await whyEmpty(db, f));
    throw badInput(`no readable interaction rows: ${why.join('; ')}`);
  }
  // The tables behind raw_events' line numbers, the rejects and the items become artifacts beside the rows.
  const tables = {
    rejects: 'raw_rejects',
    lineShifts: 'raw_line_shifts',
    batchFiles: 'raw_batch_files',
    items: 'raw_items',
  };
  const keys = {
    rejects: io.key('raw/rejects.parquet'),
    lineShifts: io.key('raw/line-shifts.parquet'),
    batchFiles: io.key('raw/batch-files.parquet'),
    items: io.key('raw/items.parquet'),
  };
  for (const k of Object.keys(keys) as (keyof typeof keys)[])
    await db.run(`COPY ${tables[k]} TO ${lit(io.local(keys[k]))} (FORMAT parquet, COMPRESSION zstd)`);
  const refs: LandedRef[] = landed.map(({ landed: file, ...l }) => ({
    ...l,
    key: `${io.run.runKey}/${path.relative(io.runDir, file).split(path.sep).join('/')}`,
  }));
  const raw = {
    landed: refs,
    rejects: await parquetArtifact(db, io, keys.rejects),
    lineShifts: await parquetArtifact(db, io, keys.lineShifts),
    batchFiles: await parquetArtifact(db, io, keys.batchFiles),
    items: await parquetArtifact(db, io, keys.items),
  };
  await io.push([...refs.map((r) => r.key), ...Object.values(keys)]);
  return {
    raw,
    rows: totals.rows,
    rejectedLines: totals.rejected,
    files,
    itemRows: totals.items,
    warnings,
    schemaDrift,
  };
}

/** A local input file's size for progress (0 when it cannot be read here: progress is advisory). */
function fileBytes(file: string): number {
  try {
    return fs.statSync(file).size;
  } catch {
    return 0;
  }
}
