import * as fs from 'node:fs';
import * as path from 'node:path';
import { readJsonIfExists } from '../../lib/fs-atomic';
import { throwIfCancelled } from '../../lib/cancellation';
import { createStaging, installDataset, verifyDataset } from './install';
import { IMPLICIT_EVENT_TYPES, type ImplicitEventType } from '../../lib/interactions';
import { generateBotEvents, planBots } from './bots';
import { buildCatalog, formatId, idWidth } from './catalog';
import { DIRTY_KINDS, DirtyInjector, dirtyLine, planDirtyCounts, type DirtyCounts } from './dirty';
import { EventSampler } from './events';
import { ITEMS_HEADER, itemLine, rowFormat, TimestampFormatter, type RawRow } from './format';
import {
  DEFAULT_MODEL,
  resolveOptions,
  type GenerateOptions,
  type ModelParams,
  type OutputFormat,
} from './options';
import { Rng, Streams } from './prng';
import { ChunkedSink } from './sink';
import { allocateActivity, makeUserTaste, userRng } from './users';

export { DatagenOptionsError, DEFAULT_MODEL } from './options';
export type { GenerateOptions, ModelParams, OutputFormat } from './options';
export { DIRTY_KINDS, type DirtyCounts, type DirtyKind } from './dirty';

export const MANIFEST_FILE = 'generation.json';
export const ITEMS_FILE = 'items.csv';
export const GENERATOR_VERSION = 1;

export interface DatasetCounts {
  users: number;
  items: number;
  /** Organic events (exactly the requested number). */
  cleanEvents: number;
  eventTypes: Record<ImplicitEventType, number>;
  botUsers: number;
  botEvents: number;
  dirty: DirtyCounts;
  dirtyTotal: number;
  /** Data rows in the interactions file (header excluded): clean + bot + dirty. */
  totalRows: number;
}

export interface FileInfo {
  /** Relative to the manifest's folder. */
  file: string;
  sha256: string;
  bytes: number;
}

/** generation.json. Deterministic (no wall-clock time or absolute paths), so it is byte-identical too. */
export interface GenerationManifest {
  generator: 'recforge-datagen';
  version: number;
  options: {
    users: number;
    items: number;
    events: number;
    seed: number;
    dirtyRate: number;
    botUsers: number;
    days: number;
    start: string;
    format: OutputFormat;
    categories: number;
    zipfExponent: number;
  };
  model: ModelParams;
  window: { start: string; end: string };
  counts: DatasetCounts;
  files: { interactions: FileInfo; items: FileInfo };
}

export interface GenerateResult {
  outDir: string;
  files: { interactions: string; items: string; manifest: string };
  counts: DatasetCounts;
  manifest: GenerationManifest;
  elapsedMs: number;
  /** Largest buffered chunk, characters; bounded by the chunk size however large the dataset. */
  peakBufferedChars: number;
}

function isoSeconds(epochSec: number): string {
  return new Date(epochSec * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

async function writeItems(file: string, catalog: ReturnType<typeof buildCatalog>): Promise<FileInfo> {
  const sink = await ChunkedSink.open(file);
  try {
    sink.write(ITEMS_HEADER);
    for (let i = 0; i < catalog.size; i++) {
      sink.write(
        itemLine(
          catalog.ids[i],
          catalog.categoryNames[catalog.category[i]],
          catalog.price[i],
          catalog.titles[i],
          catalog.inStock[i] === 1,
        ),
      );
      if (sink.full) await sink.flush();
    }
  } catch (err) {
    await sink.abort();
    throw err;
  }
  const { sha256, bytes } = await sink.close();
  return { file: ITEMS_FILE, sha256, bytes };
}

/** Stops a generation nobody wants any more: the activity's cancellation (lib/cancellation.ts) or `signal`. */
function checkCancelled(signal: AbortSignal | undefined): void {
  throwIfCancelled();
  signal?.throwIfAborted();
}

/**
 * Generates the synthetic dataset into `opts.out`: items.csv, interactions.{csv,jsonl} and generation.json.
 * Rows are streamed user by user; memory is O(users + items + one user's events), never O(events). Everything
 * is written into a staging folder of this generator's own and installed with one rename (./install.ts), so
 * a crash never leaves a partial dataset that looks complete, and concurrent generators never share a file
 * or remove each other's manifest. Cancellation (the activity's, or `opts.signal`) is checked at every chunk
 * written: a cancelled generation stops within one chunk and leaves nothing behind.
 */
export async function generateDataset(opts: GenerateOptions): Promise<GenerateResult> {
  const started = Date.now();
  const o = resolveOptions(opts);
  const outDir = path.resolve(o.out);
  checkCancelled(opts.signal);
  const staging = createStaging(outDir);
  try {
    const r = await generateInto(staging, o, opts);
    await installDataset(staging, outDir, r.manifest);
    const fmt = rowFormat(o.format);
    return {
      ...r,
      outDir,
      files: {
        interactions: path.join(outDir, `interactions.${fmt.extension}`),
        items: path.join(outDir, ITEMS_FILE),
        manifest: path.join(outDir, MANIFEST_FILE),
      },
      elapsedMs: Date.now() - started,
    };
  } finally {
    fs.rmSync(staging, { recursive: true, force: true });
  }
}

/**
 * The dataset in `opts.out` when it verifies against the options (manifest and checksums), else a freshly
 * generated one. `generated`: whether this call generated it.
 */
export async function ensureGeneratedDataset(
  opts: GenerateOptions,
): Promise<{ generated: boolean; manifest: GenerationManifest }> {
  const o = resolveOptions(opts);
  const want: Partial<GenerationManifest['options']> = {
    users: o.users,
    items: o.items,
    events: o.events,
    seed: o.seed,
    dirtyRate: o.dirtyRate,
    botUsers: o.botUsers,
    days: o.days,
    start: o.start,
    format: o.format,
    categories: o.categories,
    zipfExponent: o.zipfExponent,
  };
  const there = await verifyGeneratedDataset(path.resolve(o.out), want);
  if (there.ok) return { generated: false, manifest: there.manifest };
  return { generated: true, manifest: (await generateDataset(opts)).manifest };
}

/** Whether `outDir` holds a dataset whose manifest matches `want` and whose files match their checksums. */
export function verifyGeneratedDataset(
  outDir: string,
  want: Partial<GenerationManifest['options']> = {},
): ReturnType<typeof verifyDataset<GenerationManifest>> {
  return verifyDataset<GenerationManifest>(
    outDir,
    { generator: 'recforge-datagen', version: GENERATOR_VERSION },
    want,
  );
}

async function generateInto(
  outDir: string,
  o: ReturnType<typeof resolveOptions>,
  opts: GenerateOptions,
): Promise<Omit<GenerateResult, 'outDir' | 'files' | 'elapsedMs'>> {
  const model = DEFAULT_MODEL;
  const fmt = rowFormat(o.format);
  const interactionsFile = path.join(outDir, `interactions.${fmt.extension}`);
  const itemsFile = path.join(outDir, ITEMS_FILE);
  const manifestFile = path.join(outDir, MANIFEST_FILE);

  const catalog = buildCatalog(o.seed, o.items, o.categories, model.latentDim, o.zipfExponent);
  const itemsInfo = await writeItems(itemsFile, catalog);

  const activity = allocateActivity(o.seed, o.users, o.events, model.activitySigma);
  const bots = planBots(o.seed, o.botUsers, o.users, o.events, o.startSec, o.endSec);
  const plannedDirty = planDirtyCounts(o.events, o.dirtyRate);
  const injector = new DirtyInjector(plannedDirty, o.events, Rng.derive(o.seed, Streams.dirty));
  const dirtyRng = Rng.derive(o.seed, Streams.dirty, 1);
  const sampler = new EventSampler(catalog, model);
  const tsf = new TimestampFormatter();
  const userWidth = idWidth(o.users + o.botUsers, 6);

  const eventTypes = Object.fromEntries(IMPLICIT_EVENT_TYPES.map((t) => [t, 0])) as Record<
    ImplicitEventType,
    number
  >;
  const typeCounts = new Float64Array(IMPLICIT_EVENT_TYPES.length);
  const dirty = Object.fromEntries(DIRTY_KINDS.map((k) => [k, 0])) as DirtyCounts;
  let botEvents = 0;
  let clean = 0;
  const report = (): void => opts.onProgress?.({ cleanEvents: clean, totalEvents: o.events });

  const sink = await ChunkedSink.open(interactionsFile);
  let interactionsInfo: FileInfo;
  try {
    sink.write(fmt.header);
    const row: RawRow = { user: '', item: '', type: '', rating: '', ts: '' };
    let nextBot = 0;
    const botOrder = bots
      .map((b, i) => ({ b, i }))
      .sort((x, y) => x.b.afterUser - y.b.afterUser || x.i - y.i);
    for (let u = 0; u < o.users; u++) {
      const n = activity[u];
      if (n > 0) {
        const rng = userRng(o.seed, u);
        const ev = sampler.generate(rng, makeUserTaste(rng, catalog), n, o.startSec, o.endSec);
        row.user = formatId('u', u, userWidth);
        for (let j = 0; j < n; j++) {
          const t = ev.types[j];
          row.item = catalog.ids[ev.items[j]];
          row.type = IMPLICIT_EVENT_TYPES[t];
          row.ts = tsf.format(ev.times[j]);
          const line = fmt.row(row);
          sink.write(line);
          typeCounts[t]++;
          clean++;
          const kind = injector.next();
          if (kind !== undefined) {
            sink.write(dirtyLine(kind, row, line, fmt, dirtyRng));
            dirty[kind]++;
          }
          if (sink.full) {
            checkCancelled(opts.signal);
            await sink.flush();
            report();
          }
        }
      }
      while (nextBot < botOrder.length && botOrder[nextBot].b.afterUser === u) {
        const { b, i } = botOrder[nextBot++];
        const botId = formatId('u', o.users + i, userWidth);
        generateBotEvents(o.seed, i, b, catalog.size, (item, sec) => {
          sink.write(
            fmt.row({ user: botId, item: catalog.ids[item], type: 'view', rating: '', ts: tsf.format(sec) }),
          );
        });
        botEvents += b.events;
        if (sink.full) {
          checkCancelled(opts.signal);
          await sink.flush();
        }
      }
    }
    const { sha256, bytes } = await sink.close();
    interactionsInfo = { file: path.basename(interactionsFile), sha256, bytes };
  } catch (err) {
    await sink.abort();
    throw err;
  }
  report();
  IMPLICIT_EVENT_TYPES.forEach((t, i) => (eventTypes[t] = typeCounts[i]));
  const dirtyTotal = DIRTY_KINDS.reduce((s, k) => s + dirty[k], 0);
  const counts: DatasetCounts = {
    users: o.users,
    items: o.items,
    cleanEvents: clean,
    eventTypes,
    botUsers: o.botUsers,
    botEvents,
    dirty,
    dirtyTotal,
    totalRows: clean + botEvents + dirtyTotal,
  };
  const manifest: GenerationManifest = {
    generator: 'recforge-datagen',
    version: GENERATOR_VERSION,
    options: {
      users: o.users,
      items: o.items,
      events: o.events,
      seed: o.seed,
      dirtyRate: o.dirtyRate,
      botUsers: o.botUsers,
      days: o.days,
      start: o.start,
      format: o.format,
      categories: o.categories,
      zipfExponent: o.zipfExponent,
    },
    model,
    window: { start: isoSeconds(o.startSec), end: isoSeconds(o.endSec) },
    counts,
    files: { interactions: interactionsInfo, items: itemsInfo },
  };

  // Written last, in the private staging folder: a folder is a dataset only once it has its manifest.
  const fd = fs.openSync(manifestFile, 'wx');
  try {
    fs.writeFileSync(fd, JSON.stringify(manifest, null, 2) + '\n');
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  return { counts, manifest, peakBufferedChars: sink.peakBufferedChars };
}

export function readGenerationManifest(outDir: string): GenerationManifest | undefined {
  return readJsonIfExists<GenerationManifest>(path.join(outDir, MANIFEST_FILE));
}

/**
 * Cheap completeness check for callers deciding whether to (re)generate: the manifest exists, matches the
 * requested options where given, and the files have the recorded sizes. (Hashes are not re-computed.)
 */
export function isGeneratedDatasetComplete(
  outDir: string,
  want?: Partial<GenerationManifest['options']>,
): boolean {
  let m: GenerationManifest | undefined;
  try {
    m = readGenerationManifest(outDir);
  } catch {
    return false;
  }
  if (!m || m.generator !== 'recforge-datagen' || m.version !== GENERATOR_VERSION) return false;
  if (want) {
    for (const [k, v] of Object.entries(want)) {
      if (v !== undefined && m.options[k as keyof GenerationManifest['options']] !== v) return false;
    }
  }
  for (const f of [m.files.interactions, m.files.items]) {
    try {
      if (fs.statSync(path.join(outDir, f.file)).size !== f.bytes) return false;
    } catch {
      return false;
    }
  }
  return true;
}
