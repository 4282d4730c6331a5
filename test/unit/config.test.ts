import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadConfig, ConfigError } from '../../lib/config';
import { ROOT } from '../helpers/env';

function overlay(text: string, ext = 'yaml'): string {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'cfg-')), `overlay.${ext}`);
  fs.writeFileSync(file, text);
  return file;
}

function errorOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('expected a ConfigError');
}

describe('config loading', () => {
  test('the default config is valid and dataDir becomes absolute', () => {
    const { config, sources } = loadConfig({ root: ROOT, env: {} });
    expect(path.isAbsolute(config.dataDir)).toBe(true);
    expect(config.temporal.taskQueues.cpu).not.toBe(config.temporal.taskQueues.training);
    expect(sources).toEqual([path.join(ROOT, 'configs', 'default.yaml')]);
  });

  test('an overlay merges over the defaults', () => {
    const { config } = loadConfig({ root: ROOT, env: {}, overlay: overlay('publish:\n  topN: 50\n') });
    expect(config.publish.topN).toBe(50);
    expect(config.publish.keepVersions).toBe(5);
  });

  test('an unknown key names the key and the file that set it', () => {
    const file = overlay('publish:\n  topn: 50\n');
    const msg = errorOf(() => loadConfig({ root: ROOT, env: {}, overlay: file }));
    expect(msg).toContain(file);
    expect(msg).toContain('unknown key publish.topn');
  });

  test('a wrong type names the key and the file', () => {
    const file = overlay('evaluation:\n  k: ten\n');
    const msg = errorOf(() => loadConfig({ root: ROOT, env: {}, overlay: file }));
    expect(msg).toMatch(
      new RegExp(`${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: evaluation\\.k: .*number`),
    );
  });

  test('impossible values are refused with the key named', () => {
    expect(
      errorOf(() =>
        loadConfig({ root: ROOT, env: {}, overlay: overlay('quality:\n  maxQuarantineShare: 1.5\n') }),
      ),
    ).toContain('quality.maxQuarantineShare');
    expect(
      errorOf(() =>
        loadConfig({ root: ROOT, env: {}, overlay: overlay('schema:\n  rating:\n    min: 5\n    max: 1\n') }),
      ),
    ).toContain('schema.rating');
    expect(
      errorOf(() =>
        loadConfig({
          root: ROOT,
          env: {},
          overlay: overlay('temporal:\n  taskQueues:\n    cpu: same\n    training: same\n'),
        }),
      ),
    ).toContain('task queues must differ');
    expect(
      errorOf(() => loadConfig({ root: ROOT, env: {}, overlay: overlay('duckdb:\n  memoryLimit: lots\n') })),
    ).toContain('duckdb.memoryLimit');
  });

  test('environment overrides are validated and blamed on the environment', () => {
    const { config } = loadConfig({ root: ROOT, env: { TEMPORAL_ADDRESS: 'temporal:7233' } });
    expect(config.temporal.address).toBe('temporal:7233');
    expect(
      errorOf(() => loadConfig({ root: ROOT, env: { TEMPORAL_NAMESPACE: 'bad namespace!' } })),
    ).toContain('environment: temporal.namespace');
  });

  test('unreadable and malformed files give clear errors', () => {
    expect(
      errorOf(() => loadConfig({ root: ROOT, env: {}, overlay: '/nonexistent/recforge.yaml' })),
    ).toContain('/nonexistent/recforge.yaml: cannot read config file (ENOENT)');
    const bad = overlay('publish: [unclosed\n');
    expect(errorOf(() => loadConfig({ root: ROOT, env: {}, overlay: bad }))).toContain(
      `${bad}: not valid YAML`,
    );
    const list = overlay('- a\n- b\n');
    expect(errorOf(() => loadConfig({ root: ROOT, env: {}, overlay: list }))).toContain(
      'top level must be a mapping',
    );
    const json = overlay('{"publish": {"topN": 0}}', 'json');
    expect(errorOf(() => loadConfig({ root: ROOT, env: {}, overlay: json }))).toContain('publish.topN');
  });
});
