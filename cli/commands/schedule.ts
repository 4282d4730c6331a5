import type { Command } from 'commander';
import type { ScheduleOverlapPolicy } from '@temporalio/client';
import { connect, loadContext, UsageError, type CliContext, type GlobalOptions } from '../context';

/** `recforge schedule …`: the nightly retrain as a Temporal Schedule, from config (schedule.*). */
export function registerSchedule(program: Command): void {
  const schedule = program
    .command('schedule')
    .description('the nightly retrain schedule (Temporal Schedule from config: schedule.*)');
  const sub = (
    name: string,
    description: string,
    fn: (ctx: CliContext, id: string, o: Record<string, string>) => Promise<void>,
  ) =>
    schedule
      .command(name)
      .description(description)
      .action(async (o: Record<string, string>, cmd: Command) => {
        const ctx = await loadContext(cmd.optsWithGlobals<GlobalOptions>());
        await fn(ctx, ctx.config.schedule.id, o);
      });
  const say = (ctx: CliContext, text: string, json: unknown) =>
    process.stdout.write(ctx.json ? `${JSON.stringify(json)}\n` : `${text}\n`);

  sub('apply', 'create or update the schedule from config (idempotent)', async (ctx, id) => {
    const { applySchedule } = await import('../../lib/temporal/schedule');
    const { ensureSearchAttributes } = await import('../../lib/temporal/dev-server');
    await ensureSearchAttributes(ctx.address, ctx.config.temporal.namespace);
    await withClient(ctx, async (client) => {
      const r = await applySchedule(client, ctx.config, ctx.overlays.length ? { config: ctx.overlays } : {});
      const s = ctx.config.schedule;
      say(
        ctx,
        `${r} '${id}': cron "${s.cron}" ${s.timezone}, overlap ${s.overlap}, catch-up ${s.catchupWindow}`,
        { id, result: r },
      );
    });
  });
  sub('describe', "the schedule's spec, policies, state and recent/next runs", async (ctx, id) => {
    await withClient(ctx, async (client) => {
      const d = await client.schedule.getHandle(id).describe();
      const out = {
        id,
        spec: d.spec,
        policies: d.policies,
        state: d.state,
        nextActionTimes: d.info.nextActionTimes,
        recentActions: d.info.recentActions,
      };
      process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
    });
  });
  sub('trigger', 'start one run now (the same action as the nightly one)', async (ctx, id) => {
    await withClient(ctx, async (client) => {
      await client.schedule.getHandle(id).trigger();
      say(ctx, `triggered '${id}'; watch it with \`recforge runs\` or in the Temporal UI`, {
        id,
        triggered: true,
      });
    });
  });
  sub('pause', 'stop starting runs until unpaused', async (ctx, id) => {
    await withClient(ctx, async (client) => {
      await client.schedule.getHandle(id).pause('paused with recforge schedule pause');
      say(ctx, `paused '${id}'`, { id, paused: true });
    });
  });
  sub('unpause', 'resume starting runs', async (ctx, id) => {
    await withClient(ctx, async (client) => {
      await client.schedule.getHandle(id).unpause();
      say(ctx, `unpaused '${id}'`, { id, paused: false });
    });
  });
  sub('delete', 'delete the schedule (runs already started go on)', async (ctx, id) => {
    await withClient(ctx, async (client) => {
      await client.schedule.getHandle(id).delete();
      say(ctx, `deleted '${id}'`, { id, deleted: true });
    });
  });
  schedule
    .command('backfill')
    .description('run the actions the schedule would have taken between two times (e.g. after an outage)')
    .requiredOption('--from <time>', 'start, ISO date or time (UTC when no offset), inclusive')
    .requiredOption('--to <time>', 'end, ISO date or time, exclusive')
    .option(
      '--overlap <policy>',
      'overlap policy for the backfilled runs (SKIP, BUFFER_ONE, BUFFER_ALL, ALLOW_ALL, …)',
      'BUFFER_ALL',
    )
    .action(async (o: { from: string; to: string; overlap: string }, cmd: Command) => {
      const ctx = await loadContext(cmd.optsWithGlobals<GlobalOptions>());
      const { start, end, overlap } = parseBackfill(o);
      await withClient(ctx, async (client) => {
        await client.schedule.getHandle(ctx.config.schedule.id).backfill({ start, end, overlap });
        say(
          ctx,
          `backfilling '${ctx.config.schedule.id}' from ${start.toISOString()} to ${end.toISOString()} (overlap ${o.overlap})`,
          {
            id: ctx.config.schedule.id,
            start,
            end,
          },
        );
      });
    });
}

const OVERLAP_POLICIES = ['SKIP', 'BUFFER_ONE', 'BUFFER_ALL', 'CANCEL_OTHER', 'TERMINATE_OTHER', 'ALLOW_ALL'];

/** Validates --from/--to/--overlap (pure; exported for tests). */
export function parseBackfill(o: { from: string; to: string; overlap: string }): {
  start: Date;
  end: Date;
  overlap: ScheduleOverlapPolicy;
} {
  const parse = (flag: string, v: string) => {
    const t = Date.parse(/^\d{4}-\d{2}-\d{2}$/.test(v) ? `${v}T00:00:00Z` : v);
    if (!Number.isFinite(t)) throw new UsageError(`--${flag}: '${v}' is not an ISO date or time`);
    return new Date(t);
  };
  const start = parse('from', o.from);
  const end = parse('to', o.to);
  if (end <= start) throw new UsageError(`--to (${o.to}) must be after --from (${o.from})`);
  const overlap = o.overlap.toUpperCase();
  if (!OVERLAP_POLICIES.includes(overlap)) throw new UsageError(`--overlap: unknown policy '${o.overlap}'`);
  return { start, end, overlap: overlap as ScheduleOverlapPolicy };
}

async function withClient(
  ctx: CliContext,
  fn: (client: Awaited<ReturnType<typeof connect>>['client']) => Promise<void>,
) {
  const { client, close } = await connect(ctx);
  try {
    await fn(client);
  } finally {
    await close();
  }
}
