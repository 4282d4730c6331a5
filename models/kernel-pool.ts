/**
 * A few worker threads that run the typed-array kernels of kernels.ts over row ranges, in parallel, on
 * SharedArrayBuffer memory (iALS's CG solves, hogwild BPR). Without a compiled worker script (running from the
 * TypeScript sources, e.g. under jest) or with threads = 0, the same kernels run on the calling thread, range by
 * range, with the same results for deterministic kernels.
 */
import * as fs from 'node:fs';
import { availableParallelism } from 'node:os';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { KERNELS, type KernelArgs, type KernelName, type KernelResult } from './kernels';
import type { KernelReply, KernelTask } from './kernel-worker';

/** The compiled worker beside this module, if there is one (not when running from TypeScript sources). */
export function defaultKernelWorker(): string | undefined {
  const file = path.join(__dirname, 'kernel-worker.js');
  return fs.existsSync(file) ? file : undefined;
}

/** Throws unless every typed array in `args` lives on a SharedArrayBuffer (a copy would lose the kernel's writes). */
function assertShared(args: object): void {
  for (const [k, v] of Object.entries(args)) {
    if (ArrayBuffer.isView(v) && !(v.buffer instanceof SharedArrayBuffer))
      throw new Error(
        `kernel argument '${k}' must be backed by a SharedArrayBuffer to be used by worker threads`,
      );
  }
}

export class KernelPool {
  private readonly workers: Worker[] = [];
  private readonly pending = new Map<number, { resolve: (r: unknown) => void; reject: (e: Error) => void }>();
  private nextId = 0;
  private failure: Error | undefined;

  /**
   * threads: worker count (default: the machine's cores; 0 = run on the calling thread). script: the compiled
   * kernel-worker.js (default: beside this module; false = calling thread).
   */
  constructor(threads?: number, script?: string | false) {
    const file = script === false ? undefined : (script ?? defaultKernelWorker());
    const n = file ? Math.max(0, Math.floor(threads ?? availableParallelism())) : 0;
    for (let t = 0; t < n; t++) {
      const w = new Worker(file as string);
      w.on('message', (m: KernelReply) => {
        const p = this.pending.get(m.id);
        if (!p) return;
        this.pending.delete(m.id);
        if (m.ok) p.resolve(m.result);
        else p.reject(new Error(`kernel worker: ${m.message}`));
      });
      const fail = (err: Error) => {
        this.failure ??= err;
        for (const p of this.pending.values()) p.reject(err);
        this.pending.clear();
      };
      w.on('error', fail);
      w.on('exit', (code) => fail(new Error(`kernel worker exited (code ${code})`)));
      this.workers.push(w);
    }
  }

  /** Worker threads in use (0: the calling thread runs the kernels). */
  get threads(): number {
    return this.workers.length;
  }

  /**
   * Runs kernel `name` on the ranges [bounds[c], bounds[c + 1]) with per-range arguments args(c) (e.g. a seed per
   * range); resolves with the results in range order. Ranges are spread over the workers round-robin.
   */
  async run<N extends KernelName>(
    name: N,
    bounds: ArrayLike<number>,
    args: (chunk: number) => KernelArgs<N>,
  ): Promise<KernelResult<N>[]> {
    const chunks = bounds.length - 1;
    const kernel = KERNELS[name] as (a: KernelArgs<N>, s: number, e: number) => KernelResult<N>;
    if (this.workers.length === 0) {
      const out: KernelResult<N>[] = [];
      for (let c = 0; c < chunks; c++) out.push(kernel(args(c), bounds[c], bounds[c + 1]));
      return out;
    }
    if (this.failure) throw this.failure;
    const jobs: Promise<unknown>[] = [];
    for (let c = 0; c < chunks; c++) {
      const a = args(c);
      assertShared(a as object);
      const id = this.nextId++;
      const task: KernelTask = { id, name, args: a, start: bounds[c], end: bounds[c + 1] };
      jobs.push(new Promise((resolve, reject) => this.pending.set(id, { resolve, reject })));
      this.workers[c % this.workers.length].postMessage(task);
    }
    return (await Promise.all(jobs)) as KernelResult<N>[];
  }

  async close(): Promise<void> {
    for (const w of this.workers) w.removeAllListeners('exit');
    await Promise.all(this.workers.map((w) => w.terminate()));
    this.workers.length = 0;
  }
}
