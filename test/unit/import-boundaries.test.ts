import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { ROOT } from '../helpers/env';

/**
 * The layering in eslint.config.mjs, shown refusing each forbidden import (and allowing its legal twin), on
 * code linted as if it lived at the given path: `npm run lint` (part of `npm test`) fails on any of these.
 */
// The eslint CLI in a child process: its ESM config cannot load inside jest's module sandbox.
const eslintBin = path.join(ROOT, 'node_modules', 'eslint', 'bin', 'eslint.js');

async function violations(file: string, code: string): Promise<string[]> {
  const r = spawnSync(
    process.execPath,
    [eslintBin, '--stdin', '--stdin-filename', file, '--format', 'json'],
    {
      cwd: ROOT,
      input: code,
      encoding: 'utf8',
    },
  );
  const [result] = JSON.parse(r.stdout) as { messages: { ruleId: string | null; message: string }[] }[];
  return result.messages
    .filter((m) => m.ruleId === '@typescript-eslint/no-restricted-imports')
    .map((m) => m.message);
}

const cases: { file: string; forbidden: string; allowed: string; why: RegExp }[] = [
  {
    file: 'workflows/probe.ts',
    forbidden: `import { ingest } from '../activities/ingest';\nexport const x = ingest;`,
    allowed: `import type { CpuActivities } from '../activities';\nexport type X = CpuActivities;`,
    why: /activity \*types\* only/,
  },
  {
    file: 'workflows/probe.ts',
    forbidden: `import { withDb } from '../lib/duckdb';\nexport const x = withDb;`,
    allowed: `import { NON_RETRYABLE } from '../contracts/errors';\nexport const x = NON_RETRYABLE;`,
    why: /deterministic sandbox/,
  },
  {
    file: 'contracts/probe.ts',
    forbidden: `import { withDb } from '../lib/duckdb';\nexport const x = withDb;`,
    allowed: `import { z } from 'zod';\nexport const x = z;`,
    why: /bottom layer/,
  },
  {
    file: 'lib/probe.ts',
    forbidden: `import { decideGates } from '../evaluation/gates';\nexport const x = decideGates;`,
    allowed: `import { NON_RETRYABLE } from '../contracts/errors';\nexport const x = NON_RETRYABLE;`,
    why: /infrastructure only/,
  },
  {
    file: 'models/probe.ts',
    forbidden: `import { clean } from '../activities/clean';\nexport const x = clean;`,
    allowed: `import { userMetrics } from '../evaluation/ranking-metrics';\nexport const x = userMetrics;`,
    why: /never imports activities/,
  },
  {
    file: 'privacy/probe.ts',
    forbidden: `import { retrainPipeline } from '../workflows/retrain';\nexport const x = retrainPipeline;`,
    allowed: `import { withDb } from '../lib/duckdb';\nexport const x = withDb;`,
    why: /never imports activities/,
  },
  {
    file: 'activities/probe.ts',
    forbidden: `import { clean } from './clean';\nexport const x = clean;`,
    allowed: `import { RunIO } from './support/run-io';\nexport const x = RunIO;`,
    why: /never imports another activity/,
  },
  {
    file: 'activities/train/probe.ts',
    forbidden: `import { profile } from '../profile';\nexport const x = profile;`,
    allowed: `import { trainDpBaselines } from './dp';\nimport { RunIO } from '../support/run-io';\nexport const x = [trainDpBaselines, RunIO];`,
    why: /never imports another activity/,
  },
  {
    file: 'activities/support/probe.ts',
    forbidden: `import { evaluate } from '../evaluate';\nexport const x = evaluate;`,
    allowed: `import { lit } from '../../lib/duckdb';\nexport const x = lit;`,
    why: /never imports one of them/,
  },
];

test.each(cases)('$file: a forbidden import fails lint, its legal twin passes', async (c) => {
  const bad = await violations(c.file, c.forbidden);
  expect(bad).toHaveLength(1);
  expect(bad[0]).toMatch(c.why);
  expect(await violations(c.file, c.allowed)).toEqual([]);
});

test('packages whose names look like project folders are not mistaken for them', async () => {
  expect(
    await violations(
      'lib/probe.ts',
      `import { Worker } from '@temporalio/worker';\nexport const x = Worker;`,
    ),
  ).toEqual([]);
});
