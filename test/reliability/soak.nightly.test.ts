import * as fs from 'node:fs';
import * as path from 'node:path';
import type { RunSummary } from '../../contracts/stages';
import { generateDataset } from '../../datasets/synthetic';
import { machine } from '../../bench/common';
import { tempDir, testOverrides, ROOT } from '../helpers/env';
import { report, requireBuild } from './support/harness';
import { readLiveState, settledProblems, type Layout } from './support/live-state';
import { freePort, startWorker, stopWorker, TemporalProcess, type WorkerProcess } from './support/processes';
import { diskUsage, journals, openFds, rssBytes, scratchLeft } from './support/resources';

/**
 * Issue #16, the soak (nightly; RECFORGE_RELIABILITY=nightly): NIGHTS consecutive nightly retrains by one
 * long-running worker process — incremental input (a new file each night in the drop folder), differential
 * privacy on (a unit with a budget that lasts the soak) — recording after every run the worker's RSS and open
 * file descriptors and the data folder's disk use. Asserted: every run completes; the output keeps
 * publish.keepVersions versions; every journal stays within its bound; no scratch folder or temporary file is
 * left; RSS and descriptors do not grow from the first nights to the last. Written to bench/results/soak.json.
 *
 * What grows by design is measured, not forbidden: each run's folder (the registry's artifacts: a retired version
 * can be republished from it) and the incremental store's partitions.
 */

const NIGHTS = Number(process.env.RECFORGE_SOAK_NIGHTS) || 50;
const KEEP = 5;
jest.setTimeout(NIGHTS * 180_000 + 600_000);

const root = tempDir('rel-soak');
const dataDir = path.join(root, 'data');
const drop = path.join(root, 'drop');
const layout: Layout = { dataDir, datasetId: 'soak' };
let server: TemporalProcess;
let worker: WorkerProcess | undefined;
let items: string;
/** Night n's file and run date (night 1 brings the first two weeks). */
const nights: { file: string; lines: string[]; runDate: string }[] = [];

const day = (d: number) => new Date(Date.UTC(2026, 0, 1) + d * 86_400_000).toISOString().slice(0, 10);

beforeAll(async () => {
  requireBuild();
  server = new TemporalProcess(path.join(root, 'temporal', 'temporal.db'), await freePort());
  await server.start();
  const gen = path.join(root, 'generated');
  await generateDataset({
    users: 600,
    items: 300,
    events: 2000 * (NIGHTS + 13),
    seed: 11,
    out: gen,
    dirtyRate: 0.02,
    // A bot's burst on one night's small file alone trips the quarantine-share gate: not this test's subject.
    botUsers: 0,
    days: NIGHTS + 13,
    start: day(0),
  });
  items = path.join(gen, 'items.csv');
  const [header, ...lines] = fs
    .readFileSync(path.join(gen, 'interactions.csv'), 'utf8')
    .trimEnd()
    .split('\n');
  // Night n (n ≥ 2) brings day 12 + n; a row whose timestamp is not a date (the generator's dirty rows) goes with
  // the row before it.
  const byNight: string[][] = Array.from({ length: NIGHTS }, () => []);
  let last = 0;
  for (const line of lines) {
    const m = /,(\d{4}-\d{2}-\d{2})T[^,]*$/.exec(line);
    if (m) {
      const d = Math.round((Date.parse(m[1]) - Date.UTC(2026, 0, 1)) / 86_400_000);
      if (Number.isFinite(d)) last = Math.min(NIGHTS - 1, Math.max(0, d - 13));
    }
    byNight[last].push(line);
  }
  fs.mkdirSync(drop, { recursive: true });
  byNight.forEach((body, i) => {
    nights.push({
      file: path.join(drop, `events-${day(12 + i + 1)}.csv`),
      lines: [header, ...body],
      runDate: day(14 + i),
    });
  });
});

afterAll(async () => {
  if (worker) await stopWorker(worker);
  await server?.stop();
});

const overrides = testOverrides(dataDir, {
  dataset: { incremental: { enabled: true, historyDays: 28 } },
  privacy: {
    enabled: true,
    unit: 'soak-shoppers',
    expectedUsers: 600,
    // Generous: the budget window is the run's calendar day, and the whole soak runs on one.
    budget: { epsilon: 100_000, delta: 0.5, window: 'day', lifetime: { epsilon: 1_000_000, delta: 0.9 } },
  },
  quality: { minRows: 100, maxDriftPsi: 100, maxVolumeChange: 100, maxQuarantineShare: 0.5 },
  publish: { keepVersions: KEEP },
});

interface NightRecord {
  night: number;
  runDate: string;
  status: string;
  seconds: number;
  rssMiB: number;
  peakRssMiB: number;
  fds: number;
  dataMiB: number;
  byFolderMiB: Record<string, number>;
  /** The worker's JavaScript heap in use (garbage included) and its libuv handles, from a diagnostic report. */
  jsHeapMiB: number;
  libuvHandles: number;
  versionFolders: number;
  /** The published versions' folders alone (retention keeps KEEP of them). */
  versionsMiB: number;
  journalNames: number;
  journalContentBytes: number;
  scratchLeft: number;
  leftovers: number;
}

const mib = (b: number) => Math.round((b / 2 ** 20) * 100) / 100;
/** Asks the worker for a diagnostic report (SIGUSR2) and reads it. */
async function diagnosticReport(
  pid: number,
  dir: string,
): Promise<{ javascriptHeap: { usedMemory: number }; libuv: unknown[] }> {
  for (const f of fs.readdirSync(dir)) fs.rmSync(path.join(dir, f));
  process.kill(pid, 'SIGUSR2');
  for (let i = 0; i < 200; i++) {
    await new Promise((r) => setTimeout(r, 100));
    const f = fs.readdirSync(dir).find((n) => n.endsWith('.json'));
    if (!f) continue;
    try {
      return JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')) as Awaited<
        ReturnType<typeof diagnosticReport>
      >;
    } catch {
      // Still being written.
    }
  }
  throw new Error('the worker wrote no diagnostic report');
}

/** Least-squares slope of y over x. */
function slope(points: [number, number][]): number {
  const n = points.length;
  const mx = points.reduce((a, p) => a + p[0], 0) / n;
  const my = points.reduce((a, p) => a + p[1], 0) / n;
  const sxy = points.reduce((a, p) => a + (p[0] - mx) * (p[1] - my), 0);
  const sxx = points.reduce((a, p) => a + (p[0] - mx) ** 2, 0);
  return sxx === 0 ? 0 : sxy / sxx;
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

test(`soak: ${NIGHTS} consecutive nightly runs (incremental, privacy on) by one worker — no growth beyond retention`, async () => {
  // Node's diagnostic report on SIGUSR2 gives the worker's JavaScript heap and libuv handles from outside: RSS
  // alone cannot tell the JS heap from DuckDB's native memory.
  const reports = path.join(root, 'reports');
  fs.mkdirSync(reports, { recursive: true });
  worker = startWorker(server.address, dataDir, {
    NODE_OPTIONS: `--report-on-signal --report-signal=SIGUSR2 --report-directory=${reports} --report-compact`,
  });
  const pid = worker.child.pid!;
  const records: NightRecord[] = [];
  const runIds: string[] = [];
  const failures: string[] = [];
  const t0 = Date.now();
  for (let n = 0; n < NIGHTS; n++) {
    const night = nights[n];
    fs.writeFileSync(night.file, night.lines.join('\n') + '\n');
    let peak = 0;
    const sampler = setInterval(() => {
      try {
        peak = Math.max(peak, rssBytes(pid));
      } catch {
        // The worker is gone: the run fails below.
      }
    }, 250);
    const t = Date.now();
    let summary: RunSummary | undefined;
    try {
      summary = (await server.client!.workflow.execute('retrainPipeline', {
        taskQueue: 'recforge-cpu',
        workflowId: `soak-${night.runDate}`,
        args: [{ datasetId: 'soak', interactions: drop, items, runDate: night.runDate, overrides }],
      })) as RunSummary;
      runIds.push(summary.runId);
    } catch (err) {
      failures.push(
        `night ${n + 1} (${night.runDate}): ${(err as Error).message} ${worker.log.join('').slice(-1500)}`,
      );
    } finally {
      clearInterval(sampler);
    }
    const diag = await diagnosticReport(pid, reports);
    const state = readLiveState(layout);
    const disk = diskUsage(dataDir);
    const js = journals(dataDir);
    const rec: NightRecord = {
      night: n + 1,
      runDate: night.runDate,
      status: summary?.status ?? 'failed',
      seconds: Math.round((Date.now() - t) / 100) / 10,
      rssMiB: mib(rssBytes(pid)),
      peakRssMiB: mib(peak),
      fds: openFds(pid),
      jsHeapMiB: mib(diag.javascriptHeap.usedMemory),
      libuvHandles: diag.libuv.length,
      dataMiB: mib(disk.bytes),
      byFolderMiB: Object.fromEntries(Object.entries(disk.by).map(([k, v]) => [k, mib(v)])),
      versionFolders: state.versionFolders.length,
      versionsMiB: mib(diskUsage(path.join(dataDir, 'output', 'recommendations', 'soak')).by.versions ?? 0),
      journalNames: js.reduce((a, j) => a + j.names, 0),
      journalContentBytes: js.reduce((a, j) => a + j.bytes, 0),
      scratchLeft: scratchLeft(runIds).length,
      leftovers: state.leftovers.length,
    };
    records.push(rec);
    console.log(`[soak] ${JSON.stringify(rec)}`);
    if (summary && summary.status !== 'completed') failures.push(`night ${n + 1}: ${summary.status}`);
    if (rec.versionFolders > KEEP) failures.push(`night ${n + 1}: ${rec.versionFolders} version folders`);
    if (rec.scratchLeft)
      failures.push(`night ${n + 1}: scratch folders left: ${scratchLeft(runIds).join(', ')}`);
    if (rec.leftovers) failures.push(`night ${n + 1}: temporary files left: ${state.leftovers.join(', ')}`);
    for (const j of js)
      if (j.withContent > 32 || j.names > 4096)
        failures.push(`night ${n + 1}: journal ${j.dir} holds ${j.names}/${j.withContent}`);
    const settled = settledProblems(layout, state);
    if (settled.length) failures.push(`night ${n + 1}: ${settled.join('; ')}`);
    if (failures.length > 5) break;
  }

  // Growth: the last ten nights against nights 11-20 (after warm-up: JIT, DuckDB's and tfjs's first allocations).
  // (A shortened soak, RECFORGE_SOAK_NIGHTS, compares thirds instead.)
  const span = Math.max(1, Math.min(10, Math.floor(records.length / 3)));
  const early = records.slice(Math.min(10, span), Math.min(10, span) + span);
  const late = records.slice(-span);
  const growth = {
    rss: median(late.map((r) => r.rssMiB)) / median(early.map((r) => r.rssMiB)),
    fds: Math.max(...late.map((r) => r.fds)) - Math.max(...early.map((r) => r.fds)),
    versions: late.at(-1)!.versionsMiB / early[0].versionsMiB,
    jsHeapSlopeMiBPerNight: slope(records.slice(Math.min(10, span)).map((r) => [r.night, r.jsHeapMiB])),
    rssSlopeMiBPerNight: slope(records.slice(Math.min(10, span)).map((r) => [r.night, r.rssMiB])),
  };
  const perRun = (folder: string) =>
    (late.at(-1)!.byFolderMiB[folder] - early[0].byFolderMiB[folder]) / (late.at(-1)!.night - early[0].night);
  const bench = {
    name: 'soak',
    date: new Date().toISOString(),
    machine: machine(),
    params: {
      nights: NIGHTS,
      keepVersions: KEEP,
      usersApprox: 600,
      eventsPerNight: 2000,
      privacy: true,
      incremental: true,
    },
    results: [
      {
        metric: 'nights_completed',
        value: records.filter((r) => r.status === 'completed').length,
        unit: 'runs',
      },
      { metric: 'run_seconds_median', value: median(records.map((r) => r.seconds)), unit: 's' },
      { metric: 'worker_rss_early_median', value: median(early.map((r) => r.rssMiB)), unit: 'MiB' },
      { metric: 'worker_rss_late_median', value: median(late.map((r) => r.rssMiB)), unit: 'MiB' },
      { metric: 'worker_rss_growth', value: growth.rss, unit: 'ratio' },
      { metric: 'worker_peak_rss_max', value: Math.max(...records.map((r) => r.peakRssMiB)), unit: 'MiB' },
      { metric: 'worker_fds_early_max', value: Math.max(...early.map((r) => r.fds)), unit: 'fds' },
      { metric: 'worker_fds_late_max', value: Math.max(...late.map((r) => r.fds)), unit: 'fds' },
      { metric: 'worker_rss_slope', value: growth.rssSlopeMiBPerNight, unit: 'MiB/night' },
      { metric: 'worker_js_heap_early_median', value: median(early.map((r) => r.jsHeapMiB)), unit: 'MiB' },
      { metric: 'worker_js_heap_late_median', value: median(late.map((r) => r.jsHeapMiB)), unit: 'MiB' },
      { metric: 'worker_js_heap_slope', value: growth.jsHeapSlopeMiBPerNight, unit: 'MiB/night' },
      {
        metric: 'worker_libuv_handles_late_max',
        value: Math.max(...late.map((r) => r.libuvHandles)),
        unit: 'handles',
      },
      { metric: 'versions_folder_growth', value: growth.versions, unit: 'ratio' },
      { metric: 'output_folder_per_night', value: perRun('output'), unit: 'MiB' },
      { metric: 'ledger_folder_per_night', value: perRun('privacy-ledger'), unit: 'MiB' },
      { metric: 'runs_folder_per_night', value: perRun('runs'), unit: 'MiB' },
      { metric: 'state_folder_per_night', value: perRun('state'), unit: 'MiB' },
      { metric: 'registry_folder_per_night', value: perRun('registry'), unit: 'MiB' },
      { metric: 'data_folder_final', value: records.at(-1)!.dataMiB, unit: 'MiB' },
      { metric: 'journal_names_final', value: records.at(-1)!.journalNames, unit: 'names' },
      { metric: 'seconds_total', value: Math.round((Date.now() - t0) / 1000), unit: 's' },
    ],
    series: records,
  };
  fs.mkdirSync(path.join(ROOT, 'bench', 'results'), { recursive: true });
  fs.writeFileSync(path.join(ROOT, 'bench', 'results', 'soak.json'), JSON.stringify(bench, null, 2) + '\n');
  report('soak', { runs: records.length, growth, failures });
  expect(failures).toEqual([]);
  expect(records).toHaveLength(NIGHTS);
  expect(growth.rss).toBeLessThan(1.25);
  expect(growth.fds).toBeLessThanOrEqual(5);
  // Retention keeps the published versions flat: five of similar size. (The rest of the output folder is the
  // pointer's journal: 32 copies at most of a document whose history is capped at 200 moves.)
  expect(growth.versions).toBeLessThan(1.5);
});
