import { fork } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runCancellable } from '../../lib/cancellation';
import { generateDataset, verifyGeneratedDataset } from '../../datasets/synthetic';
import { compileForChildren } from '../helpers/compile';

/**
 * Issue #16, item 6: two runs generating the bundled dataset at once shared a temporary file, deleted each
 * other's generation.json and trained on a file matching neither seed. Generation must be exclusive (no shared
 * file, one installed dataset) and verified (the manifest's options and checksums match the files). The
 * checks below verify with their own hashing, so they judge any implementation of the generator.
 */

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'recforge-genrace-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

const SMALL = { users: 400, items: 150, events: 60_000, dirtyRate: 0.02, botUsers: 2, days: 14 };

interface Manifest {
  options: { seed: number };
  files: Record<'interactions' | 'items', { file: string; sha256: string; bytes: number }>;
}

/** The folder's manifest and whether every file it lists has the recorded size and SHA-256. */
function check(outDir: string): { manifest: Manifest; consistent: boolean } {
  const manifest = JSON.parse(fs.readFileSync(path.join(outDir, 'generation.json'), 'utf8')) as Manifest;
  const consistent = Object.values(manifest.files).every((f) => {
    const body = fs.readFileSync(path.join(outDir, f.file));
    return body.length === f.bytes && createHash('sha256').update(body).digest('hex') === f.sha256;
  });
  return { manifest, consistent };
}

/** Everything in the parent folder besides the dataset itself (staging folders, temporary files). */
const leftovers = (outDir: string) =>
  fs
    .readdirSync(path.dirname(outDir))
    .filter((n) => n !== path.basename(outDir))
    .concat(
      fs.readdirSync(outDir).filter((n) => !/^(generation\.json|items\.csv|interactions\.csv)$/.test(n)),
    );

test('concurrent generators in one process (one worker, two runs) share nothing and leave one consistent dataset', async () => {
  const out = path.join(root, 'in-process', 'synthetic');
  const results = await Promise.all([7, 7, 8].map((seed) => generateDataset({ ...SMALL, seed, out })));
  const { manifest, consistent } = check(out);
  expect(consistent).toBe(true);
  expect([7, 8]).toContain(manifest.options.seed);
  // Each generator's own result describes what it generated, whoever installed last.
  expect(results.map((r) => r.manifest.options.seed)).toEqual([7, 7, 8]);
  expect(leftovers(out)).toEqual([]);
}, 60_000);

describe('generators in separate processes', () => {
  let compiled: string;
  beforeAll(() => {
    compiled = compileForChildren(
      ['lib', 'datasets', 'datasets/synthetic', 'contracts'],
      path.join(root, 'compiled'),
    );
    fs.writeFileSync(
      path.join(compiled, 'child.js'),
      `const fs = require('node:fs');
const { generateDataset } = require('./datasets/synthetic/index.js');
process.on('message', async ({ out, seed, go, opts }) => {
  // Everyone starts together: the race is the point.
  while (!fs.existsSync(go)) await new Promise((r) => setTimeout(r, 2));
  try {
    const r = await generateDataset({ ...opts, seed, out });
    process.send({ ok: true, seed: r.manifest.options.seed }, () => process.exit(0));
  } catch (err) {
    process.send({ ok: false, error: String(err && err.stack || err) }, () => process.exit(0));
  }
});
process.send({ ready: true });`,
    );
  });

  async function race(
    out: string,
    seeds: number[],
  ): Promise<{ ok: boolean; seed?: number; error?: string }[]> {
    const go = path.join(root, `go-${path.basename(path.dirname(out))}`);
    const children = seeds.map(() => fork(path.join(compiled, 'child.js'), [], { stdio: 'inherit' }));
    await Promise.all(children.map((c) => new Promise((r) => c.once('message', r))));
    const done = children.map(
      (c) => new Promise<{ ok: boolean; seed?: number; error?: string }>((r) => c.once('message', r)),
    );
    children.forEach((c, i) => c.send({ out, seed: seeds[i], go, opts: SMALL }));
    fs.writeFileSync(go, '');
    return Promise.all(done);
  }

  test('four processes, two seeds: every generator succeeds, the installed dataset matches one seed exactly', async () => {
    const out = path.join(root, 'procs', 'synthetic');
    const results = await race(out, [1, 2, 1, 2]);
    expect(results.filter((r) => !r.ok).map((r) => r.error)).toEqual([]);
    const { manifest, consistent } = check(out);
    expect(consistent).toBe(true);
    expect([1, 2]).toContain(manifest.options.seed);
    expect(leftovers(out)).toEqual([]);
  }, 120_000);

  test('a reader verifies options and checksums: a dataset changed behind the manifest is not trusted', async () => {
    const out = path.join(root, 'procs', 'synthetic');
    const seed = check(out).manifest.options.seed;
    expect((await verifyGeneratedDataset(out, { seed })).ok).toBe(true);
    expect(await verifyGeneratedDataset(out, { seed: seed + 1 })).toMatchObject({
      ok: false,
      why: /seed is/,
    });
    // Same size, other bytes: only the checksum tells.
    const f = path.join(out, 'interactions.csv');
    const body = fs.readFileSync(f);
    body[body.length - 2] = body[body.length - 2] === 0x30 ? 0x31 : 0x30;
    fs.writeFileSync(f, body);
    expect(await verifyGeneratedDataset(out, { seed })).toMatchObject({ ok: false, why: /checksum/ });
    // The next generation replaces the damaged dataset.
    await generateDataset({ ...SMALL, seed, out });
    expect(check(out).consistent).toBe(true);
  }, 60_000);
});

test('a cancelled generation stops within a chunk and leaves nothing behind', async () => {
  const out = path.join(root, 'cancel', 'synthetic');
  const ctl = new AbortController();
  const t0 = Date.now();
  setTimeout(() => ctl.abort(), 300);
  // 50M events would take minutes and write ~3 GB: only cancellation can end this promptly.
  await expect(
    runCancellable(ctl.signal, () =>
      generateDataset({ ...SMALL, users: 100_000, items: 5000, events: 50_000_000, seed: 3, out }),
    ),
  ).rejects.toThrow();
  expect(Date.now() - t0).toBeLessThan(3000);
  expect(fs.existsSync(out)).toBe(false);
  expect(fs.readdirSync(path.dirname(out))).toEqual([]);
}, 30_000);

test('a folder holding files the generator did not write is refused, not replaced', async () => {
  const out = path.join(root, 'foreign', 'synthetic');
  fs.mkdirSync(out, { recursive: true });
  fs.writeFileSync(path.join(out, 'my-notes.txt'), 'keep me');
  await expect(generateDataset({ ...SMALL, seed: 5, out })).rejects.toThrow(
    /refusing to replace.*my-notes\.txt/,
  );
  expect(fs.readFileSync(path.join(out, 'my-notes.txt'), 'utf8')).toBe('keep me');
  expect(fs.readdirSync(path.dirname(out))).toEqual(['synthetic']);
}, 30_000);

test('a dataset moved aside by another installer while being verified is a verdict, not an error', async () => {
  // CI once failed the four-process race with ENOENT: a verifier had read the manifest and sized the files
  // when a concurrent installer moved the folder aside, so the checksum read found nothing to open.
  const out = path.join(root, 'moved', 'synthetic');
  await generateDataset({ ...SMALL, seed: 9, out });
  // verifyGeneratedDataset reads the manifest and stats the files synchronously; the file is opened later.
  const verdict = verifyGeneratedDataset(out, { seed: 9 });
  fs.renameSync(out, `${out}-aside`);
  await expect(verdict).resolves.toMatchObject({ ok: false, why: /removed while being verified/ });
}, 30_000);
