import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { currentSignal, throwIfCancelled } from './cancellation';
import { RecforgeError } from '../contracts/errors';
import { excerpt } from './excerpt';

/**
 * DuckDB access for activities: one short-lived instance per activity call (a DuckDB file allows one writing
 * process, and an activity may be retried on another worker), with the memory and thread limits from config.
 */

/**
 * Told how far a long statement is (0..1, DuckDB's own query progress), about once a second while it runs,
 * from inside the async context of the code that started it (so an activity's heartbeat store is at hand).
 * Statements shorter than a second are never reported.
 */
export type StatementProgressListener = (fraction: number) => void;
let statementListener: StatementProgressListener | undefined;
const STATEMENT_POLL_MS = 1000;

/** Installs the listener for every Db in this process (activities/support/heartbeat.ts); undefined removes it. */
export function onStatementProgress(fn: StatementProgressListener | undefined): void {
  statementListener = fn;
}

export interface DuckdbLimits {
  memoryLimit: string;
  threads: number;
  /** Spill folder for larger-than-memory operators. */
  tempDirectory?: string;
}

/** A SQL string literal. DuckDB string literals have no backslash escapes: doubling quotes is complete. */
export function lit(value: string): string {
  if (value.includes('\0')) throw new Error('NUL byte in SQL literal');
  return `'${value.replace(/'/g, "''")}'`;
}

/** A quoted SQL identifier. */
export function ident(name: string): string {
  if (name.includes('\0')) throw new Error('NUL byte in SQL identifier');
  return `"${name.replace(/"/g, '""')}"`;
}

/** A list literal of strings, e.g. for read_csv([...]). */
export function litList(values: string[]): string {
  return `[${values.map(lit).join(', ')}]`;
}

export type Row = Record<string, unknown>;

/** DuckDB's out-of-memory error ("Out of Memory Error: could not allocate block of size …"). */
export function isOutOfMemory(err: unknown): boolean {
  return /\bOut of Memory Error\b/i.test(String((err as Error)?.message ?? err));
}

/**
 * Errors no retry can fix, typed for the activity layer: running out of memory under a fixed memory_limit
 * (the same limit, data and plan fail the same way on every attempt) and a limit DuckDB refuses outright.
 * Everything else passes through unchanged.
 */
function classify(err: unknown, limits: DuckdbLimits): unknown {
  const first = String((err as Error)?.message ?? err).split('\n')[0];
  if (isOutOfMemory(err)) {
    return new RecforgeError(
      'OutOfMemory',
      `DuckDB ran out of memory under duckdb.memoryLimit ${limits.memoryLimit} with ${limits.threads} threads ` +
        `(${excerpt(first, 200)}); raise duckdb.memoryLimit or lower duckdb.threads`,
    );
  }
  return err;
}

/** Converts DuckDB JS values to plain JSON-friendly ones (BIGINT → number when safe, DECIMAL → number). */
function plain(v: unknown): unknown {
  if (typeof v === 'bigint') {
    return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER)
      ? Number(v)
      : v.toString();
  }
  if (v instanceof Date) return v.toISOString();
  if (Array.isArray(v)) return v.map(plain);
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    if ('toDouble' in o && typeof o.toDouble === 'function') return (o.toDouble as () => number)();
    return Object.fromEntries(Object.entries(o).map(([k, x]) => [k, plain(x)]));
  }
  return v;
}

export class Db {
  private readonly signal = currentSignal();
  private readonly stopOnCancel = () => this.conn.interrupt();

  private constructor(
    private readonly instance: DuckDBInstance,
    readonly conn: DuckDBConnection,
    private readonly limits: DuckdbLimits,
  ) {
    // A cancelled activity interrupts the statement in flight (a COPY may run for minutes) instead of
    // finishing work nobody wants; the next statement then refuses to start.
    this.signal?.addEventListener('abort', this.stopOnCancel, { once: true });
  }

  /** Runs one statement; an interruption caused by cancellation surfaces as the cancellation itself. */
  private async statement<T>(fn: () => Promise<T>): Promise<T> {
    throwIfCancelled();
    // A single COPY or GROUP BY can run for minutes: its progress goes to the listener (heartbeats).
    const listener = statementListener;
    const timer = listener
      ? setInterval(() => {
          const p = this.conn.progress;
          if (p && Number.isFinite(p.percentage) && p.percentage >= 0)
            listener(Math.min(1, p.percentage / 100));
        }, STATEMENT_POLL_MS)
      : undefined;
    try {
      return await fn();
    } catch (err) {
      throwIfCancelled();
      throw classify(err, this.limits);
    } finally {
      if (timer) clearInterval(timer);
    }
  }

  static async open(file: string, limits: DuckdbLimits): Promise<Db> {
    if (file !== ':memory:') fs.mkdirSync(path.dirname(file), { recursive: true });
    let instance: DuckDBInstance;
    try {
      instance = await DuckDBInstance.create(file, {
        memory_limit: limits.memoryLimit,
        threads: String(limits.threads),
        ...(limits.tempDirectory ? { temp_directory: limits.tempDirectory } : {}),
      });
    } catch (err) {
      const first = String((err as Error)?.message ?? err).split('\n')[0];
      // A setting DuckDB refuses fails every attempt the same way (a locked or missing file does not).
      if (/Failed to set config|Invalid Input Error|Parser Error|Failed to parse/i.test(first)) {
        throw new RecforgeError(
          'ConfigError',
          `duckdb.memoryLimit ${limits.memoryLimit} / duckdb.threads ${limits.threads}: ${excerpt(first, 200)}`,
        );
      }
      throw classify(err, limits);
    }
    const conn = await instance.connect();
    // Query progress (read by statement(), never printed): DuckDB tracks it only with the progress bar on.
    await conn.run('SET enable_progress_bar = true; SET enable_progress_bar_print = false');
    return new Db(instance, conn, limits);
  }

  async run(sql: string): Promise<void> {
    if (process.env.RECFORGE_SQL_TIMING) return this.runTimed(sql);
    await this.statement(() => this.conn.run(sql));
  }

  /** RECFORGE_SQL_TIMING=1: each statement on its own, with its wall time on stderr (for finding hot spots). */
  private async runTimed(sql: string): Promise<void> {
    const extracted = await this.conn.extractStatements(sql).catch(() => undefined);
    if (!extracted) return void (await this.statement(() => this.conn.run(sql)));
    for (let i = 0; i < extracted.count; i++) {
      const t0 = process.hrtime.bigint();
      await this.statement(async () => (await extracted.prepare(i)).run());
      logTiming(t0, sqlHead(sql, i));
    }
  }

  async all<T extends Row = Row>(sql: string): Promise<T[]> {
    const t0 = process.hrtime.bigint();
    const reader = await this.statement(() => this.conn.runAndReadAll(sql));
    if (process.env.RECFORGE_SQL_TIMING) logTiming(t0, sqlHead(sql, 0));
    return reader.getRowObjectsJS().map((r) => plain(r) as T);
  }

  /**
   * A query's result streamed chunk by chunk (DuckDB's vectors of ~2,048 rows) into `onChunk`, each chunk's values
   * by column. Nothing holds the whole result: DuckDB can spill the statement's sort or aggregate, JavaScript holds
   * one chunk, and the event loop gets a turn between chunks (a 16M-row result read in one piece blocked it past
   * the activity's heartbeat timeout).
   */
  async streamColumns(
    sql: string,
    onChunk: (columns: unknown[][], rows: number) => void | Promise<void>,
  ): Promise<void> {
    const t0 = process.hrtime.bigint();
    const result = await this.statement(() => this.conn.stream(sql));
    await this.statement(async () => {
      for (;;) {
        throwIfCancelled();
        const chunk = await result.fetchChunk();
        if (!chunk || chunk.rowCount === 0) break;
        await onChunk(chunk.getColumns() as unknown[][], chunk.rowCount);
      }
    });
    if (process.env.RECFORGE_SQL_TIMING) logTiming(t0, sqlHead(sql, 0));
  }

  /**
   * A query's result by column (name -> values), without building an object per row: reading a few million
   * (user, item) pairs into typed arrays this way takes a fraction of the row-object path's time and memory.
   */
  async columns(sql: string): Promise<Record<string, unknown[]>> {
    const reader = await this.statement(() => this.conn.runAndReadAll(sql));
    return reader.getColumnsObjectJS() as Record<string, unknown[]>;
  }

  async one<T extends Row = Row>(sql: string): Promise<T> {
    const rows = await this.all<T>(sql);
    if (rows.length !== 1) throw new Error(`expected one row, got ${rows.length}: ${sql.slice(0, 200)}`);
    return rows[0];
  }

  async scalar<T = unknown>(sql: string): Promise<T> {
    const row = await this.one(sql);
    return Object.values(row)[0] as T;
  }

  close(): void {
    this.signal?.removeEventListener('abort', this.stopOnCancel);
    this.conn.closeSync();
    this.instance.closeSync();
  }
}

/**
 * RECFORGE_SQL_TIMING's log line for work that started at `t0` (process.hrtime.bigint()), when it took 50 ms or
 * more: `[sql <seconds> s] <what>` on stderr, the format the benchmarks collect.
 */
export function logTiming(t0: bigint, what: string): void {
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  if (s >= 0.05) console.error(`[sql ${s.toFixed(2)} s] ${what}`);
}

/** The i-th statement's first words, for timing logs (statements split at top-level semicolons, roughly). */
function sqlHead(sql: string, i: number): string {
  const parts = sql
    .replace(/--[^\n]*/g, '')
    .split(/;\s*(?=(?:CREATE|DROP|INSERT|DELETE|COPY|SELECT|SET|UPDATE|ALTER|WITH)\b)/)
    .filter((p) => p.trim() !== '');
  return (parts[i] ?? sql)
    .replace(/--[^\n]*/g, '')
    .replace(/\s+/g, ' ')
    .trim()
    .slice(0, 110);
}

/** Drops the non-temporary relation `name`, table or view (DuckDB's DROP refuses the wrong kind, IF EXISTS or not). */
export async function dropRelation(db: Db, name: string): Promise<void> {
  const found = await db.all<{ kind: string }>(`
    SELECT 'VIEW' AS kind FROM duckdb_views() WHERE NOT temporary AND view_name = ${lit(name)}
    UNION ALL
    SELECT 'TABLE' FROM duckdb_tables() WHERE NOT temporary AND table_name = ${lit(name)}`);
  for (const { kind } of found) await db.run(`DROP ${kind === 'VIEW' ? 'VIEW' : 'TABLE'} ${ident(name)}`);
}

/** Opens, runs `fn`, and always closes, so a failed activity never keeps the file locked. */
export async function withDb<T>(file: string, limits: DuckdbLimits, fn: (db: Db) => Promise<T>): Promise<T> {
  const db = await Db.open(file, limits);
  try {
    return await fn(db);
  } finally {
    db.close();
  }
}
