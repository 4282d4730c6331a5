import type { ProfileDocument } from '../../analytics/profile-model';
import type { RunReportInput } from '../../analytics/run-report/model';
import type { RunSummary } from '../../contracts/stages';

/**
 * A complete run report input built by hand (no pipeline run): a learned challenger that lost to the champion,
 * with drift, quarantine, privacy and sample recommendations, so every section and chart has data. `hostile`
 * puts markup into data values to test escaping.
 */
export function reportFixture(o: { rejected?: boolean; hostile?: string } = {}): RunReportInput {
  const rejected = o.rejected ?? true;
  const evil = o.hostile ?? 'view';
  const metrics = {
    mf: {
      'precision@10': 0.06,
      'recall@10': 0.2,
      'ndcg@10': 0.15,
      'hitrate@10': 0.5,
      'map@10': 0.08,
      coverage: 0.4,
      users: 400,
    },
    champion: {
      'precision@10': 0.065,
      'recall@10': 0.21,
      'ndcg@10': 0.17,
      'hitrate@10': 0.52,
      'map@10': 0.09,
      coverage: 0.35,
      users: 400,
    },
    itemitem: {
      'precision@10': 0.062,
      'recall@10': 0.2,
      'ndcg@10': 0.16,
      'hitrate@10': 0.51,
      'map@10': 0.085,
      coverage: 0.3,
      users: 400,
    },
    mostpop: {
      'precision@10': 0.04,
      'recall@10': 0.1,
      'ndcg@10': 0.09,
      'hitrate@10': 0.35,
      'map@10': 0.05,
      coverage: 0.02,
      users: 400,
    },
  };
  const checks = [
    { name: 'mf ndcg@10 >= minimum', value: 0.15, threshold: 0.01, passed: true },
    { name: 'mf ndcg@10 beats mostpop by 5%', value: 0.15, threshold: 0.0945, passed: true },
    {
      name: 'mf ndcg@10 − champion v1 (95% CI upper bound) >= −2%',
      value: rejected ? -0.01 : 0.01,
      threshold: -0.0034,
      passed: !rejected,
      ci: [rejected ? -0.03 : -0.01, rejected ? -0.01 : 0.01] as [number, number],
    },
  ];
  const gate = { decision: (rejected ? 'reject' : 'promote') as 'reject' | 'promote', checks };
  const summary: RunSummary = {
    runId: 'run-0001',
    workflowId: 'retrain-synthetic',
    datasetId: 'synthetic',
    status: rejected ? 'rejected' : 'completed',
    modelVersion: 'synthetic-20261201T020000Z-00000001',
    outputDir: rejected ? null : '/data/output/recommendations/synthetic',
    backend: 'duckdb-sql + tfjs-wasm',
    stages: ['plan', 'ingest', 'profile', 'clean', 'train', 'evaluate', 'publish'].map((name, i) => ({
      name,
      seconds: 1 + i,
    })),
    rows: {
      ingested: 10_500,
      kept: 10_000,
      quarantined: 500,
      byReason: { duplicate: 300, bot_user: 150, [evil]: 50 },
    },
    metrics,
    gate,
    privacy: {
      epsilon: 4,
      delta: 1e-6,
      rho: 0.3,
      mechanism: 'discrete-gaussian',
      window: '2026-12-01',
      rowsRemovedByCaps: 120,
      params: { maxEventsPerUser: 200 },
    },
    published: rejected
      ? null
      : {
          version: 'v',
          output: 'output/recommendations/ds',
          versionKey: 'output/recommendations/ds/versions/v',
          manifest: 'output/recommendations/ds/versions/v/_manifest.json',
          outputDir: '/o',
          rows: 100,
          users: 10,
          fallbackUsers: 0,
        },
    training: { device: 'wasm-simd', examplesPerSec: 150_000, epochs: 4, resumed: [] },
    profile: null,
    registry: null,
  };
  const profile: ProfileDocument = {
    formatVersion: 2,
    datasetId: 'synthetic',
    runId: 'run-0001',
    createdAt: '2026-12-01T02:00:00Z',
    rows: 10_500,
    rejectedLines: 20,
    columns: [],
    interactions: {
      users: 1000,
      items: 200,
      density: 0.05,
      eventsPerUser: { min: 1, p50: 8, p90: 25, p99: 60, max: 90, mean: 10.5 },
      eventsPerItem: { min: 1, p50: 30, p90: 120, p99: 300, max: 400, mean: 52 },
      userActivityBuckets: [10, 50, 200, 400, 250, 80, 10, 0, 0, 0],
      longTailShare: 0.3,
      giniItems: 0.6,
      lorenz: [
        [0, 0],
        [0.5, 0.1],
        [1, 1],
      ],
      popularityDeciles: [0.4, 0.2, 0.1, 0.08, 0.07, 0.05, 0.04, 0.03, 0.02, 0.01],
      eventTypes: [
        { key: evil, n: 8000, share: 0.762 },
        { key: 'click', n: 2000, share: 0.19 },
        { key: 'purchase', n: 500, share: 0.048 },
      ],
      time: {
        min: '2026-11-01T00:00:00Z',
        max: '2026-11-28T23:00:00Z',
        plausibleMin: '2026-11-01T00:00:00Z',
        plausibleMax: '2026-11-28T23:00:00Z',
        days: 28,
        unparseable: 3,
        beforeFloor: 0,
        future: 2,
        eventsPerDay: Array.from({ length: 28 }, (_, d) => ({
          day: `2026-11-${String(d + 1).padStart(2, '0')}`,
          n: 300 + 10 * d,
        })),
        hourOfDay: Array.from({ length: 24 }, () => 437),
      },
    },
    drift: {
      previousRunId: 'run-0000',
      previousCreatedAt: '2026-11-30T02:00:00Z',
      previousRows: 10_000,
      volumeChange: 0.05,
      psi: { userActivity: 0.02, popularity: 0.12, eventTypes: 0.01, hourOfDay: 0.005 },
      maxPsi: 0.12,
      newUsersShare: 0.1,
      newItemsShare: 0.02,
      vanishedUsersShare: 0.08,
      vanishedItemsShare: 0,
      checks: [],
      status: 'warn',
    },
    driftNote: null,
    seconds: 1.2,
  };
  return {
    run: {
      runId: 'run-0001',
      workflowId: 'retrain-synthetic',
      datasetId: 'synthetic',
      modelVersion: summary.modelVersion,
      startedAt: '2026-12-01T02:00:00Z',
      status: summary.status,
    },
    generatedAt: '2026-12-01T02:10:00Z',
    summary,
    profile,
    profileHref: 'profile.html',
    tuning: null,
    evaluation: {
      k: 10,
      evaluatedUsers: 400,
      catalogue: 200,
      metrics,
      ndcgInterval95: {
        mf: { low: 0.13, high: 0.17 },
        champion: { low: 0.15, high: 0.19 },
        itemitem: { low: 0.14, high: 0.18 },
        mostpop: { low: 0.08, high: 0.1 },
      },
      segments: {
        mf: {
          'ndcg@10_new_users': 0.1,
          'ndcg@10_returning_users': 0.16,
          'recall@10_head_items': 0.3,
          'recall@10_tail_items': 0.1,
        },
        mostpop: {
          'ndcg@10_new_users': 0.08,
          'ndcg@10_returning_users': 0.09,
          'recall@10_head_items': 0.35,
          'recall@10_tail_items': 0,
        },
      },
      gate,
      challenger: 'mf',
      champion: 'v1',
      vsChampion: { version: 'v1', ndcg: 0.17, diff: { mean: -0.02, low: -0.03, high: -0.01 } },
    },
    training: [
      {
        variant: 'mf',
        metric: 'ndcg',
        bestEpoch: 2,
        stoppedEarly: true,
        epochs: [
          { epoch: 0, loss: 0.69, metric: 0.1 },
          { epoch: 1, loss: 0.5, metric: 0.14 },
          { epoch: 2, loss: 0.42, metric: 0.15 },
          { epoch: 3, loss: 0.4, metric: 0.149 },
        ],
      },
      {
        variant: 'mf-full',
        metric: 'ndcg',
        bestEpoch: -1,
        stoppedEarly: false,
        epochs: [
          { epoch: 0, loss: 0.68 },
          { epoch: 1, loss: 0.49 },
          { epoch: 2, loss: 0.41 },
        ],
      },
    ],
    privacy: { spend: summary.privacy!, budget: { epsilon: 12, delta: 1e-5, window: 'day' }, usedEpsilon: 8 },
    samples: rejected
      ? []
      : [
          {
            userId: 'u000042',
            history: [{ itemId: 'i00001', title: 'Nimbus Cookbook', category: 'books' }],
            recs: [
              {
                rank: 1,
                itemId: 'i00007',
                title: `Vireo ${evil} Headphones`,
                category: 'electronics',
                score: 0.9,
              },
              { rank: 2, itemId: 'i00008', title: null, category: null, score: 0.8 },
            ],
          },
        ],
    indexHref: '../../../reports/synthetic/index.html',
  };
}
