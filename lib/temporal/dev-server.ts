import { temporalSecurity } from './security';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { Connection } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { ALL_SEARCH_ATTRIBUTES } from '../../contracts/search-attributes';
import { ensureTemporalCli } from './cli-locator';

/** The embedded Temporal: the CLI's dev server with a SQLite file, so history survives restarts. */
export interface DevServer {
  address: string;
  uiUrl: string;
  /** Whether this process started it (and so stops it). */
  owned: boolean;
  stop(): Promise<void>;
}

export interface DevServerOptions {
  root: string;
  dbFile: string;
  port: number;
  uiPort: number;
  namespace: string;
  log?: (s: string) => void;
}

function portOpen(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
    socket.setTimeout(1000, () => {
      socket.destroy();
      resolve(false);
    });
  });
}

const SA_TYPE_NAMES: Record<string, string> = {
  KEYWORD: 'Keyword',
  DOUBLE: 'Double',
  INT: 'Int',
  TEXT: 'Text',
  BOOL: 'Bool',
  DATETIME: 'Datetime',
  KEYWORD_LIST: 'KeywordList',
};

async function waitForServer(
  address: string,
  namespace: string,
  child: ChildProcess | undefined,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError = '';
  while (Date.now() < deadline) {
    if (child && child.exitCode !== null)
      throw new Error(`temporal dev server exited with code ${child.exitCode}`);
    try {
      const conn = await Connection.connect({ address, connectTimeout: 2000 });
      try {
        await conn.workflowService.describeNamespace({ namespace });
        return;
      } finally {
        await conn.close();
      }
    } catch (err) {
      lastError = (err as Error).message;
      await new Promise((r) => setTimeout(r, 300));
    }
  }
  throw new Error(`Temporal server at ${address} not ready after ${timeoutMs / 1000}s: ${lastError}`);
}

/** Registers the project's search attributes on any server (dev or production); existing ones are fine. */
export async function ensureSearchAttributes(address: string, namespace: string): Promise<void> {
  const conn = await Connection.connect({ address, ...temporalSecurity() });
  try {
    const existing = await conn.operatorService.listSearchAttributes({ namespace });
    const missing = ALL_SEARCH_ATTRIBUTES.filter((k) => !(k.name in (existing.customAttributes ?? {})));
    if (missing.length === 0) return;
    const types = temporal.api.enums.v1.IndexedValueType;
    const map: Record<string, temporal.api.enums.v1.IndexedValueType> = {
      KEYWORD: types.INDEXED_VALUE_TYPE_KEYWORD,
      DOUBLE: types.INDEXED_VALUE_TYPE_DOUBLE,
      INT: types.INDEXED_VALUE_TYPE_INT,
    };
    await conn.operatorService.addSearchAttributes({
      namespace,
      searchAttributes: Object.fromEntries(missing.map((k) => [k.name, map[k.type]])),
    });
  } finally {
    await conn.close();
  }
}

/**
 * Uses a server already listening on the port (e.g. `npm run dev` in another terminal), otherwise starts the
 * CLI's dev server as a child process with the Web UI and the project's search attributes.
 */
export async function startDevServer(o: DevServerOptions): Promise<DevServer> {
  const log = o.log ?? (() => undefined);
  const address = `127.0.0.1:${o.port}`;
  const uiUrl = `http://localhost:${o.uiPort}`;
  if (await portOpen(o.port)) {
    log(`using the Temporal server already listening on ${address}`);
    await waitForServer(address, o.namespace, undefined, 30_000);
    await ensureSearchAttributes(address, o.namespace);
    return { address, uiUrl, owned: false, stop: async () => undefined };
  }
  const cli = ensureTemporalCli(o.root, log);
  fs.mkdirSync(path.dirname(o.dbFile), { recursive: true });
  const args = [
    'server',
    'start-dev',
    '--db-filename',
    o.dbFile,
    '--ip',
    '127.0.0.1',
    '--port',
    String(o.port),
    '--ui-port',
    String(o.uiPort),
    '--namespace',
    o.namespace,
    '--log-level',
    'error',
    ...ALL_SEARCH_ATTRIBUTES.flatMap((k) => ['--search-attribute', `${k.name}=${SA_TYPE_NAMES[k.type]}`]),
  ];
  log(`starting ${cli.path} ${args.slice(0, 2).join(' ')} (db ${o.dbFile}, UI ${uiUrl})`);
  const logFile = fs.openSync(path.join(path.dirname(o.dbFile), 'dev-server.log'), 'a');
  const child = spawn(cli.path, args, { stdio: ['ignore', logFile, logFile], detached: false });
  fs.closeSync(logFile);
  try {
    await waitForServer(address, o.namespace, child, 60_000);
    await ensureSearchAttributes(address, o.namespace);
  } catch (err) {
    child.kill('SIGTERM');
    throw new Error(`${(err as Error).message} (see ${path.join(path.dirname(o.dbFile), 'dev-server.log')})`);
  }
  return {
    address,
    uiUrl,
    owned: true,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        child.once('exit', () => {
          clearTimeout(timer);
          resolve();
        });
        child.kill('SIGTERM');
      }),
  };
}
