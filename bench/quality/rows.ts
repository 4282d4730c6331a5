import { csvField, parseCsv } from '../../lib/datasets/csv';
import { INTERACTION_COLUMNS } from '../../lib/interactions';
import type { Row } from './split';

/**
 * Reads an interaction file of the input contract (user_id,item_id,event_type,rating,timestamp) into rows for
 * the split. The bundled synthetic data deliberately contains broken rows (lib/datagen/dirty.ts) that recforge
 * quarantines; the benchmark keeps only rows every model can use, so the references and recforge train on the
 * same valid rows and the holdout holds only real events. Dropped rows are counted by reason, never silently.
 */

export type DropReason =
  | 'field_count'
  | 'null_id'
  | 'unknown_event_type'
  | 'bad_rating'
  | 'bad_timestamp'
  | 'future_timestamp'
  | 'duplicate';

export interface ParseOptions {
  /** Event types that are kept (implicit types and/or `rating`). */
  eventTypes: readonly string[];
  /** Rows whose timestamp is later than this (epoch seconds) are dropped (the generator's 2099 rows). */
  maxTs?: number;
  ratingRange?: [number, number];
}

export interface Parsed {
  rows: Row[];
  dropped: Partial<Record<DropReason, number>>;
}

const ISO_SECONDS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

/** ISO-8601 with a zone, or integer epoch seconds; NaN when neither (or an impossible date such as month 13). */
export function parseTimestamp(text: string): number {
  if (/^\d+$/.test(text)) return Number(text);
  if (!ISO_SECONDS.test(text)) return NaN;
  const ms = Date.parse(text);
  if (!Number.isFinite(ms)) return NaN;
  // Date.parse rolls 2026-02-31 over to March; reject it by comparing the date part back.
  if (text.endsWith('Z') && new Date(ms).toISOString().slice(0, 10) !== text.slice(0, 10)) return NaN;
  return Math.floor(ms / 1000);
}

export function parseInteractions(text: string, o: ParseOptions): Parsed {
  const records = parseCsv(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);
  if (records.length === 0) throw new Error('interaction file is empty: no header');
  const header = records[0].map((h) => h.trim().toLowerCase());
  const col = INTERACTION_COLUMNS.map((c) => header.indexOf(c));
  const missing = INTERACTION_COLUMNS.filter((_, i) => col[i] < 0);
  if (missing.length > 0)
    throw new Error(`interaction file lacks ${missing.join(', ')} (header: ${records[0].join(',')})`);
  const [iu, ii, ie, ir, it] = col;
  const [lo, hi] = o.ratingRange ?? [0.5, 5];
  const rows: Row[] = [];
  const dropped: Partial<Record<DropReason, number>> = {};
  const drop = (r: DropReason) => (dropped[r] = (dropped[r] ?? 0) + 1);
  const exact = new Set<string>();
  for (let k = 1; k < records.length; k++) {
    const f = records[k];
    if (f.length !== header.length) {
      drop('field_count');
      continue;
    }
    const user = f[iu].trim();
    const item = f[ii].trim();
    const eventType = f[ie].trim();
    const tsText = f[it].trim();
    if (user === '' || item === '') {
      drop('null_id');
      continue;
    }
    if (!o.eventTypes.includes(eventType)) {
      drop('unknown_event_type');
      continue;
    }
    let rating: number | null = null;
    if (eventType === 'rating') {
      rating = Number(f[ir]);
      if (f[ir].trim() === '' || !Number.isFinite(rating) || rating < lo || rating > hi) {
        drop('bad_rating');
        continue;
      }
    }
    const ts = parseTimestamp(tsText);
    if (!Number.isFinite(ts)) {
      drop('bad_timestamp');
      continue;
    }
    if (o.maxTs !== undefined && ts > o.maxTs) {
      drop('future_timestamp');
      continue;
    }
    const key = `${user}\u0000${item}\u0000${eventType}\u0000${rating}\u0000${ts}`;
    if (exact.has(key)) {
      drop('duplicate');
      continue;
    }
    exact.add(key);
    rows.push({ user, item, eventType, rating, ts, tsText });
  }
  return { rows, dropped };
}

/** Rows back to the input contract, timestamps as they were written. */
export function toContractCsv(rows: readonly Row[], idx?: readonly number[]): string {
  const out: string[] = [INTERACTION_COLUMNS.join(',') + '\n'];
  const line = (r: Row) =>
    out.push(
      `${csvField(r.user)},${csvField(r.item)},${r.eventType},${r.rating === null ? '' : r.rating},${r.tsText}\n`,
    );
  if (idx) for (const i of idx) line(rows[i]);
  else for (const r of rows) line(r);
  return out.join('');
}
