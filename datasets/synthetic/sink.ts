import { createHash, type Hash } from 'node:crypto';
import * as fsp from 'node:fs/promises';

/**
 * Buffered file sink: text is appended to an in-memory chunk, and a full chunk is handed to the OS with at most
 * one write in flight. Awaiting the previous write before starting the next is the backpressure: memory stays at
 * about two chunks however many rows go through, and generation of the next chunk overlaps the current write.
 * The sha256 of the content is computed on the way, so the manifest can record it without re-reading the file.
 */
export class ChunkedSink {
  private buf = '';
  private pending: Promise<unknown> | undefined;
  private readonly hash: Hash = createHash('sha256');
  private bytes = 0;
  /** Largest number of characters held in the buffer at a flush: evidence that the output is streamed. */
  peakBufferedChars = 0;

  private constructor(
    private readonly handle: fsp.FileHandle,
    private readonly chunkChars: number,
  ) {}

  static async open(file: string, chunkChars = 1 << 20): Promise<ChunkedSink> {
    return new ChunkedSink(await fsp.open(file, 'w'), chunkChars);
  }

  write(text: string): void {
    this.buf += text;
  }

  get full(): boolean {
    return this.buf.length >= this.chunkChars;
  }

  async flush(): Promise<void> {
    if (this.buf.length === 0) return;
    this.peakBufferedChars = Math.max(this.peakBufferedChars, this.buf.length);
    const data = Buffer.from(this.buf, 'utf8');
    this.buf = '';
    this.hash.update(data);
    this.bytes += data.length;
    if (this.pending) await this.pending;
    this.pending = writeAll(this.handle, data);
  }

  /** Flushes, fsyncs and closes; returns the content's sha256 and size. */
  async close(): Promise<{ sha256: string; bytes: number }> {
    try {
      await this.flush();
      if (this.pending) await this.pending;
      await this.handle.sync();
    } finally {
      await this.handle.close();
    }
    return { sha256: this.hash.digest('hex'), bytes: this.bytes };
  }

  /** Closes without caring about the content (error path). */
  async abort(): Promise<void> {
    try {
      if (this.pending) await this.pending.catch(() => undefined);
    } finally {
      await this.handle.close().catch(() => undefined);
    }
  }
}

/** A single write(2) may be short (disk nearly full, signals); loop until the whole chunk is out. */
async function writeAll(handle: fsp.FileHandle, data: Buffer): Promise<void> {
  let offset = 0;
  while (offset < data.length) {
    const { bytesWritten } = await handle.write(data, offset, data.length - offset);
    offset += bytesWritten;
  }
}
