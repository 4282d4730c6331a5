import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, DefaultLogger, Runtime } from '@temporalio/worker';
import { findProjectRoot, loadConfig } from '../lib/config';
import { requireTemporalCli } from '../lib/temporal/cli-locator';
import { ALL_SEARCH_ATTRIBUTES } from '../contracts/search-attributes';
import type { RunSummary } from '../contracts/stages';
import { generateDataset, isGeneratedDatasetComplete } from '../datasets/synthetic';
import { createWorkers } from '../worker/workers';
import { writeResults, type BenchResult } from './common';

/**
 * End to end (issue #19): the real retrain pipeline — plan, input, ingest, profile, clean, train, evaluate,
 * publish — on generated data at 0.6M, 2M and 5M events (and 20M with `--full` or RECFORGE_BENCH_FULL=1) with the
 * default challenger, and with `training.challenger: mf` at 5M. Each configuration runs in a child process of its
 * own: an embedded Temporal dev server (the project's CLI), the cpu and training workers in-process, one workflow
 * with one attempt per activity. The child's peak resident set (getrusage maxRSS: DuckDB and tfjs allocate
 * natively, inside the worker) is the worker's; the server is a separate process and not counted. Stage seconds
 * come from the RunSummary; the growth ratio of each stage is (seconds / events) relative to the smallest size
 * (1 = linear; the issue asks for at most 1.5). A failing configuration (out of memory, timeout) is recorded with
 * its message, and the bench goes on. Tuning budgets stay at their defaults (reported in params).
 *
 * Data: the bundled generator, users = events / 100, 10,000 items, seed 1 (only the events and users grow).
 */

export interface E2eOptions {
  /** Event counts for the default challenger (default 600k, 2M, 5M; 20M added by `full`); [] skips them. */
  sizes?: number[];
  full?: boolean;
  /**
   * Learned challengers and their event counts (default mf and two-tower at 5M, and at 20M with `full`); [] skips
   * them. `mfEvents` (the older option) is the same as [{challenger: 'mf', events}].
   */
  learned?: { challenger: string; events: number }[];
  mfEvents?: number;
  /** bench/results/<resultsName>.json (default e2e). */
  resultsName?: string;
  /** Per configuration wall-clock limit in seconds (default 2400). */
  timeoutSeconds?: number;
}

interface ChildJob {
  label: string;
  events: number;
  interactions: string;
  items: string;
  dataDir: string;
  challenger?: string;
}

interface ChildResult {
  ok: boolean;
  error?: string;
  status?: string;
  stages: { name: string; seconds: number }[];
  wallSeconds: number;
  peakRssBytes: number;
  /** Sampled every 250 ms while the workflow ran (the event loop must be free to sample; maxRSS is exact). */
  memory?: MemorySplit;
  rowsIngested?: number;
  challenger?: string;
  memoryLimit: string;
  threads: number;
  tuning?: unknown;
  /** The child's slowest DuckDB statements (RECFORGE_SQL_TIMING), summed per statement head. */
  slowestStatements?: { sql: string; seconds: number; count: number }[];
}

/**
 * Where the worker's memory is at its sampled peak, and the peak per stage: `js` is V8's heap, `buffers` the
 * ArrayBuffers (tfjs-wasm's heap, typed arrays of the models), `native` the rest of the resident set: DuckDB's
 * buffer manager, libtensorflow's tensors, code and allocator slack.
 */
interface MemorySplit {
  peak: { rssMiB: number; jsMiB: number; buffersMiB: number; nativeMiB: number; stage: string };
  byStage: Record<string, number>;
  /**
   * Event-loop blocks of 2 s or more (the sampler's timer came late): an activity's heartbeat cannot be sent
   * while the loop is blocked, so a block near the heartbeat timeout fails the activity. `step`: the in-stage
   * progress last reported before the block.
   */
  blocks: { seconds: number; stage: string; step: string }[];
}

const ITEMS = 10_000;
const label = (n: number): string => (n >= 1e6 ? `${+(n / 1e6).toFixed(1)}M` : `${+(n / 1e3).toFixed(0)}k`);

/** The bench's generated dataset of `events` events (users = events / 100, 10,000 items, seed 1), kept in tmp. */
export async function dataset(events: number): Promise<{ interactions: string; items: string }> {
  const dir = path.join(os.tmpdir(), `recforge-bench-e2e-${events}`);
  const gen = { users: Math.round(events / 100), items: ITEMS, events, seed: 1 };
  if (!isGeneratedDatasetComplete(dir, gen)) {
    console.log(`[bench e2e] generating ${label(events)} events (${gen.users} users, ${gen.items} items)`);
    await generateDataset({ ...gen, out: dir });
  }
  return { interactions: path.join(dir, 'interactions.csv'), items: path.join(dir, 'items.csv') };
}

/** Runs one configuration in a child process; its last stdout line is the ChildResult. */
function runChild(job: ChildJob, timeoutSeconds: number): Promise<ChildResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [__filename, '--child', JSON.stringify(job)], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        ...process.env,
        RECFORGE_LOG_LEVEL: process.env.RECFORGE_LOG_LEVEL ?? 'warn',
        // Every DuckDB statement of 50 ms or more, with its wall time, on stderr (lib/duckdb.ts).
        RECFORGE_SQL_TIMING: '1',
      },
    });
    let out = '';
    let err = '';
    let partial = '';
    const statements = new Map<string, { sql: string; seconds: number; count: number }>();
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => {
      const lines = (partial + d.toString()).split('\n');
      partial = lines.pop() ?? '';
      for (const l of lines) {
        const m = /^\[sql ([0-9.]+) s\] (.*)$/.exec(l);
        if (!m) {
          if (l.startsWith('[bench e2e]')) console.log(l);
          err += l + '\n';
          continue;
        }
        const head = m[2].slice(0, 100);
        const t = statements.get(head) ?? { sql: head, seconds: 0, count: 0 };
        t.seconds += Number(m[1]);
        t.count += 1;
        statements.set(head, t);
      }
      if (err.length > 200_000) err = err.slice(-100_000);
    });
    const slowest = () =>
      [...statements.values()]
        .sort((a, b) => b.seconds - a.seconds)
        .slice(0, 10)
        .map((t) => ({ ...t, seconds: Math.round(t.seconds * 100) / 100 }));
    const t0 = Date.now();
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutSeconds * 1000);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      const line = out
        .trim()
        .split('\n')
        .reverse()
        .find((l) => l.startsWith('{"ok"'));
      if (line) return resolve({ ...(JSON.parse(line) as ChildResult), slowestStatements: slowest() });
      const why = signal
        ? `killed by ${signal}${signal === 'SIGKILL' ? ` (after ${timeoutSeconds} s, or out of memory)` : ''}`
        : `exit ${code}`;
      resolve({
        ok: false,
        error: `${why}: ${err.trim().split('\n').slice(-5).join(' | ').slice(0, 600)}`,
        stages: [],
        wallSeconds: (Date.now() - t0) / 1000,
        peakRssBytes: 0,
        memoryLimit: '',
        threads: 0,
        slowestStatements: slowest(),
      });
    });
  });
}

/** Samples the process's memory every 250 ms, attributing each sample to the stage the workflow reports. */
function sampleMemory(currentStage: () => Promise<{ stage: string; step: string }>): {
  stop: () => MemorySplit;
} {
  const MiB = 2 ** 20;
  let stage = 'start';
  let step = '';
  const split: MemorySplit = {
    peak: { rssMiB: 0, jsMiB: 0, buffersMiB: 0, nativeMiB: 0, stage },
    byStage: {},
    blocks: [],
  };
  let last = Date.now();
  const sample = setInterval(() => {
    const now = Date.now();
    const late = (now - last - 250) / 1000;
    last = now;
    if (late >= 2) {
      split.blocks.push({ seconds: Math.round(late * 10) / 10, stage, step });
      console.error(`[bench e2e] event loop blocked ${late.toFixed(1)} s in ${stage} (${step})`);
    }
    const m = process.memoryUsage();
    const rss = m.rss / MiB;
    split.byStage[stage] = Math.max(split.byStage[stage] ?? 0, Math.round(rss));
    if (rss > split.peak.rssMiB) {
      split.peak = {
        rssMiB: Math.round(rss),
        jsMiB: Math.round(m.heapTotal / MiB),
        buffersMiB: Math.round(m.arrayBuffers / MiB),
        nativeMiB: Math.round((m.rss - m.heapTotal - m.arrayBuffers) / MiB),
        stage,
      };
    }
  }, 250);
  let asking = false;
  const poll = setInterval(() => {
    if (asking) return;
    asking = true;
    currentStage()
      .then((s) => {
        stage = s.stage || stage;
        step = s.step || step;
      })
      .catch(() => undefined)
      .finally(() => (asking = false));
  }, 1000);
  return {
    stop: () => {
      clearInterval(sample);
      clearInterval(poll);
      return split;
    },
  };
}

/** The child: server + workers in-process, one workflow. */
async function child(job: ChildJob): Promise<void> {
  const root = findProjectRoot();
  try {
    Runtime.install({ logger: new DefaultLogger('ERROR'), shutdownSignals: [] });
  } catch {
    // installed already
  }
  const overrides: Record<string, unknown> = {
    dataDir: job.dataDir,
    // The bench measures the machinery's cost: every run publishes whatever its metrics.
    gates: { minimums: { ndcg: 0, coverage: 0 }, mostPopMargin: -1, maxRegression: 1 },
    temporal: {
      activities: {
        // The configured heartbeat timeout (1 min by default) holds: long work gives the event loop turns.
        startToCloseTimeout: '3h',
        trainingStartToCloseTimeout: '3h',
        maximumAttempts: 1,
      },
    },
    ...(job.challenger ? { training: { challenger: job.challenger } } : {}),
  };
  const { config } = loadConfig({ root, env: {}, overrides });
  const env = await TestWorkflowEnvironment.createLocal({
    server: {
      executable: { type: 'existing-path', path: requireTemporalCli(root).path },
      searchAttributes: ALL_SEARCH_ATTRIBUTES,
      log: { format: 'pretty', level: 'error' },
    },
  });
  const set = await createWorkers({
    root,
    config,
    address: env.address,
    roles: ['cpu', 'training'],
    workflowBundle: await bundleWorkflowCode({
      workflowsPath: require.resolve('../workflows'),
      logger: new DefaultLogger('ERROR'),
    }),
    allowProtectedOverrides: true,
  });
  const running = set.run();
  const t0 = process.hrtime.bigint();
  const workflowId = `bench-e2e-${job.label}`;
  const memory = sampleMemory(() =>
    env.client.workflow
      .getHandle(workflowId)
      .query<{
        stage: string;
        current?: Record<string, { details?: { step?: unknown; model?: unknown } }>;
      }>('progress')
      .then((p) => ({
        stage: p.stage,
        step: Object.values(p.current ?? {})
          .map((c) => [c.details?.model, c.details?.step].filter(Boolean).join(' '))
          .join('; '),
      })),
  );
  let result: ChildResult;
  const base = { memoryLimit: config.duckdb.memoryLimit, threads: config.duckdb.threads };
  try {
    const summary = (await env.client.workflow.execute('retrainPipeline', {
      taskQueue: config.temporal.taskQueues.cpu,
      workflowId,
      args: [{ interactions: job.interactions, items: job.items, overrides }],
    })) as RunSummary;
    result = {
      ok: summary.status === 'completed',
      status: summary.status,
      ...(summary.status === 'completed' ? {} : { error: `status ${summary.status}` }),
      stages: summary.stages.map((s) => ({ name: s.name, seconds: s.seconds })),
      wallSeconds: Number(process.hrtime.bigint() - t0) / 1e9,
      peakRssBytes: process.resourceUsage().maxRSS * 1024,
      memory: memory.stop(),
      rowsIngested: summary.rows.ingested,
      challenger: config.training.challenger,
      tuning: summary.training?.tuning,
      ...base,
    };
  } catch (err) {
    const chain: string[] = [];
    let e = err as { message?: string; cause?: unknown } | undefined;
    while (e) {
      if (e.message) chain.push(e.message);
      e = e.cause as typeof e;
    }
    result = {
      ok: false,
      error: chain.join(' <- ').slice(0, 800),
      stages: [],
      wallSeconds: Number(process.hrtime.bigint() - t0) / 1e9,
      peakRssBytes: process.resourceUsage().maxRSS * 1024,
      memory: memory.stop(),
      challenger: config.training.challenger,
      ...base,
    };
  }
  set.shutdown();
  await running.catch(() => undefined);
  await set.close();
  await env.teardown();
  process.stdout.write(`\n${JSON.stringify(result)}\n`);
}

export async function benchE2e(root: string, o: E2eOptions = {}): Promise<string> {
  const full = o.full ?? process.env.RECFORGE_BENCH_FULL === '1';
  const sizes = o.sizes ?? [600_000, 2_000_000, 5_000_000, ...(full ? [20_000_000] : [])];
  const learned =
    o.learned ??
    (o.mfEvents !== undefined
      ? o.mfEvents > 0
        ? [{ challenger: 'mf', events: o.mfEvents }]
        : []
      : ['mf', 'two-tower'].flatMap((challenger) =>
          [5_000_000, ...(full ? [20_000_000] : [])].map((events) => ({ challenger, events })),
        ));
  const timeout = o.timeoutSeconds ?? 2400;
  const work = path.join(os.tmpdir(), 'recforge-bench-e2e-runs');
  const jobs: ChildJob[] = [];
  for (const events of sizes)
    jobs.push({ label: `default-${label(events)}`, events, ...(await dataset(events)), dataDir: '' });
  for (const l of learned)
    jobs.push({
      label: `${l.challenger}-${label(l.events)}`,
      events: l.events,
      challenger: l.challenger,
      ...(await dataset(l.events)),
      dataDir: '',
    });

  const runs: Record<string, ChildResult> = {};
  const { config } = loadConfig({ root, env: {} });
  // Written after every configuration: a long run stopped half-way still leaves what it measured.
  const write = (): string =>
    writeResults(root, o.resultsName ?? 'e2e', e2eResults(jobs, runs, sizes), {
      sizes,
      learned,
      users: 'events / 100',
      items: ITEMS,
      seed: 1,
      defaultChallenger: config.training.challenger,
      tuningBudgetSeconds: config.training.tuning.budgetSeconds,
      duckdb: { memoryLimit: `${config.duckdb.memoryLimit} (auto)`, threads: config.duckdb.threads },
      maximumAttempts: 1,
      gates: 'opened (every run publishes)',
      tuning: Object.fromEntries(Object.entries(runs).map(([k, r]) => [k, r.tuning ?? null])),
      memory: Object.fromEntries(Object.entries(runs).map(([k, r]) => [k, r.memory ?? null])),
      slowestStatements: Object.fromEntries(
        Object.entries(runs).map(([k, r]) => [k, r.slowestStatements ?? []]),
      ),
      load: fs.readFileSync('/proc/loadavg', 'utf8').trim(),
    });
  let file = '';
  for (const job of jobs) {
    job.dataDir = path.join(work, job.label);
    fs.rmSync(job.dataDir, { recursive: true, force: true });
    console.log(`[bench e2e] ${job.label}: running`);
    const r = await runChild(job, timeout);
    fs.rmSync(job.dataDir, { recursive: true, force: true });
    runs[job.label] = r;
    const stageLine = r.stages.map((s) => `${s.name} ${s.seconds.toFixed(1)}`).join(', ');
    console.log(
      `[bench e2e] ${job.label}: ${r.ok ? 'completed' : `FAILED (${r.error})`} in ${r.wallSeconds.toFixed(0)} s; ` +
        `${stageLine}; peak RSS ${(r.peakRssBytes / 2 ** 30).toFixed(2)} GiB`,
    );
    file = write();
  }
  return file;
}

function e2eResults(jobs: ChildJob[], runs: Record<string, ChildResult>, sizes: number[]): BenchResult[] {
  const results: BenchResult[] = [];
  for (const job of jobs) {
    const r = runs[job.label];
    if (!r) continue;
    const tag = `[${job.label}]`;
    results.push({
      metric: `status${tag}`,
      value: r.ok ? 1 : 0,
      unit: r.ok ? 'completed' : `failed: ${r.error ?? ''}`.slice(0, 600),
    });
    for (const s of r.stages)
      results.push({ metric: `stage_${s.name}_seconds${tag}`, value: s.seconds, unit: 's' });
    const stageTotal = r.stages.reduce((a, s) => a + s.seconds, 0);
    if (r.stages.length) results.push({ metric: `stage_total_seconds${tag}`, value: stageTotal, unit: 's' });
    results.push(
      { metric: `workflow_wall_seconds${tag}`, value: r.wallSeconds, unit: 's' },
      {
        metric: `worker_peak_rss${tag}`,
        value: r.peakRssBytes / 2 ** 20,
        unit: 'MiB',
        baseline: 'target',
        baselineValue: 4096,
        ratio: r.peakRssBytes / 2 ** 20 / 4096,
      },
    );
  }

  // Growth: (seconds per event at size n) / (seconds per event at the smallest size), per stage, default runs.
  const smallest = sizes[0];
  const ref = runs[`default-${label(smallest)}`];
  if (ref?.ok) {
    const refStage = new Map(ref.stages.map((s) => [s.name, s.seconds]));
    const refTotal = ref.stages.reduce((a, s) => a + s.seconds, 0);
    for (const events of sizes.slice(1)) {
      const r = runs[`default-${label(events)}`];
      if (!r?.ok) continue;
      const scale = events / smallest;
      for (const s of [
        ...r.stages,
        { name: 'total', seconds: r.stages.reduce((a, x) => a + x.seconds, 0) },
      ]) {
        const b = s.name === 'total' ? refTotal : refStage.get(s.name);
        if (!b || b < 0.05) continue;
        results.push({
          metric: `growth_${s.name}[${label(smallest)}->${label(events)}]`,
          value: s.seconds / b,
          unit: 'x time',
          baseline: `linear (${scale.toFixed(2)}x the events)`,
          baselineValue: scale,
          ratio: s.seconds / b / scale,
        });
      }
    }
  }
  return results;
}

if (require.main === module && process.argv[2] === '--child') {
  child(JSON.parse(process.argv[3]) as ChildJob).then(
    () => process.exit(0),
    (err: unknown) => {
      console.error((err as Error).stack ?? err);
      process.exit(1);
    },
  );
}
