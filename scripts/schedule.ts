import * as dotenv from 'dotenv';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import { loadConfig, findProjectRoot } from '../lib/config';
import { applySchedule } from '../lib/temporal/schedule';
import { ensureSearchAttributes } from '../lib/temporal/dev-server';

const USAGE = `usage: npm run schedule -- <apply|describe|trigger|pause|unpause|delete> [--config <file>]
  apply     create or update the nightly schedule from config (idempotent)
  describe  print the schedule's spec, policies and recent/next runs
  trigger   start one run now (same action as the nightly one)
  pause / unpause / delete`;

async function main(): Promise<number> {
  dotenv.config({ quiet: true });
  const { values, positionals } = parseArgs({
    options: { config: { type: 'string' } },
    allowPositionals: true,
  });
  const command = positionals[0];
  if (!command || !['apply', 'describe', 'trigger', 'pause', 'unpause', 'delete'].includes(command)) {
    console.error(USAGE);
    return 2;
  }
  const root = findProjectRoot();
  const { config } = loadConfig({ root, overlay: values.config ? path.resolve(values.config) : undefined });
  const address = config.temporal.address || `127.0.0.1:${config.temporal.devServer.port}`;
  let connection: Connection;
  try {
    connection = await Connection.connect({ address, connectTimeout: 5000 });
  } catch (err) {
    console.error(
      `[schedule] cannot reach Temporal at ${address} (${(err as Error).message}); start it with \`npm run dev\` or set TEMPORAL_ADDRESS`,
    );
    return 1;
  }
  const client = new Client({ connection, namespace: config.temporal.namespace });
  const id = config.schedule.id;
  try {
    switch (command) {
      case 'apply': {
        await ensureSearchAttributes(address, config.temporal.namespace);
        const r = await applySchedule(client, config);
        console.log(
          `[schedule] ${r} '${id}': cron "${config.schedule.cron}" ${config.schedule.timezone}, overlap ${config.schedule.overlap}, catch-up ${config.schedule.catchupWindow}`,
        );
        break;
      }
      case 'describe': {
        const d = await client.schedule.getHandle(id).describe();
        console.log(
          JSON.stringify(
            {
              id,
              spec: d.spec,
              policies: d.policies,
              state: d.state,
              nextActionTimes: d.info.nextActionTimes,
              recentActions: d.info.recentActions,
            },
            null,
            2,
          ),
        );
        break;
      }
      case 'trigger':
        await client.schedule.getHandle(id).trigger();
        console.log(`[schedule] triggered '${id}'; watch it in the Temporal UI`);
        break;
      case 'pause':
        await client.schedule.getHandle(id).pause('paused with npm run schedule');
        console.log(`[schedule] paused '${id}'`);
        break;
      case 'unpause':
        await client.schedule.getHandle(id).unpause();
        console.log(`[schedule] unpaused '${id}'`);
        break;
      case 'delete':
        await client.schedule.getHandle(id).delete();
        console.log(`[schedule] deleted '${id}'`);
        break;
    }
    return 0;
  } finally {
    await connection.close();
  }
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(`[schedule] ${(err as Error).message}`);
    process.exit(1);
  },
);
