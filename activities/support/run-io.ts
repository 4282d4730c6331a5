import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { withDb, type Db, type DuckdbLimits } from '../../lib/duckdb';
import { findProjectRoot } from '../../lib/config';
import { openStorage, readDocument, S3Storage, type Storage } from '../../lib/storage';
import { requireHttpfs } from '../../lib/storage/httpfs';
import type { RunRef } from '../../contracts/run';
import { scratchRoot } from './scratch';

/**
 * How an activity reads and writes its run's artifacts: by storage key under the run's folder (`runs/<ds>/<id>`),
 * on whatever storage the run was planned on (a local folder, or a bucket every worker sees).
 *
 * Activities work on local files: `local(key)` is where a key lives on this worker — the storage folder itself
 * for local storage; for a bucket, a mirror under this worker's data folder that `fetch` fills from the bucket
 * and `push` uploads from. So the same stage code runs on one machine or many, and nothing but storage is
 * shared. The activity's DuckDB is a scratch database of its own (in memory, spilling to a worker-local folder):
 * stages share only the artifacts they pass to each other, never a database.
 */
export class RunIO {
  readonly store: Storage;
  /** Local folder that mirrors the storage root on this worker (the root itself for local storage). */
  readonly mirror: string;

  constructor(
    readonly run: RunRef,
    /** This worker's data folder (config.dataDir): where a bucket's mirror lives. */
    dataDir: string,
  ) {
    this.store = openStorage(run.storage);
    this.mirror =
      this.store.kind === 'local'
        ? this.store.root
        : path.join(dataDir, 'mirror', run.storage.replace(/^s3:\/\//, '').replace(/[^A-Za-z0-9._/-]/g, '_'));
  }

  get isLocal(): boolean {
    return this.store.kind === 'local';
  }

  /** Where a key lives on this worker. */
  local(key: string): string {
    return path.join(this.mirror, ...key.split('/'));
  }

  /** The run's folder on this worker. */
  get runDir(): string {
    return this.local(this.run.runKey);
  }

  /**
   * Makes the given keys (files, or folders given as prefixes ending in '/') present locally. A no-op on local
   * storage; on a bucket, downloads what the mirror lacks (artifacts are immutable, so a present file is current).
   */
  async fetch(keys: readonly string[]): Promise<void> {
    if (this.isLocal) return;
    for (const key of keys) {
      if (key.endsWith('/')) {
        const prefix = key.slice(0, -1);
        for (const k of await this.store.list(prefix)) await this.fetchOne(k);
      } else await this.fetchOne(key);
    }
  }

  private async fetchOne(key: string): Promise<void> {
    const file = this.local(key);
    if (fs.existsSync(file)) return;
    const obj = await this.store.get(key);
    if (!obj) throw new Error(`${this.store.uri(key)}: missing from storage`);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const tmp = `${file}.part-${process.pid}`;
    fs.writeFileSync(tmp, obj.body);
    fs.renameSync(tmp, file);
  }

  /** Uploads local files (or folders, as prefixes ending in '/') to storage. A no-op on local storage. */
  async push(keys: readonly string[]): Promise<void> {
    if (this.isLocal) return;
    for (const key of keys) {
      if (key.endsWith('/')) await this.store.putDir(this.local(key.slice(0, -1)), key.slice(0, -1));
      else await this.store.put(key, fs.readFileSync(this.local(key)));
    }
  }

  /** Storage key of a file inside the run's folder. */
  key(rel: string): string {
    return `${this.run.runKey}/${rel}`;
  }

  /**
   * A worker-local folder for this activity's temporary files (DuckDB spill, model files before upload). Its
   * user gives it back with releaseScratch: a worker serves runs for months, and folders nobody removes pile up
   * in the OS temp folder (the reliability soak found one per activity per run). What a killed worker left is
   * removed by sweepStaleScratch when a worker starts.
   */
  scratch(name: string): string {
    const dir = path.join(scratchRoot(), this.run.runId, name);
    // A concurrent releaseScratch may remove the run's folder between mkdir's steps: try again.
    for (let attempt = 0; ; attempt++) {
      try {
        fs.mkdirSync(dir, { recursive: true });
        return dir;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || attempt >= 5) throw err;
      }
    }
  }

  /** Removes a scratch folder, and the run's scratch folder once nothing else of the run's is in it. */
  releaseScratch(dir: string): void {
    fs.rmSync(dir, { recursive: true, force: true });
    try {
      fs.rmdirSync(path.dirname(dir));
    } catch {
      // Not empty (another activity of the run is working here) or already gone.
    }
  }

  async putJson(key: string, value: unknown): Promise<void> {
    await this.store.put(key, JSON.stringify(value, null, 2) + '\n');
  }

  async getJson<T>(key: string): Promise<T | null> {
    return (await readDocument<T>(this.store, key))?.value ?? null;
  }

  /** What DuckDB writes to reach a key directly in storage (a path, or an s3:// URL through httpfs). */
  storageUri(key: string): string {
    return this.store.uri(key);
  }

  /**
   * A scratch DuckDB for one activity: in memory, spilling to a worker-local folder under the run's limits. It
   * reads and writes the mirror's local files (see fetch/push) and, on a bucket, the bucket itself through
   * DuckDB's httpfs extension (installed by setup) with the environment's credentials.
   */
  async withDb<T>(name: string, fn: (db: Db) => Promise<T>): Promise<T> {
    // One spill folder per database (an attempt still running after its heartbeat timed out and the retry that
    // replaced it may both be here), removed once the database is closed.
    const tmp = this.scratch(`${name}-${process.pid}-${randomBytes(4).toString('hex')}-duckdb-tmp`);
    const limits: DuckdbLimits = { ...this.run.duckdb, tempDirectory: tmp };
    try {
      return await withDb(':memory:', limits, async (db) => {
        await db.run(`SET TimeZone = 'UTC'`);
        if (this.store instanceof S3Storage) {
          await db.run(`LOAD '${requireHttpfs(findProjectRoot()).replace(/'/g, "''")}'`);
          await db.run(this.store.duckdbSecretSql());
        }
        return fn(db);
      });
    } finally {
      this.releaseScratch(tmp);
    }
  }
}
