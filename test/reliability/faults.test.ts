import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { tempDir, ROOT } from '../helpers/env';
import { requireBuild } from './support/harness';

/**
 * lib/faults.ts, which every kill test relies on: RECFORGE_FAULT=<point>[:n] SIGKILLs at exactly the n-th hit of
 * that point (names may contain ':'), nothing else is touched, and without it a point does nothing at all.
 */

const script = `const { faultPoint } = require(${JSON.stringify(path.join(ROOT, 'dist', 'lib', 'faults.js'))});
for (let i = 1; i <= 3; i++) {
  faultPoint('other:point');
  faultPoint('a:b', 'c');
  process.stdout.write(i + '\\n');
}`;

const run = (env: Record<string, string>) =>
  spawnSync(process.execPath, ['-e', script], { env: { ...process.env, ...env }, encoding: 'utf8' });

beforeAll(() => requireBuild());

test('unarmed: every point is passed, nothing is written', () => {
  const r = run({ RECFORGE_FAULT: '', RECFORGE_FAULT_TRACE: '' });
  expect([r.status, r.signal, r.stdout]).toEqual([0, null, '1\n2\n3\n']);
});

test('armed: SIGKILL at the n-th hit of the named point (a detail is part of the name), not before', () => {
  expect(run({ RECFORGE_FAULT: 'a:b:c:2' })).toMatchObject({ signal: 'SIGKILL', stdout: '1\n' });
  expect(run({ RECFORGE_FAULT: 'a:b:c' })).toMatchObject({ signal: 'SIGKILL', stdout: '' });
  expect(run({ RECFORGE_FAULT: 'other:point:3' })).toMatchObject({ signal: 'SIGKILL', stdout: '1\n2\n' });
  // A point never reached, or a hit beyond the last: the process runs to its end.
  expect(run({ RECFORGE_FAULT: 'a:b:c:4' })).toMatchObject({ status: 0, stdout: '1\n2\n3\n' });
  expect(run({ RECFORGE_FAULT: 'a:b' })).toMatchObject({ status: 0, stdout: '1\n2\n3\n' });
});

test('traced: every point reached, in order, up to and including the one that kills', () => {
  const trace = path.join(tempDir('rel-faults'), 'trace.txt');
  const r = run({ RECFORGE_FAULT: 'a:b:c:2', RECFORGE_FAULT_TRACE: trace });
  expect(r.signal).toBe('SIGKILL');
  const points = fs
    .readFileSync(trace, 'utf8')
    .trim()
    .split('\n')
    .map((l) => l.split(' ')[1]);
  expect(points).toEqual(['other:point', 'a:b:c', 'other:point', 'a:b:c']);
});
