import { lit } from '../lib/duckdb';
import type { IngestedFile, SchemaDrift } from '../contracts/stages';

/**
 * Column drift against the previous successful run, pure. The previous run's files are recorded with their
 * columns (activities/incremental.ts, at commit); each file of this run is compared with the same path when
 * that was read before, else with the previous run's last file (nightly drops have new names each day).
 */

export interface SchemaRecord {
  formatVersion: 1;
  runId: string;
  runDate: string;
  files: { path: string; columns: { name: string; type?: string }[] }[];
}

export function compareSchemas(prev: SchemaRecord | undefined, files: IngestedFile[]): SchemaDrift[] {
  if (!prev || prev.files.length === 0) return [];
  const byPath = new Map(prev.files.map((f) => [f.path, f]));
  const fallback = prev.files[prev.files.length - 1];
  const out: SchemaDrift[] = [];
  for (const f of files) {
    if (!f.columns) continue;
    const ref = byPath.get(f.path) ?? fallback;
    const key = (n: string) => n.trim().toLowerCase();
    const before = new Map(ref.columns.map((c) => [key(c.name), c]));
    const now = new Map(f.columns.map((c) => [key(c.name), c]));
    const added = [...now.keys()].filter((k) => !before.has(k)).map((k) => now.get(k)!.name);
    const removed = [...before.keys()].filter((k) => !now.has(k)).map((k) => before.get(k)!.name);
    const retyped = [...now.entries()]
      .filter(([k, c]) => {
        const b = before.get(k);
        return b?.type !== undefined && c.type !== undefined && b.type !== c.type;
      })
      .map(([k, c]) => ({ column: c.name, from: before.get(k)!.type!, to: c.type! }));
    if (added.length || removed.length || retyped.length) {
      out.push({ file: f.path, comparedWith: ref.path, added, removed, retyped });
    }
  }
  return out;
}

/** One line per drifted file, for logs and warnings. */
export function describeDrift(d: SchemaDrift): string {
  const parts = [
    d.added.length ? `new columns ${d.added.join(', ')}` : '',
    d.removed.length ? `missing columns ${d.removed.join(', ')}` : '',
    ...d.retyped.map((r) => `column ${r.column} retyped ${r.from} → ${r.to}`),
  ].filter(Boolean);
  return `${d.file}: ${parts.join('; ')} (compared with ${d.comparedWith} of the previous successful run)`;
}

/**
 * Puts every landed row of a file (`landed`: its landing Parquet file, which the caller then discards) into
 * raw_rejects as retyped_column (schema.drift.retypedColumns: quarantine): a column of the wrong type makes
 * every row of the file suspect, not just unparseable ones.
 */
export function quarantineFileSql(landed: string, detail: string): string {
  return `
INSERT INTO raw_rejects
  SELECT source_file, source_line, 'retyped_column', ${lit(detail)},
         left(concat_ws(',', user_id, item_id, event_type, rating, "timestamp"), 4096)
  FROM read_parquet(${lit(landed)});`;
}
