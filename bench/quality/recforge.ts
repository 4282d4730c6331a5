import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { deepMerge } from '../../lib/config';
import { lit, withDb } from '../../lib/duckdb';

/**
 * recforge end to end, as a user runs it: `recforge run --input train.csv [--items items.csv] --dataset <id>
 * --summary-json <f>` (the variant's overlay as RECFORGE_CONFIG) in a fresh data folder (RECFORGE_DATA_DIR), so no run
 * warm-starts from another; then the published lists are read through `_current.json`.
 *
 * The overlay actually passed is the variant's overlay (e.g. configs/movielens.yaml), plus the variant's own
 * `+key=value` settings, merged with one bench setting: the embedded Temporal dev server's ports, set to free ones. The default 7233 is shared by every
 * recforge on the machine, and a pipeline finding a server there uses it, so its activities could be picked up by
 * another checkout's workers. Nothing else of the configuration is touched.
 */

export interface Variant {
  name: string;
  /** Overlay file, relative to the project root; none = configs/default.yaml alone. */
  overlay?: string;
  /** Single keys set on top of the overlay, by dotted path (e.g. `privacy.enabled: false`). */
  set?: Record<string, unknown>;
}

/** `{ 'a.b': 1 }` → `{ a: { b: 1 } }`. */
export function nestKeys(set: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(set)) {
    const parts = key.split('.');
    let at = out;
    for (const p of parts.slice(0, -1)) {
      if (typeof at[p] !== 'object' || at[p] === null) at[p] = {};
      at = at[p] as Record<string, unknown>;
    }
    at[parts[parts.length - 1]] = value;
  }
  return out;
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

function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/**
 * A port free right now, below Linux's ephemeral range (32768-60999): a port the kernel hands out for bind(0)
 * can be taken a moment later as the local end of some outgoing connection, which made a dev server fail to bind
 * its UI port (seen on this shared machine). Collisions remain possible, so callers retry on "address already
 * in use".
 */
export async function freePort(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const port = 20000 + Math.floor(Math.random() * 12000);
    if (await canBind(port)) return port;
  }
  throw new Error('no free TCP port found in 20000-31999 on 127.0.0.1');
}

/** The variant's overlay with the bench's Temporal ports merged in, written where the run can read it. */
export async function writeOverlay(root: string, v: Variant, file: string): Promise<void> {
  const base = v.overlay
    ? ((parseYaml(fs.readFileSync(path.resolve(root, v.overlay), 'utf8')) ?? {}) as Record<string, unknown>)
    : {};
  const port = await freePort();
  let uiPort = await freePort();
  while (uiPort === port) uiPort = await freePort();
  const merged = deepMerge(deepMerge(base, nestKeys(v.set ?? {})), {
    temporal: { devServer: { port, uiPort } },
  });
  const sets = Object.entries(v.set ?? {}).map(([k, x]) => ` + ${k}=${JSON.stringify(x)}`);
  fs.writeFileSync(
    file,
    `# Written by bench/quality: ${v.overlay ?? 'configs/default.yaml alone'}${sets.join('')} + free Temporal ports.\n` +
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

/**
 * Runs `start` again (at most twice more) with new ports when the embedded Temporal server could not bind one:
 * the failure is then the machine's, not recforge's, and the server failed before any workflow ran.
 */
async function withPortRetry(
  c: RunContext,
  v: Variant,
  overlay: string,
  dataDir: string,
  start: () => Promise<{ code: number | null; seconds: number }>,
): Promise<{ code: number | null; seconds: number }> {
  const serverLog = path.join(dataDir, 'temporal', 'dev-server.log');
  for (let attempt = 0; ; attempt++) {
    const before = fs.existsSync(serverLog) ? fs.statSync(serverLog).size : 0;
    const r = await start();
    if (r.code === 0 || attempt >= 2 || !fs.existsSync(serverLog)) return r;
    const fresh = fs.readFileSync(serverLog, 'utf8').slice(before);
    if (!/address already in use/.test(fresh)) return r;
    c.log(`recforge ${v.name}: the Temporal dev server could not bind its port; retrying with new ports`);
    await writeOverlay(c.root, v, overlay);
  }
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
    // Empty: the embedded dev server, whatever a .env or the shell says. The variant's settings and this run's
    // ports are the worker's own config (RECFORGE_CONFIG), as an operator sets a site's config: a run's
    // --config may not change protected keys such as the dev server's ports.
    TEMPORAL_ADDRESS: '',
    RECFORGE_CONFIG: overlay,
    TF_CPP_MIN_LOG_LEVEL: process.env.TF_CPP_MIN_LOG_LEVEL ?? '2',
  };
  const args = [
    '--input',
    c.trainCsv,
    ...(c.itemsCsv ? ['--items', c.itemsCsv] : []),
    '--dataset',
    c.datasetId,
    '--summary-json',
    summaryFile,
  ];
  c.log(`recforge ${v.name}: recforge run ${args.join(' ')} (RECFORGE_CONFIG=${overlay}; log ${logFile})`);
  const script = path.join(c.root, 'bin', 'recforge.js');
  const run = await withPortRetry(c, v, overlay, dataDir, () =>
    runNode(script, ['run', ...args], env, logFile, c.root),
  );
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
    // Fresh ports: the run's may have been taken since its server stopped.
    await writeOverlay(c.root, v, overlay);
    const promote = await withPortRetry(c, v, overlay, dataDir, () =>
      runNode(
        path.join(__dirname, 'promote.js'),
        ['--version', summary.modelVersion!, '--dataset', c.datasetId],
        env,
        path.join(c.workDir, 'promote.log'),
        c.root,
      ),
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
