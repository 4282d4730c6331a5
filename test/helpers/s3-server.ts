import { spawn, type ChildProcess } from 'node:child_process';
import * as net from 'node:net';
import * as path from 'node:path';
import { venvPython } from '../../lib/temporal/cli-locator';

const root = path.join(__dirname, '..', '..');

export interface S3TestServer {
  endpoint: string;
  /** The environment an S3Storage (and DuckDB's secret) needs to reach this server. */
  env: NodeJS.ProcessEnv;
  /** Resolves with the path of the next held request (see `delays`) whose path matches `pattern`. */
  nextDelayed(pattern: RegExp): Promise<string>;
  stop(): Promise<void>;
}

/** Requests the server holds before serving them (crash tests kill a client while its upload is in flight). */
export interface S3Delay {
  method: 'GET' | 'PUT' | 'DELETE' | 'HEAD' | 'POST';
  /** Regular expression (Python syntax) searched in the request path ('/bucket/key'). */
  pattern: string;
  ms: number;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

/**
 * Starts the project's local S3 API server (scripts/s3-test-server.py: moto, installed into .tools/venv by
 * `npm run setup`) on a free loopback port. Never downloads anything: a missing venv is a clear error.
 */
export async function startS3Server(o: { delays?: S3Delay[] } = {}): Promise<S3TestServer> {
  const python = venvPython(root);
  if (!python)
    throw new Error('.tools/venv is missing: run `npm run setup` (it installs the S3 test server)');
  const port = await freePort();
  const child: ChildProcess = spawn(python, [path.join(root, 'scripts', 's3-test-server.py'), String(port)], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, S3_TEST_DELAYS: JSON.stringify(o.delays ?? []) },
  });
  const waiters: { pattern: RegExp; resolve: (p: string) => void }[] = [];
  let pending = '';
  child.stdout!.on('data', (d) => {
    pending += String(d);
    const lines = pending.split('\n');
    pending = lines.pop()!;
    for (const line of lines) {
      const m = /^delay \S+ (\S+)/.exec(line);
      if (!m) continue;
      for (const w of waiters.filter((x) => x.pattern.test(m[1]))) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(m[1]);
      }
    }
  });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr = (stderr + String(d)).slice(-4000)));
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`S3 test server did not start: ${stderr}`)), 30_000);
    child.stdout!.on('data', (d) => {
      if (String(d).includes('ready')) {
        clearTimeout(t);
        resolve();
      }
    });
    child.once('exit', (code) => {
      clearTimeout(t);
      reject(new Error(`S3 test server exited (${code}): ${stderr}`));
    });
  });
  const endpoint = `http://127.0.0.1:${port}`;
  return {
    endpoint,
    env: {
      ...process.env,
      AWS_ENDPOINT_URL_S3: endpoint,
      AWS_ACCESS_KEY_ID: 'recforge-test',
      AWS_SECRET_ACCESS_KEY: 'recforge-test-secret',
      AWS_REGION: 'us-east-1',
    },
    nextDelayed: (pattern) => new Promise((resolve) => waiters.push({ pattern, resolve })),
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

/** Creates a bucket on the test server (buckets are the one thing storage never creates itself). */
export async function createBucket(server: S3TestServer, bucket: string): Promise<void> {
  const res = await fetch(`${server.endpoint}/${bucket}`, { method: 'PUT' });
  if (!res.ok && res.status !== 409) throw new Error(`create bucket ${bucket}: HTTP ${res.status}`);
}

/** The AWS variables of a test server, to hand to a worker process or to set in this one. */
export function awsEnv(server: S3TestServer): Record<string, string> {
  const keys = ['AWS_ENDPOINT_URL_S3', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_REGION'] as const;
  return Object.fromEntries(keys.map((k) => [k, server.env[k]!]));
}

/**
 * Runs SQL in a fresh DuckDB that reads the bucket through httpfs (the extension setup installs, and the
 * secret S3Storage gives DuckDB): tests read what the pipeline published with an engine of their own.
 */
export async function queryBucket(
  server: S3TestServer,
  bucketRoot: string,
  sql: string,
): Promise<Record<string, unknown>[]> {
  const { DuckDBInstance } = await import('@duckdb/node-api');
  const { S3Storage } = await import('../../lib/storage');
  const { requireHttpfs } = await import('../../lib/storage/httpfs');
  const db = await DuckDBInstance.create(':memory:');
  const c = await db.connect();
  try {
    await c.run(`LOAD '${requireHttpfs(root)}'`);
    await c.run(new S3Storage(bucketRoot, server.env).duckdbSecretSql(server.env));
    return (await c.runAndReadAll(sql)).getRowObjectsJson() as Record<string, unknown>[];
  } finally {
    c.closeSync();
    db.closeSync();
  }
}

/** What test/helpers/read_published.py (pyarrow, outside recforge) found in a published output folder. */
export interface PyarrowReading {
  version: string;
  manifestVersion: string;
  checked: { path: string; bytesOk: boolean; sha256Ok: boolean }[];
  listed: string[];
  rows: number;
  users: number;
  columns: string[];
  minRowsPerUser: number;
  maxRowsPerUser: number;
  minRank: number;
  maxRank: number;
}

/** Reads `s3://…/output/recommendations/<ds>` with pyarrow, following `_current.json` (the reader contract). */
export async function readWithPyarrow(server: S3TestServer, outputUri: string): Promise<PyarrowReading> {
  const { execFile } = await import('node:child_process');
  const { requireTestVenv } = await import('../../scripts/test-venv');
  const python = requireTestVenv(root);
  const out = await new Promise<string>((resolve, reject) =>
    execFile(
      python,
      [path.join(root, 'test', 'helpers', 'read_published.py'), outputUri],
      { env: { ...process.env, ...awsEnv(server) }, maxBuffer: 16 << 20 },
      (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout)),
    ),
  );
  return JSON.parse(out) as PyarrowReading;
}
