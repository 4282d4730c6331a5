/**
 * Scores a recforge output folder's live version against the quality bench's protocol (same split, same metric
 * code as bench/quality.ts), without running the references: for trying a configuration quickly.
 *
 *   npm run build && node dist/bench/score-output.js --dataset movielens-small --output <dataDir>/output/recommendations/<id>
 *     [--write-train <file>]   also write the bench's train.csv (the input to give `recforge run --input`)
 */
import * as fs from 'node:fs';
import { parseArgs } from 'node:util';
import { findProjectRoot } from '../lib/config';
import { parseCsv } from '../datasets/csv';
import { loadSource, unavailableItems, type DatasetId } from './quality/data';
import { scoreLists } from './quality/metrics';
import { readCurrentLists } from './quality/recforge';
import { parseInteractions, toContractCsv } from './quality/rows';
import { seenItems, splitByUser } from './quality/split';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      dataset: { type: 'string', default: 'movielens-small' },
      output: { type: 'string' },
      'write-train': { type: 'string' },
    },
  });
  const root = findProjectRoot();
  const got = await loadSource(root, values.dataset as DatasetId, {
    movielensSource: 'dslabs',
    log: () => {},
  });
  if (!got.ok) throw new Error(got.reason);
  const src = got.source;
  const rows = parseInteractions(fs.readFileSync(src.interactions, 'utf8'), src.parse).rows;
  const split = splitByUser(rows, src.positive);
  if (values['write-train']) {
    fs.writeFileSync(values['write-train'], toContractCsv(rows, split.trainIdx));
    console.log(`wrote ${values['write-train']} (items: ${src.items ?? 'none'})`);
  }
  if (!values.output) return;
  const lists = await readCurrentLists(values.output);
  if (!lists) throw new Error(`${values.output} has no live version (_current.json)`);
  const trainRows = split.trainIdx.map((i) => rows[i]);
  const unavailable = unavailableItems(src.items ? fs.readFileSync(src.items, 'utf8') : undefined, parseCsv);
  const s = scoreLists(
    lists.lists,
    split.holdout,
    { seen: seenItems(trainRows), unavailable },
    { k: 10, catalogueSize: new Set(trainRows.map((r) => r.item)).size, fallback: lists.fallback },
  );
  console.log(
    JSON.stringify({
      version: lists.version,
      ndcg10: Number(s.ndcg.toFixed(4)),
      recall10: Number(s.recall.toFixed(4)),
      hitrate10: Number(s.hitrate.toFixed(4)),
      coverage: Number(s.coverage.toFixed(4)),
      users: split.holdout.size,
    }),
  );
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
