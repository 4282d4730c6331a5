import * as fs from 'node:fs';

/**
 * Fault injection for the reliability suite (test/reliability/): `faultPoint('publish:after-parts')` marks a step
 * boundary where a crash must be survivable, so a test can crash the process exactly there.
 *
 *   RECFORGE_FAULT=<name>[:<n>]   SIGKILL this process the n-th time (default: the first) it reaches point <name>
 *   RECFORGE_FAULT_TRACE=<file>   append every point reached to <file> ("<pid> <name>" a line): a clean run's
 *                                 trace is how the suite learns which points a sequence reaches, and how often
 *
 * Both are read once, when this module loads. Unset (production), `faultPoint` is a test of one constant
 * and returns: no I/O, no allocation, no effect. SIGKILL and not an exception: a crash runs no `finally`, no
 * compensation and no exit handler, which is exactly what the protocol has to survive.
 */

interface FaultSpec {
  name: string;
  hit: number;
}

function parse(spec: string | undefined): FaultSpec | null {
  if (!spec) return null;
  // Point names contain ':' themselves ('storage:cas-linked'); only a numeric last segment is the count.
  const m = /^(.*?)(?::(\d+))?$/.exec(spec.trim());
  if (!m || !m[1]) return null;
  return { name: m[1], hit: m[2] ? Math.max(1, Number(m[2])) : 1 };
}

const armed = parse(process.env.RECFORGE_FAULT);
const traceFile = process.env.RECFORGE_FAULT_TRACE || null;
const active = armed !== null || traceFile !== null;
let hits = 0;

/**
 * A crash site. `detail` is appended as `<name>:<detail>` (e.g. the stage of a progress report) only when faults
 * are armed, so an unarmed call builds no string.
 */
export function faultPoint(name: string, detail?: string): void {
  if (!active) return;
  const point = detail === undefined ? name : `${name}:${detail}`;
  if (traceFile) fs.appendFileSync(traceFile, `${process.pid} ${point}\n`);
  if (armed && armed.name === point && ++hits === armed.hit) process.kill(process.pid, 'SIGKILL');
}
