import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { parse } from 'yaml';
import { ROOT } from '../helpers/env';

/**
 * docker-compose.yml cannot run here (no Docker engine): check what the stack promises, and run
 * `docker compose config` where the compose plugin exists.
 */
const compose = parse(fs.readFileSync(path.join(ROOT, 'docker-compose.yml'), 'utf8'));

test('the stack has Temporal on PostgreSQL, the UI, and CPU and GPU worker pools', () => {
  expect(Object.keys(compose.services).sort()).toEqual([
    'cpu-worker',
    'gpu-worker',
    'postgresql',
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
