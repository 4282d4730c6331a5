import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { transformSync } from '@swc/core';
import { LocalStorage } from '../../lib/storage';
import { ModelRegistry } from '../../registry/registry';
import { queryDuckDb, tempDir, ROOT } from '../helpers/env';
import { childProgram, MODE, pick, report, requireBuild, rng, runChild, suiteSeed } from './support/harness';
import {
  outputDir,
  readLiveState,
  readerProblems,
  registryDir,
  settledProblems,
  type Layout,
} from './support/live-state';
import type { StormJob } from './children/switch-storm';

/**
 * Issue #16, item 1: "a kill -9 during promote left `current` on the new version while `_current.json` and the
 * `champion` alias named the old one, and `aliases.lock` held by a dead process; the retried activity then failed
 * as RegistryLocked after 120 s". A child process switches the live version back and forth as fast as it can and
 * is SIGKILLed at a random instant, so the kill lands anywhere in a switch; then a new attempt moves it again.
 *
 * On today's design (one compare-and-swap of the live pointer; `current` and `_current.json` derived from it and
 * healed by any retry; no lock) every retry finishes at once and everything agrees. The same harness pointed at
 * the code of commit 7cbba63 (compiled from git history: its registry lock and its switchCurrent) shows the
 * failures the issue reports — the control that shows this test can fail.
 */

jest.setTimeout(MODE === 'nightly' ? 3_600_000 : 600_000);

const NEW_KILLS = Number(process.env.RECFORGE_RELIABILITY_SWITCH_KILLS) || (MODE === 'nightly' ? 150 : 40);
const OLD_KILLS = Number(process.env.RECFORGE_RELIABILITY_OLD_KILLS) || (MODE === 'nightly' ? 150 : 30);
/** Retries that must not wait for a dead holder; the old design's lock wait was 120 s (stale after 15 min). */
const RETRY_BOUND_MS = 10_000;
const VERSIONS = ['storm-a', 'storm-b', 'storm-c'];

const sha256 = (f: string) => createHash('sha256').update(fs.readFileSync(f)).digest('hex');

/** A small but complete published version: part file, fallback, manifest with checksums, registry record. */
async function publishFixture(l: Layout, version: string): Promise<void> {
  const dir = path.join(outputDir(l), 'versions', version);
  fs.mkdirSync(path.join(dir, '_fallback'), { recursive: true });
  const part = path.join(dir, 'part-00000.parquet');
  const fallback = path.join(dir, '_fallback', 'popular.parquet');
  await queryDuckDb(
    `COPY (SELECT 'u' || i AS user_id, 1 AS rank, '${version}' AS item_id, 1.0 AS score FROM range(10) t(i))
     TO '${part}' (FORMAT parquet)`,
  );
  await queryDuckDb(
    `COPY (SELECT 1 AS rank, 'i1' AS item_id, 1.0 AS score) TO '${fallback}' (FORMAT parquet)`,
  );
  const entry = (f: string) => ({
    path: path.relative(dir, f),
    bytes: fs.statSync(f).size,
    sha256: sha256(f),
  });
  fs.writeFileSync(
    path.join(dir, '_manifest.json'),
    JSON.stringify({ modelVersion: version, files: [entry(part)], fallback: entry(fallback) }),
  );
  const record = path.join(registryDir(l), 'models', version, 'model.json');
  fs.mkdirSync(path.dirname(record), { recursive: true });
  fs.writeFileSync(record, JSON.stringify({ version, datasetId: l.datasetId }));
}

function writeJob(l: Layout, job: StormJob, name: string): string {
  const file = path.join(l.dataDir, `${name}.json`);
  fs.writeFileSync(file, JSON.stringify(job));
  return file;
}

test(`today's design: ${NEW_KILLS} kills mid-switch, every retry finishes at once and current, _current.json, the pointer and the registry agree`, async () => {
  requireBuild();
  const seed = suiteSeed('kill-switch');
  const r = rng(seed);
  const l: Layout = { dataDir: tempDir('rel-switch-new'), datasetId: 'storm' };
  for (const v of VERSIONS) await publishFixture(l, v);
  const registry = new ModelRegistry(new LocalStorage(l.dataDir), {
    datasetId: 'storm',
    registryPrefix: 'registry/storm',
    outputPrefix: 'output/recommendations/storm',
  });
  await registry.setLive(VERSIONS[0], { at: new Date().toISOString(), reason: 'start', by: 'test' });
  const program = childProgram('switch-storm');
  const job = writeJob(
    l,
    { design: 'new', dataDir: l.dataDir, datasetId: 'storm', versions: VERSIONS },
    'storm',
  );
  const failures: string[] = [];
  let kills = 0;
  let lagging = 0;
  let slowest = 0;
  const t0 = Date.now();
  for (let k = 0; k < NEW_KILLS; k++) {
    const out = await runChild(program, [job], { killAfterMs: 20 + Math.round(r() * 400) });
    if (out.end !== 'killed') {
      failures.push(`storm ended by itself (${out.end}): ${out.stderr.slice(-400)}`);
      break;
    }
    kills++;
    const s = readLiveState(l);
    // Derived copies may trail the pointer right after a crash (the retry heals them); readers only ever reach
    // complete versions.
    if (s.readerCopy !== s.version || s.symlink !== s.version) lagging++;
    const instant = readerProblems(l, s);
    if (instant.length) failures.push(`after kill ${k}: ${instant.join('; ')}`);
    const target = pick(r, VERSIONS);
    const tr = Date.now();
    await registry.setLive(target, { at: new Date().toISOString(), reason: `retry ${k}`, by: 'test' });
    slowest = Math.max(slowest, Date.now() - tr);
    if (Date.now() - tr > RETRY_BOUND_MS) failures.push(`retry ${k} took ${Date.now() - tr} ms`);
    const problems = settledProblems(l);
    if (readLiveState(l).version !== target)
      problems.push(`live ${readLiveState(l).version}, retry moved to ${target}`);
    if (problems.length) failures.push(`after kill ${k} and its retry: ${problems.join('; ')}`);
  }
  const moves = readLiveState(l).pointer!.history.length;
  report('kill-switch', {
    seed,
    kills,
    killsWithDerivedCopiesBehind: lagging,
    slowestRetryMs: slowest,
    pointerMovesInHistory: moves,
    seconds: Math.round((Date.now() - t0) / 1000),
    failures,
  });
  expect(failures).toEqual([]);
  expect(kills).toBe(NEW_KILLS);
});

/** The old design's modules from git history, compiled; null when this checkout lacks commit 7cbba63. */
function oldModules(): string | null {
  const git = (args: string[]) =>
    execFileSync('git', ['-C', ROOT, ...args], { encoding: 'utf8', stdio: 'pipe' });
  try {
    git(['cat-file', '-e', '7cbba63^{commit}']);
  } catch {
    return null;
  }
  const out = tempDir('rel-old-design');
  const compile = (source: string, target: string) => {
    const { code } = transformSync(source, {
      swcrc: false,
      filename: target.replace(/\.js$/, '.ts'),
      jsc: { parser: { syntax: 'typescript' }, target: 'es2022' },
      module: { type: 'commonjs' },
    });
    fs.mkdirSync(path.dirname(path.join(out, target)), { recursive: true });
    fs.writeFileSync(path.join(out, target), code);
  };
  for (const f of ['lib/registry.ts', 'lib/file-lock.ts', 'lib/fs-atomic.ts'])
    compile(git(['show', `7cbba63:${f}`]), f.replace(/\.ts$/, '.js'));
  // switchCurrent verbatim from that commit's activities/publish.ts (the rest of that file needs DuckDB & co.).
  const publish = git(['show', '7cbba63:activities/publish.ts']);
  const fn = /export function switchCurrent[\s\S]*?\n}\n/.exec(publish);
  if (!fn) throw new Error('switchCurrent not found in 7cbba63:activities/publish.ts');
  compile(
    `import * as fs from 'node:fs';\nimport * as path from 'node:path';\nimport { fsyncDir, writeJsonAtomic } from './lib/fs-atomic';\n${fn[0]}`,
    'switch.js',
  );
  return out;
}

test(`control: the same kills on the design of commit 7cbba63 leave current and _current.json apart and promote blocked`, async () => {
  const modules = oldModules();
  if (!modules) {
    console.warn(
      '[reliability] commit 7cbba63 is not in this checkout (shallow clone?): old-design control skipped',
    );
    return;
  }
  const seed = suiteSeed('kill-switch-old');
  const r = rng(seed);
  const l: Layout = { dataDir: tempDir('rel-switch-old'), datasetId: 'storm' };
  for (const v of VERSIONS) await publishFixture(l, v);
  const program = childProgram('switch-storm');
  const base: StormJob = {
    design: 'old',
    dataDir: l.dataDir,
    datasetId: 'storm',
    versions: VERSIONS,
    oldModules: modules,
  };
  const storm = writeJob(l, base, 'storm');
  const lock = path.join(registryDir(l), 'aliases.lock');
  const aliases = () =>
    (
      JSON.parse(fs.readFileSync(path.join(registryDir(l), 'aliases.json'), 'utf8')) as {
        champion: string | null;
      }
    ).champion;
  const first = await runChild(program, [writeJob(l, { ...base, once: VERSIONS[0] }, 'once')]);
  expect(first.end).toBe('done');
  let kills = 0;
  let disagreements = 0;
  let lockedByDead = 0;
  let retriesObserved = 0;
  let retriesBlocked = 0;
  const examples: string[] = [];
  // The disagreement window is a few percent of a switch: past the minimum, go on until one is seen (bounded).
  for (let k = 0; k < OLD_KILLS || (disagreements === 0 && k < 300); k++) {
    const out = await runChild(program, [storm], { killAfterMs: 20 + Math.round(r() * 400) });
    expect(out.stderr).toBe('');
    expect(out.end).toBe('killed');
    kills++;
    const s = readLiveState(l);
    const champion = aliases();
    if (s.symlink !== s.readerCopy || s.readerCopy !== champion) {
      disagreements++;
      if (examples.length < 3)
        examples.push(`current -> ${s.symlink}, _current.json ${s.readerCopy}, champion ${champion}`);
    }
    if (fs.existsSync(lock)) {
      // Held by the process just killed: the old withLock breaks a lock only once it is 15 minutes old and
      // gives up after 120 s. A few retries are run to observe it; the rest follow from the same lock file.
      lockedByDead++;
      if (retriesObserved < 3) {
        retriesObserved++;
        const retry = await runChild(program, [writeJob(l, { ...base, once: pick(r, VERSIONS) }, 'once')], {
          killAfterMs: RETRY_BOUND_MS,
        });
        if (retry.killedByTimer) retriesBlocked++;
      }
      // Expire the dead holder's lock as 15 minutes would, so the next round starts unblocked.
      fs.rmSync(lock, { force: true });
    }
  }
  report('kill-switch-old-design', {
    seed,
    // Not counted with the suite's kills: these test the old code, not this one.
    controlKills: kills,
    disagreements,
    lockedByDeadProcess: lockedByDead,
    retriesObserved,
    retriesBlockedPastBound: retriesBlocked,
    examples,
  });
  // What the issue reports, reproduced by this suite's own checks: the old design fails them.
  expect(disagreements).toBeGreaterThan(0);
  expect(lockedByDead).toBeGreaterThan(0);
  expect(retriesBlocked).toBe(retriesObserved);
});
