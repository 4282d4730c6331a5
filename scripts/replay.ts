import * as fs from 'node:fs';
import * as path from 'node:path';
import { Worker, DefaultLogger, Runtime } from '@temporalio/worker';

/**
 * `node dist/scripts/replay.js <history.json>...`: replays recorded workflow histories (the JSON of
 * `temporal workflow show -o json`) against the current workflow code. Exit 1 on any non-determinism, so a
 * workflow change that would break running executions is caught before deploy.
 */
async function main(files: string[]): Promise<number> {
  if (files.length === 0) {
    console.error('usage: replay <history.json>...');
    return 2;
  }
  Runtime.install({ logger: new DefaultLogger('ERROR'), shutdownSignals: [] });
  let failed = 0;
  const histories = files.map((f) => ({
    workflowId: path.basename(f, '.json'),
    history: JSON.parse(fs.readFileSync(f, 'utf8')),
  }));
  for await (const result of Worker.runReplayHistories(
    { workflowsPath: require.resolve('../workflows') },
    histories,
  )) {
    if (result.error) {
      failed++;
      console.error(`[replay] FAIL ${result.workflowId}: ${result.error.message}`);
    } else {
      console.log(`[replay] ok   ${result.workflowId}`);
    }
  }
  return failed ? 1 : 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    console.error(`[replay] ${(err as Error).message}`);
    process.exit(1);
  },
);
