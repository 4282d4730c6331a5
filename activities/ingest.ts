import * as fs from 'node:fs';
import { ApplicationFailure } from '@temporalio/common';
import { withDb, type Db } from '../lib/duckdb';
import { sha256File } from '../lib/fs-atomic';
import { readCsvHeader } from '../lib/csv-header';
import * as sql from '../analytics/ingest.sql';
import type { IngestResult, IngestedFile, RunPlan } from '../workflows/types';
import { formatOf } from './files';
import { limitsOf, log, progress } from './context';

const REQUIRED = ['user_id', 'item_id', 'timestamp'];

function badInput(message: string): ApplicationFailure {
  return ApplicationFailure.nonRetryable(message, 'BadInput');
}

/** Schema contract at the file level: the required columns, and a type for events (event_type or rating). */
function checkColumns(file: string, columns: string[]): void {
  const present = new Set(columns);
  for (const c of REQUIRED) {
    if (!present.has(c)) {
      throw badInput(`${file}: missing required column '${c}' (found: ${columns.join(', ') || 'none'})`);
    }
  }
  if (!present.has('event_type') && !present.has('rating')) {
    throw badInput(`${file}: needs an 'event_type' or a 'rating' column (found: ${columns.join(', ')})`);
  }
}

async function ingestOne(db: Db, file: string, tag: string): Promise<{ rows: number; rejected: number }> {
  const format = formatOf(file);
  const before = await db.one<{ r: number; j: number }>(
    `SELECT (SELECT count(*) FROM raw_events) AS r, (SELECT count(*) FROM raw_rejects) AS j`,
  );
  try {
    if (format === 'csv') {
      const header = readCsvHeader(file);
      checkColumns(file, header);
      await db.run(sql.loadCsv(file, header, tag));
    } else if (format === 'parquet') {
      const cols = (await db.all<{ name: string }>(sql.describeParquetColumns(file))).map((r) => r.name);
      checkColumns(file, cols);
      await db.run(sql.loadParquet(file, new Set(cols)));
    } else {
      await db.run(sql.loadJsonl(file));
    }
  } catch (err) {
    if (err instanceof ApplicationFailure) throw err;
    const msg = (err as Error).message;
    // A vanished file is an infrastructure hiccup worth a retry; anything else about the content is not.
    if (!fs.existsSync(file))
      throw ApplicationFailure.retryable(`${file}: the file disappeared while reading`, 'InputVanished');
    throw badInput(`${file}: cannot read as ${format}: ${msg.split('\n')[0]}`);
  }
  const after = await db.one<{ r: number; j: number }>(
    `SELECT (SELECT count(*) FROM raw_events) AS r, (SELECT count(*) FROM raw_rejects) AS j`,
  );
  return { rows: after.r - before.r, rejected: after.j - before.j };
}

/**
 * Loads every input file into the run's DuckDB file as text columns with source file and line. Idempotent:
 * the raw tables are recreated, so a retry after a crash starts clean.
 */
export async function ingest(plan: RunPlan): Promise<IngestResult> {
  return withDb(plan.dbPath, limitsOf(plan), async (db) => {
    await db.run(sql.CREATE_RAW_TABLES);
    const files: IngestedFile[] = [];
    for (const [i, file] of plan.interactionFiles.entries()) {
      progress({ stage: 'ingest', file, done: i, total: plan.interactionFiles.length });
      let stat: fs.Stats;
      try {
        stat = fs.statSync(file);
      } catch {
        throw ApplicationFailure.retryable(
          `${file}: the file disappeared before it was read`,
          'InputVanished',
        );
      }
      const { rows, rejected } = await ingestOne(db, file, `f${i}`);
      files.push({
        path: file,
        format: formatOf(file)!,
        bytes: stat.size,
        sha256: await sha256File(file),
        rows,
        rejectedLines: rejected,
      });
      log('ingested file', { file, rows, rejected });
    }
    await db.run(sql.CREATE_RAW_ITEMS);
    if (plan.itemsFile) {
      const header = readCsvHeader(plan.itemsFile);
      if (!header.includes('item_id')) throw badInput(`${plan.itemsFile}: missing required column 'item_id'`);
      await db.run(sql.loadItemsCsv(plan.itemsFile, header));
    }
    await db.run('CHECKPOINT');
    const totals = await db.one<{ rows: number; rejected: number; items: number }>(
      `SELECT (SELECT count(*) FROM raw_events) AS rows, (SELECT count(*) FROM raw_rejects) AS rejected,
              (SELECT count(*) FROM raw_items) AS items`,
    );
    if (totals.rows === 0) {
      throw badInput(
        `no readable interaction rows in ${plan.interactionFiles.join(', ')} (${totals.rejected} malformed lines)`,
      );
    }
    return { rows: totals.rows, rejectedLines: totals.rejected, files, itemRows: totals.items };
  });
}
