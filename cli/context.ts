import * as net from 'node:net';
import * as path from 'node:path';
import type { Client } from '@temporalio/client';
import type { RecforgeConfig } from '../lib/config';
import type { DevServer } from '../lib/temporal/dev-server';

// Modules are loaded inside the functions that need them: `recforge --help` must not pay for the Temporal
// client, zod or the worker (see cli/main.ts).

/** Options every command understands (commander's program-level options). */
export interface GlobalOptions {
  config?: string[];
  json?: boolean;
  address?: string;
  namespace?: string;
}

/** A usage problem the user can fix by changing the command line: printed with the usage, exit code 2. */
export class UsageError extends Error {}

export interface CliContext {
  root: string;
  config: RecforgeConfig;
  /** The --config files, absolute, in order (passed on to workflows as their overlay list). */
  overlays: string[];
  /** Where the Temporal frontend is: --address, TEMPORAL_ADDRESS/config, else the embedded dev server's port. */
  address: string;
  json: boolean;
}

export async function loadContext(g: GlobalOptions): Promise<CliContext> {
  const dotenv = await import('dotenv');
  const { findProjectRoot, loadConfig } = await import('../lib/config');
  dotenv.config({ quiet: true });
  const root = findProjectRoot();
  const overlays = (g.config ?? []).map((f) => path.resolve(f));
  const { config } = loadConfig({ root, overlay: overlays });
  if (g.namespace) config.temporal.namespace = g.namespace;
  const address = g.address ?? (config.temporal.address || `127.0.0.1:${config.temporal.devServer.port}`);
  return { root, config, overlays, address, json: !!g.json };
}

/** A client of the configured server; fails with the address and what to do when nothing answers. */
export async function connect(ctx: CliContext): Promise<{ client: Client; close: () => Promise<void> }> {
  const { Client, Connection } = await import('@temporalio/client');
  let connection: Awaited<ReturnType<typeof Connection.connect>>;
  try {
    connection = await Connection.connect({ address: ctx.address, connectTimeout: 5000 });
  } catch (err) {
    throw new Error(
      `cannot reach Temporal at ${ctx.address} (${(err as Error).message}); start it with \`recforge dev\` or set TEMPORAL_ADDRESS`,
    );
  }
  return {
    client: new Client({ connection, namespace: ctx.config.temporal.namespace }),
    close: () => connection.close(),
  };
}

export function portOpen(port: number, host = '127.0.0.1'): Promise<boolean> {
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

/**
 * What listens on a port: a Temporal frontend (its server version) or something else. `recforge dev` says this
 * instead of silently attaching to whatever holds the port.
 */
export async function describeListener(address: string): Promise<string> {
  const { Connection } = await import('@temporalio/client');
  try {
    const conn = await Connection.connect({ address, connectTimeout: 2000 });
    try {
      const info = await conn.workflowService.getSystemInfo({});
      return `a Temporal server${info.serverVersion ? ` (version ${info.serverVersion})` : ''}`;
    } finally {
      await conn.close();
    }
  } catch {
    return 'something that does not answer as a Temporal server';
  }
}

/** The configured server (TEMPORAL_ADDRESS / config / --address), or the embedded dev server on its port. */
export async function ensureServer(
  ctx: CliContext,
  log: (s: string) => void,
  o: { port?: number; uiPort?: number } = {},
): Promise<DevServer> {
  const { dataPath } = await import('../lib/config');
  const { ensureSearchAttributes, startDevServer } = await import('../lib/temporal/dev-server');
  const c = ctx.config;
  const explicit = c.temporal.address || ctx.address !== `127.0.0.1:${c.temporal.devServer.port}`;
  if (explicit && !o.port) {
    await ensureSearchAttributes(ctx.address, c.temporal.namespace);
    return { address: ctx.address, uiUrl: '(your Temporal UI)', owned: false, stop: async () => undefined };
  }
  return startDevServer({
    root: ctx.root,
    dbFile: dataPath(c, c.temporal.devServer.dbFile),
    port: o.port ?? c.temporal.devServer.port,
    uiPort: o.uiPort ?? c.temporal.devServer.uiPort,
    namespace: c.temporal.namespace,
    log,
  });
}

/** Walks a failure chain to its root cause: the message an operator needs. */
export function rootCause(err: unknown): string {
  let e = err as { message?: string; cause?: unknown } | undefined;
  let msg = String(err);
  while (e) {
    if (e.message) msg = e.message;
    e = e.cause as typeof e;
  }
  return msg;
}
