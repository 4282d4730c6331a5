/**
 * Selection worker for scoreAll: the main thread runs block b + 1's matmul (tfjs-wasm is single-threaded in
 * Node) while this thread selects block b's top-N from a shared score buffer, so scoring uses a second core.
 * Protocol: one `init` (setup and the shared score slots), then `block` messages answered in order with
 * `done` (results transferred) or `failed`.
 */
import { parentPort } from 'node:worker_threads';
import { filterModule, ScoreFilter } from './simd-filter';
import { BlockSelector, type BlockExclusion, type SelectionSetup } from './top-n';

/**
 * Score slots, each blockSize x nItems floats: inside a shared WebAssembly memory that also holds the SIMD scan's
 * scratch (at scratchOff), or (without SIMD) plain shared buffers.
 */
export type WorkerInit = { kind: 'init'; setup: SelectionSetup } & (
  | {
      memory: WebAssembly.Memory;
      slotOffsets: number[];
      slotFloats: number;
      scratchOff: number;
      slots?: undefined;
    }
  | { slots: SharedArrayBuffer[]; memory?: undefined }
);

export interface WorkerBlock {
  kind: 'block';
  block: number;
  slot: number;
  rows: number;
  excl?: BlockExclusion;
}

export type WorkerReply =
  | { kind: 'done'; block: number; items: Int32Array; scores: Float32Array }
  | { kind: 'failed'; block: number; message: string };

let selector: BlockSelector | undefined;
let topN = 0;
let slots: Float32Array[] = [];

parentPort?.on('message', (msg: WorkerInit | WorkerBlock) => {
  if (msg.kind === 'init') {
    topN = msg.setup.topN;
    const module = filterModule();
    if (msg.memory && module) {
      const { memory, setup } = msg;
      selector = new BlockSelector(setup, new ScoreFilter(module, setup.nItems, memory, msg.scratchOff));
      slots = msg.slotOffsets.map((off) => new Float32Array(memory.buffer, off, msg.slotFloats));
    } else if (msg.slots) {
      selector = new BlockSelector(msg.setup, false);
      slots = msg.slots.map((s) => new Float32Array(s));
    }
    return;
  }
  try {
    if (!selector) throw new Error('selection worker used before init');
    const items = new Int32Array(msg.rows * topN);
    const scores = new Float32Array(msg.rows * topN);
    selector.select(slots[msg.slot], msg.rows, msg.excl, items, scores);
    const reply: WorkerReply = { kind: 'done', block: msg.block, items, scores };
    parentPort?.postMessage(reply, [items.buffer, scores.buffer]);
  } catch (err) {
    const reply: WorkerReply = {
      kind: 'failed',
      block: msg.block,
      message: String((err as Error)?.stack ?? err),
    };
    parentPort?.postMessage(reply);
  }
});
