import * as fs from 'node:fs';
import * as path from 'node:path';
import { Db } from '../lib/duckdb';
import { lit } from '../lib/duckdb';

export type InputFormat = 'csv' | 'parquet' | 'jsonl';

/** The format a file is read as, from its extension (compression suffixes allowed for CSV and JSON Lines). */
export function formatOf(file: string): InputFormat | undefined {
  const name = file.toLowerCase().replace(/\.(gz|zst)$/, '');
  if (name.endsWith('.csv') || name.endsWith('.tsv')) return 'csv';
  if (name.endsWith('.parquet')) return 'parquet';
  if (name.endsWith('.jsonl') || name.endsWith('.ndjson')) return 'jsonl';
  return undefined;
}

const hasWildcard = (p: string) => /[*?[]/.test(p);

/**
 * Resolves a file, folder or glob into a sorted list of readable data files. Errors name what was asked for,
 * so an operator can fix the input from the message alone.
 */
export async function resolveInputFiles(spec: string): Promise<string[]> {
  let files: string[];
  if (hasWildcard(spec)) {
    const db = await Db.open(':memory:', { memoryLimit: '256MB', threads: 1 });
    try {
      files = (await db.all<{ file: string }>(`SELECT file FROM glob(${lit(spec)})`)).map((r) => r.file);
    } finally {
      db.close();
    }
    if (files.length === 0) throw new Error(`input '${spec}': the glob matches no files`);
  } else {
    let stat: fs.Stats;
    try {
      stat = fs.statSync(spec);
    } catch {
      throw new Error(`input '${spec}': no such file or folder`);
    }
    if (stat.isDirectory()) {
      files = fs
        .readdirSync(spec)
        .filter((n) => !n.startsWith('.') && !n.startsWith('_'))
        .map((n) => path.join(spec, n))
        .filter((f) => fs.statSync(f).isFile() && formatOf(f) !== undefined);
      if (files.length === 0) {
        throw new Error(`input '${spec}': the folder holds no .csv, .parquet or .jsonl files`);
      }
    } else {
      files = [spec];
    }
  }
  for (const f of files) {
    if (!formatOf(f))
      throw new Error(
        `input '${f}': unsupported file type (expected .csv, .parquet, .jsonl, optionally .gz)`,
      );
  }
  return [...new Set(files.map((f) => path.resolve(f)))].sort();
}
