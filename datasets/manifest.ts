import { parseCsv } from './csv';
import type { DatasetCounts, MovielensSource } from './movielens';

/** dataset.json: where the data came from and what a complete copy contains. */
export interface DatasetManifest {
  dataset: 'movielens';
  source: MovielensSource;
  /** Human-readable provenance: URL or Debian package and version. */
  origin: string;
  license: string;
  counts: DatasetCounts;
  firstTimestamp: string;
  lastTimestamp: string;
  files: { ratings: string; items: string };
  fetched_at: string;
}

export const MOVIELENS_LICENSE =
  'MovieLens terms of use (GroupLens Research): no redistribution without permission; do not commit this data.';

/** Data records in a CSV text (header excluded); RFC 4180-aware, so quoted line breaks do not count. */
export function countCsvRecords(text: string): number {
  return Math.max(0, parseCsv(text).length - 1);
}

/** Data rows in a CSV without quoted line breaks (our ratings.csv): cheap newline count. */
export function countLines(text: string): number {
  let n = 0;
  for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) n++;
  if (text.length > 0 && !text.endsWith('\n')) n++;
  return Math.max(0, n - 1);
}

/** Why a present copy is not complete, or undefined when it is (counts in the files match the manifest). */
export function incompleteReason(
  m: DatasetManifest,
  ratingsText: string,
  itemsText: string,
): string | undefined {
  const ratings = countLines(ratingsText);
  if (ratings !== m.counts.ratings)
    return `ratings.csv has ${ratings} rows, dataset.json says ${m.counts.ratings}`;
  const items = countCsvRecords(itemsText);
  if (items !== m.counts.items) return `items.csv has ${items} rows, dataset.json says ${m.counts.items}`;
  return undefined;
}

export function isDatasetManifest(v: unknown): v is DatasetManifest {
  if (typeof v !== 'object' || v === null) return false;
  const m = v as Partial<DatasetManifest>;
  return (
    m.dataset === 'movielens' &&
    (m.source === 'grouplens' || m.source === 'dslabs') &&
    typeof m.counts?.ratings === 'number' &&
    typeof m.counts.items === 'number' &&
    typeof m.counts.users === 'number'
  );
}
