import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * Jest global teardown of the reliability suite: gathers what each test recorded (test-artifacts/reliability/
 * <test>.json, written by `report`) into summary.json and prints the counts — kills, cases, races, runs — that
 * the closing note asks for. Only files written by this invocation count.
 */
export default function summary(): void {
  const dir = path.join(__dirname, '..', '..', '..', 'test-artifacts', 'reliability');
  if (!fs.existsSync(dir)) return;
  const startedAt = Number(process.env.RECFORGE_RELIABILITY_STARTED ?? 0);
  const entries = fs
    .readdirSync(dir)
    .filter((n) => n.endsWith('.json') && n !== 'summary.json')
    .map((n) => path.join(dir, n))
    .filter((f) => fs.statSync(f).mtimeMs >= startedAt)
    .map((f) => JSON.parse(fs.readFileSync(f, 'utf8')) as Record<string, unknown>);
  const total = (key: string) =>
    entries.reduce((a, e) => a + (typeof e[key] === 'number' ? (e[key] as number) : 0), 0);
  const out = {
    at: new Date().toISOString(),
    kills: total('kills'),
    cases: total('cases'),
    races: total('races'),
    runs: total('runs'),
    failures: entries.flatMap((e) => (Array.isArray(e.failures) ? (e.failures as string[]) : [])),
    tests: entries,
  };
  fs.writeFileSync(path.join(dir, 'summary.json'), JSON.stringify(out, null, 2) + '\n');
  console.log(
    `\n[reliability] kills ${out.kills} · hostile cases ${out.cases} · races ${out.races} · runs ${out.runs} · ` +
      `failures ${out.failures.length}\n[reliability] ${path.relative(process.cwd(), path.join(dir, 'summary.json'))}: ` +
      entries.map((e) => `${String(e.name)}`).join(', '),
  );
}
