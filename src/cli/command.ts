import { parseArgs, type ParseArgsConfig } from 'node:util';
import leven from 'leven';
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

/**
 * The nearest of `candidates` to a mistyped `input` (Levenshtein distance, from the `leven` package: node has no
 * public edit-distance function), or undefined when none is near enough to be what was meant: at most a third of
 * the input's length, and at least 1 edit, apart. A candidate that starts with the input also counts (`--proj`).
 */
export function suggest(input: string, candidates: readonly string[]): string | undefined {
  const limit = Math.max(1, Math.floor(input.length / 3));
  let best: { candidate: string; distance: number } | undefined;
  for (const candidate of candidates) {
    const distance =
      candidate.startsWith(input) && input.length >= 3 ? 1 : leven(input, candidate, { maxDistance: limit + 1 });
    if (distance <= limit && (!best || distance < best.distance)) best = { candidate, distance };
  }
  return best?.candidate;
}

/**
 * node:util parseArgs, with its errors turned into UsageErrors that name the command; an unknown option is
 * answered with the nearest known one (`did you mean --project?`). Booleans also take `--no-<name>`.
 */
export function parse<T extends NonNullable<ParseArgsConfig['options']>>(
  command: string,
  args: string[],
  options: T,
  allowPositionals = false,
) {
  try {
    return parseArgs({ args, options, allowPositionals, strict: true, allowNegative: true });
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    const unknown = /^Unknown option '(-{1,2}[^']+)'/.exec(e.message)?.[1];
    if (e.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' && unknown) {
      const names = Object.entries(options).flatMap(([name, o]) => [
        `--${name}`,
        ...(o.type === 'boolean' ? [`--no-${name}`] : []),
      ]);
      const near = suggest(unknown.split('=')[0]!, names);
      throw new UsageError(
        `${command}: Unknown option '${unknown}'${near ? `: did you mean ${near}?` : ''}\nRun 'gatehouse ${command} --help' for its options.`,
      );
    }
    throw new UsageError(`${command}: ${e.message}`);
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

/** Throws a UsageError naming the first of `names` that has no value (`client create: --env is required`). */
export function requireFlags(command: string, values: Record<string, unknown>, names: readonly string[]): void {
  for (const name of names) {
    const v = values[name];
    if (v === undefined || v === '' || (Array.isArray(v) && v.length === 0))
      throw new UsageError(`${command}: --${name} is required`);
  }
}
