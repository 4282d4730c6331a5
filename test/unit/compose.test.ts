import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { parse } from 'yaml';
import { ROOT } from '../helpers/env';
import { METRIC } from '../../lib/observability/metrics';

/**
 * docker-compose.yml cannot run here (no Docker engine): check what the stack promises, and run
 * `docker compose config` where the compose plugin exists.
 */
const compose = parse(fs.readFileSync(path.join(ROOT, 'docker-compose.yml'), 'utf8'));

test('the stack has Temporal on PostgreSQL, the UI, CPU and GPU worker pools, Prometheus and Grafana', () => {
  expect(Object.keys(compose.services).sort()).toEqual([
    'cpu-worker',
    'gpu-worker',
    'grafana',
    'postgresql',
    'prometheus',
    'temporal',
    'temporal-ui',
  ]);
  expect(compose.services.temporal.environment.DB).toBe('postgres12');
  expect(compose.services['cpu-worker'].environment.RECFORGE_WORKER_QUEUES).toBe('cpu');
  expect(compose.services['gpu-worker'].environment.RECFORGE_WORKER_QUEUES).toBe('training');
  const devices = compose.services['gpu-worker'].deploy.resources.reservations.devices;
  expect(devices[0]).toMatchObject({ driver: 'nvidia', capabilities: ['gpu'] });
  // Workers share one data volume: artifacts pass between queues by path.
  expect(compose.services['cpu-worker'].volumes[0]).toBe(compose.services['gpu-worker'].volumes[0]);
});

test('Dockerfile defines the build targets compose uses', () => {
  const dockerfile = fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
  for (const s of ['cpu-worker', 'gpu-worker']) {
    expect(dockerfile).toMatch(new RegExp(`^FROM .* AS ${s}$`, 'm'));
    expect(compose.services[s].build.target).toBe(s);
  }
});

const hasCompose = spawnSync('docker', ['compose', 'version'], { encoding: 'utf8' }).status === 0;
(hasCompose ? test : test.skip)('docker compose config accepts the file', () => {
  const r = spawnSync('docker', ['compose', '-f', path.join(ROOT, 'docker-compose.yml'), 'config', '-q'], {
    encoding: 'utf8',
  });
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
});

test('every worker serves /metrics where Prometheus scrapes it, and Grafana gets the data source and dashboard', () => {
  const prom = parse(fs.readFileSync(path.join(ROOT, 'ops', 'prometheus', 'prometheus.yml'), 'utf8'));
  const sd = prom.scrape_configs[0].dns_sd_configs[0];
  for (const pool of ['cpu-worker', 'gpu-worker']) {
    const address = compose.services[pool].environment.RECFORGE_METRICS_ADDRESS as string;
    expect(sd.names).toContain(pool);
    expect(address.endsWith(`:${sd.port}`)).toBe(true);
    expect(compose.services[pool].expose).toContain(String(sd.port));
  }
  const mounts = (compose.services.prometheus.volumes as string[]).map((v) => v.split(':')[0]);
  expect(mounts).toContain('./ops/prometheus/prometheus.yml');
  for (const v of compose.services.grafana.volumes as string[])
    expect(fs.existsSync(path.join(ROOT, v.split(':')[0]))).toBe(true);
  const ds = parse(
    fs.readFileSync(
      path.join(ROOT, 'ops', 'grafana', 'provisioning', 'datasources', 'prometheus.yml'),
      'utf8',
    ),
  );
  expect(ds.datasources[0].url).toBe('http://prometheus:9090');
});

test('the Grafana dashboard queries only metrics that recforge or the Temporal SDK export', () => {
  const dashboard = JSON.parse(
    fs.readFileSync(path.join(ROOT, 'ops', 'grafana', 'dashboards', 'recforge.json'), 'utf8'),
  ) as { uid: string; panels: Array<{ title: string; targets: Array<{ expr: string }> }> };
  const ours = new Set<string>(Object.values(METRIC));
  const used = new Set<string>();
  for (const p of dashboard.panels) {
    expect(p.targets.length).toBeGreaterThan(0);
    for (const t of p.targets)
      for (const m of t.expr.match(/\b(recforge|temporal)_[a-z_]+/g) ?? []) used.add(m);
  }
  const recforgeUsed = [...used]
    .filter((m) => m.startsWith('recforge_'))
    .map((m) => m.replace(/_(bucket|sum|count)$/, ''));
  for (const m of recforgeUsed) expect(ours).toContain(m);
  // Every recforge metric has a panel.
  for (const m of ours) expect(recforgeUsed).toContain(m);
  expect([...used].some((m) => m.startsWith('temporal_'))).toBe(true);
});
