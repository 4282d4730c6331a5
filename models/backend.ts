/**
 * Backend selection for every tfjs computation in models/.
 *
 * Order for 'auto': tfjs-node-gpu (CUDA) -> tfjs-node (libtensorflow CPU) -> wasm (XNNPACK, SIMD) -> cpu (plain JS).
 * The two tfjs-node packages are optional: they are tried with `require` and their absence is recorded, not fatal.
 *
 * Why getTf(): tfjs-node bundles its own copy of tfjs-core in some install layouts. The kernel/gradient registries and
 * the engine live on globalThis so they are shared, but the *namespace object* whose ops we call must be the copy that
 * belongs to the package that registered the backend. Every module in models/ therefore calls getTf() at use time
 * instead of importing '@tensorflow/tfjs-core' directly.
 */
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import * as tfCore from '@tensorflow/tfjs-core';
import { registerTrainingKernels } from './wasm-kernels';
import { registerMissingGradients } from './gradients';
import { tfjsNodeDisabled } from '../lib/tfjs-node-switch';

export type Tf = typeof tfCore;
export type BackendName = 'tensorflow-gpu' | 'tensorflow' | 'wasm' | 'cpu';
export type BackendPreference = 'auto' | BackendName;

export interface BackendAttempt {
  name: BackendName;
  ok: boolean;
  /** Why it was not usable (missing package, init failure, no GPU visible, ...). */
  error?: string;
  ms: number;
}

export interface BackendSelection {
  /** Our name for it ('tensorflow-gpu' | 'tensorflow' | 'wasm' | 'cpu'). */
  name: BackendName;
  /** What tf.getBackend() reports ('tensorflow', 'wasm', 'cpu'). */
  backend: string;
  /** Human-readable device, e.g. 'NVIDIA H100 80GB HBM3', 'cpu (libtensorflow)', 'wasm-simd', 'cpu (js)'. */
  device: string;
  /** Intra-op threads the backend uses (1 for wasm in Node: tfjs-wasm has no Node thread pool, tfjs#3830). */
  threads: number;
  simd?: boolean;
  tfjsVersion: string;
  tried: BackendAttempt[];
}

export interface SelectBackendOptions {
  /** Directory holding the tfjs-backend-wasm .wasm binaries; defaults to the installed package's dist/. */
  wasmPaths?: string;
  /** Requested wasm threads; only honoured where tfjs-wasm supports threads (browsers), see BackendSelection.threads. */
  wasmThreads?: number;
}

export class BackendUnavailableError extends Error {
  constructor(
    message: string,
    readonly tried: BackendAttempt[],
  ) {
    super(message);
    this.name = 'BackendUnavailableError';
  }
}

let activeTf: Tf = tfCore;
let active: BackendSelection | undefined;

/** The tfjs namespace whose backend was selected (tfjs-core's own copy until selectBackend picks tfjs-node). */
export function getTf(): Tf {
  return activeTf;
}

/** Selects 'auto' unless a backend was already selected; the async entry points call this so a forgotten
 * selectBackend() degrades to the best available backend instead of failing on tfjs-core's empty registry. */
export async function ensureBackend(): Promise<BackendSelection> {
  return active ?? selectBackend('auto');
}

/** The last successful selection, if any. */
export function currentBackend(): BackendSelection | undefined {
  return active;
}

const AUTO_ORDER: BackendName[] = ['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'];

/** Shape of the tfjs-node packages we rely on; they are not installed here, so no static types. */
interface TfNodeModule {
  setBackend: Tf['setBackend'];
  getBackend: Tf['getBackend'];
  ready: Tf['ready'];
  backend: () => { isUsingGpuDevice?: boolean; binding?: { TF_Version?: string } };
  version?: Record<string, string>;
}

const nodeModules = new Map<string, TfNodeModule>();

function loadOptional(pkg: string): TfNodeModule {
  const cached = nodeModules.get(pkg);
  if (cached) return cached;
  // A plain require keeps the package optional: it is not in package.json and its absence must not break the build.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const mod = require(pkg) as TfNodeModule;
  if (typeof mod.setBackend !== 'function') throw new Error(`${pkg} did not export a tfjs namespace`);
  nodeModules.set(pkg, mod);
  return mod;
}

function errorText(e: unknown): string {
  if (e instanceof Error) return e.message.split('\n')[0];
  if (typeof e === 'object' && e !== null && 'message' in e)
    return String((e as { message: unknown }).message);
  return String(e);
}

function gpuName(): string {
  try {
    const out = execFileSync('nvidia-smi', ['--query-gpu=name', '--format=csv,noheader'], {
      timeout: 3000,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    const first = out.split('\n').find((l) => l.trim().length > 0);
    return first ? first.trim() : 'GPU';
  } catch {
    return 'GPU';
  }
}

function wasmDistDir(): string {
  return (
    path.join(path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist') + path.sep
  );
}

let wasmPathsConfigured = false;

async function tryBackend(
  name: BackendName,
  opts: SelectBackendOptions,
): Promise<Omit<BackendSelection, 'tried' | 'name'>> {
  switch (name) {
    case 'tensorflow-gpu':
    case 'tensorflow': {
      // An operator's switch (also read by `npm run setup`): keep libtensorflow out of this process entirely.
      if (tfjsNodeDisabled()) {
        throw new Error('tfjs-node disabled by RECFORGE_TFJS_NODE=off');
      }
      // tfjs-node-gpu falls back to CPU libtensorflow when CUDA is absent; it still works as 'tensorflow' then.
      let mod: TfNodeModule | undefined;
      let firstError: unknown;
      const pkgs =
        name === 'tensorflow-gpu'
          ? ['@tensorflow/tfjs-node-gpu']
          : ['@tensorflow/tfjs-node', '@tensorflow/tfjs-node-gpu'];
      for (const pkg of pkgs) {
        try {
          mod = loadOptional(pkg);
          break;
        } catch (e) {
          firstError ??= e;
        }
      }
      if (!mod) throw firstError;
      if (!(await mod.setBackend('tensorflow')))
        throw new Error("tf.setBackend('tensorflow') returned false");
      await mod.ready();
      const usingGpu = mod.backend().isUsingGpuDevice === true;
      if (name === 'tensorflow-gpu' && !usingGpu) {
        throw new Error('@tensorflow/tfjs-node-gpu loaded but libtensorflow sees no CUDA device');
      }
      activeTf = mod as unknown as Tf;
      const tfVersion = mod.backend().binding?.TF_Version;
      return {
        backend: mod.getBackend(),
        device: usingGpu ? gpuName() : `cpu (libtensorflow${tfVersion ? ` ${tfVersion}` : ''})`,
        // libtensorflow sizes its intra-op pool to the machine's cores.
        threads: availableParallelism(),
        tfjsVersion: mod.version?.['tfjs-core'] ?? 'unknown',
      };
    }
    case 'wasm': {
      const wasm = await import('@tensorflow/tfjs-backend-wasm');
      const tf = tfCore;
      if (!wasmPathsConfigured) {
        // Resolve the .wasm files from the installed package explicitly so bundling/cwd changes cannot break loading.
        wasm.setWasmPaths(opts.wasmPaths ?? wasmDistDir());
        if (opts.wasmThreads !== undefined) wasm.setThreadsCount(opts.wasmThreads);
        wasmPathsConfigured = true;
      }
      const simd = (await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT')) === true;
      const threadsSupported = (await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT')) === true;
      // tfjs only logs why init failed; check the binary it will load so the recorded reason is specific.
      const binary = path.join(
        opts.wasmPaths ?? wasmDistDir(),
        simd
          ? threadsSupported
            ? 'tfjs-backend-wasm-threaded-simd.wasm'
            : 'tfjs-backend-wasm-simd.wasm'
          : 'tfjs-backend-wasm.wasm',
      );
      if (tf.env().get('IS_NODE') && !existsSync(binary)) throw new Error(`wasm binary not found: ${binary}`);
      if (!(await tf.setBackend('wasm')))
        throw new Error("tf.setBackend('wasm') failed (see the warning above)");
      await tf.ready();
      activeTf = tf;
      let threads = 1;
      try {
        threads = wasm.getThreadsCount();
      } catch {
        threads = 1;
      }
      return {
        backend: tf.getBackend(),
        device: `wasm${simd ? '-simd' : ''}${threadsSupported && threads > 1 ? `-threads${threads}` : ''}`,
        threads,
        simd,
        tfjsVersion: tf.version_core,
      };
    }
    case 'cpu': {
      await import('@tensorflow/tfjs-backend-cpu');
      const tf = tfCore;
      if (!(await tf.setBackend('cpu'))) throw new Error("tf.setBackend('cpu') failed");
      await tf.ready();
      activeTf = tf;
      return { backend: tf.getBackend(), device: 'cpu (js)', threads: 1, tfjsVersion: tf.version_core };
    }
  }
}

/**
 * Selects and initialises a backend. 'auto' walks tensorflow-gpu -> tensorflow -> wasm -> cpu and keeps the first that
 * works; naming a backend forces it and throws BackendUnavailableError (with the reason) when it cannot start.
 * Also registers the kernels/gradients models/ needs (see wasm-kernels.ts, gradients.ts).
 */
export async function selectBackend(
  preference: BackendPreference = 'auto',
  opts: SelectBackendOptions = {},
): Promise<BackendSelection> {
  const order = preference === 'auto' ? AUTO_ORDER : [preference];
  const tried: BackendAttempt[] = [];
  for (const name of order) {
    const t0 = performance.now();
    try {
      const info = await tryBackend(name, opts);
      tried.push({ name, ok: true, ms: Math.round(performance.now() - t0) });
      const tf = getTf();
      registerTrainingKernels(tf, info.backend);
      registerMissingGradients(tf);
      active = { name, ...info, tried };
      return active;
    } catch (e) {
      tried.push({ name, ok: false, error: errorText(e), ms: Math.round(performance.now() - t0) });
    }
  }
  const reasons = tried.map((t) => `${t.name}: ${t.error ?? 'unknown error'}`).join('; ');
  throw new BackendUnavailableError(
    preference === 'auto'
      ? `No tfjs backend could be initialised (${reasons})`
      : `Requested tfjs backend '${preference}' is unavailable: ${reasons}`,
    tried,
  );
}
