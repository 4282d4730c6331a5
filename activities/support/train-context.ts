import * as path from 'node:path';
import type { Db } from '../../lib/duckdb';
import type { RecforgeConfig } from '../../lib/config';
import type { PrivacyReservation } from '../../contracts/privacy';
import type { CleanArtifacts, RawArtifacts, StageRun } from '../../contracts/stages';
import { openCleanViews, openRawItemsView } from './artifacts';
import { RunIO } from './run-io';

/**
 * What a training activity works with: the run's settings, its local folder (models are written under
 * `models/` there and uploaded), and a scratch DuckDB that sees the clean events, the split, the id maps, the
 * bounded inputs and the item metadata as views over their artifacts.
 */
export class TrainContext {
  readonly io: RunIO;
  readonly config: RecforgeConfig;
  readonly privacy: PrivacyReservation | null;
  readonly datasetId: string;
  readonly runId: string;
  readonly modelVersion: string;
  readonly startedAt: string;
  /** Whether the run has an item metadata file (a public catalogue, for the DP releases). */
  readonly hasItemsFile: boolean;

  constructor(
    run: StageRun,
    readonly clean: CleanArtifacts,
    readonly raw: RawArtifacts,
    dataDir: string,
  ) {
    this.io = new RunIO(run.plan.run, dataDir);
    this.config = run.plan.config;
    this.privacy = run.privacy;
    this.datasetId = run.plan.run.datasetId;
    this.runId = run.plan.run.runId;
    this.modelVersion = run.plan.run.modelVersion;
    this.startedAt = run.plan.run.startedAt;
    this.hasItemsFile = run.input.itemsFile !== null;
  }

  /** The run's folder on this worker. */
  get runDir(): string {
    return this.io.runDir;
  }

  /** A local file under the run's folder as its storage key. */
  key(file: string): string {
    return `${this.io.run.runKey}/${path.relative(this.io.runDir, file).split(path.sep).join('/')}`;
  }

  /** Where a key is on this worker (fetched from storage first when it is a bucket). */
  async local(key: string): Promise<string> {
    await this.io.fetch([key]);
    return this.io.local(key);
  }

  /** A stored folder (e.g. a champion's saved model) on this worker. */
  async localDir(key: string): Promise<string> {
    await this.io.fetch([`${key}/`]);
    return this.io.local(key);
  }

  /**
   * Fetches whichever of these keys storage holds (a released DP statistic an earlier attempt of this activity
   * wrote, perhaps on another worker): noise is drawn once per run, so a retry must find what was released.
   */
  async recall(keys: readonly string[]): Promise<void> {
    for (const k of keys) if (await this.io.store.exists(k)) await this.io.fetch([k]);
  }

  /** Uploads files the activity wrote (a no-op on local storage). */
  async persist(keys: readonly string[]): Promise<void> {
    await this.io.push(keys);
  }

  async withViews<T>(name: string, fn: (db: Db) => Promise<T>): Promise<T> {
    return this.io.withDb(name, async (db) => {
      await openCleanViews(db, this.io, this.clean);
      await openRawItemsView(db, this.io, this.raw);
      return fn(db);
    });
  }
}
