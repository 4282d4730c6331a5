import * as fs from 'node:fs';
import * as path from 'node:path';
import type { LivePointer, ModelRecord, ModelStatus } from '../contracts/registry';
import { faultPoint } from '../lib/faults';
import { readDocument, updateDocument, type Storage } from '../lib/storage';
import { removeJournalTemporaries, removeStaleTemporaries } from '../lib/storage/local';
import { promoteChallenger, rollBack, setLive, type MoveContext } from './pointer';

/**
 * The model registry of one dataset, on the project's storage (a local folder or a bucket):
 *   <registry>/models/<version>/model.json   every version ever trained, written once, never changed
 *   <output>/_current.json                   the live pointer (compare-and-swap; see contracts/registry.ts)
 *   <output>/versions/<version>/…            published recommendations, immutable
 *   <output>/current -> versions/<version>   (local storage) derived from the pointer, for path-based readers
 * Status (champion, previous, retired, rejected) is derived from the pointer and the gate, so no second
 * document can disagree with it.
 */

export const VERSION_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$/;

export class RegistryError extends Error {
  override readonly name = 'RegistryError';
  constructor(
    message: string,
    readonly code: 'NotFound' | 'Conflict' | 'Invalid',
  ) {
    super(message);
  }
}

export interface RegistryLocation {
  datasetId: string;
  /** Storage key of the dataset's registry folder, e.g. 'registry/synthetic'. */
  registryPrefix: string;
  /** Storage key of the dataset's output folder, e.g. 'output/recommendations/synthetic'. */
  outputPrefix: string;
}

export class ModelRegistry {
  constructor(
    readonly store: Storage,
    readonly where: RegistryLocation,
  ) {}

  get datasetId(): string {
    return this.where.datasetId;
  }

  private recordKey(version: string): string {
    if (!VERSION_PATTERN.test(version))
      throw new RegistryError(`invalid model version '${version}'`, 'Invalid');
    return `${this.where.registryPrefix}/models/${version}/model.json`;
  }

  get pointerKey(): string {
    return `${this.where.outputPrefix}/_current.json`;
  }

  versionKey(version: string): string {
    if (!VERSION_PATTERN.test(version))
      throw new RegistryError(`invalid model version '${version}'`, 'Invalid');
    return `${this.where.outputPrefix}/versions/${version}`;
  }

  async get(version: string): Promise<ModelRecord | undefined> {
    return (await readDocument<ModelRecord>(this.store, this.recordKey(version)))?.value;
  }

  async require(version: string): Promise<ModelRecord> {
    const r = await this.get(version);
    if (!r)
      throw new RegistryError(
        `model version '${version}' is not in the registry of '${this.datasetId}'`,
        'NotFound',
      );
    return r;
  }

  async list(): Promise<ModelRecord[]> {
    const keys = (await this.store.list(`${this.where.registryPrefix}/models`)).filter((k) =>
      k.endsWith('/model.json'),
    );
    const records = await Promise.all(
      keys.map(async (k) => (await readDocument<ModelRecord>(this.store, k))?.value),
    );
    return records
      .filter((r): r is ModelRecord => !!r)
      .sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }

  /** Writes a version's record once (create-if-absent). A retry of the same run gets the existing one back. */
  async register(record: ModelRecord): Promise<ModelRecord> {
    const key = this.recordKey(record.version);
    const written = await this.store.putIfMatch(key, JSON.stringify(record, null, 2) + '\n', null);
    if (written !== null) return record;
    // A first attempt that crashed after its write but before the reader copy left a record that `list` (which
    // reads the copies) cannot see; a record is written once, so only this retry can bring the copy up.
    await this.store.syncCopy(key);
    const existing = await this.require(record.version);
    if (existing.runId !== record.runId) {
      throw new RegistryError(
        `version ${record.version} is already registered by run ${existing.runId}`,
        'Conflict',
      );
    }
    return existing;
  }

  async pointer(): Promise<LivePointer | null> {
    return (await readDocument<LivePointer>(this.store, this.pointerKey))?.value ?? null;
  }

  async champion(): Promise<string | null> {
    return (await this.pointer())?.version ?? null;
  }

  async status(record: ModelRecord): Promise<ModelStatus> {
    const p = await this.pointer();
    if (p?.version === record.version) return 'champion';
    if (p?.previous === record.version) return 'previous';
    if (p?.history.some((m) => m.version === record.version)) return 'retired';
    return record.gate?.decision === 'reject' ? 'rejected' : 'candidate';
  }

  /** The one commit step: moves the live pointer by compare-and-swap, then refreshes what derives from it. */
  private async move(decide: (cur: LivePointer | null) => LivePointer | null): Promise<LivePointer> {
    const next = await updateDocument<LivePointer, LivePointer | null>(this.store, this.pointerKey, (cur) => {
      const n = decide(cur);
      return n ? { write: n, result: n } : { keep: true, result: cur };
    });
    if (!next) throw new RegistryError(`dataset '${this.datasetId}' has no live version`, 'NotFound');
    faultPoint('pointer:after-swap');
    await this.syncDerived();
    faultPoint('pointer:after-derived');
    return next;
  }

  promoteChallenger(version: string, evaluatedAgainst: string | null, ctx: Omit<MoveContext, 'datasetId'>) {
    return this.move((cur) =>
      promoteChallenger(cur, version, evaluatedAgainst, { ...ctx, datasetId: this.datasetId }),
    );
  }

  setLive(version: string, ctx: Omit<MoveContext, 'datasetId'>) {
    return this.move((cur) => setLive(cur, version, { ...ctx, datasetId: this.datasetId }));
  }

  rollBack(ctx: Omit<MoveContext, 'datasetId'>) {
    return this.move((cur) => rollBack(cur, { ...ctx, datasetId: this.datasetId }));
  }

  /**
   * Local storage: `current` (a symlink for path-based readers) and the pointer's reader copy follow the
   * pointer. Run after every move and by every retry, so a crash between the swap and here heals itself.
   */
  async syncDerived(): Promise<void> {
    await this.store.syncCopy(this.pointerKey);
    faultPoint('pointer:after-copy');
    if (this.store.kind !== 'local') return;
    // Another process may move the pointer while this one relinks: relink until the pointer stands still, so
    // a slow writer never leaves `current` on an older version than the pointer's.
    for (let i = 0; i < 20; i++) {
      const p = await this.pointer();
      if (!p) return;
      this.linkCurrent(p.path);
      if ((await this.pointer())?.version === p.version) return;
    }
  }

  /**
   * Local storage: removes what crashed writers left in the registry's record folders (temporary files of a
   * record's write or its reader copy, older than an hour). Records are written once, so no later commit of
   * theirs would ever clean them; retention calls this after each promotion.
   */
  sweepTemporaries(): void {
    if (this.store.kind !== 'local') return;
    const models = this.store.uri(`${this.where.registryPrefix}/models`);
    let versions: string[];
    try {
      versions = fs.readdirSync(models);
    } catch {
      return;
    }
    for (const v of versions) {
      removeStaleTemporaries(path.join(models, v));
      removeJournalTemporaries(path.join(models, v, '.model.json.journal'));
    }
  }

  private linkCurrent(target: string): void {
    const root = this.store.uri(this.where.outputPrefix);
    const link = path.join(root, 'current');
    let now: string | undefined;
    try {
      now = fs.readlinkSync(link);
    } catch {
      now = undefined;
    }
    if (now === target) return;
    // A new symlink renamed over the old one: readers see the old target or the new, never none.
    const tmp = path.join(
      root,
      `.current-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}`,
    );
    fs.symlinkSync(target, tmp);
    faultPoint('pointer:link-before-rename');
    fs.renameSync(tmp, link);
  }
}
