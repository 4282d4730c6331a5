import * as fs from 'node:fs';
import * as path from 'node:path';
import type { RunSummary } from '../../contracts/stages';
import { generateDataset, verifyGeneratedDataset } from '../../datasets/synthetic';
import { machine } from '../../bench/common';
import { tempDir, testOverrides, ROOT } from '../helpers/env';
import { ARTIFACTS, report, requireBuild } from './support/harness';
import { settledProblems } from './support/live-state';
import { freePort, startWorker, stopWorker, TemporalProcess, type WorkerProcess } from './support/processes';
import { peakRssBytes, rssBytes } from './support/resources';

/**
 * Issue #16, scale (nightly; RECFORGE_RELIABILITY=nightly): one retrain end to end at 20M events on this
 * machine's defaults (DuckDB memory limit and threads from configs/default.yaml), in a fresh worker process
 * whose peak resident set (VmHWM: DuckDB and tfjs allocate natively, inside it) must stay under 4 GiB. Stage
 * times, peak RSS and the load of the machine go to bench/results/scale.json. The worker runs with
 * RECFORGE_SQL_TIMING=1 and its log is kept (test-artifacts/reliability/scale-worker.log): a DuckDB
 * out-of-memory names its statement there. One attempt per activity: a failure is reported, not retried away.
 *
 * Data: the bundled generator at `npm run gen-data -- --users 70000 --items 10000 --events 20000000 --seed 1`;
 * RECFORGE_SCALE_DATA=<folder> reuses a folder generated with those options (verified against its manifest).
 */

const EVENTS = Number(process.env.RECFORGE_SCALE_EVENTS) || 20_000_000;
const PEAK_LIMIT = 4 * 2 ** 30;
jest.setTimeout(4 * 3_600_000);

const root = tempDir('rel-scale');
let server: TemporalProcess;
let worker: WorkerProcess | undefined;

afterAll(async () => {
  if (worker) await stopWorker(worker);
  await server?.stop();
});

const options = { users: 70_000, items: 10_000, events: EVENTS, seed: 1 };

async function data(): Promise<{ interactions: string; items: string; generateSeconds: number | null }> {
  const given = process.env.RECFORGE_SCALE_DATA;
  const dir = given ?? path.join(root, 'generated');
  const t = Date.now();
  if (!given) await generateDataset({ ...options, out: dir });
  const check = await verifyGeneratedDataset(dir, options);
  if (!check.ok) throw new Error(`${dir}: ${check.why}`);
  return {
    interactions: path.join(dir, 'interactions.csv'),
    items: path.join(dir, 'items.csv'),
    generateSeconds: given ? null : (Date.now() - t) / 1000,
  };
}

test(`scale: ${EVENTS.toLocaleString('en')} events end to end, peak worker RSS < 4 GiB`, async () => {
  requireBuild();
  const load = fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).map(Number);
  const input = await data();
  server = new TemporalProcess(path.join(root, 'temporal', 'temporal.db'), await freePort());
  await server.start();
  const dataDir = path.join(root, 'data');
  worker = startWorker(server.address, dataDir, { RECFORGE_SQL_TIMING: '1', RECFORGE_LOG_LEVEL: 'info' });
  const pid = worker.child.pid!;
  const samples: { t: number; rssMiB: number }[] = [];
  const t0 = Date.now();
  const sampler = setInterval(() => {
    try {
      samples.push({ t: Math.round((Date.now() - t0) / 1000), rssMiB: Math.round(rssBytes(pid) / 2 ** 20) });
    } catch {
      // Gone.
    }
  }, 5000);
  let summary: RunSummary | undefined;
  let failure: string | null = null;
  let peak = 0;
  try {
    summary = (await server.client!.workflow.execute('retrainPipeline', {
      taskQueue: 'recforge-cpu',
      workflowId: 'rel-scale',
      args: [
        {
          interactions: input.interactions,
          items: input.items,
          overrides: testOverrides(dataDir, {
            temporal: {
              activities: {
                heartbeatTimeout: '2m',
                startToCloseTimeout: '3h',
                trainingStartToCloseTimeout: '3h',
                maximumAttempts: 1,
              },
            },
          }),
        },
      ],
    })) as RunSummary;
  } catch (err) {
    let e = err as { message?: string; cause?: unknown } | undefined;
    const chain: string[] = [];
    while (e) {
      if (e.message) chain.push(e.message);
      e = e.cause as typeof e;
    }
    failure = chain.join(' <- ');
  } finally {
    clearInterval(sampler);
    peak = peakRssBytes(pid);
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    fs.writeFileSync(path.join(ARTIFACTS, 'scale-worker.log'), worker.log.join(''));
  }
  const wall = (Date.now() - t0) / 1000;
  const stages = summary?.stages ?? [];
  const bench = {
    name: 'scale',
    date: new Date().toISOString(),
    machine: machine(),
    params: {
      ...options,
      loadAverageAtStart: load,
      duckdb: 'configs/default.yaml (memoryLimit auto, threads 2)',
    },
    results: [
      {
        metric: 'status',
        value: summary?.status === 'completed' ? 1 : 0,
        unit: failure ? `failed: ${failure.slice(0, 300)}` : (summary?.status ?? ''),
      },
      { metric: 'rows_ingested', value: summary?.rows.ingested ?? 0, unit: 'rows' },
      { metric: 'rows_kept', value: summary?.rows.kept ?? 0, unit: 'rows' },
      { metric: 'generate_seconds', value: input.generateSeconds ?? 0, unit: 's' },
      ...stages.map((s) => ({ metric: `stage_${s.name}_seconds`, value: s.seconds, unit: 's' })),
      { metric: 'workflow_seconds', value: wall, unit: 's' },
      { metric: 'worker_peak_rss', value: Math.round(peak / 2 ** 20), unit: 'MiB' },
      { metric: 'worker_peak_rss_limit', value: PEAK_LIMIT / 2 ** 20, unit: 'MiB' },
    ],
    rss: samples,
  };
  fs.mkdirSync(path.join(ROOT, 'bench', 'results'), { recursive: true });
  fs.writeFileSync(path.join(ROOT, 'bench', 'results', 'scale.json'), JSON.stringify(bench, null, 2) + '\n');
  report('scale', { runs: 1, failure, peakRssMiB: Math.round(peak / 2 ** 20), seconds: wall, stages });
  expect(failure).toBeNull();
  expect(summary!.status).toBe('completed');
  expect(settledProblems({ dataDir, datasetId: 'synthetic' })).toEqual([]);
  expect(peak).toBeLessThan(PEAK_LIMIT);
});
