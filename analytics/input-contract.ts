import { INTERACTION_COLUMNS, ITEM_COLUMNS, type InteractionColumn } from '../lib/interactions';
import { excerpt } from '../lib/excerpt';

/**
 * The file-level schema contract for interaction files, as a pure function over the column names a file
 * declares (CSV header or Parquet schema). Messages say what is wrong and what would fix it; the caller
 * prefixes the file name.
 */

export const REQUIRED_COLUMNS: readonly InteractionColumn[] = ['user_id', 'item_id', 'timestamp'];

export interface ResolvedColumns {
  /** One unique name per declared column, in order: contract columns canonical (lower case), others kept. */
  names: string[];
  /** For each contract column the file has, the declared column it comes from. */
  source: Partial<Record<InteractionColumn, string>>;
  /** Drift the policy let through, one message per column (extra columns under `warn`, aliases used). */
  warnings: string[];
}

/** schema.drift from config: what extra and renamed columns do. */
export interface DriftPolicy {
  extraColumns: 'ignore' | 'warn' | 'fail';
  renamedColumns: Partial<Record<InteractionColumn, string[]>>;
}

const DEFAULT_POLICY: DriftPolicy = { extraColumns: 'ignore', renamedColumns: {} };

/** alias (lower case) → contract column. */
function aliasMap(policy: DriftPolicy): Map<string, InteractionColumn> {
  const m = new Map<string, InteractionColumn>();
  for (const [col, aliases] of Object.entries(policy.renamedColumns)) {
    for (const a of aliases ?? []) m.set(a.trim().toLowerCase(), col as InteractionColumn);
  }
  return m;
}

export class ContractError extends Error {
  override name = 'ContractError';
}

const CONTRACT = new Set<string>(INTERACTION_COLUMNS);

/** Declared names as an error shows them: a short, sanitised excerpt (a header line is data too). */
const show = (names: string[]) =>
  names.length === 0 ? 'none' : excerpt(names.map((n) => (n === '' ? "''" : n)).join(', '));

/**
 * Matches contract columns case-insensitively, gives unknown columns unique names (DuckDB names are
 * case-insensitive, and an empty or repeated name would fail its binder), and fails on a duplicated contract
 * column (which one is meant is ambiguous) or a missing required one.
 */
export function resolveColumns(declared: string[], policy: DriftPolicy = DEFAULT_POLICY): ResolvedColumns {
  const names: string[] = [];
  const source: Partial<Record<InteractionColumn, string>> = {};
  const firstSeen = new Map<string, number>();
  const used = new Set<string>();
  const aliases = aliasMap(policy);
  const extra: string[] = [];
  const renamed: [string, InteractionColumn, number][] = [];
  declared.forEach((raw, i) => {
    const name = raw.trim();
    const key = name.toLowerCase();
    if (aliases.has(key)) renamed.push([name, aliases.get(key)!, i]);
    else if (!CONTRACT.has(key)) extra.push(name === '' ? `(unnamed column ${i + 1})` : name);
    if (CONTRACT.has(key)) {
      const prev = firstSeen.get(key);
      if (prev !== undefined) {
        throw new ContractError(
          `duplicate column '${key}' (columns ${prev + 1} and ${i + 1}); keep one of them`,
        );
      }
      firstSeen.set(key, i);
      source[key as InteractionColumn] = key;
      names.push(key);
      used.add(key);
      return;
    }
    let unique = name === '' ? `column_${i + 1}` : name;
    for (let n = 2; used.has(unique.toLowerCase()) || CONTRACT.has(unique.toLowerCase()); n++) {
      unique = `${name || 'column'}_${i + 1}_${n}`;
    }
    used.add(unique.toLowerCase());
    names.push(unique);
  });
  const warnings: string[] = [];
  // A configured alias stands in for its contract column, unless the file also has the column itself.
  for (const [name, col, i] of renamed) {
    const prev = firstSeen.get(col);
    if (prev !== undefined) {
      throw new ContractError(
        `column '${name}' (column ${i + 1}) is an alias of '${col}' (schema.drift.renamedColumns), ` +
          `but the file also has '${col}' (column ${prev + 1}); keep one of them`,
      );
    }
    firstSeen.set(col, i);
    source[col] = names[i];
    warnings.push(`column '${name}' read as '${col}' (schema.drift.renamedColumns)`);
  }
  if (extra.length && policy.extraColumns === 'fail') {
    throw new ContractError(
      `unexpected column${extra.length > 1 ? 's' : ''} ${extra.map((e) => `'${e}'`).join(', ')} ` +
        `(schema.drift.extraColumns: fail; expected only ${INTERACTION_COLUMNS.join(', ')})`,
    );
  }
  if (extra.length && policy.extraColumns === 'warn') {
    warnings.push(...extra.map((e) => `extra column '${e}' ignored`));
  }
  checkRequired(declared, source);
  return { names, source, warnings };
}

/** Type families a typed (Parquet) contract column can be read from; anything else is a retyped column. */
const READABLE_TYPES: Record<InteractionColumn, RegExp> = {
  user_id: /^(VARCHAR|U?(TINY|SMALL|BIG|HUGE)?INT(EGER)?)$/,
  item_id: /^(VARCHAR|U?(TINY|SMALL|BIG|HUGE)?INT(EGER)?)$/,
  event_type: /^VARCHAR$/,
  rating: /^(VARCHAR|FLOAT|DOUBLE|DECIMAL\(\d+,\s*\d+\)|U?(TINY|SMALL|BIG|HUGE)?INT(EGER)?)$/,
  timestamp:
    /^(VARCHAR|DATE|TIMESTAMP(_S|_MS|_NS)?( WITH TIME ZONE)?|U?(TINY|SMALL|BIG|HUGE)?INT(EGER)?|DOUBLE)$/,
};

/**
 * Contract columns whose declared type the contract cannot read (e.g. a BOOLEAN rating, a STRUCT id), each
 * as a message naming the column, its type and what would be read.
 */
export function retypedColumns(
  source: Partial<Record<InteractionColumn, string>>,
  types: { name: string; type: string }[],
): string[] {
  const out: string[] = [];
  for (const [col, from] of Object.entries(source) as [InteractionColumn, string][]) {
    const t = types.find((x) => x.name.trim().toLowerCase() === from.toLowerCase());
    if (t && !READABLE_TYPES[col].test(t.type.toUpperCase())) {
      out.push(`column '${t.name}' has type ${t.type}, which ${col} cannot be read from`);
    }
  }
  return out;
}

function checkRequired(declared: string[], source: Partial<Record<InteractionColumn, string>>): void {
  const missing = REQUIRED_COLUMNS.filter((c) => !source[c]);
  if (missing.length === 0) {
    if (!source.event_type && !source.rating) {
      throw new ContractError(`needs an 'event_type' or a 'rating' column (found: ${show(declared)})`);
    }
    return;
  }
  const found = show(declared);
  if (declared.length === 1) {
    const sep = [';', '\t', '|'].find((s) => declared[0].includes(s));
    if (sep) {
      const label = sep === '\t' ? 'tab' : `'${sep}'`;
      throw new ContractError(
        `the header is a single field '${declared[0]}': the file looks ${label}-separated; ` +
          `.csv files must be comma-separated (tab-separated files: name them .tsv)`,
      );
    }
  }
  if (Object.keys(source).length === 0) {
    throw new ContractError(
      `missing required column '${missing[0]}': the first line (${found}) names none of the expected columns; ` +
        `is the header line missing? The first line must name user_id, item_id, timestamp and event_type or rating`,
    );
  }
  throw new ContractError(`missing required column '${missing[0]}' (found: ${found})`);
}

const ITEM_CONTRACT = new Set<string>(ITEM_COLUMNS);

/** Item metadata header: contract columns matched case-insensitively, others made unique; item_id required. */
export function resolveItemColumns(declared: string[]): string[] {
  const used = new Set<string>();
  const names = declared.map((raw, i) => {
    const name = raw.trim();
    const key = name.toLowerCase();
    let unique = ITEM_CONTRACT.has(key) && !used.has(key) ? key : name || `column_${i + 1}`;
    for (let n = 2; used.has(unique.toLowerCase()); n++) {
      unique = `${name || 'column'}_${i + 1}_${n}`;
    }
    used.add(unique.toLowerCase());
    return unique;
  });
  if (!used.has('item_id')) {
    throw new ContractError(`missing required column 'item_id' (found: ${show(declared)})`);
  }
  return names;
}

/**
 * The value contract every landed row is checked against, whatever its format: ids are printable text of
 * bounded length (not JSON objects or arrays), and a timestamp's UTC offset is a real one. DuckDB's TIMESTAMPTZ
 * cast accepts '+99:99' (and shifts the time by 4 days), and ids with NUL bytes, control characters or whole
 * JSON documents would otherwise be published as they are. A violating row is quarantined at ingest with the
 * reason and the field named.
 */
export interface ValueContract {
  /** Longest user or item id, in characters (schema.maxIdLength). */
  maxIdLength: number;
}

/** C0 and C1 control characters (NUL included), DEL, line/paragraph separators, bidi controls and the BOM. */
const NON_PRINTABLE =
  '[\\x00-\\x1F\\x7F-\\x9F\\x{2028}\\x{2029}\\x{202A}-\\x{202E}\\x{2066}-\\x{2069}\\x{FEFF}]';
/** A time of day followed by a numeric UTC offset: groups 1 and 2 are its hours and minutes. */
const OFFSET = '[T ]\\d{2}:\\d{2}(?::\\d{2}(?:[.,]\\d+)?)?\\s*[+-](\\d{1,2}):?(\\d{2})?\\s*$';
/** ISO 8601 offsets reach ±18:00 at most (real zones: -12:00 to +14:00); minutes stop at 59. */
const MAX_OFFSET_HOURS = 18;

const quote = (s: string) => `'${s.replace(/'/g, "''")}'`;
const ID_COLUMNS = ['user_id', 'item_id'] as const;

/** Which rule an id breaks, as an SQL CASE over the column (NULL: none). Cheap tests first. */
function idRule(col: string, c: ValueContract): string {
  const v = `"${col}"`;
  return `CASE WHEN ${v} IS NULL THEN NULL
    WHEN length(${v}) > ${Math.trunc(c.maxIdLength)} THEN 'long'
    WHEN regexp_matches(${v}, ${quote(NON_PRINTABLE)}) THEN 'control'
    WHEN left(${v}, 1) IN ('{', '[') THEN CASE WHEN json_valid(${v}) THEN 'json' END END`;
}

/** Hours and minutes of the timestamp's offset when it is out of range (NULL: no offset, or a valid one). */
function offsetRule(): string {
  const ts = '"timestamp"';
  const part = (g: number) => `TRY_CAST(regexp_extract(${ts}, ${quote(OFFSET)}, ${g}) AS INTEGER)`;
  return `CASE WHEN ${ts} IS NULL OR ${ts} LIKE '%Z' OR NOT regexp_matches(${ts}, ${quote(OFFSET)}) THEN NULL
    WHEN ${part(1)} > ${MAX_OFFSET_HOURS} OR coalesce(${part(2)}, 0) > 59
      OR (${part(1)} = ${MAX_OFFSET_HOURS} AND coalesce(${part(2)}, 0) > 0) THEN 'offset' END`;
}

/** The quarantine reason of a row that breaks the value contract (bad_id, bad_timestamp), or NULL. */
export function contractReasonSql(c: ValueContract): string {
  const ids = ID_COLUMNS.map((col) => `(${idRule(col, c)}) IS NOT NULL`).join(' OR ');
  return `CASE WHEN ${ids} THEN 'bad_id' WHEN (${offsetRule()}) IS NOT NULL THEN 'bad_timestamp' END`;
}

/**
 * What is wrong, naming the field (evaluated only for violating rows). Never the value itself for ids (it may
 * be a control character soup or a megabyte); the offset is short and checked by the pattern, so it is shown.
 */
export function contractDetailSql(c: ValueContract): string {
  const idCases = ID_COLUMNS.map(
    (
      col,
    ) => `WHEN (${idRule(col, c)}) = 'long' THEN '${col}: longer than ${Math.trunc(c.maxIdLength)} characters (' || length("${col}") || ')'
    WHEN (${idRule(col, c)}) = 'control' THEN '${col}: holds a control or invisible character (U+' ||
      printf('%04X', unicode(regexp_extract("${col}", ${quote(NON_PRINTABLE)}))) || ')'
    WHEN (${idRule(col, c)}) = 'json' THEN '${col}: a JSON ' || CASE WHEN left("${col}", 1) = '{' THEN 'object' ELSE 'array' END || ', not an id'`,
  ).join('\n    ');
  return `CASE ${idCases}
    WHEN (${offsetRule()}) IS NOT NULL THEN 'timestamp: UTC offset ' ||
      regexp_extract("timestamp", '([+-]\\d{1,2}:?(\\d{2})?)\\s*$', 1) || ' out of range (at most ±18:00, minutes below 60)' END`;
}
