import * as fs from 'node:fs';
import { lit, type Db } from '../../lib/duckdb';
import type { ArtifactRef } from '../../contracts/run';
import type { CleanArtifacts, RawArtifacts } from '../../contracts/stages';
import { rawEventsViewSql } from '../../analytics/ingest.sql';
import type { RunIO } from './run-io';

/** A Parquet file the activity wrote (locally), as the reference the next stage is given. */
export async function parquetArtifact(db: Db, io: RunIO, key: string): Promise<ArtifactRef> {
  const file = io.local(key);
  const rows = Number(await db.scalar(`SELECT count(*) FROM read_parquet(${lit(file)})`));
  return { key, rows, bytes: fs.statSync(file).size };
}

/** Any other file the activity wrote (JSON, HTML). */
export function fileArtifact(io: RunIO, key: string, rows = 0): ArtifactRef {
  return { key, rows, bytes: fs.statSync(io.local(key)).size };
}

/** Every key of the raw artifacts (for fetch). */
export function rawKeys(raw: RawArtifacts): string[] {
  return [
    ...raw.landed.map((l) => l.key),
    raw.rejects.key,
    raw.lineShifts.key,
    raw.batchFiles.key,
    raw.items.key,
  ];
}

const view = (name: string, file: string) =>
  `CREATE OR REPLACE VIEW ${name} AS SELECT * FROM read_parquet(${lit(file)});`;

/**
 * The raw views of a run in a stage's scratch database, over what ingest landed: raw_events (every row with
 * run-wide row id, source file and line), raw_rejects, raw_items and the line-number tables behind them.
 */
export async function openRawViews(db: Db, io: RunIO, raw: RawArtifacts): Promise<void> {
  await io.fetch(rawKeys(raw));
  await db.run(
    view('raw_line_shifts', io.local(raw.lineShifts.key)) +
      view('raw_batch_files', io.local(raw.batchFiles.key)) +
      view('raw_rejects', io.local(raw.rejects.key)) +
      view('raw_items', io.local(raw.items.key)),
  );
  await db.run(rawEventsViewSql(raw.landed.map((l) => ({ ...l, landed: io.local(l.key) }))));
}

/** The run-relative key ingest lands the item metadata at (RawArtifacts.items.key is io.key of it). */
export const RAW_ITEMS_FILE = 'raw/items.parquet';

/** Only the item metadata (raw_items), for stages after cleaning. */
export async function openRawItemsView(db: Db, io: RunIO, raw: RawArtifacts): Promise<void> {
  await io.fetch([raw.items.key]);
  await db.run(view('raw_items', io.local(raw.items.key)));
}

/** Every key of the clean artifacts (for fetch). */
export function cleanKeys(c: CleanArtifacts): string[] {
  const keys = [c.events.key, c.quarantine.key, c.userIds.key, c.itemIds.key];
  if (c.split.kind === 'files') keys.push(c.split.train.key, c.split.holdout.key);
  if (c.bounded) keys.push(c.bounded.train.key, c.bounded.all.key);
  return keys;
}

/**
 * The clean views of a run in a stage's scratch database: events, train_events / holdout_events (the split),
 * user_ids / item_ids (stable dense ids), quarantine, and with privacy on train_bounded / all_bounded.
 */
export async function openCleanViews(db: Db, io: RunIO, c: CleanArtifacts): Promise<void> {
  await io.fetch(cleanKeys(c));
  let sql =
    view('events', io.local(c.events.key)) +
    view('quarantine', io.local(c.quarantine.key)) +
    view('user_ids', io.local(c.userIds.key)) +
    view('item_ids', io.local(c.itemIds.key));
  if (c.split.kind === 'time') {
    const at = `TIMESTAMP ${lit(c.split.holdoutStart.replace('Z', ''))}`;
    sql += `CREATE OR REPLACE VIEW train_events AS SELECT * FROM events WHERE ts < ${at};
            CREATE OR REPLACE VIEW holdout_events AS SELECT * FROM events WHERE ts >= ${at};`;
  } else {
    sql +=
      view('train_events', io.local(c.split.train.key)) +
      view('holdout_events', io.local(c.split.holdout.key));
  }
  if (c.bounded)
    sql +=
      view('train_bounded', io.local(c.bounded.train.key)) + view('all_bounded', io.local(c.bounded.all.key));
  await db.run(sql);
}
