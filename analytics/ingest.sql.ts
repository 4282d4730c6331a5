import { lit, ident } from '../lib/duckdb';
import { INTERACTION_COLUMNS, type InteractionColumn } from '../lib/interactions';
import type { Compression } from '../lib/csv-header';
import { excerpt } from '../lib/excerpt';
import { batchSelect } from './ingest-batch.sql';
import { contractDetailSql, contractReasonSql, type ValueContract } from './input-contract';

/**
 * SQL for loading raw interaction files into the run database. Everything lands as VARCHAR with its source
 * file and line, so that typing errors become quarantine reasons later instead of load failures. Every value
 * that comes from outside (paths, column names) goes through lit()/ident(); data values never enter SQL text.
 */

/**
 * The rejects table (small: malformed lines) and, per CSV file with rejected lines, the table that turns
 * record ordinals into line numbers. The rows themselves land as one Parquet file per input file (landing
 * zone; `rawEventsViewSql` unites them as `raw_events`): writing Parquet costs about half of an insert into a
 * compressed DuckDB table, and the landed rows are only ever scanned, never updated.
 */
export const CREATE_RAW_TABLES = `
CREATE OR REPLACE TABLE raw_rejects (
  source_file VARCHAR, source_line BIGINT, reason VARCHAR, detail VARCHAR, raw VARCHAR);
CREATE OR REPLACE TABLE raw_line_shifts (
  file_index INTEGER, width INTEGER, shifts BIGINT[], vals BIGINT[][], cums BIGINT[][]);
CREATE OR REPLACE TEMP TABLE raw_physical (file_index INTEGER, lines BIGINT);`;

export const DROP_RAW_TABLES = `
DROP TABLE IF EXISTS raw_rejects; DROP TABLE IF EXISTS raw_items; DROP TABLE IF EXISTS raw_line_shifts;`;

/** Every raw row: rid (unique in the run), source_file, source_line and the contract columns as text. */
const RAW_COLUMNS = `rid, source_file, source_line, ${INTERACTION_COLUMNS.map((c) => ident(c)).join(', ')}`;

/**
 * A landed file and how its rows' line numbers are known. `stored`: the file holds RAW_COLUMNS. `ordinal`:
 * the file holds the contract columns in the source's record order, and the line is the record ordinal + 1
 * (the header); `shifted`: likewise, shifted past rejected lines by raw_line_shifts. The ordinal is the
 * Parquet row number: the landing COPY keeps the scan's order (insertion order is preserved).
 */
export interface LandedFile {
  landed: string;
  source: string;
  fileIndex: number;
  /** `batch`: many small files landed by one scan (analytics/ingest-batch.sql.ts); `batch` names it. */
  lines: 'stored' | 'ordinal' | 'shifted' | 'batch';
  batch?: number;
}

/**
 * Every landed file carries `contract_reason`, the value-contract verdict computed while it landed (NULL for
 * almost every row, so the filter costs next to nothing): `valid` rows make up raw_events, `violations` go to
 * raw_rejects with their line numbers, which the same ordinals give.
 */
type Rows = 'valid' | 'violations';
const contractFilter = (rows: Rows) =>
  rows === 'valid' ? 'contract_reason IS NULL' : 'contract_reason IS NOT NULL';

function landedSelect(f: LandedFile, rows: Rows = 'valid'): string {
  if (f.lines === 'batch') return batchSelect(f.landed, f.batch ?? -1, rows);
  const extra = rows === 'violations' ? ', contract_reason' : '';
  if (f.lines === 'stored')
    return `SELECT ${RAW_COLUMNS}${extra} FROM read_parquet(${lit(f.landed)}) WHERE ${contractFilter(rows)}`;
  const ord = 'r.file_row_number + 1';
  const line = f.lines === 'ordinal' ? `${ord} + 1` : shiftedLine(ord, 's');
  const shifts =
    f.lines === 'shifted'
      ? `, (SELECT width, shifts, vals, cums FROM raw_line_shifts WHERE file_index = ${Math.trunc(f.fileIndex)}) s`
      : '';
  return `SELECT ${ridOf(f.fileIndex, ord)} AS rid, ${lit(f.source)} AS source_file, ${line} AS source_line,
         ${INTERACTION_COLUMNS.map((c) => `r.${ident(c)}`).join(', ')}${extra}
  FROM read_parquet(${lit(f.landed)}, file_row_number = true) r${shifts} WHERE r.${contractFilter(rows)}`;
}

/** Rows of a landed file that break the value contract, quarantined with reason, field and a bounded raw copy. */
export function contractRejectsSql(f: LandedFile, c: ValueContract): string {
  return `
INSERT INTO raw_rejects
  SELECT source_file, source_line, contract_reason, ${contractDetailSql(c)},
         left(CAST(to_json(struct_pack(${INTERACTION_COLUMNS.map((x) => `${ident(x)} := ${ident(x)}`).join(', ')})) AS VARCHAR), ${RAW_KEEP})
  FROM (${landedSelect(f, 'violations')})`;
}

/** Rows of a landed file that make it into raw_events. */
export function validRowsSql(out: string): string {
  return `SELECT count(*) AS n FROM read_parquet(${lit(out)}) WHERE contract_reason IS NULL`;
}

/** `raw_events` over the landed files (a typed empty relation when no file had rows). */
export function rawEventsViewSql(files: LandedFile[]): string {
  const empty = `SELECT NULL::BIGINT AS rid, NULL::VARCHAR AS source_file, NULL::BIGINT AS source_line, ${INTERACTION_COLUMNS.map(
    (c) => `NULL::VARCHAR AS ${ident(c)}`,
  ).join(', ')} WHERE false`;
  const body = files.length ? files.map((f) => landedSelect(f)).join('\nUNION ALL\n') : empty;
  return `CREATE VIEW raw_events AS ${body}`;
}

/** Run-wide row ids: the file's index in the high bits, its record ordinal in the low 40 (a trillion rows). */
function ridOf(fileIndex: number, ord: string): string {
  return `(CAST(${Math.trunc(fileIndex)} AS BIGINT) << 40) + ${ord}`;
}

/**
 * Lands rows (`select` yields RAW_COLUMNS, or the contract columns in record order) as Parquet at `out`, with
 * each row's value-contract verdict (`contract`: computed now; `carried`: `select` has it already).
 * Snappy, not zstd: a run-scoped working file, where 10-15% less write time matters more than half the size.
 */
function land(out: string, select: string, contract: ValueContract | 'carried'): string {
  const rows =
    contract === 'carried'
      ? select
      : `SELECT *, ${contractReasonSql(contract)} AS contract_reason FROM (${select})`;
  return `COPY (${rows}) TO ${lit(out)} (FORMAT parquet, COMPRESSION snappy)`;
}

/** Rows in a landed file (from its footer). */
export function landedRowsSql(out: string): string {
  return `SELECT count(*) AS n FROM read_parquet(${lit(out)})`;
}

/** Longest physical line we read (DuckDB buffers a whole line); longer lines are quarantined, not loaded. */
export const MAX_LINE_BYTES = 2 * 1024 * 1024;
/** How much of a rejected line is kept in the quarantine (enough to see what went wrong, bounded). */
const RAW_KEEP = 4096;

export interface CsvDialect {
  delim: ',' | '\t';
  compression: Compression;
  /**
   * DuckDB's strict mode reports quoting errors precisely but fails a whole file with mixed CRLF/LF line
   * endings; the caller retries such a file non-strict.
   */
  strict: boolean;
}

function dialectOptions(d: CsvDialect): string {
  return `delim = ${lit(d.delim)}, quote = '"', escape = '"', compression = ${lit(d.compression)},
          strict_mode = ${d.strict}, max_line_size = ${MAX_LINE_BYTES}`;
}

/** Every physical line as one text value: the 0x1F separator cannot appear in CSV headers or valid JSON. */
function rawLines(file: string, compression: Compression, rejects: string): string {
  return `read_csv(${lit(file)}, header = false, auto_detect = false, columns = {'line': 'VARCHAR'},
                delim = '\x1f', quote = '', escape = '', compression = ${lit(compression)}, strict_mode = false,
                max_line_size = ${MAX_LINE_BYTES}, store_rejects = true, rejects_table = '${rejects}',
                rejects_scan = '${rejects}_scan')`;
}

/** Picks each contract column from its source expression if the file has it, NULL otherwise. */
function projection(
  source: Partial<Record<InteractionColumn, string>>,
  expr: (col: string) => string,
): string {
  return INTERACTION_COLUMNS.map((c) => {
    const from = source[c];
    return `${from !== undefined ? `CAST(${expr(from)} AS VARCHAR)` : 'NULL::VARCHAR'} AS ${ident(c)}`;
  }).join(', ');
}

/**
 * Physical line numbers for emitted rows. A reader's ordinals count emitted rows only; each excluded line
 * (rejected, or blank and skipped) shifts the rows after it by one. With excluded lines e_1 < e_2 < ..., row k
 * comes after e_j iff fewer than k rows precede e_j, i.e. before_j = e_j - first - j + 1 < k. `shiftBuckets`
 * tabulates that count per bucket of LINE_BUCKET ordinals: `shift`, the count below the bucket, and inside it
 * the distinct before_j values (`vals`, ascending) with the running count up to each (`cums`). A run of
 * consecutive excluded lines shares one before_j, and a bucket holds at most LINE_BUCKET distinct values, so
 * a row's lookup costs an equi-join on a small table (a streaming hash probe, no sort of the rows) plus a
 * filter over at most LINE_BUCKET values, however many lines are excluded. `maxOrd` is a scalar subquery for
 * the largest ordinal.
 */
const LINE_BUCKET = 64;

function shiftBuckets(excluded: string, first: number, maxOrd: string, width = LINE_BUCKET): string {
  return `(
    WITH e AS (SELECT line - ${first} - row_number() OVER (ORDER BY line) + 1 AS before FROM ${excluded}),
    d AS (SELECT before // ${width} AS bucket, before, count(*) AS n FROM e GROUP BY ALL),
    c AS (SELECT *, sum(n) OVER (PARTITION BY bucket ORDER BY before) AS cum FROM d),
    per AS (SELECT bucket, sum(n) AS n, list(before ORDER BY before) AS vals, list(cum ORDER BY before) AS cums
            FROM c GROUP BY 1)
    SELECT b.range AS bucket, p.vals, p.cums,
           coalesce(sum(p.n) OVER (ORDER BY b.range ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS shift
    FROM range(0, CAST(coalesce(${maxOrd}, 0) AS BIGINT) // ${width} + 1) b LEFT JOIN per p ON p.bucket = b.range)`;
}

/** The join that brings each row's bucket (alias `b`) next to `rows` (whose ordinal is `ord`). */
function bucketJoin(ord: string, buckets: string): string {
  return `LEFT JOIN ${buckets} b ON b.bucket = (${ord}) // ${LINE_BUCKET}`;
}

/** Excluded lines in the bucket before `ord`: the running count at the last value below it (none: NULL). */
function inBucket(vals: string, cums: string, ord: string): string {
  return `coalesce(${cums}[len(list_filter(${vals}, x -> x < (${ord})))], 0)`;
}

function lineOf(ord: string, first: number): string {
  return `(${ord}) + ${first - 1} + coalesce(b.shift, 0) + ${inBucket('b.vals', 'b.cums', ord)}`;
}

/**
 * Bucket width for a file's stored shifts: about one excluded line per bucket (so the in-bucket filter stays
 * short when rejects are dense) but at least LINE_BUCKET and at most 4096 (fewer, larger buckets cost a sparse
 * file's scan less: 5M rows read with 1024-wide buckets in half the time of 64-wide ones).
 */
export function shiftWidth(rows: number, excluded: number): number {
  let w = LINE_BUCKET;
  while (w < 4096 && w * 2 * excluded <= rows) w *= 2;
  return w;
}

/**
 * The same lookup from one row of lists (raw_line_shifts, alias `s`): shifts[k], vals[k] and cums[k] for
 * bucket k - 1 of width s.width. An uncorrelated one-row subquery, so a scan pays a few list lookups per row
 * and no join.
 */
function shiftedLine(ord: string, s: string): string {
  const k = `(${ord}) // ${s}.width + 1`;
  return `(${ord}) + 1 + ${s}.shifts[${k}] + ${inBucket(`${s}.vals[${k}]`, `${s}.cums[${k}]`, ord)}`;
}

/** (ord, line) for the ordinals in `ords` (a relation with an `ord` column). */
function lineMap(ords: string, excluded: string, first: number): string {
  return `(
    SELECT r.ord, ${lineOf('r.ord', first)} AS line
    FROM (SELECT ord FROM ${ords}) r ${bucketJoin('r.ord', shiftBuckets(excluded, first, `(SELECT max(ord) FROM ${ords})`))})`;
}

/** DuckDB's reject details, one row per rejected line (a line can fail on several columns). */
function rejectedLines(rejects: string, into: string, withColumn: boolean): string {
  const column = withColumn ? `coalesce(' in column ' || column_name, '')` : `''`;
  return `
CREATE OR REPLACE TEMP TABLE ${into} AS
  SELECT line, arg_min(error_type || ${column} || ': ' || error_message, coalesce(column_idx, -1)) AS detail,
         left(arg_min(csv_line, coalesce(column_idx, -1)), ${RAW_KEEP}) AS raw
  FROM ${rejects} GROUP BY line;`;
}

/** Where a landed row comes from: the run-wide row id from its ordinal, the file, and its physical line. */
function rawHead(file: string, fileIndex: number, ord: string, line: string): string {
  return `${ridOf(fileIndex, ord)} AS rid, ${lit(file)} AS source_file, ${line} AS source_line`;
}

const CONTRACT = `${INTERACTION_COLUMNS.map((c) => `g.${ident(c)}`).join(', ')}, g.contract_reason`;

/**
 * CSV, step 1: lands the good rows, typed as text, from the header we parsed ourselves (explicit dialect, no
 * sniffing), straight from the scan into Parquet in the file's record order; malformed lines go to DuckDB's
 * rejects table with their line number and the failing column.
 */
export function scanCsv(
  file: string,
  names: string[],
  source: Partial<Record<InteractionColumn, string>>,
  tag: string,
  dialect: CsvDialect,
  out: string,
  contract: ValueContract,
): string {
  const columns = `{${names.map((h) => `${lit(h)}: 'VARCHAR'`).join(', ')}}`;
  const rej = `rej_${tag}`;
  return `
DROP TABLE IF EXISTS ${rej}; DROP TABLE IF EXISTS ${rej}_scan;
${land(
  out,
  `SELECT ${projection(source, ident)}
  FROM read_csv(${lit(file)}, header = true, auto_detect = false, columns = ${columns}, ${dialectOptions(dialect)},
                store_rejects = true, rejects_table = '${rej}', rejects_scan = '${rej}_scan')`,
  contract,
)};
${rejectedLines(rej, `rejlines_${tag}`, true)}`;
}

/**
 * Physical lines against the records DuckDB saw (header, good rows, rejected lines). Equal means no blank
 * lines and no quoted field spanning lines: DuckDB's line numbers are then physical, and a row's line follows
 * from its ordinal and the rejected lines before it. A count(*) over raw lines reads no values, so this pass
 * costs a fraction of a parse.
 */
export function lineCountsSql(file: string, tag: string, compression: Compression, out: string): string {
  return `
SELECT (SELECT count(*) FROM ${rawLines(file, compression, `rawcnt_${tag}`)}) AS physical,
       1 + (SELECT count(*) FROM read_parquet(${lit(out)})) + (SELECT count(*) FROM rejlines_${tag}) AS records`;
}

/**
 * The lines DuckDB's raw read saw (`counted`, from lineCountsSql) plus those it rejected (invalid UTF-8): what
 * the file's physical line count must equal, or DuckDB lost lines (see lib/line-scan.ts).
 */
export function countedLinesSql(fileIndex: number, tag: string, counted: number): string {
  return `INSERT INTO raw_physical
  SELECT ${Math.trunc(fileIndex)}, ${Math.trunc(counted)} + (SELECT count(DISTINCT line) FROM rawcnt_${tag})`;
}

/**
 * CSV, step 2 when lines and records agree: the rejects, and the line shifts for the landed rows (see
 * shiftBuckets) as one row of lists, which raw_events applies when it is read. No rejects: no shifts needed.
 */
export function rejectsAndShiftsCsv(
  file: string,
  fileIndex: number,
  tag: string,
  out: string,
  width: number,
): string {
  return `
INSERT INTO raw_rejects SELECT ${lit(file)}, line, 'malformed_line', detail, raw FROM rejlines_${tag};
INSERT INTO raw_line_shifts
  SELECT ${Math.trunc(fileIndex)}, ${Math.trunc(width)}, list(shift ORDER BY bucket), list(vals ORDER BY bucket),
         list(cums ORDER BY bucket)
  FROM ${shiftBuckets(`rejlines_${tag}`, 2, `(SELECT count(*) FROM read_parquet(${lit(out)}))`, Math.trunc(width))}
  WHERE EXISTS (SELECT 1 FROM rejlines_${tag});
${dropTemp(tag)}`;
}

/**
 * CSV, step 2 otherwise: a second pass reads raw lines to find blank lines (DuckDB skips them silently but
 * counts them in its line numbers) and the continuation lines of quoted fields that span lines (which DuckDB
 * does not count).
 */
export function rawPassCsv(file: string, fileIndex: number, tag: string, compression: Compression): string {
  return `
DROP TABLE IF EXISTS rawrej_${tag}; DROP TABLE IF EXISTS rawrej_${tag}_scan;
CREATE OR REPLACE TEMP TABLE rawstat_${tag} AS
  SELECT count(*) AS n, list(ordinality) FILTER (WHERE line IS NULL) AS blanks,
         -- Lines with an odd number of quote characters open or close a quoted field that spans lines.
         list(ordinality) FILTER (WHERE contains(line, '"')
                                   AND (length(line) - length(replace(line, '"', ''))) % 2 = 1) AS odd
  FROM ${rawLines(file, compression, `rawrej_${tag}`)} WITH ORDINALITY;
INSERT INTO raw_physical
  SELECT ${Math.trunc(fileIndex)}, (SELECT n FROM rawstat_${tag}) + (SELECT count(DISTINCT line) FROM rawrej_${tag});
CREATE OR REPLACE TEMP TABLE blanks_${tag} AS
  SELECT b.line FROM ${lineMap(
    `(SELECT unnest(coalesce(blanks, [])) AS ord FROM rawstat_${tag})`,
    `(SELECT DISTINCT line FROM rawrej_${tag})`,
    1,
  )} b;
${continuationLines(tag)}`;
}

/**
 * Physical lines inside a quoted field that spans lines (after its opening line, up to its closing line):
 * DuckDB counts records, not these lines, so its line numbers need them added back. Odd-quote lines pair up as
 * opening and closing lines; an unpaired one (a stray quote) leaves the set empty and the numbering as DuckDB's.
 */
function continuationLines(tag: string): string {
  return `
CREATE OR REPLACE TEMP TABLE cont_${tag} AS
  WITH o AS (SELECT unnest(odd) AS l, generate_subscripts(odd, 1) AS i FROM rawstat_${tag} WHERE len(odd) % 2 = 0)
  SELECT unnest(range(a.l + 1, b.l + 1)) AS line FROM o a JOIN o b ON b.i = a.i + 1 WHERE a.i % 2 = 1;`;
}

/** DuckDB line numbers (records) to physical ones, adding back the continuation lines before each. */
function physical(lines: string, tag: string): string {
  return lineMap(lines, `cont_${tag}`, 1);
}

/**
 * CSV, step 3 after the raw pass: rejects and good rows with their physical line numbers. DuckDB numbers
 * records (blank lines included, the continuation lines of quoted fields that span lines not); the raw pass
 * supplies the blank and continuation lines that turn its numbers into physical ones. When the two passes'
 * counts disagree (a file they read differently), those corrections are skipped and numbers follow DuckDB's.
 * `multiline`: the file has continuation lines (the extra mapping costs a join, so only then).
 */
export function landCsvAfterRawPass(
  file: string,
  fileIndex: number,
  tag: string,
  multiline: boolean,
  landed: string,
  out: string,
): string {
  const good = `(SELECT file_row_number + 1 AS ord, * FROM read_parquet(${lit(landed)}, file_row_number = true))`;
  // Records DuckDB saw (header, rows, rejects) against physical lines less blanks and continuation lines: when
  // they disagree, the raw pass and DuckDB read the file differently and its corrections are not applied.
  const consistent = `(SELECT n - len(coalesce(blanks, [])) FROM rawstat_${tag})
        - (SELECT count(*) FROM cont_${tag}) + (SELECT count(DISTINCT line) FROM rawrej_${tag})
      = 1 + (SELECT count(*) FROM ${good}) + (SELECT count(*) FROM rejlines_${tag})`;
  const ords = `(SELECT ord FROM ${good})`;
  const records = lineMap(ords, `excluded_${tag}`, 2);
  const rows = (line: string, from: string) =>
    land(out, `SELECT ${rawHead(file, fileIndex, 'g.ord', line)}, ${CONTRACT} FROM ${from}`, 'carried');
  return `
DELETE FROM cont_${tag} WHERE NOT (${consistent});
CREATE OR REPLACE TEMP TABLE excluded_${tag} AS
  SELECT line FROM rejlines_${tag}
  UNION
  -- Blank lines as DuckDB numbers lines (without the continuation lines kept above).
  SELECT line FROM (
    SELECT b.line - (SELECT count(*) FROM cont_${tag} c WHERE c.line < b.line) AS line FROM blanks_${tag} b)
  WHERE line >= 2 AND ${consistent};
${
  multiline
    ? `INSERT INTO raw_rejects
  SELECT ${lit(file)}, p.line, 'malformed_line', r.detail, r.raw
  FROM rejlines_${tag} r JOIN ${physical(`(SELECT line AS ord FROM rejlines_${tag})`, tag)} p ON p.ord = r.line;
CREATE OR REPLACE TEMP TABLE recline_${tag} AS SELECT ord, line FROM ${records};
${rows(
  'p.line',
  `${good} g JOIN recline_${tag} m ON m.ord = g.ord
   JOIN ${physical(`(SELECT line AS ord FROM recline_${tag})`, tag)} p ON p.ord = m.line`,
)};`
    : `INSERT INTO raw_rejects
  SELECT ${lit(file)}, line, 'malformed_line', detail, raw FROM rejlines_${tag};
${rows('m.line', `${good} g JOIN ${records} m ON m.ord = g.ord`)};`
}
${dropTemp(tag)}`;
}

function dropTemp(tag: string): string {
  return [
    `good_${tag}`,
    `rejlines_${tag}`,
    `rawstat_${tag}`,
    `blanks_${tag}`,
    `excluded_${tag}`,
    `cont_${tag}`,
    `recline_${tag}`,
    `rej_${tag}`,
    `rej_${tag}_scan`,
    `rawrej_${tag}`,
    `rawrej_${tag}_scan`,
    `rawcnt_${tag}`,
    `rawcnt_${tag}_scan`,
    `jl_${tag}`,
  ]
    .map((t) => `DROP TABLE IF EXISTS ${t};`)
    .join(' ');
}

/** The first line of a (zstd-compressed) file, which Node cannot decompress itself. */
export function firstLineSql(file: string, compression: Compression): string {
  return `SELECT line FROM read_csv(${lit(file)}, header = false, auto_detect = false,
    columns = {'line': 'VARCHAR'}, delim = '\x1f', quote = '', escape = '', compression = ${lit(compression)},
    strict_mode = false, max_line_size = ${MAX_LINE_BYTES}) LIMIT 1`;
}

/** Parquet: typed columns are cast to text (in UTC: the caller sets TimeZone); the row number stands in for the line. */
export function landParquet(
  file: string,
  fileIndex: number,
  source: Partial<Record<InteractionColumn, string>>,
  out: string,
  contract: ValueContract,
): string {
  return land(
    out,
    `SELECT ${rawHead(file, fileIndex, 'file_row_number + 1', 'file_row_number + 1')}, ${projection(source, ident)}
     FROM read_parquet(${lit(file)}, file_row_number = true)`,
    contract,
  );
}

/** Top-level column names and types (parquet_schema would also list nested fields). */
export function describeParquetColumns(file: string): string {
  return `SELECT column_name AS name, column_type AS type FROM (DESCRIBE SELECT * FROM read_parquet(${lit(file)}))`;
}

/**
 * JSON Lines: each physical line is read as one text value, so a malformed line (invalid JSON, invalid UTF-8,
 * too long) is quarantined with its number instead of failing the whole file. Blank lines are skipped.
 */
export function landJsonl(
  file: string,
  fileIndex: number,
  tag: string,
  compression: Compression,
  out: string,
  contract: ValueContract,
  read = file,
): string {
  const field = (c: string) => `json_extract_string(g.text, ${lit(`$."${c}"`)}) AS ${ident(c)}`;
  const rej = `rawrej_${tag}`;
  // The rejects table exists only once the scan has run, so the line mapping is a separate statement.
  const lines = `jl_${tag} g ${bucketJoin('g.ord', shiftBuckets(`(SELECT DISTINCT line FROM ${rej})`, 1, `(SELECT max(ord) FROM jl_${tag})`))}`;
  return `
DROP TABLE IF EXISTS ${rej}; DROP TABLE IF EXISTS ${rej}_scan;
CREATE OR REPLACE TEMP TABLE jl_${tag} AS
  SELECT ord, text, kind = 'OBJECT' AS ok, kind
  FROM (SELECT ordinality AS ord, line AS text,
               -- json_type fails on invalid JSON, and DuckDB may evaluate it before a CASE guard: feed it 'null'.
               CASE WHEN json_valid(line) THEN json_type(CASE WHEN json_valid(line) THEN line ELSE 'null' END)
                    ELSE 'invalid' END AS kind
        FROM ${rawLines(read, compression, rej)} WITH ORDINALITY);
INSERT INTO raw_physical
  SELECT ${Math.trunc(fileIndex)}, (SELECT count(*) FROM jl_${tag}) + (SELECT count(DISTINCT line) FROM ${rej});
${rejectedLines(rej, `rejlines_${tag}`, false)}
INSERT INTO raw_rejects
  SELECT ${lit(file)}, line, 'malformed_line', detail, raw FROM rejlines_${tag}
  UNION ALL
  SELECT ${lit(file)}, ${lineOf('g.ord', 1)}, 'malformed_line',
         CASE WHEN kind = 'invalid' THEN 'invalid JSON' ELSE 'not a JSON object: ' || kind END,
         left(text, ${RAW_KEEP})
  FROM ${lines} WHERE text IS NOT NULL AND NOT ok;
${land(out, `SELECT ${rawHead(file, fileIndex, 'g.ord', lineOf('g.ord', 1))}, ${INTERACTION_COLUMNS.map(field).join(', ')} FROM ${lines} WHERE ok`, contract)};
${dropTemp(tag)}`;
}

/** Which contract fields the file's rows carry at all (JSON Lines has no header to check up front). */
export function fieldPresenceSql(out: string): string {
  return `SELECT ${INTERACTION_COLUMNS.map((c) => `count(${ident(c)}) AS ${ident(c)}`).join(', ')}
          FROM read_parquet(${lit(out)})`;
}

/** The first malformed line of a file, to say why a file yielded no rows. */
export function firstRejectSql(file: string): string {
  return `SELECT source_line AS line, detail FROM raw_rejects WHERE source_file = ${lit(file)}
          ORDER BY source_line LIMIT 1`;
}

export const CREATE_RAW_ITEMS = `
CREATE OR REPLACE TABLE raw_items (item_id VARCHAR, category VARCHAR, price VARCHAR, title VARCHAR, in_stock VARCHAR);`;

export function loadItemsCsv(file: string, names: string[], dialect: CsvDialect): string {
  const columns = `{${names.map((h) => `${lit(h)}: 'VARCHAR'`).join(', ')}}`;
  const present = new Set(names);
  const pick = (c: string) => (present.has(c) ? ident(c) : 'NULL::VARCHAR');
  return `
INSERT INTO raw_items
  SELECT ${['item_id', 'category', 'price', 'title', 'in_stock'].map(pick).join(', ')}
  FROM read_csv(${lit(file)}, header = true, auto_detect = false, columns = ${columns}, ${dialectOptions(dialect)},
                ignore_errors = true);`;
}

/**
 * Over-long lines (found by the verifying pass, not by DuckDB: see lib/line-scan.ts) as rejects naming line,
 * length and limit; `raw` keeps a sanitised excerpt of their start.
 */
export function longLineRejectsSql(
  file: string,
  long: { line: number; bytes: number; head: Buffer }[],
  limit: number,
): string {
  const rows = long.map(
    (l) =>
      `(${lit(file)}, ${Math.trunc(l.line)}, 'line_too_long', ${lit(`line of ${l.bytes} bytes, longer than the ${limit}-byte limit`)}, ${lit(excerpt(l.head))})`,
  );
  return rows.length ? `INSERT INTO raw_rejects VALUES ${rows.join(', ')}` : 'SELECT 1';
}
