#!/usr/bin/env node
/**
 * The `gatehouse` command: `gatehouse <noun> <verb> [options]` (registry.ts lists them; help.ts answers `help` and
 * `--help` at every level). Exit codes: 0 done; 2 a user mistake (bad arguments, bad config, a request the admin
 * API refused), printed as what and where without a stack trace; 1 a failure (the control plane failed: one line;
 * a bug: a stack trace).
 *
 * A command's code is loaded only when that command runs (a dynamic import per command): `gatehouse --version`
 * loads nothing else, and `gatehouse gateway run` never loads the control plane. Compiled modules are kept in
 * Node's compile cache (`module.enableCompileCache`), so that the second start of a command compiles nothing.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { enableCompileCache } from 'node:module';
import { UsageError } from './command.ts';

/** Before any of our modules loads; a cache directory that cannot be written only costs the speed-up. */
enableCompileCache();

/**
 * Node switches its AsyncContextFrame (read by process.nextTick, timers and the tick queue) from the inactive to
 * the active implementation the first time AsyncLocalStorage is read, by changing the class's prototype. Done
 * here, before anything runs; left to whatever library first reads it during the first request, the optimised
 * nextTick and processTicksAndRejections call the generic LoadIC for it: +7.7k instructions per proxied request
 * (bench/instructions.ts: 159.8k before the lazy command loading, 167.5k after, 161.5k with this line).
 */
void AsyncLocalStorage;

async function main(argv: string[]): Promise<number> {
  if (argv[0] === '--version') {
    const pkg = await import('../../package.json', { with: { type: 'json' } });
    console.log(pkg.default.version);
    return 0;
  }
  const isHelp = (arg: string) => arg === '--help' || arg === '-h';
  const helpAsked = (args: readonly string[]) => {
    const end = args.indexOf('--');
    return (end === -1 ? args : args.slice(0, end)).some(isHelp);
  };
  // A hand-written command runs without loading the table of the others (`gateway run` loads no admin commands).
  const { LOCAL_COMMANDS, allCommands } = await import('./registry.ts');
  const local =
    LOCAL_COMMANDS.find((c) => c.name === argv.slice(0, 2).join(' ')) ??
    LOCAL_COMMANDS.find((c) => c.name === argv[0] && (argv[1] === undefined || argv[1].startsWith('-')));
  if (local && !helpAsked(argv)) return (await local.load()).run(argv.slice(local.name.split(' ').length));

  // The command table: the hand-written commands and one per admin API operation (no command's code yet).
  const help = await import('./help.ts');
  const entries = await allCommands();
  const find = (words: readonly string[]) =>
    entries.find((e) => e.name === words.slice(0, 2).join(' ')) ?? entries.find((e) => e.name === words[0]);

  if (argv.length === 0 || isHelp(argv[0]!) || argv[0] === 'help') {
    const words = argv[0] === 'help' ? argv.slice(1) : [];
    if (words.length === 0) {
      console.log(help.topHelp(entries));
      return 0;
    }
    const entry = find(words);
    if (entry && entry.name.split(' ').length >= Math.min(words.length, 2)) {
      console.log(await help.commandHelp(entry));
      return 0;
    }
    if (words.length === 1 && help.nouns(entries).includes(words[0]!)) {
      console.log(help.nounHelp(words[0]!, entries));
      return 0;
    }
    throw new UsageError(help.unknownCommand(words, entries));
  }

  const entry = find(argv);
  const rest = entry ? argv.slice(entry.name.split(' ').length) : [];
  if (!entry || (entry.name.split(' ').length === 1 && rest[0] !== undefined && !rest[0].startsWith('-'))) {
    const noun = argv[0]!;
    const nounOnly = help.nouns(entries).includes(noun) && (argv[1] === undefined || argv[1].startsWith('-'));
    if (nounOnly && argv.slice(1).some(isHelp)) {
      console.log(help.nounHelp(noun, entries));
      return 0;
    }
    if (!entry) {
      if (nounOnly) throw new UsageError(`${noun}: which command?\n\n${help.nounHelp(noun, entries)}`);
      throw new UsageError(help.unknownCommand(argv.slice(0, argv[1]?.startsWith('-') ? 1 : 2), entries));
    }
  }
  if (helpAsked(rest)) {
    console.log(await help.commandHelp(entry));
    return 0;
  }
  if (entry.kind === 'admin') {
    const { runAdminCommand } = await import('./admin/run.ts');
    return runAdminCommand(entry.command, rest);
  }
  return (await entry.load()).run(rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code !== 0) process.exitCode = code;
  },
  async (error: unknown) => {
    // Loaded here: only commands that read configuration load the config module.
    const { ConfigError } = await import('../config/load.ts');
    const { errorPrefix } = await import('./output.ts');
    if (error instanceof UsageError || error instanceof ConfigError) {
      console.error(`${errorPrefix()} ${error.message}`);
      process.exitCode = 2;
    } else if ((error as Error).name === 'ControlPlaneError') {
      // The control plane failed (5xx, no answer in time): one line with the request id, no stack trace.
      console.error(`${errorPrefix()} ${(error as Error).message}`);
      process.exitCode = 1;
    } else {
      console.error(error);
      process.exitCode = 1;
    }
  },
);
