import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { findProjectRoot, loadConfig } from '../lib/config';
import { Db, lit } from '../lib/duckdb';
import { generateDataset, isGeneratedDatasetComplete } from '../datasets/synthetic';
import { ingest } from '../activities/ingest';
import { profile } from '../activities/profile';
import { clean } from '../activities/clean';
import { directRun } from '../activities/support/direct';
import { RssSampler, timed, writeResults, type BenchResult } from './common';

/**
 * Data-quality stage throughput: ingest + profile + clean of N synthetic events (default 20M) against a bare
 * DuckDB COPY of the same CSV to Parquet, measured in the same run with the same memory and thread limits.
 * Target: the stage within 3x the bare copy, peak RSS under 4 GiB.
 */
export async function benchIngest(root: string, events: number): Promise<string> {
  const work = path.join(os.tmpdir(), `recforge-bench-ingest-${events}`);
  const dataDir = path.join(work, 'data');
  const input = path.join(work, 'input');
  const users = Math.max(100, Math.round(events / 100));
  const items = Math.max(100, Math.round(events / 500));
  const gen = { users, items, events, seed: 1, dirtyRate: 0.01, botUsers: 10 };
  if (!isGeneratedDatasetComplete(input, gen)) {
    console.log(`[bench ingest] generating ${events} events (${users} users, ${items} items)`);
    await generateDataset({ ...gen, out: input });
  }
  const csv = path.join(input, 'interactions.csv');
  const bytes = fs.statSync(csv).size;
  const { config } = loadConfig({
    root,
    env: {},
    overrides: {
      dataDir,
      quality: {
        minRows: 0,
        maxQuarantineShare: 1,
        maxQuarantineShareByReason: { malformed_line: 1, bad_timestamp: 1 },
      },
      privacy: { enabled: false },
    },
  });
  const limits = { memoryLimit: config.duckdb.memoryLimit, threads: config.duckdb.threads };

  // Baseline: the bare copy, typed by DuckDB's own sniffer, to Parquet. Timed before and after the stages and
  // the faster one kept: the first read may find the file out of the page cache, and a shared machine's load
  // comes and goes — either would flatter the ratio.
  const bareCopy = () =>
    timed(async () => {
      fs.rmSync(path.join(work, 'baseline.parquet'), { force: true });
      const db = await Db.open(':memory:', limits);
      try {
        await db.run(
          `COPY (SELECT * FROM read_csv(${lit(csv)}, ignore_errors = true)) TO ${lit(path.join(work, 'baseline.parquet'))} (FORMAT parquet)`,
        );
      } finally {
        db.close();
      }
    });
  const baseBefore = await bareCopy();
  console.log(`[bench ingest] bare COPY: ${baseBefore.seconds.toFixed(1)} s`);

  const runDir = path.join(dataDir, 'runs', 'bench', 'run');
  fs.rmSync(runDir, { recursive: true, force: true });
  fs.mkdirSync(runDir, { recursive: true });
  const run = directRun({
    config,
    datasetId: 'bench',
    runId: 'run',
    interactionFiles: [csv],
    itemsFile: path.join(input, 'items.csv'),
  });
  const deps = { root: findProjectRoot(), dataDir: config.dataDir };
  const rss = new RssSampler();
  const tIngest = await timed(() => ingest(deps, run));
  const tProfile = await timed(() => profile(deps, run, tIngest.value.raw));
  const tClean = await timed(() => clean(deps, run, tIngest.value.raw, tProfile.value));
  const peak = rss.stop();
  const baseAfter = await bareCopy();
  console.log(`[bench ingest] bare COPY again: ${baseAfter.seconds.toFixed(1)} s`);
  const base = baseBefore.seconds <= baseAfter.seconds ? baseBefore : baseAfter;
  const rows = tIngest.value.rows + tIngest.value.rejectedLines;
  const stage = tIngest.seconds + tProfile.seconds + tClean.seconds;
  console.log(
    `[bench ingest] ingest ${tIngest.seconds.toFixed(1)} s, profile ${tProfile.seconds.toFixed(1)} s, clean ${tClean.seconds.toFixed(1)} s; peak RSS ${(peak / 2 ** 30).toFixed(2)} GiB`,
  );
  const results: BenchResult[] = [
    { metric: 'rows', value: rows, unit: 'rows' },
    { metric: 'input_size', value: bytes / 2 ** 20, unit: 'MiB' },
    { metric: 'bare_copy_seconds', value: base.seconds, unit: 's' },
    { metric: 'bare_copy_seconds_before', value: baseBefore.seconds, unit: 's' },
    { metric: 'bare_copy_seconds_after', value: baseAfter.seconds, unit: 's' },
    { metric: 'ingest_seconds', value: tIngest.seconds, unit: 's' },
    { metric: 'profile_seconds', value: tProfile.seconds, unit: 's' },
    { metric: 'clean_seconds', value: tClean.seconds, unit: 's' },
    {
      metric: 'ingest_profile_clean_seconds',
      value: stage,
      unit: 's',
      baseline: 'bare DuckDB COPY csv->parquet',
      baselineValue: base.seconds,
      ratio: stage / base.seconds,
    },
    {
      metric: 'throughput',
      value: rows / stage,
      unit: 'rows/s',
      baseline: 'bare DuckDB COPY csv->parquet',
      baselineValue: rows / base.seconds,
      ratio: base.seconds / stage,
    },
    {
      metric: 'peak_rss',
      value: peak / 2 ** 20,
      unit: 'MiB',
      baseline: 'target',
      baselineValue: 4096,
      ratio: peak / 2 ** 20 / 4096,
    },
    { metric: 'quarantined', value: tClean.value.quarantined, unit: 'rows' },
  ];
  return writeResults(root, 'ingest', results, {
    events,
    users,
    items,
    memoryLimit: limits.memoryLimit,
    threads: limits.threads,
  });
}
