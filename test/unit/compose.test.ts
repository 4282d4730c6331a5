import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { parse } from 'yaml';
import { NativeConnection } from '@temporalio/worker';
import { ROOT } from '../helpers/env';
import { METRIC } from '../../lib/observability/metrics';
import { loadConfig } from '../../lib/config';
import { createWorkers } from '../../worker/workers';
import { temporalSecurity } from '../../lib/temporal/security';

/**
 * docker-compose.yml cannot run here (no Docker engine): check what the stack promises, and run
 * `docker compose config` where the compose plugin exists.
 */
const text = fs.readFileSync(path.join(ROOT, 'docker-compose.yml'), 'utf8');
const compose = parse(text, { merge: true });
const services = compose.services as Record<
  string,
  Record<string, unknown> & { environment?: Record<string, string> }
>;

test('the stack has Temporal on PostgreSQL, the UI, an object store, CPU and GPU worker pools, Prometheus and Grafana', () => {
  expect(Object.keys(compose.services).sort()).toEqual([
    'cpu-worker',
    'create-bucket',
    'gpu-worker',
    'grafana',
    'postgresql',
    'prometheus',
    'seaweedfs',
    'temporal',
    'temporal-ui',
  ]);
  expect(compose.services.temporal.environment.DB).toBe('postgres12');
  expect(compose.services['cpu-worker'].environment.RECFORGE_WORKER_QUEUES).toBe('cpu');
  expect(compose.services['gpu-worker'].environment.RECFORGE_WORKER_QUEUES).toBe('training');
  const devices = compose.services['gpu-worker'].deploy.resources.reservations.devices;
  expect(devices[0]).toMatchObject({ driver: 'nvidia', capabilities: ['gpu'] });
});

describe('object storage (issue #17)', () => {
  const workers = ['cpu-worker', 'gpu-worker'];

  test('an S3-compatible server with a permissive licence: SeaweedFS (Apache-2.0), pinned, never MinIO (AGPL)', () => {
    expect(services.seaweedfs.image).toMatch(/^chrislusf\/seaweedfs:\d+\.\d+$/);
    // 4.17 made conditional PUTs atomic under concurrency (seaweedfs#8801); the commit protocol depends on it.
    const [major, minor] = String(services.seaweedfs.image).split(':')[1].split('.').map(Number);
    expect(major * 100 + minor).toBeGreaterThanOrEqual(417);
    expect(String(services.seaweedfs.command)).toMatch(/weed server .*-s3 /);
    expect(text.toLowerCase()).not.toContain('minio');
  });

  test('the bucket is created by a one-shot step the workers wait for', () => {
    const init = services['create-bucket'];
    expect(init.image).toBe(services.seaweedfs.image);
    expect(String(init.command)).toContain('s3.bucket.create -name=$$BUCKET');
    expect(init.depends_on).toEqual({ seaweedfs: { condition: 'service_healthy' } });
    for (const w of workers)
      expect((services[w].depends_on as Record<string, unknown>)['create-bucket']).toEqual({
        condition: 'service_completed_successfully',
      });
  });

  test('workers keep everything in the bucket, with credentials from the environment only', () => {
    for (const w of workers) {
      const env = services[w].environment!;
      expect(env.RECFORGE_STORAGE_ROOT).toBe(
        's3://${RECFORGE_S3_BUCKET:-recforge}/${RECFORGE_S3_PREFIX:-prod}',
      );
      expect(env.RECFORGE_STORAGE_ROOT.replace(/\$\{[A-Z0-9_]+:-([^}]*)\}/g, '$1')).toBe(
        's3://recforge/prod',
      );
      expect(env.AWS_ENDPOINT_URL_S3).toBe('${AWS_ENDPOINT_URL_S3:-http://seaweedfs:8333}');
      expect(env.AWS_ACCESS_KEY_ID).toMatch(/^\$\{RECFORGE_S3_ACCESS_KEY:\?.+\}$/);
      expect(env.AWS_SECRET_ACCESS_KEY).toMatch(/^\$\{RECFORGE_S3_SECRET_KEY:\?.+\}$/);
      // No shared volume: workers on different hosts share only Temporal and the bucket.
      expect(services[w].volumes).toBeUndefined();
    }
    // The server's identity comes from the same required variables, written at start (not baked in).
    const store = services.seaweedfs.environment!;
    expect(store.RECFORGE_S3_ACCESS_KEY).toMatch(/^\$\{RECFORGE_S3_ACCESS_KEY:\?.+\}$/);
    expect(store.RECFORGE_S3_SECRET_KEY).toMatch(/^\$\{RECFORGE_S3_SECRET_KEY:\?.+\}$/);
    expect(String(services.seaweedfs.command)).toContain(
      '"$$RECFORGE_S3_ACCESS_KEY" "$$RECFORGE_S3_SECRET_KEY"',
    );
  });

  test('both worker images carry the DuckDB httpfs extension workers load for s3:// storage', () => {
    const dockerfile = fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
    expect(dockerfile).toContain("ensureHttpfs('/app'");
    expect(
      dockerfile.match(/COPY --from=build \/app\/\.tools\/duckdb-extensions \.\/\.tools\/duckdb-extensions/g),
    ).toHaveLength(2);
  });
});

test('Dockerfile defines the build targets compose uses', () => {
  const dockerfile = fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
  for (const s of ['cpu-worker', 'gpu-worker']) {
    expect(dockerfile).toMatch(new RegExp(`^FROM .* AS ${s}$`, 'm'));
    expect(compose.services[s].build.target).toBe(s);
  }
});

describe('safe production defaults (issue #16, item 7)', () => {
  test('every published port is bound to localhost unless RECFORGE_BIND says otherwise', () => {
    const published = Object.entries(services).flatMap(([name, s]) =>
      ((s.ports as string[] | undefined) ?? []).map((p) => [name, String(p)]),
    );
    expect(published.map(([n]) => n).sort()).toEqual([
      'grafana',
      'prometheus',
      'seaweedfs',
      'temporal',
      'temporal-ui',
    ]);
    for (const [, p] of published) {
      // HOST_IP:HOST_PORT:CONTAINER_PORT; a bare "7233:7233" publishes on every interface.
      expect(p).toMatch(/^\$\{RECFORGE_BIND:-127\.0\.0\.1\}:\d+:\d+$/);
    }
  });

  test('no default secrets: the PostgreSQL password is required from the environment', () => {
    const pg = services.postgresql.environment!;
    const temporal = services.temporal.environment!;
    expect(pg.POSTGRES_PASSWORD).toMatch(/^\$\{POSTGRES_PASSWORD:\?.+\}$/);
    expect(temporal.POSTGRES_PWD).toMatch(/^\$\{POSTGRES_PASSWORD:\?.+\}$/);
    expect(services.grafana.environment!.GF_SECURITY_ADMIN_PASSWORD).toMatch(
      /^\$\{GRAFANA_ADMIN_PASSWORD:\?.+\}$/,
    );
    // No variable that looks like a secret falls back to a literal value anywhere in the file.
    expect(text).not.toMatch(/\$\{[A-Z_]*(PASSWORD|PWD|SECRET|TOKEN)[A-Z_]*:-[^}]+\}/);
  });

  test('workers take TLS and API-key options for a remote Temporal, documented in .env.example', () => {
    const example = fs.readFileSync(path.join(ROOT, '.env.example'), 'utf8');
    for (const w of ['cpu-worker', 'gpu-worker']) {
      const env = services[w].environment!;
      for (const v of ['TEMPORAL_TLS_CERT', 'TEMPORAL_TLS_KEY', 'TEMPORAL_TLS_CA', 'TEMPORAL_API_KEY']) {
        expect(env[v]).toBe(`\${${v}:-}`);
      }
    }
    for (const v of [
      'POSTGRES_PASSWORD',
      'GRAFANA_ADMIN_PASSWORD',
      'RECFORGE_S3_ACCESS_KEY',
      'RECFORGE_S3_SECRET_KEY',
      'RECFORGE_STORAGE_ROOT',
      'AWS_ENDPOINT_URL_S3',
      'RECFORGE_BIND',
      'TEMPORAL_TLS_CERT',
      'TEMPORAL_TLS_KEY',
      'TEMPORAL_API_KEY',
    ]) {
      expect(example).toMatch(new RegExp(`^# ${v}=`, 'm'));
    }
  });
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
describe('worker connection security', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'recforge-tls-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
  const pem = (name: string) => {
    const f = path.join(dir, name);
    fs.writeFileSync(f, `-----BEGIN ${name}-----\n`);
    return f;
  };

  test('nothing set: a plain connection; cert and key: mTLS; an API key alone: over TLS', () => {
    expect(temporalSecurity({})).toEqual({});
    const cert = pem('CERT');
    const key = pem('KEY');
    const mtls = temporalSecurity({ TEMPORAL_TLS_CERT: cert, TEMPORAL_TLS_KEY: key });
    expect(mtls.tls).toEqual({
      clientCertPair: { crt: fs.readFileSync(cert), key: fs.readFileSync(key) },
    });
    expect(temporalSecurity({ TEMPORAL_API_KEY: 'k' })).toEqual({ apiKey: 'k', tls: true });
    expect(() => temporalSecurity({ TEMPORAL_TLS_CERT: cert })).toThrow(/go together/);
    expect(() => temporalSecurity({ TEMPORAL_TLS_CERT: cert, TEMPORAL_TLS_KEY: '/nope' })).toThrow(
      /TEMPORAL_TLS_KEY=\/nope: cannot read/,
    );
  });

  test('createWorkers connects with them', async () => {
    const seen: unknown[] = [];
    const spy = jest.spyOn(NativeConnection, 'connect').mockImplementation(async (o) => {
      seen.push(o);
      throw new Error('stop here');
    });
    const saved = { ...process.env };
    Object.assign(process.env, {
      TEMPORAL_TLS_CERT: pem('C2'),
      TEMPORAL_TLS_KEY: pem('K2'),
      TEMPORAL_API_KEY: 'secret-key',
    });
    try {
      const { config } = loadConfig({ root: ROOT, env: {} });
      await expect(
        createWorkers({ root: ROOT, config, address: 'remote:7233', roles: ['cpu'] }),
      ).rejects.toThrow('stop here');
      expect(seen[0]).toMatchObject({
        address: 'remote:7233',
        apiKey: 'secret-key',
        tls: { clientCertPair: { crt: expect.any(Buffer), key: expect.any(Buffer) } },
      });
    } finally {
      spy.mockRestore();
      process.env = saved;
    }
  });
});

const hasCompose = spawnSync('docker', ['compose', 'version'], { encoding: 'utf8' }).status === 0;
(hasCompose ? test : test.skip)(
  'docker compose config accepts the file, and refuses it without a password',
  () => {
    const run = (env: NodeJS.ProcessEnv) =>
      spawnSync('docker', ['compose', '-f', path.join(ROOT, 'docker-compose.yml'), 'config', '-q'], {
        encoding: 'utf8',
        env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
      });
    const ok = run({
      POSTGRES_PASSWORD: 'from-the-environment',
      GRAFANA_ADMIN_PASSWORD: 'from-the-environment',
      RECFORGE_S3_ACCESS_KEY: 'key-from-the-environment',
      RECFORGE_S3_SECRET_KEY: 'secret-from-the-environment',
    });
    expect(ok.stderr).toBe('');
    expect(ok.status).toBe(0);
    const missing = run({});
    expect(missing.status).not.toBe(0);
    expect(missing.stderr).toMatch(/POSTGRES_PASSWORD/);
  },
);
