/**
 * The main thread's side of the selection worker (top-n-worker.ts): two shared score slots, so block b + 1's
 * matmul can fill one slot while the worker selects block b from the other. Results come back in submission
 * order; a worker failure rejects every pending block.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { filterModule, filterScratchBytes, pagesFor } from './simd-filter';
import type { BlockExclusion, SelectionSetup } from './top-n';
import type { WorkerBlock, WorkerInit, WorkerReply } from './top-n-worker';

export interface SelectedBlock {
  items: Int32Array;
  scores: Float32Array;
}

/** The compiled worker beside this module, if there is one (not when running from TypeScript sources). */
export function defaultWorkerScript(): string | undefined {
  const file = path.join(__dirname, 'top-n-worker.js');
  return fs.existsSync(file) ? file : undefined;
}

export class SelectionThread {
  private readonly worker: Worker;
  private readonly slots: Float32Array[];
  private readonly pending = new Map<
    number,
    { resolve: (b: SelectedBlock) => void; reject: (e: Error) => void }
  >();
  private failure: Error | undefined;

  constructor(script: string, setup: SelectionSetup, blockSize: number) {
    // Both slots and the worker's SIMD scan scratch in one shared WebAssembly memory, so the scan reads the
    // slots in place (where the runtime has SIMD; plain shared buffers otherwise).
    const slotBytes = Math.ceil((blockSize * setup.nItems * 4) / 16) * 16;
    let memory: WebAssembly.Memory | undefined;
    if (filterModule()) {
      const pages = pagesFor(2 * slotBytes + filterScratchBytes(setup.nItems));
      memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
      const buffer = memory.buffer;
      this.slots = [16, 16 + slotBytes].map((off) => new Float32Array(buffer, off, blockSize * setup.nItems));
    } else {
      this.slots = [0, 1].map(() => new Float32Array(new SharedArrayBuffer(blockSize * setup.nItems * 4)));
    }
    this.worker = new Worker(script);
    this.worker.on('message', (m: WorkerReply) => {
      const p = this.pending.get(m.block);
      if (!p) return;
      this.pending.delete(m.block);
      if (m.kind === 'done') p.resolve({ items: m.items, scores: m.scores });
      else p.reject(new Error(`top-N selection worker: ${m.message}`));
    });
    const fail = (err: Error) => {
      this.failure = err;
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    };
    this.worker.on('error', (err) => fail(err));
    this.worker.on('exit', (code) => fail(new Error(`top-N selection worker exited (code ${code})`)));
    const init: WorkerInit = memory
      ? {
          kind: 'init',
          setup,
          memory,
          slotOffsets: [16, 16 + slotBytes],
          slotFloats: blockSize * setup.nItems,
          scratchOff: 16 + 2 * slotBytes,
        }
      : { kind: 'init', setup, slots: this.slots.map((v) => v.buffer as SharedArrayBuffer) };
    this.worker.postMessage(init);
  }

  /** The shared score buffer of `slot` (0 or 1): fill rows x nItems, then submit. */
  slot(slot: number): Float32Array {
    return this.slots[slot];
  }

  submit(
    block: number,
    slot: number,
    rows: number,
    excl: BlockExclusion | undefined,
  ): Promise<SelectedBlock> {
    if (this.failure) return Promise.reject(this.failure);
    const result = new Promise<SelectedBlock>((resolve, reject) =>
      this.pending.set(block, { resolve, reject }),
    );
    // Settled by whoever awaits it; this keeps an early close() from raising an unhandled rejection.
    result.catch(() => undefined);
    const msg: WorkerBlock = { kind: 'block', block, slot, rows, excl };
    this.worker.postMessage(msg);
    return result;
  }

  async close(): Promise<void> {
    this.worker.removeAllListeners('exit');
    await this.worker.terminate();
  }
}
