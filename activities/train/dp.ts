import * as fs from 'node:fs';
import * as path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { type Db, lit } from '../../lib/duckdb';
import { readJsonIfExists, writeJsonAtomic } from '../../lib/fs-atomic';
import {
  createSecureRng,
  discreteGaussianMechanism,
  itemUserCountSensitivity,
  selectPartitions,
  type PrivacySpend,
  type SecureRng,
} from '../../privacy';
import { itemItemLimitsOf, type ModelArtifact } from '../../contracts/stages';
import {
  deltaSplit,
  partitionSelectionRho,
  plannedReleases,
  reservedItemSelection,
  type ItemSelection,
} from '../../privacy/run-plan';
import type { TrainContext } from '../support/train-context';
import { progress } from '../support/context';

/**
 * MostPop and item-item trained only from differentially private releases of the bounded events:
 *   0. the item ids that may be released at all: the public catalogue (items file), or — without one — a DP
 *      partition selection over the bounded data (thresholded noisy distinct-user counts, privacy/partition-
 *      selection.ts); item ids that only exist in the data are never released otherwise;
 *   1. distinct-user counts for every released item (zeros included: the key set is public or DP);
 *   2. distinct-user co-occurrence counts for every pair among the top `cooccurrenceItems` items by *noisy*
 *      popularity (choosing them from a DP release is post-processing, so the pair set is public too).
 * Everything after the noise — clamping, cosine normalisation, neighbour selection — is post-processing.
 * The SQL that computes the counts is exported: the neighbour test (test/unit/privacy-neighbours.test.ts) runs
 * exactly these statements on neighbouring datasets and checks they move by at most the calibrated sensitivity.
 */

/** The released item ids as a table `dp_keys(item_id)`, read from the run's key file. */
export function keysTableSql(keysCsv: string): string {
  return `CREATE OR REPLACE TEMP TABLE dp_keys AS
    SELECT item_id FROM read_csv(${lit(keysCsv)}, header = true, columns = {'item_id': 'VARCHAR'})`;
}

/** The public catalogue: the items file's ids. */
export const CATALOGUE_KEYS_SQL = `
  SELECT DISTINCT trim(item_id) AS item_id FROM raw_items WHERE nullif(trim(item_id), '') IS NOT NULL ORDER BY 1`;

/** Distinct users per item that occurs in `source` (partition selection's input: only keys that occur). */
export function observedItemUsersSql(source: string): string {
  return `SELECT item_id, count(DISTINCT user_id) AS users FROM ${source} GROUP BY item_id ORDER BY item_id`;
}

/** Distinct users per released item (`dp_keys`), zeros included, in key order. */
export function popularityCountsSql(source: string): string {
  return `
    SELECT c.item_id, count(DISTINCT b.user_id) AS n FROM dp_keys c LEFT JOIN ${source} b ON b.item_id = c.item_id
    GROUP BY c.item_id ORDER BY c.item_id`;
}

/**
 * Distinct users per unordered pair of candidates (`cand(item_id, pos)`), zeros included, ordered by the pair's
 * positions: the co-occurrence release's input.
 */
export function cooccurrenceCountsSql(source: string): string {
  return `
    WITH hist AS (SELECT DISTINCT b.user_id, b.item_id, c.pos FROM ${source} b JOIN cand c ON c.item_id = b.item_id),
    co AS (SELECT a.item_id AS i, b.item_id AS j, count(*) AS co FROM hist a JOIN hist b
           ON a.user_id = b.user_id AND a.pos < b.pos GROUP BY ALL)
    SELECT a.item_id AS i, b.item_id AS j, coalesce(co.co, 0) AS co
    FROM cand a JOIN cand b ON a.pos < b.pos LEFT JOIN co ON co.i = a.item_id AND co.j = b.item_id
    ORDER BY a.pos, b.pos`;
}

function writeCsv(file: string, header: string, rows: string[]): void {
  fs.writeFileSync(file, `${header}\n${rows.join('\n')}${rows.length ? '\n' : ''}`);
}

const csvField = (s: string) => `"${s.replace(/"/g, '""')}"`;

export interface ReleasedKeys {
  /** CSV (item_id) of the item ids every release of this run may name, sorted. */
  keysCsv: string;
  items: ItemSelection;
  count: number;
  /** The partition selection's spend (null with a public catalogue). */
  spend: PrivacySpend | null;
}

/**
 * The run's released item ids, decided once (a retry reuses them, like the noisy counts): the items file's ids,
 * or a DP partition selection over all bounded events. The file `dp-keys.csv` is what DP-MF's item table and the
 * count releases are restricted to.
 */
export async function releaseItemKeys(
  db: Db,
  plan: TrainContext,
  dir: string,
  rng: SecureRng,
): Promise<ReleasedKeys> {
  const marker = path.join(dir, 'dp-keys.json');
  await plan.recall([plan.key(marker), plan.key(path.join(dir, 'dp-keys.csv'))]);
  const done = readJsonIfExists<ReleasedKeys>(marker);
  if (done && fs.existsSync(path.join(dir, 'dp-keys.csv')))
    return { ...done, keysCsv: path.join(dir, 'dp-keys.csv') };
  const items = plan.privacy ? reservedItemSelection(plan.privacy.spend) : 'public-catalogue';
  const keysCsv = path.join(dir, 'dp-keys.csv');
  let keys: string[];
  let spend: PrivacySpend | null = null;
  if (items === 'public-catalogue') {
    keys = (await db.all<{ item_id: string }>(CATALOGUE_KEYS_SQL)).map((r) => r.item_id);
    if (keys.length === 0) {
      // Planned with an items file that turned out empty: there is no public key set to release counts over.
      throw new Error(
        `the items file has no item ids: with privacy on, counts are released only for a public catalogue`,
      );
    }
  } else {
    progress({ stage: 'train', step: 'dp partition selection' });
    const counts = await db.all<{ item_id: string; users: number }>(observedItemUsersSql('all_bounded'));
    const { thresholdDelta, zcdpDelta } = deltaSplit(plan.config, items);
    const sel = selectPartitions(
      counts.map((c) => ({ key: c.item_id, users: Number(c.users) })),
      itemUserCountSensitivity(plan.config.privacy.caps),
      { rho: partitionSelectionRho(plan.config, items), thresholdDelta, delta: zcdpDelta },
      rng,
    );
    keys = sel.keys;
    spend = sel.spend;
  }
  keys.sort();
  if (keys.length === 0) {
    // A DP outcome (the noise is spent, the reservation stays committed): nothing could be released. Retrying
    // would draw new noise on the same data, which the reservation does not cover.
    const t = plan.privacy?.spend.params.partitionSelectionThreshold;
    throw ApplicationFailure.nonRetryable(
      `DP partition selection released no item id (an item needs about ${String(t)} users after bounding to pass); ` +
        'give a public item catalogue (items file), a larger privacy.epsilon or more users',
      'BadInput',
    );
  }
  writeCsv(keysCsv, 'item_id', keys.map(csvField));
  const out: ReleasedKeys = { keysCsv, items, count: keys.length, spend };
  writeJsonAtomic(marker, out);
  // The release is persisted before it is used: the marker last, so a retry sees all of it or none.
  await plan.persist([plan.key(keysCsv), plan.key(marker)]);
  return out;
}

export async function trainDpVariant(
  db: Db,
  plan: TrainContext,
  source: string,
  suffix: string,
  dir: string,
  keys: ReleasedKeys,
): Promise<{ models: ModelArtifact[]; spends: PrivacySpend[] }> {
  // Noise is drawn once per run and variant: a retried activity reuses the released artifacts instead of
  // drawing (and so spending) again, which the ledger's single reservation would not cover.
  const marker = path.join(dir, `dp-release${suffix}.json`);
  await plan.recall([plan.key(marker)]);
  const released = readJsonIfExists<{ models: ModelArtifact[]; spends: PrivacySpend[] }>(marker);
  if (released) await plan.recall(released.models.map((m) => m.key));
  if (released && released.models.every((m) => fs.existsSync(plan.io.local(m.key)))) return released;
  const releases = plannedReleases(plan.config, keys.items);
  const delta = deltaSplit(plan.config, keys.items).zcdpDelta;
  const rng = createSecureRng();
  const tmp = path.join(dir, `.dp-tmp${suffix}`);
  fs.mkdirSync(tmp, { recursive: true });
  await db.run(keysTableSql(keys.keysCsv));

  progress({ stage: 'train', model: `mostpop${suffix}`, step: 'noisy popularity' });
  const counts = await db.all<{ item_id: string; n: number }>(popularityCountsSql(source));
  const pop = discreteGaussianMechanism(
    counts.map((r) => Number(r.n)),
    releases.popularity.sensitivity,
    { rho: releases.popularity.rho, delta },
    rng,
  );
  const noisyPop = new Map(counts.map((r, i) => [r.item_id, Math.max(0, pop.value[i])]));
  const popCsv = path.join(tmp, 'pop.csv');
  writeCsv(
    popCsv,
    'item_id,score',
    counts.map((r) => `${csvField(r.item_id)},${noisyPop.get(r.item_id)}`),
  );
  const mostPopFile = path.join(dir, `mostpop${suffix}.parquet`);
  const mostPopTmp = `${mostPopFile}.tmp`;
  await db.run(`COPY (
      SELECT item_id, CAST(score AS DOUBLE) AS score, CAST(score AS BIGINT) AS users
      FROM read_csv(${lit(popCsv)}, header = true, columns = {'item_id': 'VARCHAR', 'score': 'DOUBLE'})
      ORDER BY score DESC, item_id
    ) TO ${lit(mostPopTmp)} (FORMAT parquet, COMPRESSION zstd)`);

  progress({ stage: 'train', model: `itemitem${suffix}`, step: 'noisy co-occurrence' });
  const top = [...noisyPop.entries()]
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
    .slice(0, plan.config.privacy.cooccurrenceItems)
    .map(([id]) => id);
  const candCsv = path.join(tmp, 'candidates.csv');
  writeCsv(
    candCsv,
    'item_id,pos',
    top.map((id, i) => `${csvField(id)},${i}`),
  );
  await db.run(`CREATE OR REPLACE TEMP TABLE cand AS
    SELECT * FROM read_csv(${lit(candCsv)}, header = true, columns = {'item_id': 'VARCHAR', 'pos': 'INTEGER'})`);
  const pairs = await db.all<{ i: string; j: string; co: number }>(cooccurrenceCountsSql(source));
  const co = discreteGaussianMechanism(
    pairs.map((p) => Number(p.co)),
    releases.cooccurrence.sensitivity,
    { rho: releases.cooccurrence.rho, delta },
    rng,
  );
  const simRows: string[] = [];
  pairs.forEach((p, idx) => {
    const c = co.value[idx];
    if (c <= 0) return;
    const sim = c / Math.sqrt(Math.max(1, noisyPop.get(p.i)!) * Math.max(1, noisyPop.get(p.j)!));
    simRows.push(`${csvField(p.i)},${csvField(p.j)},${sim}`, `${csvField(p.j)},${csvField(p.i)},${sim}`);
  });
  const simCsv = path.join(tmp, 'sims.csv');
  writeCsv(simCsv, 'item_id,neighbour_id,sim', simRows);
  const itemItemFile = path.join(dir, `itemitem${suffix}.parquet`);
  const itemItemTmp = `${itemItemFile}.tmp`;
  await db.run(`COPY (
      SELECT item_id, neighbour_id, sim FROM (
        SELECT *, row_number() OVER (PARTITION BY item_id ORDER BY sim DESC, neighbour_id) AS rn
        FROM read_csv(${lit(simCsv)}, header = true,
                      columns = {'item_id': 'VARCHAR', 'neighbour_id': 'VARCHAR', 'sim': 'DOUBLE'}))
      WHERE rn <= ${itemItemLimitsOf(plan.config, plan.clean).neighbours}
      ORDER BY item_id, sim DESC
    ) TO ${lit(itemItemTmp)} (FORMAT parquet, COMPRESSION zstd)`);
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.renameSync(mostPopTmp, mostPopFile);
  fs.renameSync(itemItemTmp, itemItemFile);

  const count = (f: string) => db.scalar<number>(`SELECT count(*) FROM read_parquet(${lit(f)})`);
  const result = {
    models: [
      {
        name: `mostpop${suffix}`,
        kind: 'mostpop' as const,
        key: plan.key(mostPopFile),
        rows: await count(mostPopFile),
      },
      {
        name: `itemitem${suffix}`,
        kind: 'itemitem' as const,
        key: plan.key(itemItemFile),
        rows: await count(itemItemFile),
      },
    ],
    spends: [pop.spend, co.spend],
  };
  writeJsonAtomic(marker, result);
  await plan.persist([...result.models.map((m) => m.key), plan.key(marker)]);
  return result;
}

/**
 * The DP baselines of a run: the released item ids, then both variants (training split for evaluation, all
 * events for publishing). Checks that what was released is what the ledger reserved (zCDP composes additively).
 */
export async function trainDpBaselines(db: Db, plan: TrainContext, dir: string): Promise<ModelArtifact[]> {
  const keys = await releaseItemKeys(db, plan, dir, createSecureRng());
  const evalVariant = await trainDpVariant(db, plan, 'train_bounded', '', dir, keys);
  const fullVariant = await trainDpVariant(db, plan, 'all_bounded', '-full', dir, keys);
  const spends = [...(keys.spend ? [keys.spend] : []), ...evalVariant.spends, ...fullVariant.spends];
  const released = spends.reduce((sum, sp) => sum + (sp.rho ?? NaN), 0);
  const approxDelta = spends.reduce((sum, sp) => sum + (sp.approxDelta ?? 0), 0);
  // With DP-SGD the run's spend has no single ρ; the counts' share is recorded as countsRho.
  const reserved = plan.privacy?.spend.rho ?? Number(plan.privacy?.spend.params.countsRho ?? NaN);
  const reservedApprox = Number(plan.privacy?.spend.params.partitionSelectionDelta ?? 0);
  if (!(Math.abs(released - reserved) <= 1e-9 * reserved) || !(approxDelta <= reservedApprox * (1 + 1e-9))) {
    throw new Error(
      `privacy accounting mismatch: released rho ${released} (threshold δ ${approxDelta}), reserved rho ${reserved} (threshold δ ${reservedApprox})`,
    );
  }
  return [...evalVariant.models, ...fullVariant.models];
}
