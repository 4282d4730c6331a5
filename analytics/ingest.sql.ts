import { lit, ident } from '../lib/duckdb';
import { INTERACTION_COLUMNS } from '../lib/interactions';

/**
 * SQL for loading raw interaction files into the run database. Everything lands as VARCHAR with its source
 * file and line, so that typing errors become quarantine reasons later instead of load failures.
 */

export const CREATE_RAW_TABLES = `
CREATE OR REPLACE TABLE raw_events (
  source_file VARCHAR, source_line BIGINT,
  user_id VARCHAR, item_id VARCHAR, event_type VARCHAR, rating VARCHAR, "timestamp" VARCHAR);
CREATE OR REPLACE TABLE raw_rejects (
  source_file VARCHAR, source_line BIGINT, reason VARCHAR, detail VARCHAR, raw VARCHAR);`;

/** Picks each contract column if the file has it, NULL otherwise. */
function projection(present: Set<string>, source: (c: string) => string): string {
  return INTERACTION_COLUMNS.map(
    (c) => `${present.has(c) ? `CAST(${source(c)} AS VARCHAR)` : 'NULL::VARCHAR'} AS ${ident(c)}`,
  ).join(', ');
}

/**
 * CSV: explicit dialect and all-VARCHAR columns from the header we parsed ourselves; malformed lines go to
 * DuckDB's rejects table, from which we also recover the line number of every good row (ordinality counts
 * emitted rows only, so good row n is the n-th line not rejected).
 */
export function loadCsv(file: string, header: string[], tag: string): string {
  const columns = `{${header.map((h) => `${lit(h)}: 'VARCHAR'`).join(', ')}}`;
  const present = new Set(header);
  const rej = `rej_${tag}`;
  const scan = `rejscan_${tag}`;
  return `
DROP TABLE IF EXISTS ${rej}; DROP TABLE IF EXISTS ${scan};
CREATE OR REPLACE TEMP TABLE good_${tag} AS
  SELECT ordinality AS ord, ${projection(present, (c) => ident(c))}
  FROM read_csv(${lit(file)}, header = true, auto_detect = false, columns = ${columns},
                delim = ',', quote = '"', escape = '"', store_rejects = true,
                rejects_table = '${rej}', rejects_scan = '${scan}', max_line_size = 2097152) WITH ORDINALITY;
CREATE OR REPLACE TEMP TABLE rejlines_${tag} AS
  SELECT DISTINCT line, first(error_type) OVER (PARTITION BY line) AS error_type,
         first(error_message) OVER (PARTITION BY line) AS error_message,
         first(csv_line) OVER (PARTITION BY line) AS csv_line
  FROM ${rej};
INSERT INTO raw_rejects
  SELECT ${lit(file)}, line, 'malformed_line', error_type || ': ' || error_message, left(csv_line, 4096) FROM rejlines_${tag};
INSERT INTO raw_events
  WITH lines AS (
    SELECT l.range AS line, row_number() OVER (ORDER BY l.range) AS ord
    FROM range(2, 2 + (SELECT count(*) FROM good_${tag}) + (SELECT count(*) FROM rejlines_${tag})) l
    WHERE l.range NOT IN (SELECT line FROM rejlines_${tag}))
  SELECT ${lit(file)}, lines.line, g.user_id, g.item_id, g.event_type, g.rating, g."timestamp"
  FROM good_${tag} g JOIN lines USING (ord);
DROP TABLE good_${tag}; DROP TABLE rejlines_${tag}; DROP TABLE IF EXISTS ${rej}; DROP TABLE IF EXISTS ${scan};`;
}

/** Parquet: typed columns are cast to text; the row number stands in for the line. */
export function loadParquet(file: string, present: Set<string>): string {
  return `
INSERT INTO raw_events
  SELECT ${lit(file)}, file_row_number + 1, ${projection(present, (c) => ident(c))}
  FROM read_parquet(${lit(file)}, file_row_number = true);`;
}

/**
 * JSON Lines: each line is read as one text value (the 0x1F separator cannot appear unescaped in valid JSON),
 * so a malformed line is quarantined with its number instead of failing the whole file.
 */
export function loadJsonl(file: string): string {
  const field = (c: string) => `json_extract_string(line, ${lit('$.' + c)})`;
  return `
CREATE OR REPLACE TEMP TABLE jl AS
  SELECT ordinality AS line_no, line
  FROM read_csv(${lit(file)}, header = false, auto_detect = false, columns = {'line': 'VARCHAR'},
                delim = '\x1f', quote = '', escape = '', max_line_size = 2097152) WITH ORDINALITY;
INSERT INTO raw_rejects
  SELECT ${lit(file)}, line_no, 'malformed_line', 'not a JSON object', left(line, 4096)
  FROM jl WHERE line IS NOT NULL AND (NOT json_valid(line) OR json_type(line) <> 'OBJECT');
INSERT INTO raw_events
  SELECT ${lit(file)}, line_no, ${INTERACTION_COLUMNS.map(field).join(', ')}
  FROM jl WHERE line IS NOT NULL AND json_valid(line) AND json_type(line) = 'OBJECT';
DROP TABLE jl;`;
}

export function describeParquetColumns(file: string): string {
  return `SELECT name FROM parquet_schema(${lit(file)}) WHERE name <> 'schema'`;
}

export const CREATE_RAW_ITEMS = `
CREATE OR REPLACE TABLE raw_items (item_id VARCHAR, category VARCHAR, price VARCHAR, title VARCHAR, in_stock VARCHAR);`;

export function loadItemsCsv(file: string, header: string[]): string {
  const columns = `{${header.map((h) => `${lit(h)}: 'VARCHAR'`).join(', ')}}`;
  const present = new Set(header);
  const pick = (c: string) => (present.has(c) ? ident(c) : 'NULL::VARCHAR');
  return `
INSERT INTO raw_items
  SELECT ${['item_id', 'category', 'price', 'title', 'in_stock'].map(pick).join(', ')}
  FROM read_csv(${lit(file)}, header = true, auto_detect = false, columns = ${columns},
                delim = ',', quote = '"', escape = '"', ignore_errors = true);`;
}
