/**
 * Model and training-state persistence: a directory with `model.json` (metadata + tensor index) and `weights.bin`
 * (the tensors back to back, little-endian float32/int32, 4-byte aligned).
 *
 * Atomicity: everything is written into a sibling temp directory, fsynced, then renamed into place. Replacing an
 * existing directory takes two renames (old -> .old-*, tmp -> final); a crash between them leaves the previous version
 * under `<dir>.old-*` and no `<dir>`. readBundle verifies a SHA-256 of weights.bin, so a torn or foreign file is
 * rejected instead of loading garbage.
 */
import { createHash, randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import type { AdamState } from './adam';
import type { EASEModel } from './ease';
import { MFModel, mfFromWeights, mfToWeights } from './mf';
import { NamedArray, ParamStore, Weights } from './params';
import { TwoTowerArch, TwoTowerModel, twoTowerParamDefs } from './two-tower';
import type { TrainingState } from './trainer';

export type StoredArray = Float32Array | Int32Array;

export interface StoredTensor {
  shape: number[];
  data: StoredArray;
}

interface TensorIndexEntry {
  name: string;
  dtype: 'float32' | 'int32';
  shape: number[];
  offset: number;
  byteLength: number;
}

interface BundleFile {
  format: string;
  version: 1;
  createdAt: string;
  weightsFile: 'weights.bin';
  sha256: string;
  tensors: TensorIndexEntry[];
  meta: unknown;
}

const MODEL_JSON = 'model.json';
const WEIGHTS_BIN = 'weights.bin';

if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
  // The .bin is written from typed-array memory as is; refuse to produce big-endian files silently.
  throw new Error('models/serialize: big-endian platforms are not supported');
}

async function fsyncPath(p: string): Promise<void> {
  const fh = await fsp.open(p, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Writes `meta` + tensors to `dir` atomically (see header). */
export async function writeBundle(
  dir: string,
  format: string,
  meta: unknown,
  tensors: Record<string, StoredTensor>,
): Promise<void> {
  const abs = path.resolve(dir);
  const parent = path.dirname(abs);
  await fsp.mkdir(parent, { recursive: true });
  const tag = `${process.pid}-${randomBytes(4).toString('hex')}`;
  const tmp = `${abs}.tmp-${tag}`;
  await fsp.mkdir(tmp);
  try {
    const index: TensorIndexEntry[] = [];
    const hash = createHash('sha256');
    const fh = await fsp.open(path.join(tmp, WEIGHTS_BIN), 'w');
    try {
      let offset = 0;
      for (const [name, t] of Object.entries(tensors)) {
        const expected = t.shape.reduce((a, b) => a * b, 1);
        if (expected !== t.data.length)
          throw new Error(`writeBundle: '${name}' shape [${t.shape}] != ${t.data.length}`);
        const bytes = Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
        await fh.write(bytes, 0, bytes.length, offset);
        hash.update(bytes);
        index.push({
          name,
          dtype: t.data instanceof Int32Array ? 'int32' : 'float32',
          shape: t.shape.slice(),
          offset,
          byteLength: bytes.length,
        });
        offset += bytes.length;
      }
      await fh.sync();
    } finally {
      await fh.close();
    }
    const file: BundleFile = {
      format,
      version: 1,
      createdAt: new Date().toISOString(),
      weightsFile: WEIGHTS_BIN,
      sha256: hash.digest('hex'),
      tensors: index,
      meta,
    };
    const jsonPath = path.join(tmp, MODEL_JSON);
    await fsp.writeFile(jsonPath, JSON.stringify(file, null, 1));
    await fsyncPath(jsonPath);
    await fsyncPath(tmp);

    let old: string | undefined;
    try {
      await fsp.rename(tmp, abs);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST' && code !== 'EISDIR') throw e;
      old = `${abs}.old-${tag}`;
      await fsp.rename(abs, old);
      await fsp.rename(tmp, abs);
    }
    await fsyncPath(parent);
    if (old) await fsp.rm(old, { recursive: true, force: true });
  } catch (e) {
    await fsp.rm(tmp, { recursive: true, force: true });
    throw e;
  }
}

export interface Bundle {
  format: string;
  createdAt: string;
  meta: unknown;
  tensors: Record<string, StoredTensor>;
}

export async function readBundle(dir: string, expectFormat?: string): Promise<Bundle> {
  const file = JSON.parse(await fsp.readFile(path.join(dir, MODEL_JSON), 'utf8')) as BundleFile;
  if (file.version !== 1 || !Array.isArray(file.tensors)) throw new Error(`${dir}: not a recforge bundle`);
  if (expectFormat && file.format !== expectFormat) {
    throw new Error(`${dir}: expected format '${expectFormat}', found '${file.format}'`);
  }
  const bin = await fsp.readFile(path.join(dir, file.weightsFile));
  const digest = createHash('sha256').update(bin).digest('hex');
  if (digest !== file.sha256)
    throw new Error(`${dir}: weights.bin checksum mismatch (corrupt or partial write)`);
  const tensors: Record<string, StoredTensor> = {};
  for (const t of file.tensors) {
    if (t.offset + t.byteLength > bin.length)
      throw new Error(`${dir}: tensor '${t.name}' exceeds weights.bin`);
    // Copy into a fresh, aligned buffer (Buffer slices may start at any byte offset).
    const ab = bin.buffer.slice(bin.byteOffset + t.offset, bin.byteOffset + t.offset + t.byteLength);
    tensors[t.name] = {
      shape: t.shape,
      data: t.dtype === 'int32' ? new Int32Array(ab) : new Float32Array(ab),
    };
  }
  return { format: file.format, createdAt: file.createdAt, meta: file.meta, tensors };
}

// ---------------------------------------------------------------------------------------------------------------
// Models

export interface SavedModel {
  /** 'mf' | 'two-tower' | ... */
  kind: string;
  /** Architecture/training config needed to rebuild the model. */
  config: unknown;
  weights: Weights;
  /** Free-form JSON (training metrics, data snapshot id, ...). */
  metadata?: Record<string, unknown>;
}

const MODEL_FORMAT = 'recforge-model';

function asFloat(name: string, t: StoredTensor): NamedArray {
  if (!(t.data instanceof Float32Array)) throw new Error(`tensor '${name}' is not float32`);
  return { shape: t.shape, data: t.data };
}

export async function saveModel(dir: string, model: SavedModel): Promise<void> {
  await writeBundle(
    dir,
    MODEL_FORMAT,
    { kind: model.kind, config: model.config, metadata: model.metadata ?? {} },
    model.weights,
  );
}

export async function loadModel(dir: string): Promise<SavedModel> {
  const b = await readBundle(dir, MODEL_FORMAT);
  const meta = b.meta as { kind: string; config: unknown; metadata: Record<string, unknown> };
  const weights: Weights = {};
  for (const [k, t] of Object.entries(b.tensors)) weights[k] = asFloat(k, t);
  return { kind: meta.kind, config: meta.config, weights, metadata: meta.metadata };
}

// ---------------------------------------------------------------------------------------------------------------
// Training state (checkpoints)

const STATE_FORMAT = 'recforge-training-state';

export async function saveTrainingState(dir: string, state: TrainingState): Promise<void> {
  const tensors: Record<string, StoredTensor> = {};
  const put = (prefix: string, w: Weights | null): void => {
    if (!w) return;
    for (const [k, v] of Object.entries(w)) tensors[`${prefix}/${k}`] = v;
  };
  put('weights', state.weights);
  put('adam.m', state.optimizer.m);
  put('adam.v', state.optimizer.v);
  put('best', state.best.weights);
  const { weights: _w, optimizer, best, ...rest } = state;
  const meta = {
    ...rest,
    optimizerStep: optimizer.step,
    best: { metric: best.metric, epoch: best.epoch, hasWeights: best.weights !== null },
  };
  await writeBundle(dir, STATE_FORMAT, meta, tensors);
}

export async function loadTrainingState(dir: string): Promise<TrainingState> {
  const b = await readBundle(dir, STATE_FORMAT);
  const meta = b.meta as Omit<TrainingState, 'weights' | 'optimizer' | 'best'> & {
    optimizerStep: number;
    best: { metric: number | null; epoch: number; hasWeights: boolean };
  };
  const take = (prefix: string): Weights => {
    const w: Weights = {};
    for (const [k, t] of Object.entries(b.tensors)) {
      if (k.startsWith(`${prefix}/`)) w[k.slice(prefix.length + 1)] = asFloat(k, t);
    }
    return w;
  };
  const optimizer: AdamState = { step: meta.optimizerStep, m: take('adam.m'), v: take('adam.v') };
  const { optimizerStep: _s, best, ...rest } = meta;
  return {
    ...rest,
    weights: take('weights'),
    optimizer,
    best: { metric: best.metric, epoch: best.epoch, weights: best.hasWeights ? take('best') : null },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Typed helpers for the model kinds

export async function saveMFModel(
  dir: string,
  model: MFModel,
  metadata: Record<string, unknown> = {},
): Promise<void> {
  await saveModel(dir, {
    kind: 'mf',
    config: {
      numUsers: model.numUsers,
      numItems: model.numItems,
      dim: model.dim,
      itemBias: !!model.itemBias,
    },
    weights: mfToWeights(model),
    metadata,
  });
}

export async function loadMFModel(
  dir: string,
): Promise<{ model: MFModel; metadata: Record<string, unknown> }> {
  const saved = await loadModel(dir);
  if (saved.kind !== 'mf') throw new Error(`${dir}: expected an 'mf' model, found '${saved.kind}'`);
  return { model: mfFromWeights(saved.weights), metadata: saved.metadata ?? {} };
}

export async function saveTwoTowerModel(
  dir: string,
  model: TwoTowerModel,
  metadata: Record<string, unknown> = {},
): Promise<void> {
  const weights: Weights = { ...model.weights };
  // itemSeen is a 0/1 mask, stored as float32 so the bundle holds one dtype for weights.
  weights['itemSeen'] = { shape: [model.itemSeen.length], data: Float32Array.from(model.itemSeen) };
  await saveModel(dir, { kind: 'two-tower', config: model.arch, weights, metadata });
}

export async function loadTwoTowerModel(
  dir: string,
): Promise<{ model: TwoTowerModel; metadata: Record<string, unknown> }> {
  const saved = await loadModel(dir);
  if (saved.kind !== 'two-tower')
    throw new Error(`${dir}: expected a 'two-tower' model, found '${saved.kind}'`);
  const { itemSeen, ...weights } = saved.weights;
  if (!itemSeen) throw new Error(`${dir}: missing itemSeen`);
  const arch = saved.config as TwoTowerArch;
  new ParamStore(twoTowerParamDefs(arch), weights); // validates names and shapes
  return {
    model: { kind: 'two-tower', arch, weights, itemSeen: Uint8Array.from(itemSeen.data) },
    metadata: saved.metadata ?? {},
  };
}

export async function saveEASEModel(
  dir: string,
  model: EASEModel,
  metadata: Record<string, unknown> = {},
): Promise<void> {
  const k = model.items.length;
  if (model.weights.length !== k * k) throw new Error('saveEASEModel: weights are not k x k');
  // Item ids ride as float32 like two-tower's itemSeen (one dtype for weights); exact below 2^24.
  if (model.numItems > 1 << 24) throw new Error('saveEASEModel: more than 2^24 catalogue items');
  await saveModel(dir, {
    kind: 'ease',
    config: { numItems: model.numItems, lambda: model.lambda, transform: model.transform },
    weights: {
      weights: { shape: [k, k], data: model.weights },
      items: { shape: [k], data: Float32Array.from(model.items) },
    },
    metadata,
  });
}

export async function loadEASEModel(
  dir: string,
): Promise<{ model: EASEModel; metadata: Record<string, unknown> }> {
  const saved = await loadModel(dir);
  if (saved.kind !== 'ease') throw new Error(`${dir}: expected an 'ease' model, found '${saved.kind}'`);
  const cfg = saved.config as { numItems: number; lambda: number; transform: EASEModel['transform'] };
  const { weights, items } = saved.weights;
  const k = items?.data.length ?? -1;
  if (!weights || !items || weights.data.length !== k * k) throw new Error(`${dir}: malformed EASE model`);
  return {
    model: {
      kind: 'ease',
      numItems: cfg.numItems,
      items: Int32Array.from(items.data),
      weights: weights.data,
      lambda: cfg.lambda,
      transform: cfg.transform,
    },
    metadata: saved.metadata ?? {},
  };
}
