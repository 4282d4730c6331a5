import * as fs from 'node:fs';
import * as path from 'node:path';
import { readJsonIfExists, writeFileAtomic, writeJsonAtomic } from '../lib/fs-atomic';
import { incompleteReason, isDatasetManifest, MOVIELENS_LICENSE, type DatasetManifest } from './manifest';
import {
  convertDslabsExport,
  convertGroupLens,
  countWarnings,
  ITEMS_FILE,
  MANIFEST_FILE,
  RATINGS_FILE,
  type ConvertedDataset,
  type MovielensSource,
} from './movielens';
import {
  APT_INSTALL_COMMAND,
  exportDslabsMovielens,
  fetchGroupLensSmall,
  findExecutable,
  installRPackages,
  SourceUnavailableError,
} from './sources';

/** Orchestration of `datasets fetch movielens`: pick a source, convert, write atomically, record dataset.json. */

export type SourceChoice = 'auto' | MovielensSource;

export interface FetchOptions {
  out: string;
  source: SourceChoice;
  /** Allow apt-get install of R + dslabs (root only) when they are missing. */
  install: boolean;
  /** Re-fetch even when a complete copy is present. */
  force: boolean;
  connectTimeoutMs: number;
  log: (line: string) => void;
}

export interface FetchResult {
  skipped: boolean;
  out: string;
  manifest: DatasetManifest;
  warnings: string[];
}

export type ExistingState =
  { complete: true; manifest: DatasetManifest } | { complete: false; reason: string };

/** Whether `out` already holds a complete copy: dataset.json present and the files' row counts match it. */
export function checkExisting(out: string): ExistingState {
  let raw: unknown;
  try {
    raw = readJsonIfExists<unknown>(path.join(out, MANIFEST_FILE));
  } catch (err) {
    return { complete: false, reason: `unreadable ${MANIFEST_FILE}: ${(err as Error).message}` };
  }
  if (raw === undefined) return { complete: false, reason: `no ${MANIFEST_FILE}` };
  if (!isDatasetManifest(raw))
    return { complete: false, reason: `${MANIFEST_FILE} is not a MovieLens manifest` };
  let ratings: string;
  let items: string;
  try {
    ratings = fs.readFileSync(path.join(out, RATINGS_FILE), 'utf8');
    items = fs.readFileSync(path.join(out, ITEMS_FILE), 'utf8');
  } catch (err) {
    return { complete: false, reason: (err as Error).message };
  }
  const reason = incompleteReason(raw, ratings, items);
  return reason ? { complete: false, reason } : { complete: true, manifest: raw };
}

async function fromGroupLens(
  workDir: string,
  o: FetchOptions,
): Promise<{ data: ConvertedDataset; origin: string }> {
  o.log(
    `downloading ml-latest-small from GroupLens (giving up after ${o.connectTimeoutMs} ms without a response)`,
  );
  const files = await fetchGroupLensSmall(workDir, o.connectTimeoutMs);
  return { data: convertGroupLens(files.ratingsText, files.moviesText), origin: files.origin };
}

function fromDslabs(workDir: string, o: FetchOptions): { data: ConvertedDataset; origin: string } {
  try {
    o.log('exporting dslabs::movielens with Rscript');
    const exp = exportDslabsMovielens(workDir);
    return { data: convertDslabsExport(exp.csvText), origin: exp.origin };
  } catch (err) {
    if (!(err instanceof SourceUnavailableError) || !o.install) throw err;
    o.log(`${err.message}; installing with apt-get (--install)`);
    installRPackages(o.log);
    const exp = exportDslabsMovielens(workDir);
    return { data: convertDslabsExport(exp.csvText), origin: exp.origin };
  }
}

export async function fetchMovielens(o: FetchOptions): Promise<FetchResult> {
  const out = path.resolve(o.out);
  if (!o.force) {
    const state = checkExisting(out);
    if (state.complete) return { skipped: true, out, manifest: state.manifest, warnings: [] };
    if (fs.existsSync(out) && fs.readdirSync(out).length > 0)
      o.log(`existing copy in ${out} is incomplete (${state.reason}); fetching again`);
  }
  fs.mkdirSync(out, { recursive: true });
  const workDir = fs.mkdtempSync(path.join(out, '.fetch-'));
  try {
    let source: MovielensSource;
    let got: { data: ConvertedDataset; origin: string };
    if (o.source === 'grouplens') {
      source = 'grouplens';
      got = await fromGroupLens(workDir, o);
    } else if (o.source === 'dslabs') {
      source = 'dslabs';
      got = fromDslabs(workDir, o);
    } else {
      try {
        source = 'grouplens';
        got = await fromGroupLens(workDir, o);
      } catch (err) {
        if (!(err instanceof SourceUnavailableError)) throw err;
        o.log(`${err.message}; falling back to Debian's r-cran-dslabs`);
        if (!findExecutable('Rscript') && !o.install) {
          throw new SourceUnavailableError(
            'no internet access to GroupLens and Rscript is not installed. Install R and dslabs (or pass --install as root)',
            APT_INSTALL_COMMAND,
          );
        }
        source = 'dslabs';
        got = fromDslabs(workDir, o);
      }
    }
    const { data, origin } = got;
    const manifest: DatasetManifest = {
      dataset: 'movielens',
      source,
      origin,
      license: MOVIELENS_LICENSE,
      counts: data.counts,
      firstTimestamp: data.firstTimestamp,
      lastTimestamp: data.lastTimestamp,
      files: { ratings: RATINGS_FILE, items: ITEMS_FILE },
      fetched_at: new Date().toISOString(),
    };
    // Manifest last: its presence is what marks the copy complete.
    fs.rmSync(path.join(out, MANIFEST_FILE), { force: true });
    writeFileAtomic(path.join(out, RATINGS_FILE), data.ratingsCsv);
    writeFileAtomic(path.join(out, ITEMS_FILE), data.itemsCsv);
    writeJsonAtomic(path.join(out, MANIFEST_FILE), manifest);
    return { skipped: false, out, manifest, warnings: countWarnings(source, data.counts) };
  } finally {
    fs.rmSync(workDir, { recursive: true, force: true });
  }
}
