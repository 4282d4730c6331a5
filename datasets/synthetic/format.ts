import { INTERACTION_COLUMNS, ITEM_COLUMNS } from '../../lib/interactions';
import type { OutputFormat } from './options';

// Module-level aliases: inside jest's vm sandbox every `Math.x` is a slow global lookup; locals are not.
const { floor } = Math;

const TWO_DIGITS: readonly string[] = Array.from({ length: 60 }, (_, i) => String(i).padStart(2, '0'));

/**
 * Epoch seconds → `YYYY-MM-DDTHH:MM:SSZ`. `Date#toISOString` allocates a Date and prints milliseconds; caching
 * the date prefix per day and padding from a table is several times faster, which matters at 20M rows.
 */
export class TimestampFormatter {
  private readonly dayPrefix = new Map<number, string>();

  format(epochSec: number): string {
    const day = floor(epochSec / 86400);
    let prefix = this.dayPrefix.get(day);
    if (prefix === undefined) {
      prefix = new Date(day * 86400000).toISOString().slice(0, 11);
      this.dayPrefix.set(day, prefix);
    }
    let s = epochSec - day * 86400;
    const h = floor(s / 3600);
    s -= h * 3600;
    const m = floor(s / 60);
    return `${prefix}${TWO_DIGITS[h]}:${TWO_DIGITS[m]}:${TWO_DIGITS[s - m * 60]}Z`;
  }
}

/** RFC 4180 field: quoted only when it holds a comma, quote, CR or LF; quotes doubled. */
export function csvField(value: string): string {
  return /[",\r\n]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}

/** One interaction as raw field strings; '' means null (empty CSV field, JSON null). */
export interface RawRow {
  user: string;
  item: string;
  type: string;
  rating: string;
  ts: string;
}

/** How rows are spelled in one output format, including deliberately broken lines. */
export interface RowFormat {
  readonly extension: string;
  /** Header line including its newline ('' for formats without one). */
  readonly header: string;
  row(r: RawRow): string;
  /** A line a strict reader must reject: wrong field count for CSV, invalid JSON for JSON Lines. */
  malformed(r: RawRow, variant: number): string;
}

export const MALFORMED_VARIANTS = 3;

/** Ids, event types and timestamps never need quoting, so CSV rows skip csvField on the hot path. */
const csvFormat: RowFormat = {
  extension: 'csv',
  header: INTERACTION_COLUMNS.join(',') + '\n',
  row: (r) => `${r.user},${r.item},${r.type},${r.rating},${r.ts}\n`,
  malformed(r, variant) {
    if (variant === 0) return `${r.user},${r.item},${r.type},${r.ts}\n`; // a field missing
    if (variant === 1) return `${r.user},${r.item},${r.type},${r.rating},${r.ts},extra\n`; // one too many
    return `${r.user},${r.item.slice(0, 3)}\n`; // truncated write
  },
};

function jsonValue(v: string): string {
  return v === '' ? 'null' : JSON.stringify(v);
}

const jsonlFormat: RowFormat = {
  extension: 'jsonl',
  header: '',
  row: (r) =>
    `{"user_id":${jsonValue(r.user)},"item_id":${jsonValue(r.item)},"event_type":${jsonValue(r.type)},"rating":${
      r.rating === '' ? 'null' : r.rating
    },"timestamp":${jsonValue(r.ts)}}\n`,
  malformed(r, variant) {
    const full = jsonlFormat.row(r);
    if (variant === 0) return full.slice(0, floor(full.length / 2)) + '\n'; // truncated write
    if (variant === 1) return `{"user_id":${jsonValue(r.user)},"item_id":${jsonValue(r.item)},}\n`; // trailing comma
    return `${r.user},${r.item},${r.type},,${r.ts}\n`; // a CSV line in a JSON file
  },
};

export function rowFormat(format: OutputFormat): RowFormat {
  return format === 'csv' ? csvFormat : jsonlFormat;
}

export const ITEMS_HEADER = ITEM_COLUMNS.join(',') + '\n';

export function itemLine(
  id: string,
  category: string,
  price: number,
  title: string,
  inStock: boolean,
): string {
  return `${id},${csvField(category)},${price.toFixed(2)},${csvField(title)},${inStock ? 'true' : 'false'}\n`;
}
