import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { Db, lit } from '../../lib/duckdb';

/**
 * The hostile-input corpus (issue #16): one entry per case, grouped by class as the folders under
 * test/fixtures/bad/ are. Small text cases are committed there; binary, compressed and huge ones are made here
 * at test time (nothing large or binary is committed). Each case says how it must end: a clear error (type and
 * a message naming the file, and the line or field where one applies) or quarantined rows with their reasons
 * and counts. test/unit/hostile-corpus.test.ts runs every case through ingest and clean; a pipeline-level run
 * (nothing published, the previous `current` intact) can take the same table: `materialize` gives the input
 * files, `expect` the outcome.
 */

export type CorpusClass =
  | 'encoding'
  | 'structure'
  | 'compression'
  | 'ids'
  | 'timestamps'
  | 'numbers'
  | 'sizes'
  | 'paths'
  | 'jsonl'
  | 'parquet';

export type Expectation =
  | {
      /** The run fails: at ingest (BadInput unless `type` says otherwise) or, for `resolve`, planning the input. */
      error: RegExp;
      type?: string;
    }
  | {
      /** Clean's quarantine by reason (exactly these), and the rows kept. */
      quarantine: Record<string, number>;
      kept: number;
      /** Physical lines of quarantined rows, for the reasons listed (sorted). */
      lines?: Record<string, number[]>;
      /** Lines that are neither header, row nor reject: blank lines and continuation lines of quoted fields. */
      skipped?: number;
      /** A quarantine detail that must appear (field named). */
      detail?: RegExp;
    };

export interface CorpusCase {
  id: string;
  cls: CorpusClass;
  what: string;
  /** Committed fixture (relative to test/fixtures/bad) or a maker writing into `dir`; returns the input path. */
  input: string | ((dir: string) => string | Promise<string>);
  /** `resolve`: the case is about resolving the input spec (folders, links, FIFOs), not about file contents. */
  stage?: 'resolve';
  expect: Expectation;
  /** Time bound for ingest + clean (bad input must fail fast), ms. */
  budgetMs?: number;
}

export const FIXTURES = path.join(__dirname, '..', 'fixtures', 'bad');

/** Materializes a case's input under `dir` (its own folder). */
export async function materialize(c: CorpusCase, dir: string): Promise<string> {
  fs.mkdirSync(dir, { recursive: true });
  return typeof c.input === 'string' ? path.join(FIXTURES, c.input) : c.input(dir);
}

const H = 'user_id,item_id,event_type,timestamp';
const G = [
  'g1,i1,view,2026-01-01T10:00:00Z',
  'g2,i2,click,2026-01-02T10:00:00Z',
  'g3,i3,view,2026-01-03T10:00:00Z',
];
/** A CSV with three good rows around `bad` (on line 3), as bytes. */
const around = (bad: Buffer | string): Buffer =>
  Buffer.concat([Buffer.from(`${H}\n${G[0]}\n`), Buffer.from(bad), Buffer.from(`\n${G[1]}\n${G[2]}\n`)]);
const put = (dir: string, name: string, body: Buffer | string) => {
  const f = path.join(dir, name);
  fs.writeFileSync(f, body);
  return f;
};
/** Enough rows that a compressed stream spans many blocks (a cut or a flipped byte lands mid-data). */
function manyRows(n = 50_000): string {
  const rows = [H];
  for (let i = 0; i < n; i++) rows.push(`u${i % 97},i${i % 89},view,${1767261600 + i * 60}`);
  return rows.join('\n') + '\n';
}
const zstd = (body: string | Buffer): Buffer =>
  execFileSync('zstd', ['-q', '-c'], { input: body, maxBuffer: 1 << 30 });
/** A file of `mb` MiB-long lines interleaved with good rows, written in pieces (never held whole in memory). */
function withLongLines(dir: string, name: string, longAt: number[], mb: number, json = false): string {
  const f = path.join(dir, name);
  const fd = fs.openSync(f, 'w');
  const chunk = Buffer.alloc(1 << 20, 'x');
  const good = (l: number) =>
    json
      ? `{"user_id":"L${l}","item_id":"i1","event_type":"view","timestamp":"2026-01-0${1 + (l % 3)}T10:00:00Z"}\n`
      : `L${l},i1,view,2026-01-0${1 + (l % 3)}T10:00:00Z\n`;
  const first = json ? 1 : 2;
  if (!json) fs.writeSync(fd, `${H}\n`);
  for (let l = first; l < first + 8; l++) {
    if (longAt.includes(l)) {
      fs.writeSync(fd, json ? '{"user_id":"' : `L${l},`);
      for (let k = 0; k < mb; k++) fs.writeSync(fd, chunk);
      fs.writeSync(fd, json ? '"}\n' : ',view,2026-01-02T10:00:00Z\n');
    } else fs.writeSync(fd, good(l));
  }
  fs.closeSync(fd);
  return f;
}
async function parquet(dir: string, name: string, select: string): Promise<string> {
  const f = path.join(dir, name);
  const db = await Db.open(':memory:', { memoryLimit: '256MB', threads: 1 });
  try {
    await db.run(`COPY (${select}) TO ${lit(f)} (FORMAT parquet)`);
  } finally {
    db.close();
  }
  return f;
}
/** Deterministic pseudo-random bytes (a fixed LCG). */
function garbage(n: number): Buffer {
  const b = Buffer.alloc(n);
  let x = 12345;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

const loads = (
  kept: number,
  more: Partial<Extract<Expectation, { quarantine: unknown }>> = {},
): Expectation => ({
  quarantine: {},
  kept,
  ...more,
});
const q = (
  quarantine: Record<string, number>,
  kept: number,
  more: Partial<Extract<Expectation, { quarantine: unknown }>> = {},
): Expectation => ({ quarantine, kept, ...more });
const refused = (error: RegExp, type?: string): Expectation => ({ error, ...(type ? { type } : {}) });

export const CORPUS: CorpusCase[] = [
  // ---- encoding ----
  {
    id: 'encoding/bom',
    cls: 'encoding',
    what: 'UTF-8 byte-order mark before the header',
    input: 'encoding/bom.csv',
    expect: loads(1),
  },
  {
    id: 'encoding/bom-crlf',
    cls: 'encoding',
    what: 'BOM and CRLF line endings',
    input: 'encoding/bom-crlf.csv',
    expect: loads(2),
  },
  {
    id: 'encoding/crlf',
    cls: 'encoding',
    what: 'CRLF line endings',
    input: 'encoding/crlf.csv',
    expect: loads(3),
  },
  {
    id: 'encoding/mixed-newlines',
    cls: 'encoding',
    what: 'CRLF and LF mixed, one short row',
    input: 'encoding/mixed-newlines.csv',
    expect: q({ malformed_line: 1 }, 3, { lines: { malformed_line: [4] } }),
  },
  {
    id: 'encoding/cr-only',
    cls: 'encoding',
    what: 'old-Mac CR-only line endings',
    input: (d) => put(d, 'cr-only.csv', `${H}\r${G.join('\r')}\r`),
    expect: loads(3),
  },
  {
    id: 'encoding/latin1-field',
    cls: 'encoding',
    what: 'Latin-1 bytes (invalid UTF-8) inside a field',
    input: (d) =>
      put(
        d,
        'latin1.csv',
        around(
          Buffer.from([0x75, 0x32, 0x2c, 0x63, 0x61, 0x66, 0xe9, 0x2c, 0x76, 0x69, 0x65, 0x77, 0x2c, 0x31]),
        ),
      ),
    expect: q({ malformed_line: 1 }, 3, { lines: { malformed_line: [3] }, detail: /INVALID ENCODING/ }),
  },
  {
    id: 'encoding/overlong-utf8',
    cls: 'encoding',
    what: 'an overlong UTF-8 encoding (C0 80) of NUL in a field',
    input: (d) =>
      put(
        d,
        'overlong.csv',
        around(
          Buffer.concat([
            Buffer.from('u2,i'),
            Buffer.from([0xc0, 0x80]),
            Buffer.from(',view,2026-01-02T11:00:00Z'),
          ]),
        ),
      ),
    expect: q({ malformed_line: 1 }, 3, { lines: { malformed_line: [3] } }),
  },
  {
    id: 'encoding/garbage',
    cls: 'encoding',
    what: 'random binary data named .csv',
    input: (d) => put(d, 'garbage.csv', garbage(64 * 1024)),
    expect: refused(/garbage\.csv: .*(binary|not valid UTF-8|control characters)/),
  },
  {
    id: 'encoding/utf16',
    cls: 'encoding',
    what: 'UTF-16LE text with a BOM',
    input: (d) =>
      put(
        d,
        'utf16.csv',
        Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(`${H}\n${G[0]}\n`, 'utf16le')]),
      ),
    expect: refused(/utf16\.csv: .*(NUL bytes|not valid UTF-8|binary)/),
  },
  {
    id: 'encoding/nul-in-header',
    cls: 'encoding',
    what: 'a NUL byte in the header line',
    input: (d) => put(d, 'nulhdr.csv', `user_id,item\u0000_id,event_type,timestamp\n${G[0]}\n`),
    expect: refused(/nulhdr\.csv: the first line holds NUL bytes/),
  },
  {
    id: 'encoding/latin1-header',
    cls: 'encoding',
    what: 'invalid UTF-8 in the header line',
    input: (d) =>
      put(
        d,
        'latin1hdr.csv',
        Buffer.concat([
          Buffer.from('user_id,item_id,event_type,timestamp,caf'),
          Buffer.from([0xe9]),
          Buffer.from(`\n${G[0]},x\n`),
        ]),
      ),
    expect: refused(/latin1hdr\.csv: the first line is not valid UTF-8/),
  },
  // ---- structure ----
  {
    id: 'structure/good',
    cls: 'structure',
    what: 'baseline: 10 rows over 5 days',
    input: 'structure/good.csv',
    expect: loads(10),
  },
  {
    id: 'structure/truncated-mid-line',
    cls: 'structure',
    what: 'file cut in the middle of its last line',
    input: 'structure/truncated-mid-line.csv',
    expect: q({ malformed_line: 1 }, 2, { lines: { malformed_line: [4] } }),
  },
  {
    id: 'structure/truncated-mid-quote',
    cls: 'structure',
    what: 'file cut inside a quoted field',
    input: 'structure/truncated-mid-quote.csv',
    expect: q({ malformed_line: 1 }, 2, { lines: { malformed_line: [4] } }),
  },
  {
    id: 'structure/empty',
    cls: 'structure',
    what: '0-byte file',
    input: 'structure/empty.csv',
    expect: refused(/empty\.csv: the file is empty/),
  },
  {
    id: 'structure/header-only',
    cls: 'structure',
    what: 'header and no rows',
    input: 'structure/header-only.csv',
    expect: refused(/header-only\.csv: no data rows/),
  },
  {
    id: 'structure/no-header',
    cls: 'structure',
    what: 'data on the first line',
    input: 'structure/no-header.csv',
    expect: refused(/no-header\.csv: missing required column .*is the header line missing/),
  },
  {
    id: 'structure/missing-column',
    cls: 'structure',
    what: 'no timestamp column',
    input: 'structure/missing-column.csv',
    expect: refused(/missing-column\.csv: missing required column 'timestamp'/),
  },
  {
    id: 'structure/no-type-column',
    cls: 'structure',
    what: 'neither event_type nor rating',
    input: 'structure/no-type-column.csv',
    expect: refused(/no-type-column\.csv: needs an 'event_type' or a 'rating' column/),
  },
  {
    id: 'structure/semicolon',
    cls: 'structure',
    what: ';-separated file',
    input: 'structure/semicolon.csv',
    expect: refused(/semicolon\.csv: .*looks ';'-separated/),
  },
  {
    id: 'structure/duplicate-header',
    cls: 'structure',
    what: 'user_id twice (case-insensitive)',
    input: 'structure/duplicate-header.csv',
    expect: refused(/duplicate-header\.csv: duplicate column 'user_id' \(columns 1 and 3\)/),
  },
  {
    id: 'structure/renamed-columns',
    cls: 'structure',
    what: 'contract columns under other names, no aliases configured',
    input: 'structure/renamed-columns.csv',
    expect: refused(/renamed-columns\.csv: missing required column 'user_id'/),
  },
  {
    id: 'structure/extra-columns',
    cls: 'structure',
    what: 'unknown, repeated and unnamed columns',
    input: 'structure/extra-columns.csv',
    expect: loads(2),
  },
  {
    id: 'structure/tabs',
    cls: 'structure',
    what: 'tab-separated .tsv, mixed-case header',
    input: 'structure/tabs.tsv',
    expect: loads(2),
  },
  {
    id: 'structure/multiline-quoted',
    cls: 'structure',
    what: 'quoted ids spanning lines, blank lines, a short row',
    input: 'structure/multiline-quoted.csv',
    expect: q({ bad_id: 2, malformed_line: 1 }, 3, {
      lines: { bad_id: [4, 10], malformed_line: [9] },
      skipped: 5,
      detail: /item_id: holds a control or invisible character/,
    }),
  },
  {
    id: 'structure/blank-lines',
    cls: 'structure',
    what: 'blank lines between rows',
    input: 'structure/blank-lines.csv',
    expect: q({ malformed_line: 1 }, 3, { lines: { malformed_line: [5] }, skipped: 4 }),
  },
  {
    id: 'structure/too-many-fields',
    cls: 'structure',
    what: 'a row with an extra field',
    input: 'structure/too-many-fields.csv',
    expect: q({ malformed_line: 1 }, 3, { lines: { malformed_line: [3] }, detail: /TOO MANY COLUMNS/ }),
  },
  {
    id: 'structure/unterminated-quote-at-eof',
    cls: 'structure',
    what: 'the last line opens a quote that never closes',
    input: 'structure/unterminated-quote-at-eof.csv',
    expect: q({ malformed_line: 1 }, 3, { lines: { malformed_line: [5] } }),
  },
  {
    id: 'structure/only-newlines',
    cls: 'structure',
    what: 'a file of blank lines',
    input: 'structure/only-newlines.csv',
    expect: refused(/only-newlines\.csv: the first line is empty/),
  },
  {
    id: 'structure/whitespace-header',
    cls: 'structure',
    what: 'a header of blanks',
    input: 'structure/whitespace-header.csv',
    expect: refused(/whitespace-header\.csv: missing required column/),
  },
  {
    id: 'structure/long-column-names',
    cls: 'structure',
    what: 'a 500 KB header of unknown names: the error shows a short excerpt, not the line',
    input: (d) => put(d, 'names.csv', `${'n'.repeat(250_000)},${'m'.repeat(250_000)}\n${G[0]}\n`),
    expect: refused(/names\.csv: missing required column 'user_id'.*… \(\d+ characters\)/),
  },
  {
    id: 'structure/quoted-header',
    cls: 'structure',
    what: 'quoted column names',
    input: 'structure/quoted-header.csv',
    expect: loads(3),
  },
  {
    id: 'structure/no-final-newline',
    cls: 'structure',
    what: 'last line without a line break',
    input: 'structure/no-final-newline.csv',
    expect: loads(3),
  },
  {
    id: 'structure/short-rows',
    cls: 'structure',
    what: 'a one-field row and a row of empty fields',
    input: 'structure/short-rows.csv',
    expect: q({ malformed_line: 1, null_user_id: 1 }, 3, {
      lines: { malformed_line: [3], null_user_id: [4] },
    }),
  },
  // ---- compression ----
  {
    id: 'compression/gzip',
    cls: 'compression',
    what: 'a good gzip CSV',
    input: (d) => put(d, 'good.csv.gz', zlib.gzipSync(around('u2,i2,view,2026-01-02T11:00:00Z'))),
    expect: loads(4),
  },
  {
    id: 'compression/gzip-multi-member',
    cls: 'compression',
    what: 'two concatenated gzip members (as `cat a.gz b.gz`)',
    input: (d) =>
      put(
        d,
        'members.csv.gz',
        Buffer.concat([zlib.gzipSync(`${H}\n${G[0]}\n`), zlib.gzipSync(`${G[1]}\n${G[2]}\n`)]),
      ),
    expect: loads(3),
  },
  {
    id: 'compression/gzip-corrupt',
    cls: 'compression',
    what: 'flipped bytes in the middle of a gzip stream',
    input: (d) => {
      const gz = Buffer.from(zlib.gzipSync(manyRows()));
      for (let i = 4000; i < 4100; i++) gz[i] ^= 0x5a;
      return put(d, 'corrupt.csv.gz', gz);
    },
    expect: refused(/corrupt\.csv\.gz: corrupt or truncated gzip data/),
  },
  {
    id: 'compression/gzip-truncated',
    cls: 'compression',
    what: 'a gzip file cut at 70%',
    input: (d) => {
      const gz = zlib.gzipSync(manyRows());
      return put(d, 'cut.csv.gz', gz.subarray(0, Math.floor(gz.length * 0.7)));
    },
    expect: refused(/cut\.csv\.gz: corrupt or truncated gzip data.*unexpected end of file/),
  },
  {
    id: 'compression/gzip-empty',
    cls: 'compression',
    what: 'a 0-byte .csv.gz',
    input: (d) => put(d, 'empty.csv.gz', Buffer.alloc(0)),
    expect: refused(/empty\.csv\.gz: (the file is empty|not a readable gzip|corrupt or truncated gzip)/),
  },
  {
    id: 'compression/plain-named-gz',
    cls: 'compression',
    what: 'plain text named .csv.gz',
    input: (d) => put(d, 'plain.csv.gz', around('u2,i2,view,2026-01-02T11:00:00Z')),
    expect: refused(/plain\.csv\.gz: not a readable gzip file/),
  },
  {
    id: 'compression/gzip-named-csv',
    cls: 'compression',
    what: 'gzip data named .csv',
    input: (d) => put(d, 'packed.csv', zlib.gzipSync(around('u2,i2,view,2026-01-02T11:00:00Z'))),
    expect: refused(/packed\.csv: the file holds gzip-compressed data \(name it \.csv\.gz\)/),
  },
  {
    id: 'compression/zstd',
    cls: 'compression',
    what: 'a good zstd CSV',
    input: (d) => put(d, 'good.csv.zst', zstd(around('u2,i2,view,2026-01-02T11:00:00Z'))),
    expect: loads(4),
  },
  {
    id: 'compression/zstd-truncated',
    cls: 'compression',
    what: 'a zstd file cut at 60% (DuckDB alone loaded its first part)',
    input: (d) => {
      const z = zstd(manyRows(200_000));
      return put(d, 'cut.csv.zst', z.subarray(0, Math.floor(z.length * 0.6)));
    },
    expect: refused(/cut\.csv\.zst: corrupt or truncated zstd data/),
  },
  {
    id: 'compression/zstd-corrupt',
    cls: 'compression',
    what: 'flipped bytes inside a zstd frame',
    input: (d) => {
      const z = Buffer.from(zstd(manyRows(200_000)));
      for (let i = 5000; i < 5010; i++) z[i] ^= 0x55;
      return put(d, 'corrupt.csv.zst', z);
    },
    expect: refused(/corrupt\.csv\.zst: (corrupt or truncated zstd data|cannot read)/),
  },
  {
    id: 'compression/zstd-named-csv',
    cls: 'compression',
    what: 'zstd data named .csv',
    input: (d) => put(d, 'packed-z.csv', zstd(around('u2,i2,view,2026-01-02T11:00:00Z'))),
    expect: refused(/packed-z\.csv: the file holds zstd-compressed data/),
  },
  {
    id: 'compression/zstd-jsonl-truncated',
    cls: 'compression',
    what: 'a truncated .jsonl.zst',
    input: (d) => {
      const rows = Array.from({ length: 100_000 }, (_, i) =>
        JSON.stringify({
          user_id: `u${i % 50}`,
          item_id: `i${i % 40}`,
          event_type: 'view',
          timestamp: 1767261600 + i,
        }),
      ).join('\n');
      const z = zstd(rows + '\n');
      return put(d, 'cut.jsonl.zst', z.subarray(0, Math.floor(z.length / 2)));
    },
    expect: refused(/cut\.jsonl\.zst: corrupt or truncated zstd data/),
  },
  // ---- ids ----
  {
    id: 'ids/sql-fragments',
    cls: 'ids',
    what: 'quotes, semicolons and SQL in ids',
    input: 'ids/sql-ids.csv',
    expect: q({ bad_rating: 1 }, 4),
  },
  {
    id: 'ids/nul-byte',
    cls: 'ids',
    what: 'a NUL byte inside a user id',
    input: (d) => put(d, 'nul.csv', around('u\u00002,i2,view,2026-01-02T11:00:00Z')),
    expect: q({ bad_id: 1 }, 3, {
      lines: { bad_id: [3] },
      detail: /user_id: holds a control or invisible character \(U\+0000\)/,
    }),
  },
  {
    id: 'ids/control-char',
    cls: 'ids',
    what: 'a control character (0x01) in an item id',
    input: (d) => put(d, 'ctl.csv', around('u2,i\u00012,view,2026-01-02T11:00:00Z')),
    expect: q({ bad_id: 1 }, 3, {
      lines: { bad_id: [3] },
      detail: /item_id: holds a control or invisible character \(U\+0001\)/,
    }),
  },
  {
    id: 'ids/escape-sequence',
    cls: 'ids',
    what: 'a terminal escape sequence in an id',
    input: (d) => put(d, 'esc.csv', around('u2\u001b[31m,i2,view,2026-01-02T11:00:00Z')),
    expect: q({ bad_id: 1 }, 3, { lines: { bad_id: [3] } }),
  },
  {
    id: 'ids/tab',
    cls: 'ids',
    what: 'a tab inside a (quoted) id',
    input: (d) => put(d, 'tab.csv', around('"u\t2",i2,view,2026-01-02T11:00:00Z')),
    expect: q({ bad_id: 1 }, 3, { lines: { bad_id: [3] } }),
  },
  {
    id: 'ids/bidi-override',
    cls: 'ids',
    what: 'a right-to-left override (U+202E) in an id',
    input: (d) => put(d, 'bidi.csv', around('u\u202e2,i2,view,2026-01-02T11:00:00Z')),
    expect: q({ bad_id: 1 }, 3, { lines: { bad_id: [3] }, detail: /U\+202E/ }),
  },
  {
    id: 'ids/c1-control',
    cls: 'ids',
    what: 'a C1 control (U+0085, next line) in an id',
    input: (d) => put(d, 'c1.csv', around('u2,i\u00852,view,2026-01-02T11:00:00Z')),
    expect: q({ bad_id: 1 }, 3, { lines: { bad_id: [3] } }),
  },
  {
    id: 'ids/json-object-in-csv',
    cls: 'ids',
    what: 'a JSON object as a CSV user id',
    input: 'ids/json-object-in-csv.csv',
    expect: q({ bad_id: 1 }, 3, { lines: { bad_id: [3] }, detail: /user_id: a JSON object, not an id/ }),
  },
  {
    id: 'ids/json-array-in-csv',
    cls: 'ids',
    what: 'a JSON array as a CSV item id',
    input: 'ids/json-array-in-csv.csv',
    expect: q({ bad_id: 1 }, 3, { lines: { bad_id: [3] }, detail: /item_id: a JSON array, not an id/ }),
  },
  {
    id: 'ids/json-documents-in-jsonl',
    cls: 'ids',
    what: 'JSON objects, arrays and NUL as ids in JSON Lines',
    input: 'ids/json-ids.jsonl',
    expect: q({ bad_id: 3 }, 3, { lines: { bad_id: [2, 3, 4] } }),
  },
  {
    id: 'ids/too-long',
    cls: 'ids',
    what: 'a 301-character id (schema.maxIdLength 256)',
    input: 'ids/long-id.csv',
    expect: q({ bad_id: 1 }, 3, {
      lines: { bad_id: [3] },
      detail: /user_id: longer than 256 characters \(301\)/,
    }),
  },
  {
    id: 'ids/empty-and-blank',
    cls: 'ids',
    what: 'empty and all-blank ids',
    input: 'ids/empty-and-blank-ids.csv',
    expect: q({ null_user_id: 2, null_item_id: 1 }, 3, {
      lines: { null_user_id: [3, 4], null_item_id: [5] },
    }),
  },
  {
    id: 'ids/unicode',
    cls: 'ids',
    what: 'printable non-ASCII ids',
    input: 'ids/unicode-ids.csv',
    expect: loads(5),
  },
  // ---- timestamps ----
  {
    id: 'timestamps/epochs',
    cls: 'timestamps',
    what: 'negative, far-future, infinite and over-long epochs',
    input: 'timestamps/epochs.csv',
    expect: q({ timestamp_before_floor: 3, future_timestamp: 4, bad_timestamp: 1 }, 2),
  },
  {
    id: 'timestamps/offset-99',
    cls: 'timestamps',
    what: 'UTC offset +99:99 (DuckDB shifted the time by 4 days)',
    input: 'timestamps/offset-99.csv',
    expect: q({ bad_timestamp: 1 }, 3, {
      lines: { bad_timestamp: [3] },
      detail: /timestamp: UTC offset \+99:99 out of range/,
    }),
  },
  {
    id: 'timestamps/offset-24',
    cls: 'timestamps',
    what: 'UTC offset +24:00',
    input: 'timestamps/offset-24.csv',
    expect: q({ bad_timestamp: 1 }, 3, { lines: { bad_timestamp: [3] } }),
  },
  {
    id: 'timestamps/offset-minutes',
    cls: 'timestamps',
    what: 'UTC offset -12:75',
    input: 'timestamps/offset-minutes-75.csv',
    expect: q({ bad_timestamp: 1 }, 3, { lines: { bad_timestamp: [3] } }),
  },
  {
    id: 'timestamps/offset-compact',
    cls: 'timestamps',
    what: 'compact offset +9999',
    input: 'timestamps/offset-compact-9999.csv',
    expect: q({ bad_timestamp: 1 }, 3, { lines: { bad_timestamp: [3] } }),
  },
  {
    id: 'timestamps/valid-offsets',
    cls: 'timestamps',
    what: '+05:30, -08:00 and +14:00',
    input: 'timestamps/valid-offsets.csv',
    expect: loads(6),
  },
  {
    id: 'timestamps/not-dates',
    cls: 'timestamps',
    what: 'a word, February 30th and an empty timestamp',
    input: 'timestamps/not-a-date.csv',
    expect: q({ bad_timestamp: 3 }, 3, { lines: { bad_timestamp: [3, 4, 5] } }),
  },
  {
    id: 'timestamps/far-future',
    cls: 'timestamps',
    what: 'year 2999',
    input: 'timestamps/far-future.csv',
    expect: q({ future_timestamp: 1 }, 3, { lines: { future_timestamp: [3] } }),
  },
  // ---- numbers ----
  {
    id: 'numbers/nan-infinity',
    cls: 'numbers',
    what: 'NaN, Infinity and -inf ratings',
    input: 'numbers/bad-ratings.csv',
    expect: q({ bad_rating: 5 }, 2, { lines: { bad_rating: [3, 4, 5, 6, 8] } }),
  },
  {
    id: 'numbers/overflow',
    cls: 'numbers',
    what: 'a rating of 1e309 (overflows a double)',
    input: 'numbers/rating-overflow.csv',
    expect: q({ bad_rating: 1 }, 3, { lines: { bad_rating: [3] } }),
  },
  {
    id: 'numbers/comma-decimal',
    cls: 'numbers',
    what: 'a decimal comma ("3,5")',
    input: 'numbers/rating-comma-decimal.csv',
    expect: q({ bad_rating: 1 }, 3, { lines: { bad_rating: [3] } }),
  },
  {
    id: 'numbers/out-of-range',
    cls: 'numbers',
    what: 'ratings 99 and -1 (range 0.5 to 5)',
    input: 'numbers/rating-out-of-range.csv',
    expect: q({ bad_rating: 2 }, 3, { lines: { bad_rating: [3, 4] } }),
  },
  {
    id: 'numbers/words',
    cls: 'numbers',
    what: 'a rating spelt out, and a rating event without a rating',
    input: 'numbers/rating-words.csv',
    expect: q({ bad_rating: 2 }, 3, { lines: { bad_rating: [3, 4] } }),
  },
  // ---- sizes (made at test time, never committed) ----
  {
    id: 'sizes/10mb-field',
    cls: 'sizes',
    what: 'a 10 MB field',
    input: (d) => withLongLines(d, 'field10.csv', [4], 10),
    expect: q({ line_too_long: 1 }, 7, {
      lines: { line_too_long: [4] },
      detail: /line of \d+ bytes, longer than the 2097152-byte limit/,
    }),
    budgetMs: 10_000,
  },
  {
    id: 'sizes/100mb-line',
    cls: 'sizes',
    what: 'a ~100 MB line (DuckDB dropped it silently and renumbered the lines after it)',
    input: (d) => withLongLines(d, 'line100.csv', [3], 100),
    expect: q({ line_too_long: 1 }, 7, { lines: { line_too_long: [3] } }),
    budgetMs: 15_000,
  },
  {
    id: 'sizes/many-long-lines',
    cls: 'sizes',
    what: 'five 3 MB lines',
    input: (d) => withLongLines(d, 'long5.csv', [2, 3, 5, 7, 9], 3),
    expect: q({ line_too_long: 5 }, 3, { lines: { line_too_long: [2, 3, 5, 7, 9] } }),
    budgetMs: 10_000,
  },
  {
    id: 'sizes/40mb-jsonl-line',
    cls: 'sizes',
    what: "a 40 MB JSON Lines line (past DuckDB's 32 MB buffer)",
    input: (d) => withLongLines(d, 'long.jsonl', [4], 40, true),
    expect: q({ line_too_long: 1 }, 7, { lines: { line_too_long: [4] } }),
    budgetMs: 10_000,
  },
  {
    id: 'sizes/huge-header',
    cls: 'sizes',
    what: 'a 2 MB header line',
    input: (d) => put(d, 'hdr.csv', `${'c'.repeat(2 << 20)},${H}\n${G[0]}\n`),
    expect: refused(/hdr\.csv: no line break within the first \d+ bytes/),
  },
  // ---- paths ----
  {
    id: 'paths/fifo',
    cls: 'paths',
    what: 'a FIFO named .csv',
    stage: 'resolve',
    input: (d) => {
      const f = path.join(d, 'pipe.csv');
      execFileSync('mkfifo', [f]);
      return f;
    },
    expect: refused(/pipe\.csv': not a regular file/),
  },
  {
    id: 'paths/dangling-link',
    cls: 'paths',
    what: 'a dangling symlink in the input folder',
    stage: 'resolve',
    input: (d) => {
      put(d, 'a.csv', around('u2,i2,view,2026-01-02T11:00:00Z'));
      fs.symlinkSync(path.join(d, 'gone.csv'), path.join(d, 'b.csv'));
      return d;
    },
    expect: refused(/b\.csv': listed in the folder but cannot be read/),
  },
  {
    id: 'paths/folder-of-folders',
    cls: 'paths',
    what: 'a folder whose only .csv is a folder',
    stage: 'resolve',
    input: (d) => {
      fs.mkdirSync(path.join(d, 'sub.csv'));
      return d;
    },
    expect: refused(/the folder holds no \.csv/),
  },
  {
    id: 'paths/glob-matches-nothing',
    cls: 'paths',
    what: 'a glob without matches',
    stage: 'resolve',
    input: (d) => path.join(d, 'nowhere', '*.csv'),
    expect: refused(/the glob matches no files/),
  },
  {
    id: 'paths/odd-names',
    cls: 'paths',
    what: 'spaces, quotes, brackets and non-ASCII in the file name',
    input: (d) => put(d, "it's [1] данные ✓.csv", around('u2,i2,view,2026-01-02T11:00:00Z')),
    expect: loads(4),
  },
  // ---- JSON Lines ----
  {
    id: 'jsonl/malformed',
    cls: 'jsonl',
    what: 'invalid JSON and a JSON array line',
    input: 'jsonl/malformed.jsonl',
    expect: q({ malformed_line: 3 }, 3, { lines: { malformed_line: [2, 5, 6] }, skipped: 1 }),
  },
  {
    id: 'jsonl/no-user',
    cls: 'jsonl',
    what: 'no line has user_id',
    input: 'jsonl/no-user.jsonl',
    expect: refused(/no-user\.jsonl: missing required field 'user_id'/),
  },
  {
    id: 'jsonl/truncated-last-line',
    cls: 'jsonl',
    what: 'the last object cut off',
    input: 'jsonl/truncated-last-line.jsonl',
    expect: q({ malformed_line: 1 }, 3, { lines: { malformed_line: [4] } }),
  },
  {
    id: 'jsonl/scalars',
    cls: 'jsonl',
    what: 'a number, null and a string instead of objects; a blank line',
    input: 'jsonl/scalars-and-nulls.jsonl',
    expect: q({ malformed_line: 3 }, 3, { lines: { malformed_line: [2, 3, 4] }, skipped: 1 }),
  },
  {
    id: 'jsonl/numeric-ids',
    cls: 'jsonl',
    what: 'numbers as ids and an epoch timestamp',
    input: 'jsonl/numeric-ids.jsonl',
    expect: loads(3),
  },
  // ---- Parquet ----
  {
    id: 'parquet/truncated',
    cls: 'parquet',
    what: 'a Parquet file cut to 300 bytes',
    input: async (d) => {
      const f = await parquet(
        d,
        'whole.parquet',
        `SELECT 'u' || i AS user_id, 'i1' AS item_id, 'view' AS event_type, '2026-01-01T00:00:00Z' AS "timestamp" FROM range(1000) t(i)`,
      );
      const cut = put(d, 'cut.parquet', fs.readFileSync(f).subarray(0, 300));
      fs.rmSync(f);
      return cut;
    },
    expect: refused(/cut\.parquet: cannot read as parquet/),
  },
  {
    id: 'parquet/missing-column',
    cls: 'parquet',
    what: 'no item_id column',
    input: (d) =>
      parquet(
        d,
        'noitem.parquet',
        `SELECT 'u1' AS user_id, 'view' AS event_type, TIMESTAMP '2026-01-01 10:00:00' AS "timestamp"`,
      ),
    expect: refused(/noitem\.parquet: missing required column 'item_id'/),
  },
  {
    id: 'parquet/struct-id',
    cls: 'parquet',
    what: 'a STRUCT user_id',
    input: (d) =>
      parquet(
        d,
        'struct.parquet',
        `SELECT {'a': 1} AS user_id, 'i1' AS item_id, 'view' AS event_type, TIMESTAMP '2026-01-01 10:00:00' AS "timestamp"`,
      ),
    expect: refused(/struct\.parquet: column 'user_id' has type STRUCT/),
  },
  {
    id: 'parquet/nul-ids',
    cls: 'parquet',
    what: 'VARCHAR ids with NUL bytes and a JSON object',
    input: (d) =>
      parquet(
        d,
        'nul.parquet',
        `SELECT * FROM (VALUES ('g1', 'i1', 'view', '2026-01-01T10:00:00Z'), ('u' || chr(0) || '2', 'i2', 'view', '2026-01-02T10:00:00Z'),
           ('{"a":1}', 'i3', 'view', '2026-01-02T11:00:00Z'), ('g2', 'i2', 'click', '2026-01-02T12:00:00Z'), ('g3', 'i3', 'view', '2026-01-03T10:00:00Z'))
         AS t(user_id, item_id, event_type, "timestamp")`,
      ),
    expect: q({ bad_id: 2 }, 3, { lines: { bad_id: [2, 3] } }),
  },
  {
    id: 'parquet/bad-offset',
    cls: 'parquet',
    what: 'text timestamps with a +99:99 offset',
    input: (d) =>
      parquet(
        d,
        'offset.parquet',
        `SELECT * FROM (VALUES ('g1', 'i1', 'view', '2026-01-01T10:00:00Z'), ('u2', 'i2', 'view', '2026-01-02T10:00:00+99:99'),
           ('g2', 'i2', 'click', '2026-01-02T12:00:00Z'), ('g3', 'i3', 'view', '2026-01-03T10:00:00Z'))
         AS t(user_id, item_id, event_type, "timestamp")`,
      ),
    expect: q({ bad_timestamp: 1 }, 3, { lines: { bad_timestamp: [2] } }),
  },
];
