/**
 * Worker side of kernel-pool.ts: runs one named kernel over a range per message and answers with its result.
 * Typed arrays in the arguments are views on SharedArrayBuffers, so the kernel writes the caller's memory.
 */
import { parentPort } from 'node:worker_threads';
import { KERNELS, type KernelName } from './kernels';

export interface KernelTask {
  id: number;
  name: KernelName;
  args: unknown;
  start: number;
  end: number;
}

export type KernelReply =
  { id: number; ok: true; result: unknown } | { id: number; ok: false; message: string };

parentPort?.on('message', (task: KernelTask) => {
  let reply: KernelReply;
  try {
    const kernel = KERNELS[task.name] as (a: unknown, s: number, e: number) => unknown;
    reply = { id: task.id, ok: true, result: kernel(task.args, task.start, task.end) };
  } catch (err) {
    reply = { id: task.id, ok: false, message: String((err as Error)?.stack ?? err) };
  }
  parentPort?.postMessage(reply);
});
