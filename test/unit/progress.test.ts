import { ProgressTracker, asProgressDetails } from '../../lib/observability/progress';

function clock(start = 1_000_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

describe('ProgressTracker', () => {
  test('rate, ETA and percent from the step start', () => {
    const c = clock();
    const p = new ProgressTracker({ now: c.now, minIntervalMs: 1000 });
    const first = p.update({ stage: 'train', step: 'mf', done: 0, total: 1000, unit: 'steps' });
    expect(first.details).toMatchObject({ rate: null, etaSeconds: null, percent: 0, stepElapsedSeconds: 0 });
    expect(first.due).toBe(true);
    c.advance(10_000);
    const later = p.update({ stage: 'train', step: 'mf', done: 250, total: 1000, unit: 'steps', loss: 0.5 });
    expect(later.details).toMatchObject({ rate: 25, etaSeconds: 30, percent: 25, loss: 0.5, unit: 'steps' });
    expect(later.details.stepElapsedSeconds).toBe(10);
  });

  test('a resumed step measures its rate from the first report, not from zero', () => {
    const c = clock();
    const p = new ProgressTracker({ now: c.now });
    p.update({ stage: 'train', step: 'mf', done: 600, total: 1000 });
    c.advance(4000);
    const d = p.update({ stage: 'train', step: 'mf', done: 700, total: 1000 }).details;
    expect(d.rate).toBe(25);
    expect(d.etaSeconds).toBe(12);
  });

  test('a new step restarts the clock; a finished one has ETA 0', () => {
    const c = clock();
    const p = new ProgressTracker({ now: c.now });
    p.update({ stage: 'ingest', step: 'a.csv', done: 0, total: 10, unit: 'files' });
    c.advance(5000);
    const next = p.update({ stage: 'ingest', step: 'b.csv', done: 5, total: 10, unit: 'files' });
    expect(next.details.stepElapsedSeconds).toBe(0);
    expect(next.details.rate).toBeNull();
    c.advance(1000);
    expect(
      p.update({ stage: 'ingest', step: 'b.csv', done: 10, total: 10, unit: 'files' }).details.etaSeconds,
    ).toBe(0);
  });

  test('throttles heartbeats within a step but never a step change or the end', () => {
    const c = clock();
    const p = new ProgressTracker({ now: c.now, minIntervalMs: 1000 });
    expect(p.update({ stage: 's', step: 'x', done: 1, total: 9 }).due).toBe(true);
    c.advance(100);
    expect(p.update({ stage: 's', step: 'x', done: 2, total: 9 }).due).toBe(false);
    c.advance(100);
    expect(p.update({ stage: 's', step: 'y', done: 0, total: 9 }).due).toBe(true);
    c.advance(100);
    expect(p.update({ stage: 's', step: 'y', done: 9, total: 9 }).due).toBe(true);
    c.advance(1000);
    expect(p.update({ stage: 's', step: 'y', done: 9, total: 9 }).due).toBe(true);
  });

  test('without counts there is no rate or ETA, and details pass through', () => {
    const d = new ProgressTracker().update({ stage: 'clean', step: 'classify' }).details;
    expect(d).toMatchObject({
      stage: 'clean',
      step: 'classify',
      rate: null,
      etaSeconds: null,
      percent: null,
    });
  });

  test('a step without a total keeps its own ETA (a time budget); counts, when they can, override it', () => {
    const c = clock();
    const p = new ProgressTracker({ now: c.now });
    expect(p.update({ stage: 'train', step: 'tune', done: 1, etaSeconds: 90.4 }).details.etaSeconds).toBe(90);
    c.advance(2000);
    expect(
      p.update({ stage: 'train', step: 'fit', done: 0, total: 10, etaSeconds: 999 }).details.etaSeconds,
    ).toBe(999);
    c.advance(2000);
    expect(p.update({ stage: 'train', step: 'fit', done: 5, total: 10 }).details.etaSeconds).toBe(2);
  });

  test('asProgressDetails accepts only objects with a stage', () => {
    expect(asProgressDetails(null)).toBeNull();
    expect(asProgressDetails([1])).toBeNull();
    expect(asProgressDetails({ step: 'x' })).toBeNull();
    expect(asProgressDetails({ stage: 'train', done: 3 })).toEqual({ stage: 'train', done: 3 });
  });
});
