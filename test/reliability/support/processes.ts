import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { requireTemporalCli } from '../../../lib/temporal/cli-locator';
import { ALL_SEARCH_ATTRIBUTES } from '../../../contracts/search-attributes';
import { ROOT } from '../../helpers/env';

/**
 * Real processes for the pipeline-level kills: a Temporal dev server on a SQLite file (so a SIGKILLed server
 * comes back with its history, as the embedded server does) and worker processes (dist/worker/main.js, the
 * container image's entry point) that lib/faults.ts can SIGKILL at a named point.
 */

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

const SA_TYPE: Record<string, string> = { KEYWORD: 'Keyword', DOUBLE: 'Double', INT: 'Int' };

export function exited(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  return new Promise((resolve) =>
    child.exitCode !== null || child.signalCode !== null
      ? resolve({ code: child.exitCode, signal: child.signalCode })
      : child.once('exit', (code, signal) => resolve({ code, signal })),
  );
}

export class TemporalProcess {
  private child: ChildProcess | undefined;
  readonly address: string;
  private connection: Connection | undefined;
  client: Client | undefined;
  restarts = 0;

  constructor(
    readonly dbFile: string,
    readonly port: number,
  ) {
    this.address = `127.0.0.1:${port}`;
  }

  async start(): Promise<void> {
    fs.mkdirSync(path.dirname(this.dbFile), { recursive: true });
    const log = fs.openSync(`${this.dbFile}.log`, 'a');
    this.child = spawn(
      requireTemporalCli(ROOT).path,
      [
        'server',
        'start-dev',
        '--db-filename',
        this.dbFile,
        '--ip',
        '127.0.0.1',
        '--port',
        String(this.port),
        '--headless',
        '--log-level',
        'error',
        ...ALL_SEARCH_ATTRIBUTES.flatMap((k) => ['--search-attribute', `${k.name}=${SA_TYPE[k.type]}`]),
      ],
      { stdio: ['ignore', log, log] },
    );
    fs.closeSync(log);
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (this.child.exitCode !== null) throw new Error(`temporal exited (${this.dbFile}.log)`);
      try {
        const conn = await Connection.connect({ address: this.address, connectTimeout: 2000 });
        await conn.workflowService.describeNamespace({ namespace: 'default' });
        await conn.close();
        break;
      } catch (err) {
        if (Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 300));
      }
    }
    if (!this.connection) {
      this.connection = await Connection.connect({ address: this.address });
      this.client = new Client({ connection: this.connection });
    }
  }

  /** SIGKILL (no shutdown of any kind), then the same server on the same file and port. */
  async crashAndRestart(downMs = 1000): Promise<void> {
    this.child!.kill('SIGKILL');
    await exited(this.child!);
    await new Promise((r) => setTimeout(r, downMs));
    await this.start();
    this.restarts++;
  }

  async stop(): Promise<void> {
    await this.connection?.close().catch(() => undefined);
    if (this.child && this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill('SIGTERM');
      const timer = setTimeout(() => this.child!.kill('SIGKILL'), 10_000);
      await exited(this.child);
      clearTimeout(timer);
    }
  }
}

export interface WorkerProcess {
  child: ChildProcess;
  log: string[];
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** `node dist/worker/main.js` against `address`, with extra environment (RECFORGE_FAULT, RECFORGE_FAULT_TRACE). */
export function startWorker(
  address: string,
  dataDir: string,
  env: Record<string, string> = {},
): WorkerProcess {
  const child = spawn(process.execPath, [path.join(ROOT, 'dist', 'worker', 'main.js')], {
    env: {
      ...process.env,
      TEMPORAL_ADDRESS: address,
      RECFORGE_DATA_DIR: dataDir,
      RECFORGE_ALLOW_PROTECTED_OVERRIDES: '1',
      RECFORGE_LOG_LEVEL: 'warn',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const log: string[] = [];
  // Kept for failure messages only.
  child.stdout!.on('data', (d) => log.push(String(d)));
  child.stderr!.on('data', (d) => log.push(String(d)));
  return { child, log, exit: exited(child) };
}

export async function stopWorker(w: WorkerProcess): Promise<void> {
  if (w.child.exitCode === null && w.child.signalCode === null) {
    w.child.kill('SIGTERM');
    const timer = setTimeout(() => w.child.kill('SIGKILL'), 40_000);
    await w.exit;
    clearTimeout(timer);
  }
}
