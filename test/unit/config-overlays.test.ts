import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { configListFromEnv, loadConfig, overlayFiles, findProjectRoot } from '../../lib/config';

const ROOT = findProjectRoot(__dirname);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cfg-stack-'));
function file(name: string, text: string): string {
  const f = path.join(dir, name);
  fs.writeFileSync(f, text);
  return f;
}

describe('config overlays stack', () => {
  const a = file('a.yaml', 'publish:\n  topN: 50\nevaluation:\n  k: 20\n');
  const b = file('b.yaml', 'publish:\n  topN: 30\n');

  test('several overlay files merge in order over the defaults, later wins', () => {
    const { config, sources } = loadConfig({ root: ROOT, env: {}, overlay: [a, b] });
    expect(config.publish.topN).toBe(30);
    expect(config.evaluation.k).toBe(20);
    expect(sources.slice(1)).toEqual([a, b]);
  });

  test('RECFORGE_CONFIG takes a PATH-style list and the option stacks on top of it', () => {
    const env = { RECFORGE_CONFIG: [a, b].join(path.delimiter) };
    expect(loadConfig({ root: ROOT, env }).config.publish.topN).toBe(30);
    const c = file('c.yaml', 'publish:\n  topN: 7\n');
    const { config, sources } = loadConfig({ root: ROOT, env, overlay: c });
    expect(config.publish.topN).toBe(7);
    expect(config.evaluation.k).toBe(20); // from a.yaml, listed in the environment: not replaced by --config
    expect(sources.slice(1)).toEqual([a, b, c]);
  });

  test('a single overlay string keeps working and an error names the file that set the key', () => {
    expect(loadConfig({ root: ROOT, env: {}, overlay: a }).config.publish.topN).toBe(50);
    const bad = file('bad.yaml', 'publish:\n  topn: 5\n');
    expect(() => loadConfig({ root: ROOT, env: {}, overlay: [a, bad] })).toThrow(
      `${bad}: unknown key publish.topn`,
    );
  });

  test('list parsing ignores blanks', () => {
    expect(configListFromEnv(undefined)).toEqual([]);
    expect(configListFromEnv(` x.yaml ${path.delimiter}${path.delimiter}y.yaml`)).toEqual([
      'x.yaml',
      'y.yaml',
    ]);
    expect(overlayFiles({ overlay: 'z.yaml', env: { RECFORGE_CONFIG: 'x.yaml' } })).toEqual([
      'x.yaml',
      'z.yaml',
    ]);
  });
});
