import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { ScheduleOverlapPolicy } from '@temporalio/client';
import { startTemporal, tempDir } from '../helpers/env';
import { loadConfig } from '../../lib/config';
import { applySchedule } from '../../lib/temporal/schedule';
import { ROOT } from '../helpers/env';

jest.setTimeout(120_000);

let env: TestWorkflowEnvironment;
beforeAll(async () => {
  env = await startTemporal();
});
afterAll(async () => {
  await env?.teardown();
});

test('apply creates the nightly schedule from config, then updates it idempotently', async () => {
  const dataDir = tempDir('schedule');
  const config = loadConfig({ root: ROOT, env: {}, overrides: { dataDir } }).config;
  expect(await applySchedule(env.client, config)).toBe('created');
  const d1 = await env.client.schedule.getHandle(config.schedule.id).describe();
  expect(d1.spec.calendars?.length ?? 0).toBeGreaterThan(0);
  expect(d1.spec.timezone).toBe('UTC');
  expect(d1.policies.overlap).toBe(ScheduleOverlapPolicy.SKIP);
  expect(d1.policies.catchupWindow).toBe(3_600_000);
  expect(d1.action.type).toBe('startWorkflow');
  if (d1.action.type === 'startWorkflow') {
    expect(d1.action.workflowType).toBe('retrainPipeline');
    expect(d1.action.taskQueue).toBe('recforge-cpu');
  }
  const next = d1.info.nextActionTimes[0];
  expect(next.getUTCHours()).toBe(2);
  expect(next.getUTCMinutes()).toBe(0);

  // Second apply with a changed cron/timezone updates in place; no duplicate schedule.
  const changed = loadConfig({
    root: ROOT,
    env: {},
    overrides: { dataDir, schedule: { cron: '30 3 * * *', timezone: 'Europe/Paris', overlap: 'BUFFER_ONE' } },
  }).config;
  expect(await applySchedule(env.client, changed)).toBe('updated');
  const d2 = await env.client.schedule.getHandle(config.schedule.id).describe();
  expect(d2.spec.timezone).toBe('Europe/Paris');
  expect(d2.policies.overlap).toBe(ScheduleOverlapPolicy.BUFFER_ONE);
  const ids: string[] = [];
  for await (const s of env.client.schedule.list()) ids.push(s.scheduleId);
  expect(ids.filter((i) => i === config.schedule.id)).toHaveLength(1);
  expect(await applySchedule(env.client, changed)).toBe('updated');
});
