/** Shared by the admin commands: list-valued flags, local validation against the resource schemas, and output. */
import type { z } from 'zod';
import { UsageError } from './command.ts';

/** A repeatable flag whose values may also be comma lists: `--env DEV,PROD --env TEST` → DEV, PROD, TEST. */
export function listValues(values: readonly string[] | undefined): string[] | undefined {
  if (values === undefined) return undefined;
  return values
    .flatMap((v) => v.split(','))
    .map((v) => v.trim())
    .filter((v) => v !== '');
}

/** Throws `<command>: --<flag> is required` for the first flag without a value. */
export function requireFlags(command: string, values: Record<string, unknown>, names: readonly string[]): void {
  for (const name of names) {
    const v = values[name];
    if (v === undefined || v === '' || (Array.isArray(v) && v.length === 0))
      throw new UsageError(`${command}: --${name} is required`);
  }
}

/**
 * Validates a request body built from flags with the resource schema, so that a mistake names the flag
 * (`client create: --env: must be an upper-case environment name …`) instead of a body field after a round trip.
 * `flags` maps body fields to flag names. Returns the input unchanged: the server parses it again.
 */
export function checkBody<T>(command: string, schema: z.ZodType, body: T, flags: Record<string, string>): T {
  const result = schema.safeParse(body);
  if (result.success) return body;
  const lines = result.error.issues.map((issue) => {
    const [field, index] = issue.path;
    const flag = typeof field === 'string' ? `--${flags[field] ?? field}` : '(arguments)';
    const value = typeof index === 'number' ? (body as Record<string, unknown[]>)[field as string]?.[index] : undefined;
    return `${flag}: ${issue.message}${typeof value === 'string' ? ` (got "${value}")` : ''}`;
  });
  throw new UsageError(`${command}: ${lines.join(`\n${command}: `)}`);
}

/** Prints a value for scripts (`--json`). */
export function printJson(value: unknown): void {
  console.log(JSON.stringify(value, null, 2));
}

/** A plain text table: upper-case headers, columns padded to their widest cell. */
export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(headers.map((h) => h.toUpperCase())), ...rows.map(line)].join('\n');
}

/** The lines shown when a token is issued: the only time it is ever shown. */
export function tokenLines(token: string): string[] {
  return ['', 'Token (store it now, it is not shown again):', '', `  ${token}`, ''];
}
