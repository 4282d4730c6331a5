import { execFileSync, spawnSync } from 'node:child_process';
import * as net from 'node:net';
import * as path from 'node:path';
import { main } from '../../cli/main';
import { renderProgress, describeDetails, bar, duration } from '../../cli/render/progress';
import { formatRunsTable, runRow, type ListedRun } from '../../cli/render/runs';
import { parseBackfill } from '../../cli/commands/schedule';
import { UsageError } from '../../cli/context';

const ROOT = path.resolve(__dirname, '..', '..');

/** Runs main() in-process with stdout/stderr captured. */
async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const o = jest.spyOn(process.stdout, 'write').mockImplementation((s) => ((out += String(s)), true));
  const e = jest.spyOn(process.stderr, 'write').mockImplementation((s) => ((err += String(s)), true));
  const before = process.exitCode;
  try {
    const code = await main(argv);
    return { code, out, err };
  } finally {
    o.mockRestore();
    e.mockRestore();
    process.exitCode = before;
  }
}

describe('recforge command line', () => {
  test('--help lists every command', async () => {
    const r = await cli('--help');
    expect(r.code).toBe(0);
    for (const c of [
      'run',
      'status',
      'runs',
      'report',
      'promote',
      'rollback',
      'schedule',
      'dev',
      'worker',
      'datasets',
      'gen-data',
    ])
      expect(r.out).toMatch(new RegExp(`\\n  ${c}\\b`));
  });

  test('--help on a subcommand and a sub-subcommand', async () => {
    const run = await cli('run', '--help');
    expect(run.code).toBe(0);
    expect(run.out).toContain('--follow');
    const backfill = await cli('schedule', 'backfill', '--help');
    expect(backfill.code).toBe(0);
    expect(backfill.out).toContain('--from <time>');
  });

  test('an unknown flag prints the usage and exits 2, on any command', async () => {
    for (const argv of [['run', '--bogus'], ['schedule', '--bogus'], ['dev', '--nope'], ['--what']]) {
      const r = await cli(...argv);
      expect({ argv, code: r.code }).toEqual({ argv, code: 2 });
      expect(r.err).toMatch(/unknown option/);
      expect(r.err).toContain('Usage: recforge');
    }
  });

  test('a missing required option or a bad value is a usage error', async () => {
    expect((await cli('gen-data', '--users', '10')).code).toBe(2);
    const bad = await cli('gen-data', '--users', 'ten', '--items', '5', '--events', '5');
    expect(bad.code).toBe(2);
    expect(bad.err).toContain("--users expects an integer, got 'ten'");
    expect((await cli('schedule', 'backfill', '--from', '2026-12-02', '--to', '2026-12-01')).code).toBe(2);
    expect((await cli('frobnicate')).code).toBe(2);
  });

  test('a config error names the file and exits 1', async () => {
    const r = await cli('--config', '/nonexistent/recforge.yaml', 'report');
    expect(r.code).toBe(1);
    expect(r.err).toContain('/nonexistent/recforge.yaml: cannot read config file');
  });

  test('dev refuses a port something else holds, and says what holds it', async () => {
    const server = net.createServer((sock) => {
      sock.on('error', () => undefined); // the probing clients hang up abruptly
      sock.end('not grpc\n');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as net.AddressInfo).port;
    try {
      const r = await cli('dev', '--port', String(port));
      expect(r.code).toBe(1);
      expect(r.err).toContain(`port ${port} is taken by something that does not answer as a Temporal server`);
      expect(r.err).toContain('--attach');
    } finally {
      server.close();
    }
  });

  test('the installed command answers --help in well under a second (no compile, heavy modules not loaded)', () => {
    // Builds dist only if a source is newer than the last build (npm test's setup has just built it).
    execFileSync(process.execPath, [path.join(ROOT, 'bin', 'build.js')], {
      stdio: 'ignore',
      timeout: 180_000,
    });
    const times: number[] = [];
    for (let i = 0; i < 3; i++) {
      const t0 = performance.now();
      const r = spawnSync(process.execPath, [path.join(ROOT, 'bin', 'recforge.js'), '--help'], {
        encoding: 'utf8',
      });
      times.push(performance.now() - t0);
      expect(r.status).toBe(0);
      expect(r.stdout).toContain('Usage: recforge');
    }
    expect(Math.min(...times)).toBeLessThan(1000);
    const bogus = spawnSync(process.execPath, [path.join(ROOT, 'bin', 'recforge.js'), 'run', '--bogus'], {
      encoding: 'utf8',
    });
    expect(bogus.status).toBe(2);
  }, 200_000);
});

describe('progress rendering', () => {
  test('done stages with times, the running one with its heartbeat, the rest waiting', () => {
    const lines = renderProgress({
      stage: 'train',
      stages: [
        { name: 'plan', seconds: 1.2 },
        { name: 'ingest', seconds: 3 },
        { name: 'profile', seconds: 2 },
        { name: 'clean', seconds: 5 },
      ],
      pending: [
        {
          activity: 'trainLearned',
          attempt: 2,
          lastFailure: 'worker lost',
          details: {
            stage: 'train',
            step: 'two-tower',
            done: 450,
            total: 1000,
            unit: 'steps',
            epoch: 2,
            epochs: 5,
            loss: 1.23456,
            validation: { epoch: 1, value: 0.18 },
            rate: 12.5,
            etaSeconds: 44,
          } as never,
        },
      ],
      status: 'RUNNING',
      elapsedSeconds: 75,
    });
    expect(lines[0]).toBe('  ✔ plan      1.2s');
    expect(lines[4]).toBe(
      `  ▶ train     ${bar(0.45, 24)} 45% · two-tower · 450/1000 steps · epoch 3/5 · loss 1.2346 · val 0.1800 · 13 steps/s · ETA 0:44 (attempt 2: worker lost)`,
    );
    expect(lines[5]).toBe('  · evaluate ');
    expect(lines.at(-1)).toBe('  running · 1:15 elapsed');
  });

  test('a percent shows in the bar only; a budget ETA is an upper bound; fractions of a batch show', () => {
    expect(describeDetails({ stage: 'clean', step: 'classify', done: 42.5, total: 100, unit: '%' }, 8)).toBe(
      `${bar(0.425, 8)} 42% · classify`,
    );
    expect(
      describeDetails(
        {
          stage: 'train',
          step: 'tune',
          done: 7,
          unit: 'trials',
          etaSeconds: 95,
          etaBound: 'budget',
        } as never,
        8,
      ),
    ).toBe('tune · 7 trials · ETA ≤ 1:35');
    expect(
      describeDetails({ stage: 'publish', step: 'score shard 1/1', done: 0.4, total: 1, unit: 'batches' }, 8),
    ).toBe(`${bar(0.4, 8)} 40% · score shard 1/1 · 0.4/1 batches`);
  });

  test('the progress query’s in-stage report stands in when the heartbeat says only that it runs', () => {
    const lines = renderProgress({
      stage: 'ingest',
      stages: [{ name: 'plan', seconds: 1 }],
      current: {
        ingest: {
          activity: 'ingest',
          attempt: 1,
          details: { stage: 'ingest', step: 'files', done: 5e6, total: 2e7, unit: 'bytes', etaSeconds: 30 },
        },
      },
      pending: [{ activity: 'ingest', attempt: 1, details: { stage: 'ingest', elapsedSeconds: 3 } as never }],
      status: 'RUNNING',
      elapsedSeconds: 4,
    });
    expect(lines[1]).toBe(`  ▶ ingest    ${bar(0.25, 24)} 25% · files · 5.0M/20.0M bytes · ETA 0:30`);
  });

  test('details without counts still say what the stage does', () => {
    expect(describeDetails({ stage: 'clean', step: 'classify' })).toBe('classify');
    expect(describeDetails({ stage: 'train', model: 'mostpop' } as never)).toBe('mostpop');
    expect(describeDetails({ stage: 'train', elapsedSeconds: 36 } as never)).toBe('running 0:36');
    expect(duration(3725)).toBe('1:02:05');
    expect(bar(2, 4)).toBe('[####]');
  });
});

describe('runs listing', () => {
  const base: ListedRun = {
    workflowId: 'retrain-synthetic',
    runId: 'r1',
    status: 'COMPLETED',
    startTime: new Date('2026-12-01T02:00:00Z'),
    closeTime: new Date('2026-12-01T02:01:30Z'),
    searchAttributes: {
      RecforgeDataset: ['synthetic'],
      RecforgeGateDecision: ['promote'],
      RecforgeNdcg: [0.18],
      RecforgeStage: ['done'],
    },
  };

  test('a completed run whose gates rejected the challenger is listed as rejected', () => {
    const memo = {
      summary: {
        status: 'rejected',
        modelVersion: 'v2',
        challenger: 'mf',
        k: 10,
        metrics: { mf: { 'ndcg@10': 0.05 } },
        gate: { decision: 'reject', checks: [] },
      },
    };
    const row = runRow({
      ...base,
      runId: 'r2',
      memo,
      searchAttributes: { ...base.searchAttributes, RecforgeGateDecision: ['reject'] },
    });
    expect(row).toMatchObject({
      outcome: 'rejected',
      decision: 'reject',
      metric: 0.05,
      metricName: 'ndcg@10',
      challenger: 'mf',
      seconds: 90,
    });
    // Runs recorded before the memo carried the decision: the search attribute says it.
    expect(runRow({ ...base, searchAttributes: { RecforgeGateDecision: ['reject'] } }).outcome).toBe(
      'rejected',
    );
  });

  test('promoted, failed and running runs keep their status; the table has one line per run', () => {
    const ok = runRow(base);
    expect(ok).toMatchObject({
      outcome: 'completed',
      decision: 'promote',
      metric: 0.18,
      dataset: 'synthetic',
    });
    const failed = runRow({
      ...base,
      runId: 'r3',
      status: 'FAILED',
      searchAttributes: { RecforgeStage: ['clean'] },
    });
    expect(failed).toMatchObject({ outcome: 'failed', metric: null, stage: 'clean' });
    const running = runRow({
      ...base,
      runId: 'r4',
      status: 'RUNNING',
      closeTime: undefined,
      searchAttributes: { RecforgeStage: ['train'] },
    });
    expect(running).toMatchObject({ outcome: 'running', seconds: null, stage: 'train' });
    const table = formatRunsTable([ok, failed, running]).split('\n');
    expect(table).toHaveLength(4);
    expect(table[1]).toMatch(
      /^2026-12-01 02:00:00 {2}completed +synthetic +done +promote +ndcg=0\.1800 +1:30/,
    );
  });
});

describe('schedule backfill arguments', () => {
  test('dates are UTC days, times keep their offset; the range must be forward; policies are checked', () => {
    expect(
      parseBackfill({ from: '2026-12-01', to: '2026-12-03T12:00:00+01:00', overlap: 'buffer_all' }),
    ).toEqual({
      start: new Date('2026-12-01T00:00:00Z'),
      end: new Date('2026-12-03T11:00:00Z'),
      overlap: 'BUFFER_ALL',
    });
    expect(() => parseBackfill({ from: 'yesterday', to: '2026-12-01', overlap: 'SKIP' })).toThrow(UsageError);
    expect(() => parseBackfill({ from: '2026-12-02', to: '2026-12-02', overlap: 'SKIP' })).toThrow(
      /must be after/,
    );
    expect(() => parseBackfill({ from: '2026-12-01', to: '2026-12-02', overlap: 'SOMETIMES' })).toThrow(
      /unknown policy/,
    );
  });
});
