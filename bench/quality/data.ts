import * as fs from 'node:fs';
import * as path from 'node:path';
import { parse as parseYaml } from 'yaml';
import {
  generateDataset,
  isGeneratedDatasetComplete,
  readGenerationManifest,
} from '../../datasets/synthetic';
import { csvLine } from '../../datasets/csv';
import { checkExisting, fetchMovielens } from '../../datasets/fetch';
import { epochSecondsToIso, firstGenre, MOVIELENS_ITEM_COLUMNS } from '../../datasets/movielens';
import {
  APT_INSTALL_COMMAND,
  downloadFile,
  findFile,
  SourceUnavailableError,
  unzipArchive,
} from '../../datasets/sources';
import { writeFileAtomic } from '../../lib/fs-atomic';
import { IMPLICIT_EVENT_TYPES, INTERACTION_COLUMNS } from '../../lib/interactions';
import type { ParseOptions } from './rows';
import type { PositiveRule } from './split';

/**
 * Where the quality benchmark's datasets come from. Nothing here is committed: MovieLens lives under
 * data/datasets/ (git-ignored; its terms forbid redistribution), the synthetic data under data/bench/quality/.
 */

export const DATASET_IDS = ['movielens-small', 'ml-1m', 'synthetic'] as const;
export type DatasetId = (typeof DATASET_IDS)[number];

export interface Source {
  id: DatasetId;
  /** Interaction file of the input contract. */
  interactions: string;
  /** Items file of the input contract (item_id,category,price,title,in_stock[,...]), when there is metadata. */
  items?: string;
  positive: PositiveRule;
  parse: ParseOptions;
  origin: string;
  /** What counts as positive, in words, for the report. */
  positives: string;
}

export type SourceResult = { ok: true; source: Source } | { ok: false; reason: string };

export const ML1M_URL = 'https://files.grouplens.org/datasets/movielens/ml-1m.zip';
const EXPLICIT: PositiveRule = { kind: 'explicit', minRating: 4 };

/** MovieLens latest-small through datasets/ (Debian's r-cran-dslabs export unless told otherwise). */
export async function movielensSmall(
  root: string,
  o: { source: 'dslabs' | 'auto'; log: (s: string) => void },
): Promise<SourceResult> {
  const out = path.join(root, 'data', 'datasets', 'movielens');
  let state = checkExisting(out);
  if (!state.complete) {
    try {
      const r = await fetchMovielens({
        out,
        source: o.source,
        install: false,
        force: false,
        connectTimeoutMs: 10_000,
        log: (s) => o.log(`movielens: ${s}`),
      });
      for (const w of r.warnings) o.log(`movielens: warning: ${w}`);
    } catch (err) {
      if (err instanceof SourceUnavailableError) {
        // The bench never installs system packages itself; it says exactly what would.
        return {
          ok: false,
          reason:
            `MovieLens is not available: ${err.message}. Install R and dslabs (Debian/Ubuntu, as root): ` +
            `${err.hint ?? APT_INSTALL_COMMAND}, or run \`npm run datasets -- fetch movielens --install\``,
        };
      }
      throw err;
    }
    state = checkExisting(out);
    if (!state.complete)
      throw new Error(`MovieLens fetch left an incomplete copy in ${out}: ${state.reason}`);
  }
  return {
    ok: true,
    source: {
      id: 'movielens-small',
      interactions: path.join(out, 'ratings.csv'),
      items: path.join(out, 'items.csv'),
      positive: EXPLICIT,
      parse: { eventTypes: ['rating'] },
      origin: `${state.manifest.source}: ${state.manifest.origin}`,
      positives: 'ratings >= 4',
    },
  };
}

/**
 * ML-1M (GroupLens `ratings.dat`/`movies.dat`, `::`-separated, Latin-1) into our contract, pure. Exported for the
 * unit test.
 */
export function convertMl1m(ratingsDat: string, moviesDat: string): { ratingsCsv: string; itemsCsv: string } {
  const ratings: string[] = [INTERACTION_COLUMNS.join(',') + '\n'];
  for (const [n, line] of ratingsDat.split('\n').entries()) {
    const t = line.trim();
    if (t === '') continue;
    const f = t.split('::');
    if (f.length !== 4 || !f.every((x) => /^\d+$/.test(x)))
      throw new Error(`ratings.dat line ${n + 1}: expected UserID::MovieID::Rating::Timestamp, got "${t}"`);
    ratings.push(`${f[0]},${f[1]},rating,${f[2]},${epochSecondsToIso(Number(f[3]))}\n`);
  }
  const items: string[] = [MOVIELENS_ITEM_COLUMNS.join(',') + '\n'];
  for (const [n, line] of moviesDat.split('\n').entries()) {
    const t = line.replace(/\r$/, '');
    if (t.trim() === '') continue;
    const f = t.split('::');
    if (f.length !== 3 || !/^\d+$/.test(f[0]))
      throw new Error(`movies.dat line ${n + 1}: expected MovieID::Title::Genres, got "${t}"`);
    items.push(csvLine([f[0], firstGenre(f[2]), '', f[1].trim(), 'true', f[2]]));
  }
  return { ratingsCsv: ratings.join(''), itemsCsv: items.join('') };
}

/**
 * ML-1M where it can be had without committing it: a copy already under data/datasets/ml-1m/ (ratings.dat and
 * movies.dat, e.g. unpacked from ml-1m.zip), else a download from GroupLens. No package found on PyPI, npm or
 * Debian ships the data itself (MovieLens helpers there download from GroupLens at run time), so offline the
 * dataset is skipped with the reason.
 */
export async function ml1m(root: string, log: (s: string) => void): Promise<SourceResult> {
  const dir = path.join(root, 'data', 'datasets', 'ml-1m');
  const contract = path.join(dir, 'contract');
  const ratingsCsv = path.join(contract, 'ratings.csv');
  const itemsCsv = path.join(contract, 'items.csv');
  const source = (): SourceResult => ({
    ok: true,
    source: {
      id: 'ml-1m',
      interactions: ratingsCsv,
      items: itemsCsv,
      positive: EXPLICIT,
      parse: { eventTypes: ['rating'], ratingRange: [1, 5] },
      origin: `GroupLens ml-1m (${dir})`,
      positives: 'ratings >= 4',
    },
  });
  if (fs.existsSync(ratingsCsv) && fs.existsSync(itemsCsv)) return source();
  let ratingsDat = fs.existsSync(dir) ? findFile(dir, 'ratings.dat') : undefined;
  let moviesDat = fs.existsSync(dir) ? findFile(dir, 'movies.dat') : undefined;
  if (!ratingsDat || !moviesDat) {
    fs.mkdirSync(dir, { recursive: true });
    const zip = path.join(dir, 'ml-1m.zip');
    try {
      log(`ml-1m: no copy in ${dir}; downloading ${ML1M_URL}`);
      await downloadFile(ML1M_URL, zip, 10_000);
      unzipArchive(zip, dir);
    } catch (err) {
      if (!(err instanceof SourceUnavailableError)) throw err;
      return {
        ok: false,
        reason:
          `ML-1M is not available offline: ${err.message}. No package found on PyPI, npm or Debian ships the ` +
          `data (MovieLens loaders there download it from GroupLens at run time; Debian's r-cran-dslabs has ` +
          `only the 100k ml-latest-small). Put ratings.dat and movies.dat (from ml-1m.zip) under ${dir} to ` +
          `include it.`,
      };
    }
    ratingsDat = findFile(dir, 'ratings.dat');
    moviesDat = findFile(dir, 'movies.dat');
    if (!ratingsDat || !moviesDat) throw new Error(`${ML1M_URL} did not contain ratings.dat and movies.dat`);
  }
  const converted = convertMl1m(fs.readFileSync(ratingsDat, 'latin1'), fs.readFileSync(moviesDat, 'latin1'));
  fs.mkdirSync(contract, { recursive: true });
  writeFileAtomic(itemsCsv, converted.itemsCsv);
  writeFileAtomic(ratingsCsv, converted.ratingsCsv);
  return source();
}

/** The bundled synthetic dataset with configs/default.yaml's `dataset.generate` options (not an overlay's). */
export async function synthetic(root: string, log: (s: string) => void): Promise<SourceResult> {
  const cfg = parseYaml(fs.readFileSync(path.join(root, 'configs', 'default.yaml'), 'utf8')) as {
    dataset: {
      generate: {
        users: number;
        items: number;
        events: number;
        seed: number;
        dirtyRate: number;
        botUsers: number;
      };
    };
  };
  const g = cfg.dataset.generate;
  const want = {
    users: g.users,
    items: g.items,
    events: g.events,
    seed: g.seed,
    dirtyRate: g.dirtyRate,
    botUsers: g.botUsers,
  };
  const out = path.join(root, 'data', 'bench', 'quality', 'synthetic-source');
  if (!isGeneratedDatasetComplete(out, want)) {
    log(`synthetic: generating ${JSON.stringify(want)} into ${out}`);
    await generateDataset({ ...want, out });
  }
  const m = readGenerationManifest(out);
  if (!m) throw new Error(`no generation.json in ${out} after generating`);
  return {
    ok: true,
    source: {
      id: 'synthetic',
      interactions: path.join(out, m.files.interactions.file),
      items: path.join(out, m.files.items.file),
      positive: { kind: 'implicit', eventTypes: IMPLICIT_EVENT_TYPES },
      // The generator's future-dated rows (year 2099) are defects, not events: drop what lies past its window.
      parse: { eventTypes: IMPLICIT_EVENT_TYPES, maxTs: Math.floor(Date.parse(m.window.end) / 1000) },
      origin: `datasets/synthetic ${JSON.stringify(want)}`,
      positives: `every interaction (${IMPLICIT_EVENT_TYPES.join(', ')})`,
    },
  };
}

export async function loadSource(
  root: string,
  id: DatasetId,
  o: { movielensSource: 'dslabs' | 'auto'; log: (s: string) => void },
): Promise<SourceResult> {
  if (id === 'movielens-small') return movielensSmall(root, { source: o.movielensSource, log: o.log });
  if (id === 'ml-1m') return ml1m(root, o.log);
  return synthetic(root, o.log);
}

/** Items a list may not contain: marked out of stock in the items file (recforge's publish rule). */
export function unavailableItems(
  itemsCsvText: string | undefined,
  parse: (t: string) => string[][],
): Set<string> {
  const out = new Set<string>();
  if (!itemsCsvText) return out;
  const rows = parse(itemsCsvText.charCodeAt(0) === 0xfeff ? itemsCsvText.slice(1) : itemsCsvText);
  if (rows.length === 0) return out;
  const h = rows[0].map((c) => c.trim().toLowerCase());
  const ii = h.indexOf('item_id');
  const is = h.indexOf('in_stock');
  if (ii < 0 || is < 0) return out;
  for (const r of rows.slice(1)) {
    const v = (r[is] ?? '').trim().toLowerCase();
    if (['false', '0', 'no', 'n', 'f'].includes(v)) out.add((r[ii] ?? '').trim());
  }
  return out;
}
