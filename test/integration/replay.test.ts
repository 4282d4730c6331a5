import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync, spawnSync } from 'node:child_process';
import { ROOT } from '../helpers/env';

jest.setTimeout(120_000);

/**
 * Replays recorded histories (test/histories/*.json, written by `RECORD_HISTORIES=1 npx jest
 * test/integration/pipeline.test.ts`) against today's workflow code: a non-deterministic change fails here.
 * Runs in a plain Node process: under jest's module registry protobufjs's JSON conversion rejects the history
 * types. So the compiled workflow code is replayed — rebuilt first when any source is newer than dist/
 * (bin/build.js), so an edited workflow is never judged by a stale build.
 */
beforeAll(() => {
  execFileSync(process.execPath, [path.join(ROOT, 'bin', 'build.js')], { cwd: ROOT, stdio: 'ignore' });
});
const dir = path.join(ROOT, 'test', 'histories');
const files = fs.readdirSync(dir).filter((f) => f.endsWith('.json'));
const replay = path.join(ROOT, 'dist', 'scripts', 'replay.js');

test('there are recorded histories to replay', () => {
  expect(files.length).toBeGreaterThan(0);
});

test.each(files)('replays %s deterministically', (file) => {
  const r = spawnSync(process.execPath, [replay, path.join(dir, file)], { encoding: 'utf8' });
  expect(r.stderr).toBe('');
  expect(r.stdout).toContain('[replay] ok');
  expect(r.status).toBe(0);
});

test('a workflow change that alters the command sequence is caught', () => {
  // Drop the first scheduled activity from the history: replay must notice the mismatch.
  const history = JSON.parse(fs.readFileSync(path.join(dir, files[0]), 'utf8'));
  const events = history.events as { eventType?: string }[];
  const idx = events.findIndex((e) => String(e.eventType).includes('ACTIVITY_TASK_SCHEDULED'));
  expect(idx).toBeGreaterThan(0);
  const tampered = { ...history, events: events.slice(0, idx).concat(events.slice(idx + 3)) };
  const tmp = path.join(os.tmpdir(), `tampered-${process.pid}.json`);
  fs.writeFileSync(tmp, JSON.stringify(tampered));
  const r = spawnSync(process.execPath, [replay, tmp], { encoding: 'utf8' });
  expect(r.status).toBe(1);
  expect(r.stderr).toMatch(/FAIL/);
});
