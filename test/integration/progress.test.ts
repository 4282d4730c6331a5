import { Writable } from 'node:stream';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { follow } from '../../cli/follow';
import type { ProgressState } from '../../workflows/retrain';
import type { RunSummary } from '../../contracts/stages';
import { asProgressDetails } from '../../lib/observability/progress';
import { startWorkers, tempDir, testOverrides, startSuite, stopSuite } from '../helpers/env';

/**
 * In-stage progress from a real run of the linear challenger (tuned iALS): while it runs, the workflow's
 * `progress` query answers with the current stage's {step, done, total, unit, etaSeconds}, the pending
 * activities' heartbeats carry the same shape, and `recforge run --follow`'s renderer (cli/follow.ts, as the CLI
 * calls it on a terminal) prints the running stage with a bar, counts and an ETA.
 */

jest.setTimeout(300_000);

let env: TestWorkflowEnvironment;
let workers: Awaited<ReturnType<typeof startWorkers>>;
const dataDir = tempDir('progress');
let data: { interactions: string; items: string };

beforeAll(async () => {
  ({ data, env, workers } = await startSuite(dataDir, { input: tempDir('progress-input') }));
});

afterAll(() => stopSuite(workers, env));

test('the progress query, heartbeats and --follow show in-stage progress with done/total and ETA', async () => {
  const handle = await env.client.workflow.start('retrainPipeline', {
    taskQueue: 'recforge-cpu',
    workflowId: 'it-progress',
    args: [
      {
        interactions: data.interactions,
        items: data.items,
        overrides: testOverrides(dataDir, {
          privacy: { enabled: false },
          // Long enough to be watched: the case, a two-tower model training for a while. Every epoch runs
          // (patience = epochs): with early stopping the stage could end before --follow drew a report with an ETA
          // (reports reach the workflow at most every 5 s), which a fast CI machine once showed.
          training: {
            challenger: 'two-tower',
            twoTower: { epochs: 16, fullEpochs: 2, batchSize: 64, patience: 16 },
          },
        }),
      },
    ],
  });

  const answers: ProgressState[] = [];
  const beats: Array<Record<string, unknown>> = [];
  const stop = new AbortController();
  const poll = (async () => {
    while (!stop.signal.aborted) {
      const q = await handle.query<ProgressState>('progress').catch(() => undefined);
      if (q) answers.push(q);
      const d = await handle.describe().catch(() => undefined);
      const { defaultPayloadConverter } = await import('@temporalio/common');
      for (const a of d?.raw.pendingActivities ?? []) {
        const payload = a.heartbeatDetails?.payloads?.[0];
        const details = payload ? asProgressDetails(defaultPayloadConverter.fromPayload(payload)) : null;
        if (details) beats.push(details as Record<string, unknown>);
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  })();

  let printed = '';
  const out = new Writable({
    write(chunk, _enc, done) {
      printed += String(chunk);
      done();
    },
  }) as unknown as NodeJS.WriteStream;
  let followed, summary: RunSummary;
  try {
    followed = await follow(handle, { out, tty: true, intervalMs: 250 });
    summary = (await handle.result()) as RunSummary;
  } finally {
    stop.abort();
    await poll;
  }

  expect(summary.status).not.toBe('failed');
  expect(followed?.status).toBe('COMPLETED');

  // The query: the current stage's own progress, from the activities' reports.
  const counted = answers
    .flatMap((a) =>
      Object.values(a.current ?? {}).map((r): Record<string, unknown> => ({ ...r.details, stage: a.stage })),
    )
    .filter((d) => typeof d.done === 'number');
  const training = counted.filter((d) => d.stage === 'train');
  expect(training.length).toBeGreaterThan(0);
  expect(training.some((d) => typeof d.total === 'number' && typeof d.unit === 'string' && d.step)).toBe(
    true,
  );
  expect(training.some((d) => typeof d.etaSeconds === 'number')).toBe(true);
  // Every report the query gave belongs to the stage the workflow was in.
  for (const a of answers)
    for (const r of Object.values(a.current ?? {})) expect(r.details.stage).toBe(a.stage);
  // Finished: no stale in-stage progress left behind.
  const last = await handle.query<ProgressState>('progress');
  expect(Object.keys(last.current ?? {})).toEqual([]);

  // Heartbeats: steps of the epochs, with their total, the epoch and the loss.
  const trainBeats = beats.filter((b) => b.stage === 'train');
  expect(
    trainBeats.some(
      (b) =>
        b.unit === 'steps' &&
        typeof b.done === 'number' &&
        typeof b.total === 'number' &&
        typeof b.epoch === 'number' &&
        typeof b.loss === 'number',
    ),
  ).toBe(true);

  // --follow: the running training stage with a bar, counts, epoch and an ETA; then the finished stages.
  // As a terminal shows it: every poll redraws the stage block in place (cursor-up and erase-line codes).
  // eslint-disable-next-line no-control-regex
  const lines = printed.replace(/\x1b\[\d*[AK]/g, '').split('\n');
  expect(lines.some((l) => /▶ train\s+\[[#-]+\] \d+% .*steps.*epoch \d+\/\d+.*ETA \d+:\d\d/.test(l))).toBe(
    true,
  );
  expect(lines).toContainEqual(expect.stringMatching(/✔ train\s+\d+\.\ds/));
  expect(lines).toContainEqual(expect.stringMatching(/completed · \d+:\d\d elapsed/));
});
