import { INTERACTION_COLUMNS, ITEM_COLUMNS } from '../lib/interactions';
import { csvLine, parseCsv } from './csv';

/**
 * Pure conversion of MovieLens exports to the recforge contract (lib/interactions.ts). No I/O here: callers pass
 * file contents, so the rules are unit-testable with a few rows.
 */

export const RATINGS_FILE = 'ratings.csv';
export const ITEMS_FILE = 'items.csv';
export const MANIFEST_FILE = 'dataset.json';
/** Our items columns plus the full genre list, which `category` (first genre only) would lose. */
export const MOVIELENS_ITEM_COLUMNS = [...ITEM_COLUMNS, 'genres'] as const;
const NO_GENRES = '(no genres listed)';
export const RATING_MIN = 0.5;
export const RATING_MAX = 5;

export type MovielensSource = 'grouplens' | 'dslabs';

/** Published sizes, used to flag a changed upstream (a warning, not an error: GroupLens re-issues files). */
export const EXPECTED_COUNTS: Readonly<
  Record<MovielensSource, { ratings: number; users: number; items: number }>
> = {
  // ml-latest-small, September 2018 release.
  grouplens: { ratings: 100836, users: 610, items: 9742 },
  // Debian r-cran-dslabs `movielens`: an older ml-latest-small (2016), movies that have ratings only.
  dslabs: { ratings: 100004, users: 671, items: 9066 },
};

export class MovielensFormatError extends Error {
  override name = 'MovielensFormatError';
}

export interface DatasetCounts {
  ratings: number;
  users: number;
  items: number;
}

export interface ConvertedDataset {
  /** Full file contents, header included. */
  ratingsCsv: string;
  itemsCsv: string;
  counts: DatasetCounts;
  /** Epoch bounds of the ratings, ISO. */
  firstTimestamp: string;
  lastTimestamp: string;
}

export function epochSecondsToIso(sec: number): string {
  return new Date(sec * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** `Adventure|Animation|Children` → `Adventure`; the "(no genres listed)" placeholder → empty (null). */
export function firstGenre(genres: string): string {
  if (genres === '' || genres === NO_GENRES) return '';
  return genres.split('|')[0].trim();
}

function fail(where: string, msg: string): never {
  throw new MovielensFormatError(`${where}: ${msg}`);
}

/** Ids are kept as the upstream integers (as strings) so results stay comparable with published work. */
function parseId(raw: string, where: string, column: string): string {
  if (!/^\d+$/.test(raw)) fail(where, `${column} "${raw}" is not a non-negative integer`);
  return String(Number(raw));
}

export function parseRating(raw: string, where: string): string {
  const v = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(v) || v < RATING_MIN || v > RATING_MAX) {
    fail(where, `rating "${raw}" is not a number in [${RATING_MIN}, ${RATING_MAX}]`);
  }
  return String(v); // "4.0" and "4" both become "4"
}

export function parseEpoch(raw: string, where: string): number {
  if (!/^\d+$/.test(raw)) fail(where, `timestamp "${raw}" is not integer epoch seconds`);
  return Number(raw);
}

function columnIndex(header: string[], name: string, file: string): number {
  const i = header.indexOf(name);
  if (i < 0) throw new MovielensFormatError(`${file}: no "${name}" column (header: ${header.join(',')})`);
  return i;
}

interface RatingRow {
  user: string;
  item: string;
  rating: string;
  sec: number;
}

interface ItemRow {
  item: string;
  title: string;
  genres: string;
}

function render(ratings: RatingRow[], items: ItemRow[]): ConvertedDataset {
  const out: string[] = [INTERACTION_COLUMNS.join(',') + '\n'];
  const users = new Set<string>();
  let lo = Infinity;
  let hi = -Infinity;
  for (const r of ratings) {
    users.add(r.user);
    lo = Math.min(lo, r.sec);
    hi = Math.max(hi, r.sec);
    out.push(`${r.user},${r.item},rating,${r.rating},${epochSecondsToIso(r.sec)}\n`);
  }
  const itemLines: string[] = [MOVIELENS_ITEM_COLUMNS.join(',') + '\n'];
  for (const it of items)
    itemLines.push(csvLine([it.item, firstGenre(it.genres), '', it.title, 'true', it.genres]));
  return {
    ratingsCsv: out.join(''),
    itemsCsv: itemLines.join(''),
    counts: { ratings: ratings.length, users: users.size, items: items.length },
    firstTimestamp: ratings.length > 0 ? epochSecondsToIso(lo) : '',
    lastTimestamp: ratings.length > 0 ? epochSecondsToIso(hi) : '',
  };
}

/**
 * GroupLens ml-latest(-small): `ratings.csv` (userId,movieId,rating,timestamp) and `movies.csv`
 * (movieId,title,genres). Every movie becomes an item, rated or not, as published.
 */
export function convertGroupLens(ratingsText: string, moviesText: string): ConvertedDataset {
  const rr = parseCsv(stripBom(ratingsText));
  if (rr.length === 0) throw new MovielensFormatError('ratings.csv is empty');
  const h = rr[0];
  const [iu, im, ir, it] = ['userId', 'movieId', 'rating', 'timestamp'].map((c) =>
    columnIndex(h, c, 'ratings.csv'),
  );
  const ratings: RatingRow[] = [];
  for (let k = 1; k < rr.length; k++) {
    const f = rr[k];
    const where = `ratings.csv record ${k + 1}`;
    if (f.length !== h.length) fail(where, `${f.length} fields, header has ${h.length}`);
    ratings.push({
      user: parseId(f[iu], where, 'userId'),
      item: parseId(f[im], where, 'movieId'),
      rating: parseRating(f[ir], where),
      sec: parseEpoch(f[it], where),
    });
  }
  const mr = parseCsv(stripBom(moviesText));
  if (mr.length === 0) throw new MovielensFormatError('movies.csv is empty');
  const mh = mr[0];
  const [mi, mt, mg] = ['movieId', 'title', 'genres'].map((c) => columnIndex(mh, c, 'movies.csv'));
  const items: ItemRow[] = [];
  const seen = new Set<string>();
  for (let k = 1; k < mr.length; k++) {
    const f = mr[k];
    const where = `movies.csv record ${k + 1}`;
    if (f.length !== mh.length) fail(where, `${f.length} fields, header has ${mh.length}`);
    const item = parseId(f[mi], where, 'movieId');
    if (seen.has(item)) fail(where, `duplicate movieId ${item}`);
    seen.add(item);
    items.push({ item, title: f[mt].trim(), genres: f[mg] });
  }
  const missing = ratings.find((r) => !seen.has(r.item));
  if (missing)
    throw new MovielensFormatError(`ratings.csv rates movie ${missing.item}, which movies.csv lacks`);
  return render(ratings, items);
}

/**
 * dslabs `movielens` as written by R's write.csv: one row per rating with the movie's columns denormalised
 * (movieId,title,year,genres,userId,rating,timestamp; NA written as empty). dslabs strips the year from the
 * title; it is put back GroupLens-style ("Dumbo (1941)") so titles look the same whichever source was used.
 * Items are the distinct rated movies, in order of first appearance.
 */
export function convertDslabsExport(text: string): ConvertedDataset {
  const rows = parseCsv(stripBom(text));
  if (rows.length === 0) throw new MovielensFormatError('dslabs export is empty');
  const h = rows[0];
  const [im, itl, iy, ig, iu, ir, it] = [
    'movieId',
    'title',
    'year',
    'genres',
    'userId',
    'rating',
    'timestamp',
  ].map((c) => columnIndex(h, c, 'dslabs export'));
  const ratings: RatingRow[] = [];
  const items = new Map<string, ItemRow>();
  for (let k = 1; k < rows.length; k++) {
    const f = rows[k];
    const where = `dslabs export record ${k + 1}`;
    if (f.length !== h.length) fail(where, `${f.length} fields, header has ${h.length}`);
    const item = parseId(f[im], where, 'movieId');
    ratings.push({
      user: parseId(f[iu], where, 'userId'),
      item,
      rating: parseRating(f[ir], where),
      sec: parseEpoch(f[it], where),
    });
    if (!items.has(item)) {
      const title = f[itl].trim();
      const year = f[iy].trim();
      if (year !== '' && !/^\d{4}$/.test(year)) fail(where, `year "${year}" is not a 4-digit year`);
      items.set(item, {
        item,
        title: title !== '' && year !== '' ? `${title} (${year})` : title,
        genres: f[ig],
      });
    }
  }
  return render(ratings, [...items.values()]);
}

function stripBom(text: string): string {
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

/** Differences from the published sizes, as human-readable warnings (empty when all match). */
export function countWarnings(source: MovielensSource, counts: DatasetCounts): string[] {
  const want = EXPECTED_COUNTS[source];
  return (Object.keys(want) as (keyof DatasetCounts)[])
    .filter((k) => counts[k] !== want[k])
    .map((k) => `${k}: expected ${want[k]} for ${source}, got ${counts[k]} (upstream changed?)`);
}
