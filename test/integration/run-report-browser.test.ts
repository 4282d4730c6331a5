import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';
import { buildRunReport } from '../../analytics/run-report/html';
import { buildRunIndex, indexEntryOf } from '../../analytics/run-report/index-page';
import { reportFixture } from '../helpers/run-report-fixture';

/**
 * The run report in a real browser: Debian's headless Chromium (`apt-get install chromium`; .ci/run installs it)
 * loads the page from disk with no network, no console errors, every chart rendered with marks, and a
 * screenshot kept in test-artifacts/ for people to look at.
 */

const CHROMIUM = process.env.RECFORGE_CHROMIUM ?? '/usr/bin/chromium';
const ARTIFACTS = path.resolve(__dirname, '..', '..', 'test-artifacts');

jest.setTimeout(120_000);

let browser: BrowserContext;
let userDataDir: string;
beforeAll(async () => {
  if (!fs.existsSync(CHROMIUM))
    throw new Error(
      `${CHROMIUM} not found: install Debian's chromium (apt-get install -y chromium), or set RECFORGE_CHROMIUM`,
    );
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'recforge-chromium-'));
  // A fresh profile per run (launchPersistentContext's user-data dir), so nothing carries over between runs.
  browser = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1280, height: 900 },
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
});
afterAll(async () => {
  await browser?.close();
  if (userDataDir) fs.rmSync(userDataDir, { recursive: true, force: true });
});

interface PageCheck {
  errors: string[];
  requests: string[];
  charts: Array<{ marks: number; width: number; height: number }>;
  headings: string[];
}

async function open(html: string, name: string): Promise<PageCheck> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'recforge-report-'));
  const file = path.join(dir, `${name}.html`);
  fs.writeFileSync(file, html);
  const page = await browser.newPage();
  const errors: string[] = [];
  const requests: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') errors.push(`${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('request', (r) => {
    if (!r.url().startsWith('file://')) requests.push(r.url());
  });
  await page.goto(`file://${file}`, { waitUntil: 'load' });
  const charts = await page.$$eval('figure.chart > svg', (svgs) =>
    svgs.map((s) => {
      const box = s.getBoundingClientRect();
      // Vega's SVG: one <g class="mark-…"> per mark set, with a path/rect/text per drawn item.
      const marks = s.querySelectorAll(
        'g[class*="mark-rect"] path, g[class*="mark-symbol"] path, g[class*="mark-line"] path, g[class*="mark-rule"] line',
      ).length;
      return { marks, width: box.width, height: box.height };
    }),
  );
  const headings = await page.$$eval('h2', (hs) => hs.map((h) => h.textContent ?? ''));
  await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
  await page.close();
  return { errors, requests, charts, headings };
}

test('the run report loads without errors and every chart rendered with marks', async () => {
  const page = await open(await buildRunReport(reportFixture({ rejected: false })), 'run-report');
  expect(page.errors).toEqual([]);
  expect(page.requests).toEqual([]);
  expect(page.headings).toEqual([
    'Gate decision',
    'Evaluation',
    'Training',
    'Data profile and drift',
    'Quality gates and quarantine',
    'Privacy',
    'Sample recommendations',
    'Stages',
  ]);
  expect(page.charts).toHaveLength(9);
  for (const c of page.charts) {
    expect(c.marks).toBeGreaterThan(0);
    expect(c.width).toBeGreaterThan(100);
    expect(c.height).toBeGreaterThan(40);
  }
  expect(fs.statSync(path.join(ARTIFACTS, 'run-report.png')).size).toBeGreaterThan(20_000);
});

test('the index of runs loads without errors with its history charts', async () => {
  const a = reportFixture({ rejected: false }).summary!;
  const b = reportFixture({ rejected: true }).summary!;
  const entries = [
    indexEntryOf(a, '2026-12-01T02:00:00Z', 'mf', 10, 'a.html'),
    indexEntryOf({ ...b, runId: 'r2' }, '2026-12-02T02:00:00Z', 'mf', 10, 'b.html'),
    indexEntryOf({ ...a, runId: 'r3' }, '2026-12-03T02:00:00Z', 'mf', 10, null),
  ];
  const page = await open(await buildRunIndex('synthetic', entries, '2026-12-03T03:00:00Z'), 'run-index');
  expect(page.errors).toEqual([]);
  expect(page.charts).toHaveLength(2);
  for (const c of page.charts) expect(c.marks).toBeGreaterThanOrEqual(3);
});
