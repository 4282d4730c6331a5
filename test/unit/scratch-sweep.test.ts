import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { STALE_SCRATCH_MS, sweepStaleScratch } from '../../activities/support/scratch';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'recforge-scratch-sweep-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

const age = (p: string, ms: number) => {
  const t = new Date(Date.now() - ms);
  fs.utimesSync(p, t, t);
};

test("removes runs' scratch folders nothing touched for a day, keeps any with a recent write anywhere inside", () => {
  const old = STALE_SCRATCH_MS + 3_600_000;
  // A killed worker's run: a DuckDB spill folder with a file, all old.
  const dead = path.join(root, 'run-dead', 'clean-123-ab-duckdb-tmp');
  fs.mkdirSync(dead, { recursive: true });
  fs.writeFileSync(path.join(dead, 'spill.block'), 'x');
  for (const p of [path.join(dead, 'spill.block'), dead, path.dirname(dead)]) age(p, old);
  // A live run whose folders are old but whose spill file was just written (DuckDB still working).
  const live = path.join(root, 'run-live', 'evaluate-456-cd-duckdb-tmp');
  fs.mkdirSync(live, { recursive: true });
  fs.writeFileSync(path.join(live, 'spill.block'), 'y');
  for (const p of [live, path.dirname(live)]) age(p, old);
  // A run that just started.
  fs.mkdirSync(path.join(root, 'run-new', 'publish-0'), { recursive: true });

  expect(sweepStaleScratch(STALE_SCRATCH_MS, root)).toEqual(['run-dead']);
  expect(fs.readdirSync(root).sort()).toEqual(['run-live', 'run-new']);
  expect(fs.existsSync(path.join(live, 'spill.block'))).toBe(true);
});

test('a missing scratch root is nothing to sweep', () => {
  expect(sweepStaleScratch(STALE_SCRATCH_MS, path.join(root, 'none'))).toEqual([]);
});
