import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseCsv } from '../../lib/datasets/csv';
import { findExecutable } from '../../lib/datasets/sources';
import type { PositiveRule } from './split';

/**
 * The Python references (bench/reference/references.py) in a project-local, git-ignored venv (.bench-venv/) that
 * the bench creates itself from PyPI. They are benchmark tools, never product dependencies.
 */

export const VENV_DIR = '.bench-venv';
export const VENV_PACKAGES = ['numpy', 'scipy', 'implicit', 'threadpoolctl'] as const;

export class ReferenceSetupError extends Error {
  override name = 'ReferenceSetupError';
}

function venvPython(root: string): string {
  return path.join(root, VENV_DIR, 'bin', 'python');
}

/** The venv's python, created and filled on first use (a pip failure names the command to run by hand). */
export function ensureVenv(root: string, log: (s: string) => void): string {
  const py = venvPython(root);
  const probe = () =>
    fs.existsSync(py) &&
    spawnSync(py, ['-c', `import ${VENV_PACKAGES.join(', ')}`], { stdio: 'ignore' }).status === 0;
  if (probe()) return py;
  const python3 = findExecutable('python3');
  if (!python3)
    throw new ReferenceSetupError(
      'the quality bench needs python3 (with venv and pip) for its reference models: apt-get install -y python3 python3-venv',
    );
  if (!fs.existsSync(py)) {
    log(`creating ${VENV_DIR}/ (python3 -m venv)`);
    const r = spawnSync(python3, ['-m', 'venv', path.join(root, VENV_DIR)], { encoding: 'utf8' });
    if (r.status !== 0)
      throw new ReferenceSetupError(
        `python3 -m venv ${VENV_DIR} failed: ${(r.stderr || r.stdout).trim()} (Debian/Ubuntu: apt-get install -y python3-venv)`,
      );
  }
  log(`pip install ${VENV_PACKAGES.join(' ')} into ${VENV_DIR}/ (from PyPI)`);
  const r = spawnSync(py, ['-m', 'pip', 'install', '--disable-pip-version-check', '-q', ...VENV_PACKAGES], {
    encoding: 'utf8',
    stdio: ['ignore', 'inherit', 'pipe'],
  });
  if (r.status !== 0 || !probe())
    throw new ReferenceSetupError(
      `pip install into ${VENV_DIR} failed (is PyPI reachable?): ${(r.stderr ?? '').trim().split('\n').slice(-3).join(' | ')}. ` +
        `By hand: ${py} -m pip install ${VENV_PACKAGES.join(' ')}`,
    );
  return py;
}

export interface RunSpec {
  id: string;
  model: 'mostpop' | 'itemknn' | 'als' | 'ease';
  params: Record<string, number | string>;
}

export interface Job {
  train: string;
  targets: string;
  unavailable: string[];
  positive: PositiveRule;
  k: number;
  threads: number;
  seed: number;
  outDir: string;
  runs: RunSpec[];
}

export interface RunTiming {
  id: string;
  fit_s: number;
  score_s: number;
}

export interface JobResult {
  load_s: number;
  missingTargets: number;
  runs: RunTiming[];
  env: Record<string, unknown>;
}

export function runJob(root: string, py: string, job: Job, log: (s: string) => void): JobResult {
  fs.mkdirSync(job.outDir, { recursive: true });
  const jobFile = path.join(job.outDir, 'job.json');
  fs.writeFileSync(jobFile, JSON.stringify(job, null, 1));
  const script = path.join(root, 'bench', 'reference', 'references.py');
  log(`python references.py (${job.runs.length} runs: ${job.runs.map((r) => r.id).join(', ')})`);
  const r = spawnSync(py, [script, jobFile], {
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, OMP_NUM_THREADS: String(job.threads) },
  });
  if (r.status !== 0) throw new Error(`references.py failed (exit ${r.status ?? r.signal}) on ${jobFile}`);
  return JSON.parse(fs.readFileSync(path.join(job.outDir, 'timings.json'), 'utf8')) as JobResult;
}

/** A list file written by references.py (user_id,rank,item_id,score; ranks ascending per user). */
export function readListsCsv(file: string): Map<string, string[]> {
  const rows = parseCsv(fs.readFileSync(file, 'utf8'));
  const h = rows[0];
  const [iu, ir, ii] = ['user_id', 'rank', 'item_id'].map((c) => h.indexOf(c));
  if (iu < 0 || ir < 0 || ii < 0)
    throw new Error(`${file}: header ${h.join(',')} lacks user_id,rank,item_id`);
  const tmp = new Map<string, [number, string][]>();
  for (const f of rows.slice(1)) {
    let l = tmp.get(f[iu]);
    if (!l) tmp.set(f[iu], (l = []));
    l.push([Number(f[ir]), f[ii]]);
  }
  const out = new Map<string, string[]>();
  for (const [u, l] of tmp)
    out.set(
      u,
      l.sort((a, b) => a[0] - b[0]).map((x) => x[1]),
    );
  return out;
}

export type ParamValue = number | string;

export interface SearchSpace {
  model: RunSpec['model'];
  /** Ordered values per parameter; the search starts at `start` and moves one step at a time. */
  /**
   * `tag` prefixes the value in run ids (default: the name). A `sweep` dimension has all its values in every
   * neighbourhood instead of the adjacent ones (for short lists whose score is not unimodal).
   */
  dims: { name: string; tag?: string; values: readonly ParamValue[]; start: number; sweep?: boolean }[];
  fixed?: Record<string, ParamValue>;
}

/**
 * Coordinate search over a discrete grid, for fair tuning at a bounded cost: evaluate the current point and its
 * neighbours (one step along one parameter), move to the best if it is strictly better, repeat until no
 * neighbour improves or `maxRounds` is reached. Cheaper than the full grid, and the grid can be wide, so the
 * optimum does not sit on an edge of a small grid. Pure: the caller evaluates the runs and reports scores.
 */
export class CoordinateSearch {
  private current: number[];
  private readonly scores = new Map<string, number>();
  private rounds = 0;
  private done = false;

  constructor(
    readonly space: SearchSpace,
    private readonly maxRounds = 8,
  ) {
    for (const d of space.dims)
      if (d.values.length === 0 || d.start < 0 || d.start >= d.values.length)
        throw new Error(`${space.model}.${d.name}: start ${d.start} outside ${d.values.length} values`);
    this.current = space.dims.map((d) => d.start);
  }

  spec(at: readonly number[]): RunSpec {
    const params: Record<string, ParamValue> = { ...this.space.fixed };
    const tag: string[] = [];
    this.space.dims.forEach((d, i) => {
      params[d.name] = d.values[at[i]];
      tag.push(`${d.tag ?? d.name}${d.values[at[i]]}`);
    });
    return { id: `${this.space.model}-${tag.join('-')}`, model: this.space.model, params };
  }

  private neighbourhood(): number[][] {
    const out = [this.current];
    this.space.dims.forEach((d, i) => {
      const at = d.sweep ? d.values.map((_, j) => j) : [this.current[i] - 1, this.current[i] + 1];
      for (const j of at) {
        if (j < 0 || j >= d.values.length || j === this.current[i]) continue;
        const p = [...this.current];
        p[i] = j;
        out.push(p);
      }
    });
    return out;
  }

  /** Runs of this round not evaluated yet (empty once the search has stopped). */
  pending(): RunSpec[] {
    if (this.done) return [];
    return this.neighbourhood()
      .map((p) => this.spec(p))
      .filter((s) => !this.scores.has(s.id));
  }

  report(id: string, score: number): void {
    this.scores.set(id, score);
  }

  /** After the round's runs are reported: move, or stop. Returns whether another round is wanted. */
  step(): boolean {
    if (this.done) return false;
    this.rounds++;
    const here = this.scoreAt(this.current);
    let best = this.current;
    let bestScore = here;
    for (const p of this.neighbourhood()) {
      const s = this.scoreAt(p);
      if (s > bestScore) {
        best = p;
        bestScore = s;
      }
    }
    if (best === this.current || this.rounds >= this.maxRounds) this.done = true;
    this.current = best;
    return !this.done;
  }

  private scoreAt(p: readonly number[]): number {
    const id = this.spec(p).id;
    const s = this.scores.get(id);
    if (s === undefined) throw new Error(`${id} was not evaluated`);
    return s;
  }

  best(): { spec: RunSpec; score: number } {
    return { spec: this.spec(this.current), score: this.scoreAt(this.current) };
  }

  evaluated(): { id: string; score: number }[] {
    return [...this.scores.entries()].map(([id, score]) => ({ id, score }));
  }
}

/**
 * The references' search spaces. On explicit data every model also chooses its input signal: all rated items,
 * or only the positives (ratings >= 4). Starting points are common defaults; the wide value lists let the search
 * walk to wherever the data's optimum is. item-kNN sweeps its neighbour count (k = 0: all neighbours): its
 * validation score was not unimodal in k on MovieLens (k 200 > 500 < all), so a local walk stopped short.
 */
export function referenceSpaces(signals: readonly string[]): SearchSpace[] {
  const signal = { name: 'signal', tag: '', values: signals, start: 0 };
  return [
    { model: 'mostpop', dims: [signal] },
    {
      model: 'itemknn',
      dims: [signal, { name: 'k', tag: 'k', values: [10, 20, 50, 100, 200, 500, 0], start: 3, sweep: true }],
    },
    {
      model: 'als',
      dims: [
        signal,
        { name: 'factors', tag: 'f', values: [16, 32, 64, 128, 256], start: 2 },
        { name: 'regularization', tag: 'r', values: [0.01, 0.1, 1, 10, 100], start: 1 },
        { name: 'alpha', tag: 'a', values: [0.25, 1, 4, 16, 64], start: 2 },
      ],
      fixed: { iterations: 15 },
    },
    {
      model: 'ease',
      dims: [
        signal,
        { name: 'lambda', tag: 'l', values: [1, 3, 10, 30, 100, 300, 1000, 3000, 10000, 30000], start: 5 },
      ],
    },
  ];
}
