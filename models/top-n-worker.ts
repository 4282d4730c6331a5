/**
 * Selection worker for scoreAll: the main thread runs block b + 1's matmul (tfjs-wasm is single-threaded in
 * Node) while this thread selects block b's top-N from a shared score buffer, so scoring uses a second core.
 * Protocol: one `init` (setup and the shared score slots), then `block` messages answered in order with
 * `done` (results transferred) or `failed`.
 */
import { parentPort } from 'node:worker_threads';
import { BlockSelector, type BlockExclusion, type SelectionSetup } from './top-n';

export interface WorkerInit {
  kind: 'init';
  setup: SelectionSetup;
  /** Score slots (SharedArrayBuffer), each blockSize x nItems floats. */
  slots: SharedArrayBuffer[];
}

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
    selector = new BlockSelector(msg.setup);
    topN = msg.setup.topN;
    slots = msg.slots.map((s) => new Float32Array(s));
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
