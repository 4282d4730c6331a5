import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { buildRunReport, runReportCharts, runOutcome } from '../../analytics/run-report/html';
import { privacyChart, trainingCurvesChart, modelComparisonChart } from '../../analytics/run-report/charts';
import { renderSvg } from '../../analytics/run-report/svg';
import { buildRunIndex, indexEntryOf } from '../../analytics/run-report/index-page';
import { readTrainingCurves } from '../../analytics/run-report/load';
import { reportFixture } from '../helpers/run-report-fixture';

jest.setTimeout(60_000);

type Data = { values: Array<Record<string, unknown>> };

describe('chart specs', () => {
  test('every chart of a complete run has a spec; the data it plots is the run’s', () => {
    const r = reportFixture();
    const specs = runReportCharts(r);
    expect(Object.entries(specs).filter(([, s]) => s === null)).toEqual([]);
    const q = specs.quarantine as unknown as { data: Data };
    expect(q.data.values).toEqual(expect.arrayContaining([{ reason: 'duplicate', rows: 300 }]));
  });

  test('training curves: loss and validation panels when the metric was evaluated, loss only otherwise', () => {
    const r = reportFixture();
    const both = trainingCurvesChart(r.training) as unknown as { hconcat: unknown[]; data: Data };
    expect(both.hconcat).toHaveLength(2);
    expect(both.data.values.filter((p) => p.variant === 'mf')).toHaveLength(4);
    const lossOnly = trainingCurvesChart([r.training[1]]) as unknown as { hconcat: unknown[] };
    expect(lossOnly.hconcat).toHaveLength(1);
    expect(trainingCurvesChart([])).toBeNull();
  });

  test('model comparison carries each model’s bootstrap interval and role', () => {
    const spec = modelComparisonChart(reportFixture().evaluation!) as unknown as { data: Data };
    const mf = spec.data.values.find((v) => v.model === 'mf')!;
    expect(mf).toMatchObject({ role: 'challenger', ndcg: 0.15, low: 0.13, high: 0.17 });
    expect(spec.data.values.find((v) => v.model === 'champion')!.role).toBe('champion');
    expect(spec.data.values.find((v) => v.model === 'mostpop')!.role).toBe('baseline');
  });

  test('privacy: other runs, this run and the remainder add up to the budget', () => {
    const p = reportFixture().privacy!;
    const spec = privacyChart(p) as unknown as { data: Data };
    const parts = Object.fromEntries(spec.data.values.map((v) => [v.part, v.epsilon]));
    expect(parts).toEqual({ 'other runs in the window': 4, 'this run': 4, remaining: 4 });
    const overspent = privacyChart({ ...p, usedEpsilon: 20 }) as unknown as { data: Data };
    expect(overspent.data.values.find((v) => v.part === 'remaining')!.epsilon).toBe(0);
  });

  test('a spec renders to a static SVG with marks', async () => {
    const svg = await renderSvg(modelComparisonChart(reportFixture().evaluation!)!);
    expect(svg).toMatch(/^<svg/);
    expect(svg).toContain('mark-symbol');
    expect(svg).toContain('mark-rule');
  });

  test('a spec that asks to load data from a URL is refused, not fetched', async () => {
    await expect(
      renderSvg({ data: { url: 'http://127.0.0.1:9/x.json' }, mark: 'bar', encoding: {} } as never),
    ).rejects.toThrow(/refusing to load/);
  });
});

describe('run report page', () => {
  let rejectedHtml: string;
  beforeAll(async () => {
    rejectedHtml = await buildRunReport(
      reportFixture({ rejected: true, hostile: '<script>alert(1)</script>' }),
    );
  });

  test('is self-contained: inline SVG charts, no scripts, no external assets', () => {
    expect(rejectedHtml.match(/<svg/g)!.length).toBeGreaterThanOrEqual(8);
    expect(rejectedHtml).not.toMatch(/<script/i);
    expect(rejectedHtml).not.toMatch(/(src|href)="https?:/);
    expect(rejectedHtml).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
  });

  test('a rejected run says so, with each gate check, and shows nothing published', () => {
    expect(rejectedHtml).toContain('<span class="badge rejected">rejected</span>');
    expect(rejectedHtml).toContain('<span class="fail">FAIL</span>');
    expect(rejectedHtml).toContain('mf ndcg@10 − champion v1 (95% CI upper bound) &gt;= −2%');
    expect(rejectedHtml).toContain('[-0.0300, -0.0100]');
    expect(rejectedHtml).toContain('Nothing was published by this run');
    expect(runOutcome(reportFixture({ rejected: true }))).toBe('rejected');
  });

  test('a promoted run shows sample recommendations with titles and categories, and the privacy budget', async () => {
    const html = await buildRunReport(reportFixture({ rejected: false }));
    expect(html).toContain('<span class="badge completed">completed</span>');
    expect(html).toContain('Vireo view Headphones');
    expect(html).toContain('electronics');
    expect(html).toContain('<code>i00008</code>'); // an item without metadata falls back to its id
    expect(html).toMatch(/ε remaining<\/div>|4\.000<\/div><div class="l">ε remaining/);
  });

  test('a tuned challenger shows what tuning chose and its best trials', async () => {
    const params = (lambda: number) => ({
      ease: { signal: 'positive', lambda, tauDays: 0, maxItems: 10000 },
    });
    const html = await buildRunReport({
      ...reportFixture({ rejected: false }),
      tuning: {
        family: 'blend',
        description: 'EASE(positive, lambda 300)',
        validationScore: 0.1279,
        metric: 'ndcg',
        startedFrom: null,
        validationUsers: 635,
        seconds: 41.5,
        stoppedByTime: true,
        trials: [
          { phase: 'ease', params: params(100), budget: 1, score: 0.1244, seconds: 5.1 },
          { phase: 'ease', params: params(300), budget: 1, score: 0.1279, seconds: 5.3 },
          { phase: 'ials', params: { ials: 'x' }, budget: 0.33, score: 0.9876, seconds: 0.5 },
        ],
      },
    });
    expect(html).toContain('Chosen: <b>EASE(positive, lambda 300)</b>');
    expect(html).toContain('3 trials (ease 2, ials 1)');
    expect(html).toContain('stopped by the time budget');
    // Best full-budget trial first; partial-budget trials only rank candidates and are not listed.
    expect(html.indexOf('0.1279</td>')).toBeLessThan(html.indexOf('0.1244</td>'));
    expect(html).not.toContain('0.9876');
  });

  test('missing parts are named, not drawn empty', async () => {
    const r = reportFixture();
    const html = await buildRunReport({
      ...r,
      training: [],
      privacy: null,
      profile: null,
      evaluation: null,
      summary: null,
    });
    expect(html).toContain('No training curves');
    expect(html).toContain('Differential privacy was off');
    expect(html).toContain('No data profile');
    expect(html).toContain('No evaluation for this run');
    expect(html).not.toMatch(/<svg/);
  });
});

describe('index of runs', () => {
  test('one entry per summary with the challenger’s NDCG; the page lists rejected runs as rejected', async () => {
    const a = reportFixture({ rejected: false });
    const b = reportFixture({ rejected: true });
    const e1 = indexEntryOf(a.summary!, '2026-12-01T02:00:00Z', 'mf', 10, 'a.html');
    const e2 = indexEntryOf({ ...b.summary!, runId: 'run-0002' }, '2026-12-02T02:00:00Z', 'mf', 10, null);
    expect(e1.ndcg).toEqual({ mf: 0.15, champion: 0.17, itemitem: 0.16, mostpop: 0.09 });
    expect(e2).toMatchObject({ status: 'rejected', decision: 'reject', epsilon: 4 });
    const html = await buildRunIndex('synthetic', [e2, e1], '2026-12-02T03:00:00Z');
    expect(html.match(/<svg/g)).toHaveLength(2);
    const rows = html.split('<tbody>')[1];
    expect(rows.indexOf('rejected')).toBeLessThan(rows.indexOf('completed')); // newest first
  });
});

describe('training history files', () => {
  test('readTrainingCurves reads models/*.history.json and names the validation metric from config', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rr-'));
    fs.mkdirSync(path.join(dir, 'models'));
    fs.writeFileSync(
      path.join(dir, 'models', 'two-tower.history.json'),
      JSON.stringify({
        variant: 'two-tower',
        bestEpoch: 1,
        stoppedEarly: true,
        epochs: [{ epoch: 0, loss: 2, metric: 0.1, examplesPerSec: 1, ms: 1 }],
      }),
    );
    const plan = {
      config: { training: { challenger: 'two-tower', twoTower: { validationMetric: 'recall' } } },
    };
    expect(readTrainingCurves(dir, plan as never)).toEqual([
      {
        variant: 'two-tower',
        metric: 'recall',
        bestEpoch: 1,
        stoppedEarly: true,
        epochs: [{ epoch: 0, loss: 2, metric: 0.1 }],
      },
    ]);
    expect(readTrainingCurves(path.join(dir, 'nowhere'), undefined)).toEqual([]);
  });
});
