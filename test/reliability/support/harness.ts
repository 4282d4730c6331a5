import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { defaultPayloadConverter } from '@temporalio/common';
import type { WorkflowHandle } from '@temporalio/client';
import { ROOT } from '../../helpers/env';
import { compileForChildren } from '../../helpers/compile';

/**
 * Shared machinery of the reliability suite: seeded randomness (the seed is printed, and RECFORGE_RELIABILITY_SEED
 * replays a failing draw), child processes that can be SIGKILLed at a fault point or at a random instant, the
 * counts each test reports, and the decoded activity inputs of a real run.
 */

/** The suite's mode: 'ci' (the default: bounded to a few minutes) or 'nightly' (everything, more of it). */
export const MODE: 'ci' | 'nightly' = process.env.RECFORGE_RELIABILITY === 'nightly' ? 'nightly' : 'ci';

/** mulberry32: small, seedable, good enough to pick kill points. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function suiteSeed(name: string): number {
  const fixed = process.env.RECFORGE_RELIABILITY_SEED;
  const seed = fixed ? Number(fixed) : Math.floor(Math.random() * 2 ** 31);
  console.log(`[reliability] ${name}: seed ${seed} (RECFORGE_RELIABILITY_SEED=${seed} replays it)`);
  return seed;
}

export const pick = <T>(r: () => number, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];

export const ARTIFACTS = path.join(ROOT, 'test-artifacts', 'reliability');

/** Records what a test did (kills, cases, races, runs) for the runner's summary and the closing note. */
export function report(name: string, counts: Record<string, unknown>): void {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  fs.writeFileSync(
    path.join(ARTIFACTS, `${name}.json`),
    JSON.stringify({ name, mode: MODE, at: new Date().toISOString(), ...counts }, null, 2) + '\n',
  );
}

/** dist/ must be current: children and worker processes run the compiled code. */
export function requireBuild(): void {
  const stamp = path.join(ROOT, 'dist', '.build-stamp');
  if (!fs.existsSync(stamp))
    throw new Error('dist/ is missing: run `node bin/build.js` (npm run test:reliability does)');
}

let compiled: string | undefined;
/** The suite's child programs (test/reliability/children), compiled with swc; they load the product from dist/. */
export function childProgram(name: string): string {
  compiled ??= compileForChildren(
    ['test/reliability/children', 'test/reliability/support'],
    fs.mkdtempSync(path.join(os.tmpdir(), 'recforge-reliability-children-')),
  );
  return path.join(compiled, 'test', 'reliability', 'children', `${name}.js`);
}

export interface ChildOutcome {
  /** 'done': exit 0; 'failed': another exit code; 'killed': SIGKILL (by a fault point or by us). */
  end: 'done' | 'failed' | 'killed';
  /** True when the harness's timer sent the SIGKILL (not a fault point). */
  killedByTimer: boolean;
  pid: number;
  ms: number;
  stdout: string;
  stderr: string;
}

export interface ChildOptions {
  env?: Record<string, string | undefined>;
  /**
   * SIGKILL after this many ms if still running, counted from the child's first stdout line 'ready' (its modules
   * are loaded: the kill lands in the work, not in node's start-up).
   */
  killAfterMs?: number;
  /** Called once the process is spawned (e.g. to remember its pid). */
  onSpawn?: (c: ChildProcess) => void;
}

/** Runs `node <program> ...args` to its end (exit or SIGKILL). */
export function runChild(program: string, args: string[], o: ChildOptions = {}): Promise<ChildOutcome> {
  const t0 = Date.now();
  const child = spawn(process.execPath, [program, ...args], {
    env: { ...process.env, RECFORGE_ROOT: ROOT, ...o.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  o.onSpawn?.(child);
  let stdout = '';
  let stderr = '';
  let killedByTimer = false;
  let timer: NodeJS.Timeout | undefined;
  child.stdout!.on('data', (d) => {
    stdout += String(d);
    if (o.killAfterMs !== undefined && timer === undefined && /^ready$/m.test(stdout))
      timer = setTimeout(() => {
        if (child.exitCode === null && child.signalCode === null) {
          killedByTimer = true;
          child.kill('SIGKILL');
        }
      }, o.killAfterMs);
  });
  child.stderr!.on('data', (d) => (stderr += String(d)));
  return new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      if (timer) clearTimeout(timer);
      resolve({
        end: signal === 'SIGKILL' ? 'killed' : code === 0 ? 'done' : 'failed',
        killedByTimer: killedByTimer && signal === 'SIGKILL',
        pid: child.pid!,
        ms: Date.now() - t0,
        stdout,
        stderr,
      });
    });
  });
}

/** The points a traced process reached, in order ("<pid> <point>" lines of RECFORGE_FAULT_TRACE). */
export function readTrace(file: string): string[] {
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => l.slice(l.indexOf(' ') + 1));
}

/** Every (point, n-th hit) a trace reached: the kill sites a RECFORGE_FAULT can name. */
export function killSites(trace: string[]): string[] {
  const n = new Map<string, number>();
  return trace.map((p) => {
    n.set(p, (n.get(p) ?? 0) + 1);
    return `${p}:${n.get(p)}`;
  });
}

/** The decoded arguments of the last scheduled call of an activity in a workflow's history. */
export async function activityArgs<T extends unknown[]>(
  handle: WorkflowHandle,
  activity: string,
): Promise<T> {
  const events = (await handle.fetchHistory()).events ?? [];
  const scheduled = events
    .map((e) => e.activityTaskScheduledEventAttributes)
    .filter((a) => a?.activityType?.name === activity);
  const last = scheduled.at(-1);
  if (!last) throw new Error(`${activity} was never scheduled in ${handle.workflowId}`);
  return (last.input?.payloads ?? []).map((p) => defaultPayloadConverter.fromPayload(p)) as T;
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
