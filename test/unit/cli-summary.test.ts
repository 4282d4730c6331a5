import { summaryLines } from '../../cli/render/summary';
import { reportFixture } from '../helpers/run-report-fixture';

test('a rejected run says nothing was published and which version stays live', () => {
  const s = reportFixture({ rejected: true }).summary!;
  const lines = summaryLines({ ...s, registry: { champion: 'v1', previous: null } });
  expect(lines[0]).toMatch(/^REJECTED/);
  expect(lines).toContain(
    "  nothing published: the gates rejected this run's challenger; version v1 stays live",
  );
  const first = summaryLines({ ...s, registry: { champion: null, previous: null } });
  expect(first.some((l) => l.includes('no version is live yet'))).toBe(true);
  const ok = summaryLines(reportFixture({ rejected: false }).summary!);
  expect(ok.some((l) => l.includes('nothing published'))).toBe(false);
});

test('a tuned challenger prints what tuning chose', () => {
  const s = reportFixture({ rejected: false }).summary!;
  const lines = summaryLines({
    ...s,
    training: {
      device: 'cpu',
      examplesPerSec: 0,
      epochs: 0,
      resumed: [],
      tuning: {
        family: 'blend',
        params: {},
        description: 'EASE(positive, lambda 300) + 0.1 x iALS(positive, 128 factors, lambda 50, alpha 16)',
        validationScore: 0.1297,
        metric: 'ndcg',
        trials: 33,
        seconds: 41.23,
        stoppedByTime: false,
        warmStarted: true,
        report: 'runs/x/models/tuning.json',
      },
    },
  });
  expect(lines).toContain(
    '  tuned blend: EASE(positive, lambda 300) + 0.1 x iALS(positive, 128 factors, lambda 50, alpha 16) (validation ndcg 0.1297, 33 trials in 41.2 s, from the champion’s parameters)',
  );
});
