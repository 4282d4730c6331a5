import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { findProjectRoot, loadConfig } from '../../lib/config';
import { lit, withDb } from '../../lib/duckdb';
import { ingest } from '../../activities/ingest';
import { profile } from '../../activities/profile';
import { lastProfileKey } from '../../activities/support/layout';
import { recordSuccessfulProfile } from '../../activities/support/dataset-state';
import { RunIO } from '../../activities/support/run-io';
import { computeDrift, psi, psiCategorical, PSI_ALERT, PSI_WARN } from '../../analytics/drift';
import { esc, renderProfileReport } from '../../analytics/report';
import {
  PROFILE_FORMAT_VERSION,
  type DriftBaseline,
  type ProfileDocument,
} from '../../analytics/profile-model';
import type { RawArtifacts } from '../../contracts/stages';
import { artifactFile, directStage, queryArtifacts } from '../helpers/stages';

const ROOT = findProjectRoot(__dirname);
const STARTED = '2027-01-01T00:00:00.000Z';

let scratch: string;
beforeAll(() => {
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'recforge-profile-'));
});
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

/** A run in a shared data folder (drift compares runs of one dataset through <dataDir>/state/<dataset>/). */
type Plan = ReturnType<typeof directStage> & { raw?: RawArtifacts };

function planFor(dataDir: string, runId: string, files: string[], startedAt = STARTED): Plan {
  const config = loadConfig({
    root: ROOT,
    env: {},
    overrides: { dataDir, duckdb: { memoryLimit: '1GB', threads: 2 } },
  }).config;
  return directStage(config, files, { runId, datasetId: 'ds', startedAt });
}

/** Ingest, then profile over what it landed (as the workflow chains them). */
async function ingestAndProfile(plan: Plan) {
  plan.raw = (await ingest(plan.deps, plan.run)).raw;
  return profile(plan.deps, plan.run, plan.raw);
}

/** The run's storage as an activity sees it (what recordSuccessfulProfile is given). */
const runIO = (plan: Plan) => new RunIO(plan.run.plan.run, plan.deps.dataDir);

async function dataset(name: string, seed: number, users: number, events: number): Promise<string> {
  const { generateDataset } = await import('../../datasets/synthetic');
  const out = path.join(scratch, name);
  await generateDataset({
    users,
    items: 200,
    events,
    seed,
    out,
    dirtyRate: 0.02,
    botUsers: 2,
    days: 28,
    start: '2026-09-01',
  });
  return path.join(out, 'interactions.csv');
}

/** A profile.json (a storage key) of a run of `plan`'s data folder. */
const readDoc = (plan: Plan, key: string) =>
  JSON.parse(fs.readFileSync(artifactFile(plan, key), 'utf8')) as ProfileDocument;

describe('drift arithmetic', () => {
  test('PSI is zero for identical histograms, counts or shares alike', () => {
    expect(psi([10, 20, 70], [1, 2, 7])).toBeCloseTo(0, 12);
  });

  test('PSI matches the textbook value and grows with the shift', () => {
    // (0.3-0.5)ln(0.3/0.5) + (0.7-0.5)ln(0.7/0.5)
    expect(psi([50, 50], [30, 70])).toBeCloseTo(0.2 * Math.log(5 / 3) + 0.2 * Math.log(1.4), 10);
    expect(psi([50, 50], [10, 90])).toBeGreaterThan(psi([50, 50], [30, 70]));
  });

  test('an empty bucket on one side gives a large but finite PSI', () => {
    const v = psi([100, 0], [50, 50]);
    expect(Number.isFinite(v)).toBe(true);
    expect(v).toBeGreaterThan(PSI_ALERT);
  });

  test('categorical PSI takes the union of categories (a new event type counts)', () => {
    const before = [
      { key: 'view', n: 90, share: 0.9 },
      { key: 'click', n: 10, share: 0.1 },
    ];
    expect(psiCategorical(before, before)).toBeCloseTo(0, 12);
    expect(psiCategorical(before, [...before, { key: 'bot', n: 100, share: 0.5 }])).toBeGreaterThan(
      PSI_ALERT,
    );
  });

  test('computeDrift reports each check with thresholds and the worst status', () => {
    const base: DriftBaseline = {
      runId: 'prev',
      createdAt: '2026-01-01T00:00:00Z',
      rows: 1000,
      users: 10,
      items: 10,
      userActivityBuckets: [1, 2, 3, 4, 0, 0, 0, 0, 0, 0],
      popularityDeciles: [0.5, 0.2, 0.1, 0.05, 0.05, 0.04, 0.03, 0.01, 0.01, 0.01],
      eventTypes: [
        { key: 'view', n: 900, share: 0.9 },
        { key: 'click', n: 100, share: 0.1 },
      ],
      hourOfDay: new Array(24).fill(1),
    };
    const same = computeDrift(
      base,
      { ...base, runId: 'now' },
      {
        newUsersShare: 0,
        newItemsShare: 0,
        vanishedUsersShare: 0,
        vanishedItemsShare: 0,
      },
    );
    expect(same.status).toBe('ok');
    expect(same.maxPsi).toBeCloseTo(0, 12);
    const shifted = computeDrift(
      base,
      { ...base, rows: 2000, hourOfDay: [...new Array(12).fill(0), ...new Array(12).fill(1)] },
      { newUsersShare: 0.4, newItemsShare: null, vanishedUsersShare: 0.1, vanishedItemsShare: null },
    );
    expect(shifted.volumeChange).toBe(1);
    expect(shifted.psi.hour_of_day).toBeGreaterThan(PSI_ALERT);
    expect(shifted.status).toBe('alert');
    const byName = Object.fromEntries(shifted.checks.map((c) => [c.name, c]));
    expect(byName.psi_hour_of_day).toMatchObject({ warn: PSI_WARN, alert: PSI_ALERT, status: 'alert' });
    expect(byName.new_users_share.status).toBe('warn');
    expect(byName.new_items_share).toMatchObject({ value: null, status: 'ok' });
  });
});

function sampleDoc(overrides: Partial<ProfileDocument> = {}): ProfileDocument {
  return {
    formatVersion: PROFILE_FORMAT_VERSION,
    datasetId: 'ds',
    runId: 'run-1',
    createdAt: '2026-10-01T00:00:00Z',
    rows: 100,
    rejectedLines: 2,
    columns: [
      {
        name: 'user_id',
        count: 99,
        nulls: 1,
        distinct: 3,
        numeric: null,
        topValues: [{ value: '<script>alert(1)</script>', n: 50 }],
      },
      {
        name: 'rating',
        count: 100,
        nulls: 0,
        distinct: 5,
        numeric: {
          count: 100,
          min: 1,
          max: 5,
          mean: 3.2,
          stddev: 1.1,
          quantiles: { p01: 1, p25: 2, p50: 3, p75: 4, p99: 5 },
        },
        topValues: [{ value: '4', n: 30 }],
      },
    ],
    interactions: {
      users: 3,
      items: 4,
      density: 100 / 12,
      eventsPerUser: { min: 1, p50: 30, p90: 60, p99: 69, max: 70, mean: 33.3 },
      eventsPerItem: { min: 5, p50: 20, p90: 50, p99: 55, max: 60, mean: 25 },
      userActivityBuckets: [1, 0, 0, 0, 0, 1, 1, 0, 0, 0],
      longTailShare: 0.3,
      giniItems: 0.4,
      lorenz: [
        [0, 0],
        [0.25, 0.05],
        [0.5, 0.15],
        [0.75, 0.4],
        [1, 1],
      ],
      popularityDeciles: [0.6, 0.25, 0.1, 0.05, 0, 0, 0, 0, 0, 0],
      eventTypes: [
        { key: 'view', n: 80, share: 0.8 },
        { key: '"><img src=x onerror=alert(1)>', n: 20, share: 0.2 },
      ],
      time: {
        min: '2026-09-01T00:00:00Z',
        max: '2099-01-01T00:00:00Z',
        plausibleMin: '2026-09-01T00:00:00Z',
        plausibleMax: '2026-09-03T00:00:00Z',
        days: 3,
        unparseable: 1,
        beforeFloor: 0,
        future: 1,
        eventsPerDay: [
          { day: '2026-09-01', n: 30 },
          { day: '2026-09-02', n: 40 },
          { day: '2026-09-03', n: 28 },
        ],
        hourOfDay: Array.from({ length: 24 }, (_, h) => h),
      },
    },
    drift: null,
    driftNote: 'no previous successful run of this dataset to compare with',
    seconds: 0.5,
    ...overrides,
  };
}

describe('HTML report', () => {
  test('is self-contained: inline SVG charts, no scripts, no external assets', () => {
    const benign = sampleDoc();
    benign.columns[0].topValues = [{ value: 'u1', n: 50 }];
    benign.interactions.eventTypes = [{ key: 'view', n: 100, share: 1 }];
    const html = renderProfileReport(benign);
    expect(html.startsWith('<!doctype html>')).toBe(true);
    expect((html.match(/<svg /g) ?? []).length).toBeGreaterThanOrEqual(6);
    expect(html).not.toMatch(/<script|<link|<img|src=|href=|url\(|@import/i);
    // The only URL is the SVG namespace identifier, which is never fetched.
    expect(html.match(/https?:\/\/[^"]+/g)?.every((u) => u === 'http://www.w3.org/2000/svg')).toBe(true);
  });

  test('escapes values from the data', () => {
    const html = renderProfileReport(sampleDoc());
    expect(html).toContain(esc('<script>alert(1)</script>'));
    expect(html).toContain('&quot;&gt;&lt;img src=x onerror=alert(1)&gt;');
  });

  test('shows the per-column table with numeric statistics and the no-drift note', () => {
    const html = renderProfileReport(sampleDoc());
    expect(html).toContain('<b>rating</b>');
    expect(html).toContain('1 / 2 / 3 / 4 / 5');
    expect(html).toContain('No drift report: no previous successful run of this dataset to compare with');
  });

  test('shows the drift table with PSI values, thresholds and statuses', () => {
    const doc = sampleDoc();
    const base = {
      runId: 'run-0',
      createdAt: '2026-09-01T00:00:00Z',
      rows: 50,
      users: 3,
      items: 4,
      userActivityBuckets: [3, 0, 0, 0, 0, 0, 0, 0, 0, 0],
      popularityDeciles: doc.interactions.popularityDeciles,
      eventTypes: [{ key: 'view', n: 50, share: 1 }],
      hourOfDay: new Array(24).fill(1),
    };
    const drift = computeDrift(
      base,
      {
        ...base,
        rows: 100,
        userActivityBuckets: doc.interactions.userActivityBuckets,
        eventTypes: doc.interactions.eventTypes,
      },
      { newUsersShare: 0.5, newItemsShare: 0, vanishedUsersShare: 0, vanishedItemsShare: 0 },
    );
    const html = renderProfileReport(sampleDoc({ drift }));
    expect(html).toContain('Against run <code>run-0</code>');
    for (const name of [
      'volume_change',
      'psi_events_per_user',
      'psi_item_popularity_deciles',
      'psi_event_type_mix',
      'psi_hour_of_day',
      'new_users_share',
    ]) {
      expect(html).toContain(`<td>${name}</td>`);
    }
    expect(html).toContain('<td>0.1</td><td>0.25</td>');
    expect(html).toContain('+100.0%');
    expect(html).toMatch(/class="badge"[^>]*>alert</);
  });
});

describe('profile() on synthetic data', () => {
  let dataDir: string;
  let first: Awaited<ReturnType<typeof profile>>;
  let plan1: Plan;
  let fileA: string;

  beforeAll(async () => {
    dataDir = path.join(scratch, 'data');
    fileA = await dataset('a', 7, 300, 20_000);
    plan1 = planFor(dataDir, 'run-1', [fileA]);
    first = await ingestAndProfile(plan1);
  });

  test('returns the ProfileResult fields plus the report and no drift on a first run', async () => {
    const [truth] = await queryArtifacts<{ rows: number; users: number; items: number; nul: number }>(
      plan1,
      { raw: plan1.raw },
      `SELECT count(*) AS rows, count(DISTINCT nullif(trim(user_id), '')) AS users,
              count(DISTINCT nullif(trim(item_id), '')) AS items,
              count(*) FILTER (WHERE user_id IS NULL OR trim(user_id) = '') AS nul FROM raw_events`,
    );
    expect(first).toMatchObject({ rows: truth.rows, users: truth.users, items: truth.items, drift: null });
    expect(first.nulls.user_id).toBe(truth.nul);
    expect(first.density).toBeCloseTo(truth.rows / (truth.users * truth.items), 12);
    expect(first.minTimestamp).toMatch(/^2026-09-0\dT/);
    expect(first.report).toBe(`${plan1.run.plan.run.runKey}/profile.html`);
    expect(artifactFile(plan1, first.report)).toBe(path.join(plan1.runDir, 'profile.html'));
    expect(fs.readFileSync(artifactFile(plan1, first.report), 'utf8')).toContain('<svg');
    expect(readDoc(plan1, first.profile).driftNote).toMatch(/no previous successful run/);
  });

  test('interaction statistics are internally consistent', () => {
    const doc = readDoc(plan1, first.profile);
    const i = doc.interactions;
    const t = i.time;
    const perDay = t.eventsPerDay.reduce((a, d) => a + d.n, 0);
    expect(perDay + t.unparseable + t.beforeFloor + t.future).toBe(doc.rows);
    expect(t.hourOfDay.reduce((a, b) => a + b, 0)).toBe(perDay);
    expect(t.days).toBe(28);
    expect(t.future).toBeGreaterThan(0); // the generator's dirty rows include future timestamps
    expect(i.userActivityBuckets.reduce((a, b) => a + b, 0)).toBe(i.users);
    expect(i.popularityDeciles.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 9);
    expect(i.popularityDeciles[0]).toBeGreaterThan(i.popularityDeciles[9]);
    expect(i.giniItems).toBeGreaterThan(0.2);
    expect(i.giniItems).toBeLessThan(1);
    expect(i.lorenz[0]).toEqual([0, 0]);
    expect(i.lorenz.at(-1)![0]).toBeCloseTo(1, 12);
    expect(i.lorenz.at(-1)![1]).toBeCloseTo(1, 12);
    for (let k = 1; k < i.lorenz.length; k++)
      expect(i.lorenz[k][1]).toBeGreaterThanOrEqual(i.lorenz[k - 1][1]);
    expect(i.longTailShare).toBeGreaterThan(0);
    expect(i.longTailShare).toBeLessThan(0.8);
    expect(i.eventsPerUser.p50).toBeLessThanOrEqual(i.eventsPerUser.p90);
    expect(i.eventsPerUser.max).toBeGreaterThanOrEqual(i.eventsPerUser.p99);
    expect(i.eventTypes.reduce((a, e) => a + e.n, 0)).toBe(doc.rows);
    for (const c of doc.columns) expect(c.count + c.nulls).toBe(doc.rows);
    expect(doc.columns.find((c) => c.name === 'event_type')!.topValues[0].value).toBe('view');
  });

  test('distinct counts are exact and agree with the cards and the event-type chart', async () => {
    const doc = readDoc(plan1, first.profile);
    const [truth] = await queryArtifacts<Record<string, number>>(
      plan1,
      { raw: plan1.raw },
      `SELECT ${['user_id', 'item_id', 'event_type', 'timestamp']
        .map((c) => `count(DISTINCT nullif("${c}", '')) AS "${c}"`)
        .join(', ')} FROM raw_events`,
    );
    for (const c of ['user_id', 'item_id', 'event_type', 'timestamp']) {
      const col = doc.columns.find((x) => x.name === c)!;
      expect({ c, distinct: col.distinct, exact: col.distinctExact }).toEqual({
        c,
        distinct: truth[c],
        exact: true,
      });
    }
    // The generator writes ids and types without padding or case variants, so raw and normalised counts agree.
    expect(doc.columns.find((x) => x.name === 'user_id')!.distinct).toBe(doc.interactions.users);
    expect(doc.columns.find((x) => x.name === 'item_id')!.distinct).toBe(doc.interactions.items);
    const typesInChart = doc.interactions.eventTypes.filter((t) => t.key !== '(null)').length;
    expect(doc.columns.find((x) => x.name === 'event_type')!.distinct).toBe(typesInChart);
    expect(fs.readFileSync(artifactFile(plan1, first.report), 'utf8')).not.toContain('<td>≈ ');
  });

  test("stores the run's distinct ids for the next run", async () => {
    const n = await withDb(':memory:', { memoryLimit: '256MB', threads: 1 }, (db) =>
      db.one<{ u: number; i: number }>(
        `SELECT (SELECT count(*) FROM read_parquet(${lit(path.join(plan1.runDir, 'profile_users.parquet'))})) AS u,
                (SELECT count(*) FROM read_parquet(${lit(path.join(plan1.runDir, 'profile_items.parquet'))})) AS i`,
      ),
    );
    expect(n).toEqual({ u: first.users, i: first.items });
  });

  test('after recordSuccessfulProfile, the same input again shows no drift', async () => {
    const pointer = (await recordSuccessfulProfile(runIO(plan1)))!;
    expect(pointer.runId).toBe('run-1');
    expect(fs.existsSync(artifactFile(plan1, pointer.usersPath))).toBe(true);
    const plan2 = planFor(dataDir, 'run-2', [fileA], '2027-01-02T00:00:00.000Z');
    const second = await ingestAndProfile(plan2);
    expect(second.drift).toMatchObject({
      previousRunId: 'run-1',
      volumeChange: 0,
      newUsersShare: 0,
      newItemsShare: 0,
      status: 'ok',
    });
    expect(second.drift!.maxPsi).toBeCloseTo(0, 9);
  });

  test('different input shows volume change, PSI and new users; the report carries the drift table', async () => {
    const fileB = await dataset('b', 8, 400, 30_000);
    const plan3 = planFor(dataDir, 'run-3', [fileB], '2027-01-03T00:00:00.000Z');
    const third = await ingestAndProfile(plan3);
    const d = third.drift!;
    expect(d.previousRunId).toBe('run-1');
    expect(d.volumeChange).toBeGreaterThan(0.3);
    expect(d.newUsersShare).toBeGreaterThan(0.1);
    expect(d.maxPsi).toBeGreaterThan(0);
    const doc = readDoc(plan3, third.profile);
    expect(Object.keys(doc.drift!.psi).sort()).toEqual([
      'event_type_mix',
      'events_per_user',
      'hour_of_day',
      'item_popularity_deciles',
    ]);
    expect(doc.drift!.vanishedUsersShare).toBe(0);
    expect(fs.readFileSync(artifactFile(plan3, third.report), 'utf8')).toContain(
      '<td>psi_events_per_user</td>',
    );
  });

  test('recordSuccessfulProfile never moves the baseline back to an older run', async () => {
    const older = planFor(dataDir, 'run-0', [fileA], '2026-12-01T00:00:00.000Z');
    await ingestAndProfile(older);
    const kept = await recordSuccessfulProfile(runIO(older));
    expect(kept!.runId).toBe('run-1');
    expect(JSON.parse(fs.readFileSync(artifactFile(older, lastProfileKey('ds')), 'utf8')).runId).toBe(
      'run-1',
    );
  });
});

describe('recordSuccessfulProfile without a profile', () => {
  test('keeps the previous baseline and does not fail the (already published) run', async () => {
    const plan = planFor(path.join(scratch, 'noprofile'), 'run-n', []);
    expect(await recordSuccessfulProfile(runIO(plan))).toBeNull();
    expect(fs.existsSync(artifactFile(plan, lastProfileKey('ds')))).toBe(false);
  });
});

describe('profile() on awkward values', () => {
  test('epoch-second timestamps are profiled; hostile ids are counted verbatim and escaped in the report', async () => {
    const dataDir = path.join(scratch, 'awkward');
    const lines = ['user_id,item_id,event_type,rating,timestamp'];
    const evil = "u1'); DROP TABLE raw_events; --";
    for (let k = 0; k < 40; k++) {
      const user = k % 2 ? evil : '<script>alert(1)</script>';
      lines.push(`"${user}",i${k % 5},rating,${(k % 5) + 1},${1_788_000_000 + k * 3600}`);
    }
    // (An id with a NUL byte no longer reaches the profile: ingest quarantines it as bad_id.)
    lines.push(`u3,i1,rating,NaN,not-a-date`);
    const file = path.join(scratch, 'awkward.csv');
    fs.writeFileSync(file, lines.join('\n') + '\n');
    const plan = planFor(dataDir, 'run-x', [file]);
    const r = await ingestAndProfile(plan);
    expect(r.minTimestamp).toBe(new Date(1_788_000_000_000).toISOString().replace('.000', ''));
    const doc = readDoc(plan, r.profile);
    expect(doc.interactions.time.eventsPerDay.reduce((a, d) => a + d.n, 0)).toBe(40);
    expect(doc.interactions.time.unparseable).toBe(1);
    const users = doc.columns.find((c) => c.name === 'user_id')!;
    expect(users.topValues.map((v) => v.value).sort()).toEqual(
      ['<script>alert(1)</script>', evil, 'u3'].sort(),
    );
    const rating = doc.columns.find((c) => c.name === 'rating')!;
    expect(rating.numeric).toMatchObject({ count: 40, min: 1, max: 5, mean: 3 });
    const html = fs.readFileSync(artifactFile(plan, r.report), 'utf8');
    expect(html).not.toContain('<script>alert(1)</script>');
    expect(html).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
  });
});
