import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { findProjectRoot, loadConfig, type RecforgeConfig } from '../lib/config';
import { Db, lit } from '../lib/duckdb';
import { directRun } from '../activities/support/direct';
import { scorePublishShard, publishVersion } from '../activities/publish';
import type { ScoringInputs, ShardPart } from '../activities/support/publishing';
import { writeResults, type BenchResult } from './common';

/**
 * Scoring and publishing at scale, split over 1, 2 and 4 user shards (issue #17).
 *
 * What is measured: the production activities themselves — `scorePublishShard` (top-N item-item scoring of one
 * shard's users, seen and out-of-stock items excluded, popular backfill, written as the shard's part file) and
 * `publishVersion` (the version folder assembled from the parts: copy, cold-start fallback, published report,
 * read-back counts, checksums, manifest) — each in a process of its own, as one worker would run it, on local
 * storage. Wall time and peak RSS (the kernel's maxRSS of that process) per activity.
 *
 * Inputs are synthetic model artifacts generated at bench time (no pipeline run): clean events of `users` users
 * with `history` events each over `items` items (popularity skewed: item = ⌊items·u²⌋), an item-item model of 50
 * neighbours per item, the popularity table, and an item catalogue with 1% out of stock. Shards run one after
 * another on this machine; on N workers they would run at once, so `max shard` is what a run would wait for.
 * Each configuration runs under the worker's DuckDB memory limit (default 2GB; `--memory-limits 6GB,2GB` for more);
 * a shard whose candidates exceed it is scored in batches of its users (activities/publish.ts), reported per shard.
 * Baseline: the 1-shard configuration under the same limit, measured in the same run (under the largest limit when
 * one shard does not fit). An out-of-memory failure is recorded, not fatal. Every version published must hold
 * identical content (user_id, rank, item_id, score).
 */

const NEIGHBOURS = 50;

interface ChildJob {
  phase: 'score' | 'assemble';
  dataDir: string;
  memoryLimit: string;
  runId: string;
  inputs: ScoringInputs;
  shard?: number;
  parts?: ShardPart[];
}

interface ChildResult {
  seconds: number;
  maxRssMiB: number;
  result: unknown;
}

function benchConfig(root: string, dataDir: string, memoryLimit?: string): RecforgeConfig {
  const duckdb = memoryLimit ? { duckdb: { memoryLimit } } : {};
  return loadConfig({ root, env: {}, overrides: { dataDir, privacy: { enabled: false }, ...duckdb } }).config;
}

/** One activity in this process (the child side). */
async function child(job: ChildJob): Promise<void> {
  const root = findProjectRoot();
  const config = benchConfig(root, job.dataDir, job.memoryLimit);
  const run = directRun({ config, datasetId: 'bench', runId: job.runId, interactionFiles: [] });
  const deps = { root, dataDir: job.dataDir };
  const t0 = process.hrtime.bigint();
  const result =
    job.phase === 'score'
      ? await scorePublishShard(deps, run, job.inputs, job.shard!)
      : await publishVersion(deps, run, job.inputs, job.parts!, { chosenModel: 'itemitem', metrics: {} });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const out: ChildResult = { seconds, maxRssMiB: process.resourceUsage().maxRSS / 1024, result };
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

/** Runs one activity in a child process; an out-of-memory failure is a result (how far a shard size fits). */
function runChild(job: ChildJob): ChildResult | { oom: string; seconds: number } {
  const t0 = Date.now();
  const r = spawnSync(process.execPath, [__filename, '--child', JSON.stringify(job)], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    maxBuffer: 64 << 20,
  });
  if (r.status === 0) return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as ChildResult;
  const oom = /DuckDB ran out of memory[^\n]*/.exec(r.stderr);
  if (oom) return { oom: oom[0], seconds: (Date.now() - t0) / 1000 };
  throw new Error(`bench child failed (exit ${r.status}): ${r.stderr.slice(-3000)}`);
}

/** The synthetic artifacts, generated once per size (seeded) into the bench's storage folder. */
async function generate(store: string, users: number, items: number, history: number) {
  const dir = path.join(store, 'runs', 'bench', 'inputs');
  const keys = {
    eventsKey: 'runs/bench/inputs/events.parquet',
    itemsKey: 'runs/bench/inputs/items.parquet',
    modelKey: 'runs/bench/inputs/itemitem-full.parquet',
    mostPopKey: 'runs/bench/inputs/mostpop-full.parquet',
  };
  const stamp = path.join(dir, `.complete-${users}-${items}-${history}`);
  if (fs.existsSync(stamp)) return keys;
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  const f = (k: string) => lit(path.join(store, ...k.split('/')));
  const db = await Db.open(':memory:', { memoryLimit: '4GB', threads: os.cpus().length });
  try {
    console.log(`[bench scoring] generating ${users} users × ${history} events over ${items} items`);
    await db.run(`SELECT setseed(0.42)`);
    await db.run(`COPY (
      SELECT 'u' || lpad(u::VARCHAR, 7, '0') AS user_id,
             'i' || lpad(least(${items - 1}, floor(pow(random(), 2) * ${items}))::INT::VARCHAR, 5, '0') AS item_id,
             TIMESTAMP '2026-09-01' + to_seconds(CAST(floor(random() * 2592000) AS BIGINT)) AS ts
      FROM range(${users}) r(u), range(${history})
    ) TO ${f(keys.eventsKey)} (FORMAT parquet, COMPRESSION zstd)`);
    await db.run(`COPY (
      SELECT 'i' || lpad(i::VARCHAR, 5, '0') AS item_id, 'item ' || i AS title, 'c' || (i % 50) AS category,
             CASE WHEN i % 100 = 7 THEN 'false' ELSE 'true' END AS in_stock
      FROM range(${items}) r(i)
    ) TO ${f(keys.itemsKey)} (FORMAT parquet)`);
    // 50 neighbours per item, similarity falling with the neighbour's position (plus a hashed jitter).
    await db.run(`COPY (
      SELECT 'i' || lpad(i::VARCHAR, 5, '0') AS item_id,
             'i' || lpad(((i + 1 + (k * 7919 + i * 31) % ${items - 1}) % ${items})::VARCHAR, 5, '0') AS neighbour_id,
             (1.0 / (k + 1)) * (0.75 + (hash(i, k) % 1000) / 4000.0) AS sim
      FROM range(${items}) a(i), range(${NEIGHBOURS}) b(k)
      ORDER BY item_id, sim DESC
    ) TO ${f(keys.modelKey)} (FORMAT parquet, COMPRESSION zstd)`);
    await db.run(`COPY (
      SELECT item_id, count(*)::DOUBLE AS score, count(DISTINCT user_id) AS users
      FROM read_parquet(${f(keys.eventsKey)}) GROUP BY item_id ORDER BY score DESC, item_id
    ) TO ${f(keys.mostPopKey)} (FORMAT parquet, COMPRESSION zstd)`);
  } finally {
    db.close();
  }
  fs.writeFileSync(stamp, '');
  return keys;
}

const load = () => Number(os.loadavg()[0].toFixed(2));

export async function benchScoring(
  root: string,
  o: { users?: number; items?: number; history?: number; shards?: number[]; memoryLimits?: string[] } = {},
): Promise<string> {
  const users = o.users ?? 1_000_000;
  const items = o.items ?? 50_000;
  const history = o.history ?? 5;
  const shardCounts = o.shards ?? [1, 2, 4];
  const store = path.join(os.tmpdir(), 'recforge-bench-scoring');
  const keys = await generate(store, users, items, history);
  const config = benchConfig(root, store);
  // The configured limit (what a worker runs with) unless told otherwise; with several, largest first: the 1-shard
  // run under the largest limit is the baseline of a limit under which one shard of all users does not fit.
  const memoryLimits = o.memoryLimits ?? [config.duckdb.memoryLimit];
  const results: BenchResult[] = [];
  const loads: Record<string, number> = { start: load() };
  const canonical: Record<string, { rows: number; users: number; hash: string }> = {};
  let base: { score: number; maxShard: number; assemble: number; rss: number } | undefined;
  for (const memoryLimit of memoryLimits) {
    let series: typeof base;
    for (const shards of shardCounts) {
      const tag = `shards=${shards},mem=${memoryLimit}`;
      const runId = `shards-${shards}-${memoryLimit.toLowerCase()}`;
      const version = `bench-${runId}`;
      fs.rmSync(path.join(store, 'runs', 'bench', runId), { recursive: true, force: true });
      fs.rmSync(path.join(store, 'output', 'recommendations', 'bench', 'versions', version), {
        recursive: true,
        force: true,
      });
      const inputs: ScoringInputs = {
        datasetId: 'bench',
        version,
        generatedAt: '2026-10-01T00:00:00.000Z',
        kind: 'itemitem',
        model: 'itemitem',
        ...keys,
        topN: config.publish.topN,
        // 'auto' is chosen from a run's training data; the bench's users have 5 events each, so any cap ≥ 5 is the same.
        maxHistory:
          typeof config.training.itemItem.maxHistoryPerUser === 'number'
            ? config.training.itemItem.maxHistoryPerUser
            : 50,
        shards,
      };
      const parts: ShardPart[] = [];
      const perShard: ChildResult[] = [];
      let oom: string | null = null;
      for (let shard = 0; shard < shards && !oom; shard++) {
        const r = runChild({ phase: 'score', dataDir: store, memoryLimit, runId, inputs, shard });
        if ('oom' in r) {
          oom = r.oom;
          console.log(
            `[bench scoring] ${tag}, shard ${shard}: out of memory after ${r.seconds.toFixed(1)} s`,
          );
          results.push({
            metric: `score_shard_out_of_memory[${tag},shard=${shard}]`,
            value: r.seconds,
            unit: 's',
          });
          break;
        }
        parts.push(r.result as ShardPart);
        perShard.push(r);
        console.log(
          `[bench scoring] ${tag}, shard ${shard}: ${r.seconds.toFixed(1)} s, peak RSS ${r.maxRssMiB.toFixed(0)} MiB, ${(r.result as ShardPart).users} users in ${(r.result as ShardPart).batches} batch(es) (load ${load()})`,
        );
        results.push(
          { metric: `score_shard_seconds[${tag},shard=${shard}]`, value: r.seconds, unit: 's' },
          { metric: `score_shard_peak_rss[${tag},shard=${shard}]`, value: r.maxRssMiB, unit: 'MiB' },
          {
            metric: `score_shard_batches[${tag},shard=${shard}]`,
            value: (r.result as ShardPart).batches ?? 1,
            unit: 'statements',
          },
        );
      }
      loads[`after_${tag}`] = load();
      if (oom) continue;
      const a = runChild({ phase: 'assemble', dataDir: store, memoryLimit, runId, inputs, parts });
      if ('oom' in a) throw new Error(`assembling ${tag}: ${a.oom}`);
      console.log(
        `[bench scoring] ${tag}, assemble: ${a.seconds.toFixed(1)} s, peak RSS ${a.maxRssMiB.toFixed(0)} MiB (load ${load()})`,
      );
      const sum = perShard.reduce((x, r) => x + r.seconds, 0);
      const maxShard = Math.max(...perShard.map((r) => r.seconds));
      const rss = Math.max(...perShard.map((r) => r.maxRssMiB));
      if (shards === 1) series = { score: sum, maxShard, assemble: a.seconds, rss };
      base ??= series;
      const ref = series ?? base;
      const vs = (value: number, baselineValue: number | undefined, what: string) =>
        baselineValue === undefined
          ? {}
          : {
              baseline: `1 shard, ${ref === series ? memoryLimit : memoryLimits[0]}, same run (${what})`,
              baselineValue,
              ratio: value / baselineValue,
            };
      results.push(
        {
          metric: `assemble_seconds[${tag}]`,
          value: a.seconds,
          unit: 's',
          ...vs(a.seconds, ref?.assemble, 'assemble'),
        },
        { metric: `assemble_peak_rss[${tag}]`, value: a.maxRssMiB, unit: 'MiB' },
        {
          metric: `score_all_shards_seconds[${tag}]`,
          value: sum,
          unit: 's',
          ...vs(sum, ref?.score, 'scoring'),
        },
        {
          metric: `score_max_shard_seconds[${tag}]`,
          value: maxShard,
          unit: 's',
          ...vs(maxShard, ref?.maxShard, 'scoring'),
        },
        {
          metric: `publish_wall_on_${shards}_workers_seconds[mem=${memoryLimit}]`,
          value: maxShard + a.seconds,
          unit: 's',
          ...vs(maxShard + a.seconds, ref ? ref.maxShard + ref.assemble : undefined, 'scoring + assemble'),
        },
        {
          metric: `score_max_shard_peak_rss[${tag}]`,
          value: rss,
          unit: 'MiB',
          ...vs(rss, ref?.rss, 'peak RSS'),
        },
      );
      // What was published: the same content whatever the shard count and limit (checked below).
      const folder = path.join(store, 'output', 'recommendations', 'bench', 'versions', version);
      const db = await Db.open(':memory:', { memoryLimit: '2GB', threads: 2 });
      try {
        canonical[tag] = await db.one<{ rows: number; users: number; hash: string }>(
          `SELECT count(*)::BIGINT AS rows, count(DISTINCT user_id)::BIGINT AS users,
                  sum(hash(user_id, rank, item_id, score))::VARCHAR AS hash
           FROM read_parquet(${lit(path.join(folder, 'part-*.parquet'))})`,
        );
      } finally {
        db.close();
      }
      results.push(
        { metric: `published_rows[${tag}]`, value: Number(canonical[tag].rows), unit: 'rows' },
        { metric: `published_users[${tag}]`, value: Number(canonical[tag].users), unit: 'users' },
      );
      // The folder of a measured version is not needed again: the next configuration's disk stays free.
      fs.rmSync(path.join(store, 'runs', 'bench', runId), { recursive: true, force: true });
    }
  }
  const all = Object.values(canonical);
  const identical =
    all.length > 1 && all.every((c) => c.hash === all[0].hash && Number(c.rows) === Number(all[0].rows));
  results.push({ metric: 'identical_content_across_configurations', value: identical ? 1 : 0, unit: 'bool' });
  if (!identical) throw new Error(`published outputs differ: ${JSON.stringify(canonical)}`);
  loads.end = load();
  return writeResults(root, 'scoring', results, {
    users,
    items,
    historyPerUser: history,
    neighboursPerItem: NEIGHBOURS,
    topN: config.publish.topN,
    shardCounts,
    memoryLimits,
    threads: config.duckdb.threads,
    storage: 'local folder (os.tmpdir()/recforge-bench-scoring)',
    measured:
      'scorePublishShard per shard and publishVersion, each in its own process (wall time, kernel maxRSS), run one after another; synthetic itemitem model artifacts generated at bench time',
    loadAverage1m: loads,
  });
}

if (require.main === module && process.argv[2] === '--child') {
  child(JSON.parse(process.argv[3]) as ChildJob).catch((err) => {
    console.error(`[bench scoring child] ${(err as Error).stack ?? err}`);
    process.exit(1);
  });
}
