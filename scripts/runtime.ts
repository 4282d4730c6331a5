import { Runtime, DefaultLogger } from '@temporalio/worker';
import type { RecforgeConfig } from '../lib/config';
import { dataPath } from '../lib/config';
import { startDevServer, ensureSearchAttributes, type DevServer } from '../lib/temporal/dev-server';

/** Quiet SDK logs for CLI tools: warnings and errors only. */
export function installQuietRuntime(): void {
  Runtime.install({ logger: new DefaultLogger('ERROR'), shutdownSignals: [] });
}

/** The configured server, or the embedded dev server when no address is configured. */
export async function ensureServer(
  root: string,
  config: RecforgeConfig,
  log: (s: string) => void,
): Promise<DevServer> {
  if (config.temporal.address) {
    await ensureSearchAttributes(config.temporal.address, config.temporal.namespace);
    return {
      address: config.temporal.address,
      uiUrl: '(your Temporal UI)',
      owned: false,
      stop: async () => undefined,
    };
  }
  return startDevServer({
    root,
    dbFile: dataPath(config, config.temporal.devServer.dbFile),
    port: config.temporal.devServer.port,
    uiPort: config.temporal.devServer.uiPort,
    namespace: config.temporal.namespace,
    log,
  });
}
