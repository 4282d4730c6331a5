import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { findProjectRoot, loadConfig } from '../../lib/config';
import { lit } from '../../lib/duckdb';
import { isRecforgeError } from '../../contracts/errors';
import { ingest } from '../../activities/ingest';
import { clean } from '../../activities/clean';
import { resolveInputFiles } from '../../activities/support/files';
import { REASONS } from '../../analytics/clean.sql';
import type { CleanResult } from '../../contracts/stages';
import { artifactFile, directStage, queryArtifacts } from '../helpers/stages';
import { CORPUS, materialize, type CorpusCase } from '../helpers/hostile-corpus';

/**
 * The hostile-input corpus (test/helpers/hostile-corpus.ts), table-driven at the ingest + clean level: every
 * case ends in a clear error or in quarantined rows with the expected reasons and counts, within its time bound;
 * every physical line is ingested or quarantined (the counts add up); and nothing hostile reaches the clean
 * events that publishing reads.
 */

const ROOT = findProjectRoot(__dirname);
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'recforge-corpus-'));
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

/** Quality gates off (every reason may take the whole file): the corpus judges the quarantine, not the gate. */
function planFor(files: string[], name: string) {
  const dataDir = path.join(scratch, name.replace(/\//g, '-'), 'data');
  const config = loadConfig({
    root: ROOT,
    env: {},
    overrides: {
      dataDir,
      duckdb: { memoryLimit: '1GB', threads: 2 },
      quality: {
        minRows: 1,
        maxQuarantineShare: 1,
        maxQuarantineShareByReason: Object.fromEntries(REASONS.map((r) => [r, 1])),
      },
      cleaning: { requireKnownItems: false },
      evaluation: { holdoutDays: 1, k: 10 },
    },
  }).config;
  return directStage(config, files, {
    runId: 'run',
    datasetId: 'corpus',
    startedAt: '2026-06-01T00:00:00.000Z',
  });
}

/** Every file under the run's raw/ folder (what ingest lands). */
function rawFiles(runDir: string): string[] {
  const dir = path.join(runDir, 'raw');
  if (!fs.existsSync(dir)) return [];
  return (fs.readdirSync(dir, { recursive: true }) as string[]).filter((f) =>
    fs.statSync(path.join(dir, f)).isFile(),
  );
}

/** Errors are shown to everyone with UI access: short, one line, no control characters. */
function expectSafeMessage(message: string): void {
  expect(message.length).toBeLessThan(600);
  // eslint-disable-next-line no-control-regex -- control characters are what must not be there
  expect(message).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f]/);
}

async function runCase(c: CorpusCase): Promise<void> {
  const dir = path.join(scratch, c.id.replace(/\//g, '-'), 'input');
  const input = await materialize(c, dir);
  if (c.stage === 'resolve') {
    if (!('error' in c.expect)) throw new Error(`${c.id}: resolve cases expect an error`);
    await expect(resolveInputFiles(input)).rejects.toThrow(c.expect.error);
    return;
  }
  const plan = planFor([input], c.id);
  const t0 = Date.now();
  if ('error' in c.expect) {
    const err = await ingest(plan.deps, plan.run).then(
      () => new Error(`${c.id}: expected a failure, got success`),
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ApplicationFailure);
    const f = err as ApplicationFailure;
    expect(f.type).toBe(c.expect.type ?? 'BadInput');
    expect(f.nonRetryable).toBe(true);
    expect(f.message).toMatch(c.expect.error);
    expect(f.message).toContain(path.basename(input));
    expectSafeMessage(f.message);
    // Nothing half-landed is left in the run folder for a later stage to read as raw_events.
    expect(rawFiles(plan.runDir)).toEqual([]);
  } else {
    const e = c.expect;
    const r = await ingest(plan.deps, plan.run);
    const [file] = r.files;
    // Every physical line is the header, a row, a rejected line, or a blank / continuation line.
    if (file.lines !== undefined) {
      const header = file.format === 'csv' ? 1 : 0;
      expect(file.lines).toBe(header + file.rows + file.rejectedLines + (e.skipped ?? 0));
    }
    // A file of a few rows on one or two days cannot be split for evaluation; that gate is not the corpus's
    // subject, and it fails after the quarantine and the clean events are written (its details hold them).
    const cleaned = await clean(plan.deps, plan.run, r.raw).catch((err: unknown) => {
      if (!/time split left/.test((err as Error).message) || !isRecforgeError(err)) throw err;
      return err.details as CleanResult;
    });
    const query = <T extends Record<string, unknown>>(sql: string) =>
      queryArtifacts<T>(plan, { clean: cleaned.artifacts }, sql);
    const quarantineFile = artifactFile(plan, cleaned.artifacts.quarantine);
    const counts = await query<{ reason: string; n: number }>(
      `SELECT reason, count(*) AS n FROM read_parquet(${lit(quarantineFile)}) GROUP BY 1`,
    );
    expect(Object.fromEntries(counts.map((x) => [x.reason, x.n]))).toEqual(e.quarantine);
    expect((await query<{ n: number }>(`SELECT count(*) AS n FROM events`))[0].n).toBe(e.kept);
    const quarantined = await query<{
      reason: string;
      source_line: number;
      detail: string | null;
    }>(`SELECT reason, source_line, detail FROM read_parquet(${lit(quarantineFile)})
       ORDER BY reason, source_line`);
    for (const [reason, lines] of Object.entries(e.lines ?? {})) {
      expect([reason, quarantined.filter((x) => x.reason === reason).map((x) => x.source_line)]).toEqual([
        reason,
        lines,
      ]);
    }
    if (e.detail) expect(quarantined.map((x) => x.detail ?? '').join('\n')).toMatch(e.detail);
    for (const x of quarantined) if (x.detail) expectSafeMessage(x.detail);
    // Nothing hostile is left for publishing: the clean events hold printable, bounded, non-JSON ids only.
    const hostile = await query<{ n: number }>(`SELECT count(*) AS n FROM events
       WHERE regexp_matches(user_id || item_id, '[\\x00-\\x1F\\x7F-\\x9F\\x{202A}-\\x{202E}]')
          OR length(user_id) > 256 OR length(item_id) > 256
          OR (left(user_id, 1) IN ('{', '[') AND json_valid(user_id))
          OR (left(item_id, 1) IN ('{', '[') AND json_valid(item_id))`);
    expect(hostile[0].n).toBe(0);
  }
  expect(Date.now() - t0).toBeLessThan(c.budgetMs ?? 5000);
}

test('the corpus has at least 60 cases in every class, with unique ids', () => {
  expect(CORPUS.length).toBeGreaterThanOrEqual(60);
  expect(new Set(CORPUS.map((c) => c.id)).size).toBe(CORPUS.length);
  const classes = new Set(CORPUS.map((c) => c.cls));
  expect([...classes].sort()).toEqual(
    [
      'compression',
      'encoding',
      'ids',
      'jsonl',
      'numbers',
      'parquet',
      'paths',
      'sizes',
      'structure',
      'timestamps',
    ].sort(),
  );
  // Committed fixtures live in their class's folder.
  for (const c of CORPUS) if (typeof c.input === 'string') expect(c.input.startsWith(`${c.cls}/`)).toBe(true);
});

describe.each([...new Set(CORPUS.map((c) => c.cls))])('%s', (cls) => {
  test.each(CORPUS.filter((c) => c.cls === cls).map((c) => [c.id, c] as const))(
    '%s',
    async (_id, c) => runCase(c),
    30_000,
  );
});
