/**
 * Counts the physical lines of a byte stream the way DuckDB's CSV reader delimits them (LF, CRLF and a lone CR
 * each end a line; a last line without a break counts when it is not empty) and notes every line longer than a
 * limit. DuckDB silently drops a line longer than its read buffer (32 MB with our 2 MB line limit) and numbers
 * the lines after it one too low; an independent count is how ingest notices and accounts for such lines.
 * Fed chunk by chunk from the same streaming pass that hashes (and decompresses) the file: O(1) memory per
 * line, a few indexOf calls per line.
 */

export interface LongLine {
  /** 1-based physical line number. */
  line: number;
  /** Offset of the line's first byte in the (decompressed) stream. */
  offset: number;
  /** Length without its line break. */
  bytes: number;
  /** The line's first bytes (at most EXCERPT_BYTES, raw: the caller sanitises before showing them). */
  head: Buffer;
}

export const EXCERPT_BYTES = 120;
const LF = 0x0a;
const CR = 0x0d;
const EMPTY = Buffer.alloc(0);

export class LineScanner {
  /** Completed lines so far (call `finish` for the total). */
  private lines = 0;
  /** Stream offset of the chunk being fed, and of the current line's first byte. */
  private offset = 0;
  private lineStart = 0;
  /** The current line's head: copied bytes from earlier chunks, then the chunk being fed from headPos. */
  private headCopy: Buffer = EMPTY;
  private headChunk: Buffer | undefined;
  private headPos = 0;
  /** The previous chunk ended with a CR: a LF at the start of the next one belongs to it. */
  private pendingCr = false;
  readonly long: LongLine[] = [];

  constructor(private readonly maxBytes: number) {}

  feed(chunk: Buffer): void {
    let pos = 0;
    if (this.pendingCr) {
      this.pendingCr = false;
      if (chunk.length > 0 && chunk[0] === LF) pos = 1;
      this.lineStart = this.offset + pos;
    }
    this.headChunk = chunk;
    this.headPos = pos;
    let lf = chunk.indexOf(LF, pos);
    let cr = chunk.indexOf(CR, pos);
    while (pos < chunk.length) {
      if (lf !== -1 && lf < pos) lf = chunk.indexOf(LF, pos);
      if (cr !== -1 && cr < pos) cr = chunk.indexOf(CR, pos);
      const brk = lf === -1 ? cr : cr === -1 ? lf : Math.min(lf, cr);
      if (brk === -1) {
        // The line goes on in the next chunk: keep a copy of its head (at most once per chunk), not the chunk.
        this.headCopy = this.head(chunk.length);
        break;
      }
      this.endLine(this.offset + brk, brk);
      let next = brk + 1;
      if (chunk[brk] === CR) {
        if (next === chunk.length) this.pendingCr = true;
        else if (chunk[next] === LF) next++;
      }
      pos = next;
      this.lineStart = this.offset + pos;
      this.headCopy = EMPTY;
      this.headPos = pos;
    }
    this.headChunk = undefined;
    this.offset += chunk.length;
  }

  /** Total physical lines; call once at the end of the stream. */
  finish(): number {
    if (this.offset > this.lineStart) this.endLine(this.offset, 0);
    return this.lines;
  }

  /** The current line's first bytes up to `end` in the chunk being fed (at most EXCERPT_BYTES). */
  private head(end: number): Buffer {
    const have = this.headCopy;
    if (!this.headChunk || have.length >= EXCERPT_BYTES) return have;
    const take = this.headChunk.subarray(
      this.headPos,
      Math.min(end, this.headPos + EXCERPT_BYTES - have.length),
    );
    return have.length ? Buffer.concat([have, take]) : Buffer.from(take);
  }

  /** Ends the current line at stream offset `end` (`at`: where its break is in the chunk being fed). */
  private endLine(end: number, at: number): void {
    this.lines++;
    const bytes = end - this.lineStart;
    if (bytes > this.maxBytes) {
      this.long.push({ line: this.lines, offset: this.lineStart, bytes, head: this.head(at) });
    }
  }
}
