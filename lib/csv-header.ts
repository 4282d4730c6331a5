import * as fs from 'node:fs';
import * as zlib from 'node:zlib';

/**
 * Reads the header line of a CSV file (plain or .gz) without trusting DuckDB's sniffer, which gives up on
 * exactly the dirty files we must quarantine row by row. Returns the column names.
 */
export function readCsvHeader(file: string, maxBytes = 1 << 20): string[] {
  const raw = fs.readFileSync(file, { flag: 'r' }).subarray(0, file.endsWith('.gz') ? undefined : maxBytes);
  let text: string;
  if (file.endsWith('.gz')) {
    try {
      text = zlib
        .gunzipSync(raw, { finishFlush: zlib.constants.Z_SYNC_FLUSH })
        .subarray(0, maxBytes)
        .toString('utf8');
    } catch (err) {
      throw new Error(`${file}: not a readable gzip file (${(err as Error).message})`);
    }
  } else {
    text = raw.toString('utf8');
  }
  if (text.length === 0) throw new Error(`${file}: the file is empty (expected a header line)`);
  const end = text.search(/\r?\n/);
  const line = (end === -1 ? text : text.slice(0, end)).replace(/^\uFEFF/, '');
  return parseCsvLine(line);
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
