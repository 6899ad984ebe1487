import { parseArgs, type ParseArgsConfig } from 'node:util';
import { redactUrl } from '../config/redact-url.ts';

/** A command's module exports one of these; its one-line summary is in main.ts's table, read without loading it. */
export interface Command {
  usage: string;
  /** Resolves with the exit code; long-running commands resolve when they stop. */
  run(args: string[]): Promise<number>;
}

/** A mistake in how the command was called: printed without a stack trace, exit code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** node:util parseArgs, with its errors turned into UsageErrors that name the command. */
export function parse<T extends NonNullable<ParseArgsConfig['options']>>(
  command: string,
  args: string[],
  options: T,
  allowPositionals = false,
) {
  try {
    return parseArgs({ args, options, allowPositionals, strict: true });
  } catch (error) {
    throw new UsageError(`${command}: ${(error as Error).message}`);
  }
}

/** A URL as messages show it: its password masked (and no "/" added where the user wrote none). */
export function shownUrl(url: string): string {
  const redacted = redactUrl(url);
  return url.endsWith('/') ? redacted : redacted.replace(/\/$/, '');
}

/** A `--<name>` port: decimal digits only (Number() would take "", " 80", "0x50" and "1e3"); 0 picks a free port. */
export function portOption(command: string, name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const port = /^\d{1,5}$/.test(value) ? Number(value) : NaN;
  if (!(port >= 0 && port <= 65535))
    throw new UsageError(`${command}: --${name} must be a whole number from 0 to 65535, got "${value}"`);
  return port;
}
