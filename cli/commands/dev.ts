import type { Command } from 'commander';
import { describeListener, ensureServer, loadContext, portOpen, type GlobalOptions } from '../context';

interface DevOptions {
  port?: string;
  uiPort?: string;
  attach?: boolean;
  metrics?: string;
  logLevel?: string;
}

const port = (flag: string, v: string | undefined): number | undefined => {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0 || n > 65535)
    throw new Error(`--${flag} expects a port number, got '${v}'`);
  return n;
};

export function registerDev(program: Command): void {
  program
    .command('dev')
    .description(
      'the embedded Temporal dev server (SQLite, Web UI) plus a worker for both queues, until Ctrl-C',
    )
    .option('--port <port>', 'Temporal frontend port (default: temporal.devServer.port)')
    .option('--ui-port <port>', 'Web UI port (default: temporal.devServer.uiPort)')
    .option('--attach', 'if a Temporal server already listens on the port, serve it instead of refusing')
    .option('--metrics <host:port>', 'serve Prometheus metrics at http://<host:port>/metrics')
    .option('--log-level <level>', 'trace, debug, info, warn, error (default: RECFORGE_LOG_LEVEL or info)')
    .action(async (o: DevOptions, cmd: Command) => {
      const ctx = await loadContext(cmd.optsWithGlobals<GlobalOptions>());
      const { installObservability } = await import('../../lib/observability/runtime');
      const { createWorkers } = await import('../../worker/workers');
      const say = (s: string) => process.stdout.write(`[dev] ${s}\n`);
      const p = port('port', o.port) ?? ctx.config.temporal.devServer.port;
      const uiPort = port('ui-port', o.uiPort);
      if (!ctx.config.temporal.address && (await portOpen(p))) {
        const what = await describeListener(`127.0.0.1:${p}`);
        if (!o.attach) {
          process.stderr.write(
            `[dev] port ${p} is taken by ${what}. Stop it, pick another port (--port), or serve it with --attach.\n`,
          );
          process.exitCode = 1;
          return;
        }
        say(`attaching to ${what} on 127.0.0.1:${p} (--attach)`);
      }
      installObservability({
        logLevel: o.logLevel,
        fallbackLevel: 'INFO',
        metricsAddress: o.metrics,
        shutdownSignals: ['SIGINT', 'SIGTERM'],
        base: { role: 'dev' },
      });
      const server = await ensureServer(ctx, say, { port: p, uiPort });
      const workers = await createWorkers({
        root: ctx.root,
        config: ctx.config,
        address: server.address,
        roles: ['cpu', 'training'],
      });
      say(`Temporal ${server.address} — Web UI ${server.uiUrl}`);
      say(
        `worker serving ${ctx.config.temporal.taskQueues.cpu} + ${ctx.config.temporal.taskQueues.training}; start a run with \`recforge run --no-worker --follow\` or from the UI`,
      );
      if (o.metrics) say(`metrics on http://${o.metrics}/metrics`);
      say('Ctrl-C to stop');
      await workers.run();
      await workers.close();
      await server.stop();
      say('stopped');
    });
}
