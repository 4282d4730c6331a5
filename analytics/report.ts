import {
  USER_BUCKET_LABELS,
  type ColumnProfile,
  type DriftCheck,
  type DriftStatus,
  type ProfileDocument,
} from './profile-model';

/**
 * Renders a profile as one self-contained HTML page: inline CSS and SVG, no scripts, no external assets, so
 * it opens from a file share or an artifact store as is. Pure (profile JSON in, HTML string out). Every
 * value that came from the data (ids, event types, top values) is HTML-escaped.
 */

export function esc(value: unknown): string {
  return String(value)
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

/** Integers and shares as the reports print them ('–' for missing or non-finite). */
export const int = (n: number | null | undefined) =>
  n === null || n === undefined || !Number.isFinite(n) ? '–' : Math.round(n).toLocaleString('en-US');
export const pct = (x: number | null | undefined, digits = 1) =>
  x === null || x === undefined || !Number.isFinite(x) ? '–' : `${(100 * x).toFixed(digits)}%`;
function dec(x: number | null | undefined): string {
  if (x === null || x === undefined || !Number.isFinite(x)) return '–';
  if (Number.isInteger(x) && Math.abs(x) < 1e15) return x.toLocaleString('en-US');
  const a = Math.abs(x);
  return a !== 0 && (a < 1e-3 || a >= 1e9) ? x.toExponential(3) : Number(x.toPrecision(4)).toString();
}

/** Axis labels: whole numbers with separators, small fractional values (half of a max of 1) with a digit or two. */
const axis = (v: number) =>
  Math.abs(v) >= 100 || Number.isInteger(v) ? int(v) : Number(v.toPrecision(2)).toString();

const COLORS = { bar: '#4472c4', accent: '#ed7d31', grid: '#e3e6ea', text: '#333', muted: '#777' };
const STATUS_COLOR: Record<DriftStatus, string> = { ok: '#2e7d32', warn: '#b26a00', alert: '#c62828' };

interface BarOptions {
  width?: number;
  height?: number;
  /** Show every n-th category label (long time axes). */
  labelEvery?: number;
  format?: (v: number) => string;
}

/** Vertical bar chart with a zero baseline, the maximum marked, and category labels under the bars. */
export function barChart(labels: string[], values: number[], o: BarOptions = {}): string {
  const width = o.width ?? 560;
  const height = o.height ?? 220;
  const format = o.format ?? axis;
  const pad = { l: 56, r: 8, t: 12, b: 46 };
  const w = width - pad.l - pad.r;
  const h = height - pad.t - pad.b;
  const max = Math.max(0, ...values);
  const n = Math.max(values.length, 1);
  const bw = w / n;
  const every = o.labelEvery ?? Math.max(1, Math.ceil(n / 12));
  const bars = values
    .map((v, i) => {
      const bh = max > 0 ? (v / max) * h : 0;
      const x = pad.l + i * bw;
      return `<rect x="${(x + bw * 0.1).toFixed(1)}" y="${(pad.t + h - bh).toFixed(1)}" width="${Math.max(bw * 0.8, 0.5).toFixed(1)}" height="${bh.toFixed(1)}" fill="${COLORS.bar}"><title>${esc(labels[i])}: ${esc(format(v))}</title></rect>`;
    })
    .join('');
  const ticks = labels
    .map((l, i) =>
      i % every === 0
        ? `<text x="${(pad.l + (i + 0.5) * bw).toFixed(1)}" y="${pad.t + h + 14}" font-size="10" text-anchor="end" transform="rotate(-35 ${(pad.l + (i + 0.5) * bw).toFixed(1)} ${pad.t + h + 14})">${esc(l)}</text>`
        : '',
    )
    .join('');
  const grid = [0, 0.5, 1]
    .map((f) => {
      const y = pad.t + h - f * h;
      return `<line x1="${pad.l}" x2="${width - pad.r}" y1="${y}" y2="${y}" stroke="${COLORS.grid}"/><text x="${pad.l - 4}" y="${y + 3}" font-size="10" text-anchor="end" fill="${COLORS.muted}">${esc(format(max * f))}</text>`;
    })
    .join('');
  return svg(width, height, grid + bars + ticks);
}

/** Horizontal bars with the label left and the value right: readable for long category names. */
export function hbarChart(
  labels: string[],
  values: number[],
  format: (v: number) => string,
  width = 560,
): string {
  const row = 22;
  const height = Math.max(row * labels.length + 8, 30);
  const left = 130;
  const right = 70;
  const max = Math.max(0, ...values);
  const body = labels
    .map((l, i) => {
      const bw = max > 0 ? (values[i] / max) * (width - left - right) : 0;
      const y = 4 + i * row;
      return `<text x="${left - 6}" y="${y + 14}" font-size="12" text-anchor="end">${esc(l.length > 18 ? `${l.slice(0, 17)}…` : l)}</text><rect x="${left}" y="${y + 3}" width="${bw.toFixed(1)}" height="${row - 8}" fill="${COLORS.bar}"><title>${esc(l)}: ${esc(format(values[i]))}</title></rect><text x="${(left + bw + 4).toFixed(1)}" y="${y + 14}" font-size="11" fill="${COLORS.muted}">${esc(format(values[i]))}</text>`;
    })
    .join('');
  return svg(width, height, body);
}

/** Lorenz curve of item popularity against the line of equality, with the Gini coefficient. */
export function lorenzChart(points: Array<[number, number]>, gini: number, size = 260): string {
  const pad = 34;
  const s = size - 2 * pad;
  const pt = ([x, y]: [number, number]) => `${(pad + x * s).toFixed(1)},${(pad + (1 - y) * s).toFixed(1)}`;
  const curve = (points.length ? points : [[0, 0] as [number, number]]).map(pt).join(' ');
  const area = `${pt([0, 0])} ${curve} ${pt([1, 0])}`;
  const body = `
<rect x="${pad}" y="${pad}" width="${s}" height="${s}" fill="none" stroke="${COLORS.grid}"/>
<line x1="${pad}" y1="${pad + s}" x2="${pad + s}" y2="${pad}" stroke="${COLORS.muted}" stroke-dasharray="4 3"/>
<polygon points="${area}" fill="${COLORS.bar}" fill-opacity="0.15"/>
<polyline points="${curve}" fill="none" stroke="${COLORS.bar}" stroke-width="2"/>
<text x="${pad + 6}" y="${pad + 14}" font-size="12">Gini ${esc(gini.toFixed(3))}</text>
<text x="${pad + s / 2}" y="${size - 6}" font-size="10" text-anchor="middle" fill="${COLORS.muted}">share of items (least popular first)</text>
<text x="10" y="${pad + s / 2}" font-size="10" text-anchor="middle" fill="${COLORS.muted}" transform="rotate(-90 10 ${pad + s / 2})">share of events</text>
<text x="${pad}" y="${pad + s + 12}" font-size="10" text-anchor="middle">0</text>
<text x="${pad + s}" y="${pad + s + 12}" font-size="10" text-anchor="middle">1</text>`;
  return svg(size, size, body);
}

function svg(width: number, height: number, body: string): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, sans-serif" fill="${COLORS.text}" role="img">${body}</svg>`;
}

function table(head: string[], rows: string[][], cls = ''): string {
  return `<table class="${cls}"><thead><tr>${head.map((h) => `<th>${h}</th>`).join('')}</tr></thead><tbody>${rows
    .map((r) => `<tr>${r.map((c) => `<td>${c}</td>`).join('')}</tr>`)
    .join('')}</tbody></table>`;
}

const badge = (s: DriftStatus) => `<span class="badge" style="background:${STATUS_COLOR[s]}">${s}</span>`;

function columnRows(columns: ColumnProfile[], rows: number): string[][] {
  return columns.map((c) => {
    const n = c.numeric;
    const top = c.topValues
      .map(
        (t) => `<code>${esc(t.value.length > 40 ? `${t.value.slice(0, 39)}…` : t.value)}</code> ${int(t.n)}`,
      )
      .join('<br>');
    return [
      `<b>${esc(c.name)}</b>`,
      int(c.count),
      `${int(c.nulls)} <span class="muted">(${pct(rows ? c.nulls / rows : 0)})</span>`,
      `${c.distinctExact ? '' : '≈ '}${int(c.distinct)}`,
      n ? dec(n.min) : '',
      n ? dec(n.max) : '',
      n ? dec(n.mean) : '',
      n ? dec(n.stddev) : '',
      n
        ? [n.quantiles.p01, n.quantiles.p25, n.quantiles.p50, n.quantiles.p75, n.quantiles.p99]
            .map(dec)
            .join(' / ')
        : '',
      top || '<span class="muted">–</span>',
    ];
  });
}

function driftSection(doc: ProfileDocument): string {
  const d = doc.drift;
  if (!d) return `<p class="muted">No drift report: ${esc(doc.driftNote ?? 'no previous profile')}.</p>`;
  const value = (c: DriftCheck) =>
    c.kind === 'psi'
      ? c.value === null
        ? '–'
        : c.value.toFixed(4)
      : c.kind === 'volume'
        ? signedPct(c.value)
        : pct(c.value);
  // Volume can drift either way; PSI and id shares only upwards.
  const limit = (c: DriftCheck, x: number) =>
    c.kind === 'psi' ? dec(x) : `${c.kind === 'volume' ? '±' : ''}${pct(x, 0)}`;
  return `<p>Against run <code>${esc(d.previousRunId)}</code> of ${esc(d.previousCreatedAt)} (${int(d.previousRows)} rows): ${badge(d.status)}</p>
${table(
  ['check', 'value', 'warn above', 'alert above', 'status', 'what'],
  d.checks.map((c) => [
    esc(c.name),
    value(c),
    limit(c, c.warn),
    limit(c, c.alert),
    badge(c.status),
    esc(c.note),
  ]),
  'drift',
)}
<p class="muted">PSI = Σ (actual − expected) · ln(actual / expected) over buckets; below ${dec(0.1)} is stable, above ${dec(0.25)} a significant shift.</p>`;
}

function signedPct(x: number | null): string {
  if (x === null || !Number.isFinite(x)) return '–';
  return `${x >= 0 ? '+' : ''}${(100 * x).toFixed(1)}%`;
}

function card(label: string, value: string): string {
  return `<div class="card"><div class="v">${value}</div><div class="l">${esc(label)}</div></div>`;
}

export function renderProfileReport(doc: ProfileDocument): string {
  const i = doc.interactions;
  const t = i.time;
  const days = t.eventsPerDay;
  const dist = (label: string, d: typeof i.eventsPerUser) => [
    label,
    ...[d.min, d.p50, d.p90, d.p99, d.max].map(dec),
    dec(d.mean),
  ];
  const title = `Data profile — ${doc.datasetId} — run ${doc.runId}`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:#333;margin:24px auto;max-width:1180px;padding:0 16px;line-height:1.4}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #e3e6ea;padding-bottom:4px}
h3{font-size:14px;margin:0 0 6px}
.muted{color:#777}.cards{display:flex;flex-wrap:wrap;gap:10px;margin:14px 0}
.card{border:1px solid #e3e6ea;border-radius:6px;padding:8px 12px;min-width:120px}.card .v{font-size:18px;font-weight:600}.card .l{font-size:12px;color:#777}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(560px,1fr));gap:18px}
.panel{border:1px solid #e3e6ea;border-radius:6px;padding:10px 12px}
table{border-collapse:collapse;font-size:13px;width:100%}th,td{border-bottom:1px solid #eceff2;padding:5px 8px;text-align:left;vertical-align:top}
th{background:#f6f7f9;font-weight:600}td code{font-size:12px;background:#f3f4f6;padding:0 3px;border-radius:3px;word-break:break-all}
.badge{color:#fff;border-radius:10px;padding:1px 8px;font-size:12px;font-weight:600}
</style></head><body>
<h1>${esc(title)}</h1>
<div class="muted">profiled ${esc(doc.createdAt)} · what arrived, before cleaning · ${esc(doc.seconds.toFixed(2))} s</div>
<p class="muted"><b>Internal: not for release.</b> Raw counts of individual-level data (no differential privacy), for
operators judging data quality; it stays in the run folder. The report published with each model version
(<code>_report/report.html</code> in its output folder) is built from the run's privacy-protected releases only.</p>
<div class="cards">
${card('rows', int(doc.rows))}${card('malformed lines', int(doc.rejectedLines))}${card('users', int(i.users))}${card('items', int(i.items))}
${card('density', dec(i.density))}${card('days', int(t.days))}${card('Gini (items)', dec(i.giniItems))}${card('long-tail share', pct(i.longTailShare))}
${card('drift', doc.drift ? badge(doc.drift.status) : '<span class="muted">n/a</span>')}
</div>
<h2>Drift against the previous successful run</h2>
${driftSection(doc)}
<h2>Interactions</h2>
<div class="grid">
<div class="panel"><h3>Events per day <span class="muted">(${esc(t.plausibleMin ?? '–')} → ${esc(t.plausibleMax ?? '–')})</span></h3>
${
  days.length
    ? barChart(
        days.map((d) => d.day),
        days.map((d) => d.n),
      )
    : '<p class="muted">no plausible timestamps</p>'
}</div>
<div class="panel"><h3>Event-type mix</h3>${hbarChart(
    i.eventTypes.map((e) => e.key),
    i.eventTypes.map((e) => e.share),
    (v) => pct(v),
  )}</div>
<div class="panel"><h3>Item popularity: Lorenz curve</h3>
<div style="display:flex;gap:12px;align-items:flex-start">${lorenzChart(i.lorenz, i.giniItems)}
<div><p>Least popular 80% of items get <b>${pct(i.longTailShare)}</b> of events.</p>
${barChart(
  i.popularityDeciles.map((_, k) => `D${k + 1}`),
  i.popularityDeciles,
  { width: 270, height: 180, format: (v) => pct(v, 0) },
)}
<div class="muted" style="font-size:12px">share of events per popularity decile, most popular first</div></div></div></div>
<div class="panel"><h3>Users by events per user</h3>${barChart(USER_BUCKET_LABELS, i.userActivityBuckets, { labelEvery: 1 })}</div>
<div class="panel"><h3>Events per hour of day (UTC)</h3>${barChart(
    t.hourOfDay.map((_, h) => String(h).padStart(2, '0')),
    t.hourOfDay,
    { labelEvery: 2 },
  )}</div>
<div class="panel"><h3>Distributions</h3>
${table(['', 'min', 'p50', 'p90', 'p99', 'max', 'mean'], [dist('events per user', i.eventsPerUser), dist('events per item', i.eventsPerItem)])}
<h3 style="margin-top:14px">Timestamps</h3>
${table(
  ['', 'rows'],
  [
    ['unparseable', int(t.unparseable)],
    ['before the floor', int(t.beforeFloor)],
    ['in the future', int(t.future)],
    ['earliest / latest (all parseable)', `${esc(t.min ?? '–')} / ${esc(t.max ?? '–')}`],
  ],
)}</div>
</div>
<h2>Columns</h2>
${table(['column', 'count', 'nulls', 'distinct', 'min', 'max', 'mean', 'stddev', 'p01 / p25 / p50 / p75 / p99', 'top values'], columnRows(doc.columns, doc.rows), 'columns')}
<p class="muted">Counts are exact; distinct counts are exact unless marked ≈ (HyperLogLog, for columns with over a million distinct values); quantiles are approximate (t-digest). Distinct counts are of the raw values as they arrived; the cards count trimmed ids and the event-type chart normalised types. Numeric statistics are shown for columns whose values are numbers.</p>
</body></html>
`;
}
