import type { Command } from 'commander';
import type { GlobalOptions } from '../context';

export function registerWorker(program: Command): void {
  program
    .command('worker')
    .description(
      'a long-running worker for an existing Temporal server (TEMPORAL_ADDRESS); graceful on SIGINT/SIGTERM',
    )
    .option('--queues <roles>', 'cpu, training or cpu,training (default: RECFORGE_WORKER_QUEUES or both)')
    .option(
      '--metrics <host:port>',
      'serve Prometheus metrics at http://<host:port>/metrics (default: RECFORGE_METRICS_ADDRESS)',
    )
    .option('--log-level <level>', 'trace, debug, info, warn, error (default: RECFORGE_LOG_LEVEL or info)')
    .action(async (o: { queues?: string; metrics?: string; logLevel?: string }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const { runWorkerProcess } = await import('../../worker/main');
      await runWorkerProcess({
        overlays: g.config,
        queues: o.queues,
        metricsAddress: o.metrics,
        logLevel: o.logLevel,
        address: g.address,
      });
    });
}
