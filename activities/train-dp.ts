import * as fs from 'node:fs';
import * as path from 'node:path';
import { type Db, lit } from '../lib/duckdb';
import { readJsonIfExists, writeJsonAtomic } from '../lib/fs-atomic';
import { createSecureRng, discreteGaussianMechanism, type PrivacySpend } from '../privacy';
import type { ModelArtifact, RunPlan } from '../workflows/types';
import { plannedReleases } from './privacy';
import { progress } from './context';

/**
 * MostPop and item-item trained only from differentially private releases of the bounded events:
 *   1. distinct-user counts for every catalogue item (zeros included: the key set must be public),
 *   2. distinct-user co-occurrence counts for every pair among the top `cooccurrenceItems` items by *noisy*
 *      popularity (choosing them from a DP release is post-processing, so the pair set is public too).
 * Everything after the noise — clamping, cosine normalisation, neighbour selection — is post-processing.
 */

function writeCsv(file: string, header: string, rows: string[]): void {
  fs.writeFileSync(file, `${header}\n${rows.join('\n')}\n`);
}

const csvField = (s: string) => `"${s.replace(/"/g, '""')}"`;

export async function trainDpVariant(
  db: Db,
  plan: RunPlan,
  source: string,
  suffix: string,
  dir: string,
): Promise<{ models: ModelArtifact[]; spends: PrivacySpend[] }> {
  // Noise is drawn once per run and variant: a retried activity reuses the released artifacts instead of
  // drawing (and so spending) again, which the ledger's single reservation would not cover.
  const marker = path.join(dir, `dp-release${suffix}.json`);
  const released = readJsonIfExists<{ models: ModelArtifact[]; spends: PrivacySpend[] }>(marker);
  if (released && released.models.every((m) => fs.existsSync(m.path))) return released;
  const releases = plannedReleases(plan.config);
  const delta = plan.config.privacy.delta;
  const rng = createSecureRng();
  const tmp = path.join(dir, `.dp-tmp${suffix}`);
  fs.mkdirSync(tmp, { recursive: true });

  // The catalogue is public when it comes from the item metadata file; without one, the observed item set
  // stands in for it (documented limitation: that set itself is not protected).
  const hasItems =
    (await db.scalar<number>(`SELECT count(*) FROM raw_items WHERE nullif(trim(item_id), '') IS NOT NULL`)) >
    0;
  await db.run(`CREATE OR REPLACE TEMP TABLE catalogue AS
    SELECT DISTINCT trim(item_id) AS item_id FROM ${hasItems ? 'raw_items' : 'events'} WHERE nullif(trim(item_id), '') IS NOT NULL`);

  progress({ stage: 'train', model: `mostpop${suffix}`, step: 'noisy popularity' });
  const counts = await db.all<{ item_id: string; n: number }>(`
    SELECT c.item_id, count(DISTINCT b.user_id) AS n FROM catalogue c LEFT JOIN ${source} b ON b.item_id = c.item_id
    GROUP BY c.item_id ORDER BY c.item_id`);
  const pop = discreteGaussianMechanism(
    counts.map((r) => r.n),
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
  const pairs = await db.all<{ i: string; j: string; co: number }>(`
    WITH cand AS (SELECT * FROM read_csv(${lit(candCsv)}, header = true, columns = {'item_id': 'VARCHAR', 'pos': 'INTEGER'})),
    hist AS (SELECT DISTINCT b.user_id, b.item_id, c.pos FROM ${source} b JOIN cand c ON c.item_id = b.item_id),
    co AS (SELECT a.item_id AS i, b.item_id AS j, count(*) AS co FROM hist a JOIN hist b
           ON a.user_id = b.user_id AND a.pos < b.pos GROUP BY ALL)
    SELECT a.item_id AS i, b.item_id AS j, coalesce(co.co, 0) AS co
    FROM cand a JOIN cand b ON a.pos < b.pos LEFT JOIN co ON co.i = a.item_id AND co.j = b.item_id
    ORDER BY a.pos, b.pos`);
  const co = discreteGaussianMechanism(
    pairs.map((p) => p.co),
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
      WHERE rn <= ${plan.config.training.itemItem.neighbours}
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
        path: mostPopFile,
        rows: await count(mostPopFile),
      },
      {
        name: `itemitem${suffix}`,
        kind: 'itemitem' as const,
        path: itemItemFile,
        rows: await count(itemItemFile),
      },
    ],
    spends: [pop.spend, co.spend],
  };
  writeJsonAtomic(marker, result);
  return result;
}
