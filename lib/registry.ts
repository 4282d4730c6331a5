import * as fs from 'node:fs';
import * as path from 'node:path';
import { readJsonIfExists, writeJsonAtomic, fsyncDir } from './fs-atomic';
import {
  replaceLockIfUnchanged,
  lockToken,
  readLockSnapshot,
  releaseLockIfOwned,
  tryCreateLock,
} from './file-lock';

/**
 * The model registry of a dataset: every model version with its lineage, and the `champion` / `previous`
 * aliases (as MLflow's). Files only, so it lives on the shared data volume beside the runs:
 *   <registry>/<dataset>/models/<version>/{model.json, *.parquet}
 *   <registry>/<dataset>/aliases.json          (moved atomically, under an exclusive lock)
 */
export type ModelStatus = 'candidate' | 'champion' | 'retired' | 'rejected';

/** The differential-privacy spend of the run that produced a model (also in its published manifest). */
export interface ModelPrivacy {
  epsilon: number;
  delta: number;
  rho: number | null;
  mechanism: string;
  window: string;
  params: Record<string, number | string | boolean>;
}

export interface ModelRecord {
  version: string;
  datasetId: string;
  /** Model family, e.g. itemitem or mf. */
  model: string;
  status: ModelStatus;
  createdAt: string;
  runId: string;
  workflowId: string;
  /** The champion it was evaluated against / warm-started from. */
  parentVersion: string | null;
  configHash: string;
  codeVersion: string;
  backend: string;
  data: { files: { path: string; sha256: string; rows: number }[]; rows: number; profilePath: string };
  metrics: Record<string, Record<string, number>>;
  gate: { decision: 'promote' | 'reject'; checks: unknown[] } | null;
  privacy: ModelPrivacy | null;
  /** Artifact files inside the version folder: `eval` (trained on the training split) and `full` (all data). */
  artifacts: { eval: string; full: string; mostPopEval: string; mostPopFull: string };
  /** Saved learned-model folders inside the version folder (weights + metadata), for warm starts. */
  modelDirs?: { eval: string; full: string };
  /** Where this version's recommendations were published (kept while the output retains that version). */
  publishedVersionDir: string | null;
  /** The run's DuckDB file, to republish this version if its output was pruned. */
  runDbPath: string;
}

export interface AliasMove {
  at: string;
  champion: string | null;
  previous: string | null;
  reason: string;
  by: string;
}

export interface Aliases {
  champion: string | null;
  previous: string | null;
  updatedAt: string | null;
  history: AliasMove[];
}

export class RegistryError extends Error {
  constructor(
    message: string,
    readonly code: 'NotFound' | 'Conflict' | 'Locked' | 'Invalid',
  ) {
    super(message);
    this.name = 'RegistryError';
  }
}

export class Registry {
  constructor(readonly dir: string) {}

  versionDir(version: string): string {
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(version))
      throw new RegistryError(`invalid model version '${version}'`, 'Invalid');
    return path.join(this.dir, 'models', version);
  }

  aliases(): Aliases {
    return (
      readJsonIfExists<Aliases>(path.join(this.dir, 'aliases.json')) ?? {
        champion: null,
        previous: null,
        updatedAt: null,
        history: [],
      }
    );
  }

  get(version: string): ModelRecord | undefined {
    return readJsonIfExists<ModelRecord>(path.join(this.versionDir(version), 'model.json'));
  }

  require(version: string): ModelRecord {
    const r = this.get(version);
    if (!r)
      throw new RegistryError(`model version '${version}' is not in the registry ${this.dir}`, 'NotFound');
    return r;
  }

  list(): ModelRecord[] {
    const dir = path.join(this.dir, 'models');
    if (!fs.existsSync(dir)) return [];
    return fs
      .readdirSync(dir)
      .map((v) => readJsonIfExists<ModelRecord>(path.join(dir, v, 'model.json')))
      .filter((r): r is ModelRecord => !!r)
      .sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }

  /**
   * Registers a version: copies its artifact files into the version folder, then writes model.json last, so a
   * crash leaves no half-registered version. Idempotent for the same run.
   */
  register(
    record: Omit<ModelRecord, 'artifacts' | 'modelDirs'>,
    files: ModelRecord['artifacts'],
    dirs?: { eval: string; full: string },
  ): ModelRecord {
    const dir = this.versionDir(record.version);
    const existing = this.get(record.version);
    if (existing) {
      if (existing.runId !== record.runId) {
        throw new RegistryError(
          `version ${record.version} is already registered by run ${existing.runId}`,
          'Conflict',
        );
      }
      return existing;
    }
    fs.mkdirSync(dir, { recursive: true });
    const artifacts = {} as ModelRecord['artifacts'];
    for (const [key, src] of Object.entries(files) as [keyof ModelRecord['artifacts'], string][]) {
      const name = `${key}-${path.basename(src)}`;
      fs.copyFileSync(src, path.join(dir, name));
      artifacts[key] = name;
    }
    let modelDirs: ModelRecord['modelDirs'];
    if (dirs) {
      modelDirs = { eval: 'eval.model', full: 'full.model' };
      fs.cpSync(dirs.eval, path.join(dir, modelDirs.eval), { recursive: true });
      fs.cpSync(dirs.full, path.join(dir, modelDirs.full), { recursive: true });
    }
    const full: ModelRecord = { ...record, artifacts, ...(modelDirs ? { modelDirs } : {}) };
    writeJsonAtomic(path.join(dir, 'model.json'), full);
    fsyncDir(dir);
    return full;
  }

  update(version: string, patch: Partial<ModelRecord>): ModelRecord {
    const r = { ...this.require(version), ...patch };
    writeJsonAtomic(path.join(this.versionDir(version), 'model.json'), r);
    return r;
  }

  artifactPath(record: ModelRecord, key: keyof ModelRecord['artifacts']): string {
    return path.join(this.versionDir(record.version), record.artifacts[key]);
  }

  /**
   * Moves the aliases under an exclusive lock. `expectChampion` makes it a compare-and-swap: a promotion
   * evaluated against champion A must not silently replace a champion B installed meanwhile.
   */
  async moveAliases(
    change: { champion: string | null; previous: string | null; expectChampion?: string | null },
    reason: string,
    by: string,
  ): Promise<Aliases> {
    return this.updateAliases(() => change, reason, by);
  }

  /**
   * Read-modify-write of the aliases inside the lock: `decide` sees the aliases as they are now (not as they
   * were before waiting for the lock) and returns the move, or null for no change.
   */
  async updateAliases(
    decide: (
      current: Aliases,
    ) =>
      | { champion: string | null; previous: string | null; expectChampion?: string | null }
      | null
      | Promise<{ champion: string | null; previous: string | null; expectChampion?: string | null } | null>,
    reason: string,
    by: string,
  ): Promise<Aliases> {
    return this.withLock(async () => {
      const current = this.aliases();
      const change = await decide(current);
      if (!change) return current;
      if (change.expectChampion !== undefined && current.champion !== change.expectChampion) {
        throw new RegistryError(
          `champion changed while this run was evaluated (expected ${change.expectChampion ?? 'none'}, found ${current.champion ?? 'none'})`,
          'Conflict',
        );
      }
      const now = new Date().toISOString();
      const next: Aliases = {
        champion: change.champion,
        previous: change.previous,
        updatedAt: now,
        history: [
          ...current.history,
          { at: now, champion: change.champion, previous: change.previous, reason, by },
        ].slice(-200),
      };
      writeJsonAtomic(path.join(this.dir, 'aliases.json'), next);
      return next;
    });
  }

  /**
   * An exclusive lock file (O_EXCL); a lock older than `staleMs` is from a dead process and is broken (the
   * longest holder is a republish, well under it).
   */
  async withLock<T>(fn: () => T | Promise<T>, timeoutMs = 120_000, staleMs = 15 * 60_000): Promise<T> {
    fs.mkdirSync(this.dir, { recursive: true });
    const lock = path.join(this.dir, 'aliases.lock');
    const token = lockToken();
    const deadline = Date.now() + timeoutMs;
    const content = JSON.stringify({ pid: process.pid, at: new Date().toISOString(), token });
    for (;;) {
      if (tryCreateLock(lock, content)) break;
      const seen = readLockSnapshot(lock);
      // Take over only the lock judged stale, never one re-taken since (see lib/file-lock.ts).
      if (seen && Date.now() - seen.mtimeMs > staleMs && (await replaceLockIfUnchanged(lock, seen, content)))
        break;
      if (Date.now() > deadline)
        throw new RegistryError(`registry ${this.dir} is locked (${lock})`, 'Locked');
      await new Promise((r) => setTimeout(r, 20 + Math.random() * 30));
    }
    // A long holder (a republish rescoring every user) keeps its lock fresh, so it is never judged stale.
    const renew = setInterval(
      () => {
        try {
          if (readLockSnapshot(lock)?.text.includes(token)) fs.utimesSync(lock, new Date(), new Date());
        } catch {
          // Gone: the release below finds out.
        }
      },
      Math.max(10, staleMs / 4),
    );
    try {
      return await fn();
    } finally {
      clearInterval(renew);
      // A holder that overran staleMs may have lost its lock to another process: leave that one alone.
      await releaseLockIfOwned(lock, token);
    }
  }
}
