import { AliasTable } from './alias';
import { Rng, Streams } from './prng';
import { ADJECTIVES, BRANDS, CATEGORIES, COLOURS } from './words';

/** The item side of the model, in flat typed arrays so per-event lookups stay cache-friendly. */
export interface Catalog {
  readonly size: number;
  readonly dim: number;
  readonly categoryNames: readonly string[];
  /** Category index per item. */
  readonly category: Uint16Array;
  /** Latent vectors, item-major: item i occupies [i*dim, (i+1)*dim). */
  readonly latent: Float64Array;
  /** Category centroids, category-major, same layout; user tastes are built from them. */
  readonly centroids: Float64Array;
  /** Popularity prior (unnormalised Zipf weight) per item. */
  readonly popularity: Float64Array;
  readonly price: Float64Array;
  readonly inStock: Uint8Array;
  readonly titles: readonly string[];
  readonly ids: readonly string[];
  /** Items of each category, and an alias table over them weighted by popularity (local indices). */
  readonly members: readonly Int32Array[];
  readonly categoryAlias: readonly AliasTable[];
  /** Popularity-only draw over the whole catalogue. */
  readonly globalAlias: AliasTable;
  /** Share of total popularity mass per category. */
  readonly categoryMass: Float64Array;
}

export function idWidth(count: number, min: number): number {
  return Math.max(min, String(Math.max(0, count - 1)).length);
}

export function formatId(prefix: string, index: number, width: number): string {
  return prefix + String(index).padStart(width, '0');
}

function pick<T>(rng: Rng, list: readonly T[]): T {
  return list[rng.int(list.length)];
}

/**
 * Titles from word lists. About one in ten carries a comma ("…, Pack of 3") and inch sizes carry a double
 * quote, so consumers of items.csv must implement RFC 4180 quoting rather than split on commas.
 */
function makeTitle(rng: Rng, category: number): string {
  const words = CATEGORIES[category];
  let title = `${pick(rng, BRANDS)} ${pick(rng, ADJECTIVES)} ${pick(rng, words.nouns)}`;
  if (words.inches && rng.next() < 0.3)
    title = `${pick(rng, BRANDS)} ${12 + rng.int(24)}" ${pick(rng, words.nouns)}`;
  const r = rng.next();
  if (r < 0.1) title += `, Pack of ${2 + rng.int(5)}`;
  else if (r < 0.3) title += ` - ${pick(rng, COLOURS)}`;
  return title;
}

export function buildCatalog(
  seed: number,
  items: number,
  categories: number,
  dim: number,
  zipfExponent: number,
): Catalog {
  const rng = Rng.derive(seed, Streams.catalog);
  const nCat = Math.min(categories, items);
  const categoryNames = CATEGORIES.slice(0, nCat).map((c) => c.name);

  // Category sizes are mildly skewed (some departments are bigger), like real catalogues.
  const catWeights = new Float64Array(nCat);
  for (let c = 0; c < nCat; c++) catWeights[c] = 1 / Math.pow(c + 1, 0.5);
  const catAlias = new AliasTable(catWeights);
  const category = new Uint16Array(items);
  for (let i = 0; i < items; i++) category[i] = i < nCat ? i : catAlias.sample(rng); // every category non-empty

  const centroids = new Float64Array(nCat * dim);
  const unit = 1 / Math.sqrt(dim);
  for (let k = 0; k < centroids.length; k++) centroids[k] = rng.normal() * unit;

  // Items scatter around their category centroid: taste within a category is then a matter of direction.
  const latent = new Float64Array(items * dim);
  for (let i = 0; i < items; i++) {
    const c = category[i];
    for (let k = 0; k < dim; k++) latent[i * dim + k] = centroids[c * dim + k] + 0.8 * unit * rng.normal();
  }

  // Zipf popularity over a random rank order: rank is independent of id, so ids leak nothing.
  const rank = new Int32Array(items);
  for (let i = 0; i < items; i++) rank[i] = i;
  rng.shuffle(rank);
  const popularity = new Float64Array(items);
  for (let i = 0; i < items; i++) popularity[rank[i]] = 1 / Math.pow(i + 1, zipfExponent);

  const catPriceMu = new Float64Array(nCat);
  for (let c = 0; c < nCat; c++) catPriceMu[c] = Math.log(CATEGORIES[c].medianPrice);
  const price = new Float64Array(items);
  const inStock = new Uint8Array(items);
  const titles: string[] = new Array<string>(items);
  const ids: string[] = new Array<string>(items);
  const width = idWidth(items, 5);
  for (let i = 0; i < items; i++) {
    price[i] = Math.max(0.99, Math.round(rng.logNormal(catPriceMu[category[i]], 0.6) * 100) / 100);
    inStock[i] = rng.next() < 0.95 ? 1 : 0;
    titles[i] = makeTitle(rng, category[i]);
    ids[i] = formatId('i', i, width);
  }

  const counts = new Int32Array(nCat);
  for (let i = 0; i < items; i++) counts[category[i]]++;
  const members = Array.from({ length: nCat }, (_, c) => new Int32Array(counts[c]));
  const fill = new Int32Array(nCat);
  for (let i = 0; i < items; i++) members[category[i]][fill[category[i]]++] = i;
  const categoryMass = new Float64Array(nCat);
  const categoryAlias = members.map((m, c) => {
    const w = new Float64Array(m.length);
    for (let j = 0; j < m.length; j++) {
      w[j] = popularity[m[j]];
      categoryMass[c] += w[j];
    }
    return new AliasTable(w);
  });
  let total = 0;
  for (let c = 0; c < nCat; c++) total += categoryMass[c];
  for (let c = 0; c < nCat; c++) categoryMass[c] /= total;

  return {
    size: items,
    dim,
    categoryNames,
    category,
    latent,
    centroids,
    popularity,
    price,
    inStock,
    titles,
    ids,
    members,
    categoryAlias,
    globalAlias: new AliasTable(popularity),
    categoryMass,
  };
}
