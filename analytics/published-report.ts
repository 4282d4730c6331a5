import { barChart, esc, hbarChart, int, pct } from './report';
import type { ModelPrivacy } from '../contracts/registry';

/**
 * The report that leaves the platform with the recommendations (in the published version folder), as opposed to
 * the run's profile report, which holds raw counts of individual-level data and stays inside the run folder.
 * It is built only from the run's popularity release — per item, the number of distinct users — which is the
 * discrete Gaussian release when privacy is on. Everything here (top items, category totals, concentration) is
 * post-processing of that release, so publishing it spends no further privacy budget. Pure: no I/O.
 */

export const PUBLISHED_REPORT_FORMAT = 1;

export interface ItemPopularity {
  itemId: string;
  /** Distinct users (noisy when privacy is on; negative noise is clamped to 0 by the release). */
  users: number;
  category: string | null;
}

export interface PublishedReport {
  formatVersion: typeof PUBLISHED_REPORT_FORMAT;
  datasetId: string;
  modelVersion: string;
  generatedAt: string;
  /** 'differentially-private': every number below derives from DP releases only. */
  basis: 'differentially-private' | 'exact';
  privacy: ModelPrivacy | null;
  source: string;
  /**
   * Items in the release's key set: with privacy on, the public catalogue (items file) or the items DP partition
   * selection released — never the exact number of items seen in the data.
   */
  catalogueItems: number;
  /** Items whose released count is above zero. */
  itemsWithUsers: number;
  topItems: { itemId: string; category: string | null; users: number }[];
  categories: { category: string; users: number; share: number }[];
  /** Share of all released user-item counts held by each tenth of items, most popular tenth first. */
  popularityDeciles: number[];
  gini: number;
  /** Share of the counts outside the most popular 20% of items. */
  longTailShare: number;
}

/** Gini coefficient of non-negative values (0: all equal; → 1: concentrated on one). */
export function gini(values: number[]): number {
  const v = values.map((x) => Math.max(0, x)).sort((a, b) => a - b);
  const n = v.length;
  const total = v.reduce((s, x) => s + x, 0);
  if (n === 0 || total === 0) return 0;
  let weighted = 0;
  v.forEach((x, i) => (weighted += (i + 1) * x));
  return (2 * weighted) / (n * total) - (n + 1) / n;
}

export function buildPublishedReport(input: {
  datasetId: string;
  modelVersion: string;
  generatedAt: string;
  privacy: ModelPrivacy | null;
  items: ItemPopularity[];
  topN?: number;
}): PublishedReport {
  const items = input.items
    .map((i) => ({ ...i, users: Math.max(0, i.users) }))
    .sort((a, b) => b.users - a.users || (a.itemId < b.itemId ? -1 : a.itemId > b.itemId ? 1 : 0));
  const total = items.reduce((s, i) => s + i.users, 0);
  const share = (x: number) => (total > 0 ? x / total : 0);
  const byCategory = new Map<string, number>();
  for (const i of items) {
    const c = i.category ?? '(none)';
    byCategory.set(c, (byCategory.get(c) ?? 0) + i.users);
  }
  const deciles = new Array<number>(10).fill(0);
  items.forEach((it, rank) => (deciles[Math.min(9, Math.floor((rank * 10) / items.length))] += it.users));
  const head = Math.ceil(items.length * 0.2);
  const dp = input.privacy !== null;
  return {
    formatVersion: PUBLISHED_REPORT_FORMAT,
    datasetId: input.datasetId,
    modelVersion: input.modelVersion,
    generatedAt: input.generatedAt,
    basis: dp ? 'differentially-private' : 'exact',
    privacy: input.privacy,
    source: dp
      ? 'per-item distinct-user counts after per-user contribution bounding, released with the discrete Gaussian mechanism (the run’s popularity release); everything else is post-processing'
      : 'exact per-item distinct-user counts (privacy is off for this run)',
    catalogueItems: items.length,
    itemsWithUsers: items.filter((i) => i.users > 0).length,
    topItems: items.slice(0, input.topN ?? 20).map((i) => ({
      itemId: i.itemId,
      category: i.category,
      users: i.users,
    })),
    categories: [...byCategory.entries()]
      .map(([category, users]) => ({ category, users, share: share(users) }))
      .sort((a, b) => b.users - a.users || a.category.localeCompare(b.category)),
    popularityDeciles: deciles.map(share),
    gini: gini(items.map((i) => i.users)),
    longTailShare: share(items.slice(head).reduce((s, i) => s + i.users, 0)),
  };
}

export function renderPublishedReport(r: PublishedReport): string {
  const dp = r.privacy;
  const privacyLine = dp
    ? `Differentially private: (ε = ${dp.epsilon.toFixed(3)}, δ = ${dp.delta}) for the whole run, mechanism ${esc(dp.mechanism)}. ${esc(r.source)}.`
    : esc(`Not differentially private: ${r.source}.`);
  const top = r.topItems
    .map(
      (t, i) =>
        `<tr><td>${i + 1}</td><td>${esc(t.itemId)}</td><td>${esc(t.category ?? '')}</td><td class="n">${int(t.users)}</td></tr>`,
    )
    .join('');
  const cats = r.categories.slice(0, 15);
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>recforge — ${esc(r.datasetId)} ${esc(r.modelVersion)}</title>
<style>body{font-family:system-ui,sans-serif;margin:2em;color:#333;max-width:980px}
table{border-collapse:collapse}td,th{padding:2px 10px;border-bottom:1px solid #e3e6ea;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}.note{background:#f3f6fa;padding:.6em 1em;border-left:4px solid #4472c4}</style>
</head><body>
<h1>Published report — ${esc(r.datasetId)}</h1>
<p>Model version <b>${esc(r.modelVersion)}</b>, generated ${esc(r.generatedAt)}.</p>
<p class="note">${privacyLine}</p>
<p>${int(r.catalogueItems)} catalogue items, ${int(r.itemsWithUsers)} with users; item popularity Gini ${r.gini.toFixed(3)};
long-tail share (outside the top 20% of items) ${pct(r.longTailShare)}.</p>
<h2>Most popular items</h2>
<table><tr><th>#</th><th>item</th><th>category</th><th>users${dp ? ' (noisy)' : ''}</th></tr>${top}</table>
<h2>Users by category</h2>
${hbarChart(
  cats.map((c) => c.category),
  cats.map((c) => c.users),
  (v) => int(v),
)}
<h2>Popularity concentration</h2>
<p>Share of user–item counts per tenth of the catalogue, most popular tenth first.</p>
${barChart(
  r.popularityDeciles.map((_, i) => `${i * 10}–${(i + 1) * 10}%`),
  r.popularityDeciles,
  { format: pct },
)}
</body></html>
`;
}
