import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { deepMerge } from '../../lib/config';
import { lit, withDb } from '../../lib/duckdb';

/**
 * recforge end to end, as a user runs it: `node dist/scripts/pipeline.js --input train.csv [--items items.csv]
 * [--config overlay] --dataset <id> --summary-json <f>` in a fresh data folder (RECFORGE_DATA_DIR), so no run
 * warm-starts from another; then the published lists are read through `_current.json`.
 *
 * The overlay actually passed is the variant's overlay (e.g. configs/movielens.yaml) merged with one bench
 * setting: the embedded Temporal dev server's ports, set to free ones. The default 7233 is shared by every
 * recforge on the machine, and a pipeline finding a server there uses it, so its activities could be picked up by
 * another checkout's workers. Nothing else of the configuration is touched.
 */

export interface Variant {
  name: string;
  /** Overlay file, relative to the project root; none = configs/default.yaml alone. */
  overlay?: string;
}

export interface Lists {
  lists: Map<string, string[]>;
  fallback?: string[];
  version: string;
}

export interface RecforgeOutcome {
  variant: Variant;
  exitCode: number | null;
  wallSeconds: number;
  /** The run summary's fields the report needs (absent when the pipeline failed before writing one). */
  summary?: {
    status: string;
    modelVersion?: string;
    error?: string;
    gate?: {
      decision: string;
      checks: { name: string; value: number; threshold: number; passed: boolean }[];
    };
    stages?: { name: string; seconds: number }[];
    rows?: { ingested: number; kept: number; quarantined: number; byReason: Record<string, number> };
    metrics?: Record<string, Record<string, number>>;
    published?: { rows: number; users: number } | null;
    backend?: string;
    training?: unknown;
    privacy?: unknown;
  };
  published: boolean;
  /** Lists as published, or as force-promoted after a rejection (then `published` is false). */
  lists?: Lists;
  listsSource: 'published' | 'forced' | 'none';
  forcedWallSeconds?: number;
  forcedError?: string;
  log: string;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** The variant's overlay with the bench's Temporal ports merged in, written where the run can read it. */
export async function writeOverlay(root: string, v: Variant, file: string): Promise<void> {
  const base = v.overlay
    ? ((parseYaml(fs.readFileSync(path.resolve(root, v.overlay), 'utf8')) ?? {}) as Record<string, unknown>)
    : {};
  const port = await freePort();
  let uiPort = await freePort();
  while (uiPort === port) uiPort = await freePort();
  const merged = deepMerge(base, { temporal: { devServer: { port, uiPort } } });
  fs.writeFileSync(
    file,
    `# Written by bench/quality: ${v.overlay ?? 'configs/default.yaml alone'} + free Temporal ports.\n` +
      stringifyYaml(merged),
  );
}

function runNode(
  script: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  logFile: string,
  cwd: string,
): Promise<{ code: number | null; seconds: number }> {
  return new Promise((resolve, reject) => {
    const out = fs.openSync(logFile, 'a');
    const t0 = process.hrtime.bigint();
    const child = spawn(process.execPath, [script, ...args], { cwd, env, stdio: ['ignore', out, out] });
    fs.closeSync(out);
    child.once('error', reject);
    child.once('exit', (code) => resolve({ code, seconds: Number(process.hrtime.bigint() - t0) / 1e9 }));
  });
}

/** Reads the lists `_current.json` points at (and the popular fallback for users without a row). */
export async function readCurrentLists(outputRoot: string): Promise<Lists | undefined> {
  const pointer = path.join(outputRoot, '_current.json');
  if (!fs.existsSync(pointer)) return undefined;
  const cur = JSON.parse(fs.readFileSync(pointer, 'utf8')) as { version: string; path?: string };
  const dir = path.join(outputRoot, cur.path ?? path.join('versions', cur.version));
  const parts = fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.parquet'))
    .map((f) => path.join(dir, f));
  if (parts.length === 0) throw new Error(`${dir} (named by ${pointer}) holds no Parquet file`);
  const fallbackFile = path.join(dir, '_fallback', 'popular.parquet');
  return withDb(':memory:', { memoryLimit: '1GB', threads: 1 }, async (db) => {
    const rows = await db.all<{ user_id: string; item_id: string }>(
      `SELECT CAST(user_id AS VARCHAR) AS user_id, CAST(item_id AS VARCHAR) AS item_id
       FROM read_parquet([${parts.map(lit).join(', ')}]) ORDER BY user_id, rank`,
    );
    const lists = new Map<string, string[]>();
    for (const r of rows) {
      let l = lists.get(r.user_id);
      if (!l) lists.set(r.user_id, (l = []));
      l.push(r.item_id);
    }
    let fallback: string[] | undefined;
    if (fs.existsSync(fallbackFile)) {
      const fb = await db.all<{ item_id: string }>(
        `SELECT CAST(item_id AS VARCHAR) AS item_id FROM read_parquet(${lit(fallbackFile)}) ORDER BY rank`,
      );
      fallback = fb.map((r) => r.item_id);
    }
    return { lists, fallback, version: cur.version };
  });
}

export interface RunContext {
  root: string;
  /** Folder for this variant's run (emptied first). */
  workDir: string;
  datasetId: string;
  trainCsv: string;
  itemsCsv?: string;
  /** After a rejection, force-promote the challenger to score its lists (labelled "not published"). */
  forceRejected: boolean;
  log: (s: string) => void;
}

export async function runRecforge(v: Variant, c: RunContext): Promise<RecforgeOutcome> {
  fs.rmSync(c.workDir, { recursive: true, force: true });
  fs.mkdirSync(c.workDir, { recursive: true });
  const dataDir = path.join(c.workDir, 'data');
  const overlay = path.join(c.workDir, 'overlay.yaml');
  const summaryFile = path.join(c.workDir, 'summary.json');
  const logFile = path.join(c.workDir, 'pipeline.log');
  await writeOverlay(c.root, v, overlay);
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    RECFORGE_DATA_DIR: dataDir,
    // Empty: the embedded dev server, whatever a .env or the shell says; and no second overlay from the shell.
    TEMPORAL_ADDRESS: '',
    RECFORGE_CONFIG: '',
    TF_CPP_MIN_LOG_LEVEL: process.env.TF_CPP_MIN_LOG_LEVEL ?? '2',
  };
  const args = [
    '--input',
    c.trainCsv,
    ...(c.itemsCsv ? ['--items', c.itemsCsv] : []),
    '--config',
    overlay,
    '--dataset',
    c.datasetId,
    '--summary-json',
    summaryFile,
  ];
  c.log(`recforge ${v.name}: node dist/scripts/pipeline.js ${args.join(' ')} (log ${logFile})`);
  const script = path.join(c.root, 'dist', 'scripts', 'pipeline.js');
  if (!fs.existsSync(script)) throw new Error(`${script} is missing: build first (npm run build)`);
  const run = await runNode(script, args, env, logFile, c.root);
  const summary = fs.existsSync(summaryFile)
    ? (JSON.parse(fs.readFileSync(summaryFile, 'utf8')) as RecforgeOutcome['summary'])
    : undefined;
  const outputRoot = path.join(dataDir, 'output', 'recommendations', c.datasetId);
  const outcome: RecforgeOutcome = {
    variant: v,
    exitCode: run.code,
    wallSeconds: run.seconds,
    summary,
    published: false,
    listsSource: 'none',
    log: logFile,
  };
  if (summary?.published) {
    outcome.published = true;
    outcome.lists = await readCurrentLists(outputRoot);
    outcome.listsSource = 'published';
    return outcome;
  }
  if (c.forceRejected && summary?.status === 'rejected' && summary.modelVersion) {
    c.log(
      `recforge ${v.name}: rejected by its gates; force-promoting ${summary.modelVersion} to score its lists`,
    );
    const promote = await runNode(
      path.join(__dirname, 'promote.js'),
      ['--version', summary.modelVersion, '--dataset', c.datasetId, '--config', overlay],
      env,
      path.join(c.workDir, 'promote.log'),
      c.root,
    );
    outcome.forcedWallSeconds = promote.seconds;
    if (promote.code === 0) {
      outcome.lists = await readCurrentLists(outputRoot);
      outcome.listsSource = outcome.lists ? 'forced' : 'none';
    } else {
      const tail = fs.readFileSync(path.join(c.workDir, 'promote.log'), 'utf8').trim().split('\n').slice(-3);
      outcome.forcedError = `promote exited ${promote.code}: ${tail.join(' | ')}`;
    }
  }
  return outcome;
}
