/**
 * One shared WebAssembly.Memory holding every array a SIMD kernel touches (simd-kernels.ts), handed out by a bump
 * allocator in 16-byte aligned pieces. The memory's buffer is a SharedArrayBuffer, so worker threads that
 * instantiate the kernels over it (by the arena's id) read and write the same arrays as the views here.
 * Sized once up front: a shared memory could grow, but views taken before would not see the new pages.
 */
import { simdModule } from './simd-kernels';

const PAGE = 65536;
let nextId = 1;

export interface Slice<T> {
  /** Byte offset in the memory (what the kernels take). */
  off: number;
  view: T;
}

export class SimdArena {
  readonly id = nextId++;
  readonly memory: WebAssembly.Memory;
  readonly module = simdModule();
  private top = 16; // offset 0 stays unused: the kernels read 0 as "absent"

  /** An arena of at least `bytes` bytes (all the allocations it will serve, each rounded up to 16). */
  constructor(bytes: number) {
    const pages = Math.max(1, Math.ceil((bytes + 16) / PAGE));
    if (pages > 65536) throw new Error(`SIMD arena of ${bytes} bytes exceeds WebAssembly's 4 GiB`);
    this.memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
  }

  private take(bytes: number): number {
    const off = this.top;
    this.top += Math.ceil(Math.max(bytes, 1) / 16) * 16;
    if (this.top > this.memory.buffer.byteLength)
      throw new Error(`SIMD arena overflow: ${this.top} > ${this.memory.buffer.byteLength} bytes`);
    return off;
  }

  f32(n: number, init?: ArrayLike<number>): Slice<Float32Array> {
    const off = this.take(n * 4);
    const view = new Float32Array(this.memory.buffer, off, n);
    if (init) view.set(init);
    return { off, view };
  }

  i32(n: number, init?: ArrayLike<number>): Slice<Int32Array> {
    const off = this.take(n * 4);
    const view = new Int32Array(this.memory.buffer, off, n);
    if (init) view.set(init);
    return { off, view };
  }

  f64(n: number): Slice<Float64Array> {
    const off = this.take(n * 8);
    return { off, view: new Float64Array(this.memory.buffer, off, n) };
  }

  /** Bytes an arena needs for allocations of these byte sizes (each rounded up to 16). */
  static size(...bytes: number[]): number {
    return bytes.reduce((a, b) => a + Math.ceil(Math.max(b, 1) / 16) * 16, 16);
  }
}
