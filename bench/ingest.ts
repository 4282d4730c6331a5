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

/** One `[sql X s] head` line of RECFORGE_SQL_TIMING, summed per statement head. */
interface StatementTime {
  sql: string;
  seconds: number;
  count: number;
}

/**
 * Runs `fn` with RECFORGE_SQL_TIMING on and collects the per-statement wall times lib/duckdb.ts prints on stderr
 * (statements of at least 50 ms), summed per statement head, largest first.
 */
async function withStatementTimes<T>(
  fn: () => Promise<T>,
): Promise<{ value: T; statements: StatementTime[] }> {
  const before = process.env.RECFORGE_SQL_TIMING;
  const error = console.error;
  const sums = new Map<string, StatementTime>();
  process.env.RECFORGE_SQL_TIMING = '1';
  console.error = (...args: unknown[]) => {
    const m = /^\[sql ([0-9.]+) s\] (.*)$/s.exec(String(args[0] ?? ''));
    if (!m) return error(...args);
    const head = m[2].slice(0, 100);
    const t = sums.get(head) ?? { sql: head, seconds: 0, count: 0 };
    t.seconds += Number(m[1]);
    t.count += 1;
    sums.set(head, t);
  };
  try {
    const value = await fn();
    return { value, statements: [...sums.values()].sort((a, b) => b.seconds - a.seconds) };
  } finally {
    console.error = error;
    if (before === undefined) delete process.env.RECFORGE_SQL_TIMING;
    else process.env.RECFORGE_SQL_TIMING = before;
  }
}

const millions = (n: number): string =>
  n >= 1e6 ? `${+(n / 1e6).toFixed(1)}M` : `${+(n / 1e3).toFixed(0)}k`;

/**
 * Data-quality stage throughput: ingest + profile + clean of N synthetic events (default 5M and 20M) against a
 * bare DuckDB COPY of the same CSV to Parquet, measured in the same run with the same memory and thread limits —
 * once with the default config (privacy off) and once with configs/private.yaml (privacy on: the clean stage
 * then also bounds each user's contribution, twice). Target: the stage within 3x the bare copy, peak RSS under
 * 4 GiB. The slowest statements of each configuration (RECFORGE_SQL_TIMING) are written with the results.
 */
export async function benchIngest(root: string, eventsList: readonly number[]): Promise<string> {
  const results: BenchResult[] = [];
  const profiles: Record<string, StatementTime[]> = {};
  let limits = { memoryLimit: '', threads: 0 };
  for (const events of eventsList) {
    const r = await benchIngestAt(root, events);
    results.push(...r.results);
    Object.assign(profiles, r.profiles);
    limits = r.limits;
  }
  return writeResults(root, 'ingest', results, {
    events: eventsList,
    usersPerEvent: 0.01,
    itemsPerEvent: 0.002,
    memoryLimit: limits.memoryLimit,
    threads: limits.threads,
    privacyOn: 'configs/private.yaml (RECFORGE_CONFIG layer)',
    slowestStatements: profiles,
  });
}

async function benchIngestAt(
  root: string,
  events: number,
): Promise<{
  results: BenchResult[];
  profiles: Record<string, StatementTime[]>;
  limits: { memoryLimit: string; threads: number };
}> {
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
  const configFor = (privacy: boolean) =>
    loadConfig({
      root,
      env: privacy ? { RECFORGE_CONFIG: 'configs/private.yaml' } : {},
      overrides: {
        dataDir,
        quality: {
          minRows: 0,
          maxQuarantineShare: 1,
          maxQuarantineShareByReason: { malformed_line: 1, bad_timestamp: 1 },
        },
        ...(privacy ? {} : { privacy: { enabled: false } }),
      },
    }).config;
  const configs = { off: configFor(false), on: configFor(true) };
  if (!configs.on.privacy.enabled) throw new Error('configs/private.yaml did not turn privacy on');
  const config = configs.off;
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
  console.log(`[bench ingest] ${millions(events)}: bare COPY ${baseBefore.seconds.toFixed(1)} s`);

  const stages = async (privacy: 'off' | 'on') => {
    const cfg = configs[privacy];
    const runDir = path.join(dataDir, 'runs', 'bench', `run-${privacy}`);
    fs.rmSync(runDir, { recursive: true, force: true });
    fs.mkdirSync(runDir, { recursive: true });
    const run = directRun({
      config: cfg,
      datasetId: 'bench',
      runId: `run-${privacy}`,
      interactionFiles: [csv],
      itemsFile: path.join(input, 'items.csv'),
    });
    const deps = { root: findProjectRoot(), dataDir: cfg.dataDir };
    const rss = new RssSampler();
    const t = await withStatementTimes(async () => {
      const tIngest = await timed(() => ingest(deps, run));
      const tProfile = await timed(() => profile(deps, run, tIngest.value.raw));
      const tClean = await timed(() => clean(deps, run, tIngest.value.raw, tProfile.value));
      return { tIngest, tProfile, tClean };
    });
    const peak = rss.stop();
    fs.rmSync(runDir, { recursive: true, force: true });
    const { tIngest, tProfile, tClean } = t.value;
    console.log(
      `[bench ingest] ${millions(events)} privacy ${privacy}: ingest ${tIngest.seconds.toFixed(1)} s, profile ${tProfile.seconds.toFixed(1)} s, clean ${tClean.seconds.toFixed(1)} s; peak RSS ${(peak / 2 ** 30).toFixed(2)} GiB`,
    );
    for (const s of t.statements.slice(0, 6))
      console.log(`    ${s.seconds.toFixed(2)} s ×${s.count}  ${s.sql}`);
    return { ...t.value, peak, statements: t.statements };
  };
  const off = await stages('off');
  const on = await stages('on');
  const baseAfter = await bareCopy();
  console.log(`[bench ingest] ${millions(events)}: bare COPY again ${baseAfter.seconds.toFixed(1)} s`);
  const base = baseBefore.seconds <= baseAfter.seconds ? baseBefore : baseAfter;
  const rows = off.tIngest.value.rows + off.tIngest.value.rejectedLines;
  const tag = (privacy: string) => `[events=${millions(events)},privacy=${privacy}]`;
  const results: BenchResult[] = [
    { metric: `rows[events=${millions(events)}]`, value: rows, unit: 'rows' },
    { metric: `input_size[events=${millions(events)}]`, value: bytes / 2 ** 20, unit: 'MiB' },
    { metric: `bare_copy_seconds[events=${millions(events)}]`, value: base.seconds, unit: 's' },
    { metric: `bare_copy_seconds_before[events=${millions(events)}]`, value: baseBefore.seconds, unit: 's' },
    { metric: `bare_copy_seconds_after[events=${millions(events)}]`, value: baseAfter.seconds, unit: 's' },
  ];
  for (const [privacy, r] of [
    ['off', off],
    ['on', on],
  ] as const) {
    const stage = r.tIngest.seconds + r.tProfile.seconds + r.tClean.seconds;
    results.push(
      { metric: `ingest_seconds${tag(privacy)}`, value: r.tIngest.seconds, unit: 's' },
      { metric: `profile_seconds${tag(privacy)}`, value: r.tProfile.seconds, unit: 's' },
      { metric: `clean_seconds${tag(privacy)}`, value: r.tClean.seconds, unit: 's' },
      {
        metric: `ingest_profile_clean_seconds${tag(privacy)}`,
        value: stage,
        unit: 's',
        baseline: 'bare DuckDB COPY csv->parquet, same run',
        baselineValue: base.seconds,
        ratio: stage / base.seconds,
      },
      {
        metric: `throughput${tag(privacy)}`,
        value: rows / stage,
        unit: 'rows/s',
        baseline: 'bare DuckDB COPY csv->parquet, same run',
        baselineValue: rows / base.seconds,
        ratio: base.seconds / stage,
      },
      {
        metric: `peak_rss${tag(privacy)}`,
        value: r.peak / 2 ** 20,
        unit: 'MiB',
        baseline: 'target',
        baselineValue: 4096,
        ratio: r.peak / 2 ** 20 / 4096,
      },
      { metric: `quarantined${tag(privacy)}`, value: r.tClean.value.quarantined, unit: 'rows' },
    );
  }
  const top = (s: StatementTime[]) =>
    s.slice(0, 8).map((x) => ({ ...x, seconds: Math.round(x.seconds * 100) / 100 }));
  return {
    results,
    profiles: { [tag('off')]: top(off.statements), [tag('on')]: top(on.statements) },
    limits,
  };
}
