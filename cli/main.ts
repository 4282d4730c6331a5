import * as fs from 'node:fs';
import * as path from 'node:path';
import { Command, CommanderError, Option } from 'commander';
import { UsageError } from './context';
import { registerRun } from './commands/run';
import { registerStatus } from './commands/status';
import { registerRuns } from './commands/runs';
import { registerReport } from './commands/report';
import { registerAliases } from './commands/aliases';
import { registerSchedule } from './commands/schedule';
import { registerDev } from './commands/dev';
import { registerWorker } from './commands/worker';
import { registerDatasets, registerGenData } from './commands/data';

/**
 * `recforge`: one command line for running, watching and operating the platform. Exit codes: 0 ok, 1 failure,
 * 2 usage (unknown flag or command, bad value: the usage is printed), 3 a run whose challenger the gates rejected.
 * Heavy modules (Temporal worker, DuckDB, TensorFlow.js) load only inside the command that needs them, so
 * `recforge --help` answers at once.
 */

/** The package's version, from the package.json above this module (dist/cli or cli under jest). */
function packageVersion(): string {
  for (let dir = __dirname; dir !== path.dirname(dir); dir = path.dirname(dir)) {
    const file = path.join(dir, 'package.json');
    if (fs.existsSync(file))
      return (JSON.parse(fs.readFileSync(file, 'utf8')) as { version: string }).version;
  }
  return 'unknown';
}

const collect = (value: string, previous: string[] = []) => [...previous, value];

export function buildProgram(): Command {
  const program = new Command('recforge')
    .description(
      'batch recommendations orchestrated by Temporal: run, watch and operate the retrain pipeline',
    )
    .version(packageVersion(), '-V, --version')
    .addOption(
      new Option(
        '-c, --config <file>',
        'config overlay over configs/default.yaml; repeat to stack (after RECFORGE_CONFIG)',
      ).argParser(collect),
    )
    .option('--json', 'machine-readable output on stdout')
    .option(
      '--address <host:port>',
      'Temporal frontend (default: TEMPORAL_ADDRESS, else the embedded dev server)',
    )
    .option('--namespace <ns>', 'Temporal namespace (default: temporal.namespace)')
    .showHelpAfterError()
    .showSuggestionAfterError()
    .exitOverride();
  registerRun(program);
  registerStatus(program);
  registerRuns(program);
  registerReport(program);
  registerAliases(program);
  registerSchedule(program);
  registerDev(program);
  registerWorker(program);
  registerDatasets(program);
  registerGenData(program);
  // Subcommands are created before parsing; give each the root's error handling (exit codes, usage on error).
  const configure = (cmd: Command) => {
    cmd.exitOverride().showHelpAfterError().showSuggestionAfterError();
    cmd.commands.forEach(configure);
  };
  program.commands.forEach(configure);
  return program;
}

/** Runs the CLI and returns the exit code (the bin shim exits with it). */
export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv, { from: 'user' });
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version are "errors" to commander; everything else it raises is a usage problem.
      if (
        err.code === 'commander.helpDisplayed' ||
        err.code === 'commander.version' ||
        err.code === 'commander.help'
      )
        return 0;
      if (err.code === 'commander.executeSubCommandAsync') return err.exitCode;
      return 2;
    }
    // Matched by name: importing lib/config or datasets/synthetic here would load them for every command, --help included.
    const e = err as Error;
    if (err instanceof UsageError || e.name === 'DatagenOptionsError') {
      process.stderr.write(`recforge: ${e.message}\n(run with --help for usage)\n`);
      return 2;
    }
    process.stderr.write(`recforge: ${e.message ?? String(err)}\n`);
    // A config error's message is complete (file and key); anything else may need its stack to be understood.
    if (process.env.RECFORGE_DEBUG && e.name !== 'ConfigError') process.stderr.write(`${e.stack}\n`);
    return 1;
  }
}
