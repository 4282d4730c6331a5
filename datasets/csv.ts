import { csvField } from './synthetic/format';

export { csvField };

export class CsvParseError extends Error {
  override name = 'CsvParseError';
}

/**
 * RFC 4180 parser: quoted fields may hold commas, doubled quotes and line breaks; CRLF and LF both end a record.
 * A state machine over the whole text (MovieLens files are a few MB). A trailing newline does not make an empty
 * record; an unterminated quote is an error, not a silently truncated field.
 */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let i = 0;
  const n = text.length;
  let quoted = false;
  let atFieldStart = true;
  while (i < n) {
    const ch = text.charCodeAt(i);
    if (quoted) {
      if (ch === 34 /* " */) {
        if (text.charCodeAt(i + 1) === 34) {
          field += '"';
          i += 2;
          continue;
        }
        quoted = false;
        i++;
        continue;
      }
      // Copy a run of ordinary characters at once rather than char by char.
      const next = text.indexOf('"', i);
      if (next === -1) break;
      field += text.slice(i, next);
      i = next;
      continue;
    }
    if (ch === 34 && atFieldStart) {
      quoted = true;
      atFieldStart = false;
      i++;
    } else if (ch === 44 /* , */) {
      row.push(field);
      field = '';
      atFieldStart = true;
      i++;
    } else if (ch === 10 /* \n */ || ch === 13 /* \r */) {
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
      atFieldStart = true;
      i += ch === 13 && text.charCodeAt(i + 1) === 10 ? 2 : 1;
    } else {
      let j = i + 1;
      while (j < n) {
        const c = text.charCodeAt(j);
        if (c === 44 || c === 10 || c === 13) break;
        j++;
      }
      field += text.slice(i, j);
      atFieldStart = false;
      i = j;
    }
  }
  if (quoted) throw new CsvParseError('unterminated quoted field at end of input');
  if (!atFieldStart || field !== '' || row.length > 0) {
    row.push(field);
    rows.push(row);
  }
  return rows;
}

/** Header-checked parse into objects keyed by column name; names the first row with a wrong field count. */
export function parseCsvObjects(text: string, required: readonly string[]): Record<string, string>[] {
  const rows = parseCsv(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);
  if (rows.length === 0) throw new CsvParseError('empty CSV: no header');
  const header = rows[0];
  const missing = required.filter((c) => !header.includes(c));
  if (missing.length > 0)
    throw new CsvParseError(`CSV header lacks ${missing.join(', ')} (has ${header.join(', ')})`);
  const out: Record<string, string>[] = [];
  for (let r = 1; r < rows.length; r++) {
    const row = rows[r];
    if (row.length !== header.length) {
      throw new CsvParseError(`CSV record ${r + 1} has ${row.length} fields, header has ${header.length}`);
    }
    const obj: Record<string, string> = {};
    for (let c = 0; c < header.length; c++) obj[header[c]] = row[c];
    out.push(obj);
  }
  return out;
}

export function csvLine(fields: readonly string[]): string {
  return fields.map(csvField).join(',') + '\n';
}
