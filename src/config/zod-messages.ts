/**
 * The messages of zod's own checks, written for Gatehouse's users: what is wrong and what to do, in words (the
 * field path, printed before them, says where). Installed once for the process with `z.config` by schema.ts, which
 * every schema imports; a message a schema gives itself (`.regex(…, 'must be …')`) still wins. Without this, users
 * read zod's internals: "Invalid input: expected string, received undefined".
 */
import { z } from 'zod';

type Issue = Parameters<z.core.$ZodErrorMap>[0];

const TYPE_NAMES: Readonly<Record<string, string>> = {
  string: 'a string',
  number: 'a number',
  int: 'a whole number',
  bigint: 'a whole number',
  boolean: 'true or false',
  object: 'an object',
  array: 'a list',
  null: 'null',
  undefined: 'nothing',
  date: 'a date',
  nan: 'not a number',
  function: 'a function',
  symbol: 'a symbol',
  map: 'a map',
  set: 'a set',
  file: 'a file',
  record: 'an object',
  tuple: 'a list',
};

const FORMATS: Readonly<Record<string, string>> = {
  email: 'an email address, such as ops@example.com',
  url: 'a URL, such as https://api.example.com',
  datetime: 'an ISO 8601 date and time, such as 2026-01-31T12:00:00Z',
  date: 'an ISO 8601 date, such as 2026-01-31',
  time: 'an ISO 8601 time, such as 12:00:00',
  ipv4: 'an IPv4 address',
  ipv6: 'an IPv6 address',
  cidrv4: 'an IPv4 range, such as 10.0.0.0/8',
  cidrv6: 'an IPv6 range, such as 2001:db8::/32',
  uuid: 'a UUID',
  base64: 'base64 text',
  base64url: 'base64url text',
  jwt: 'a JWT',
};

function typeName(type: string): string {
  return TYPE_NAMES[type] ?? type;
}

/** The type of a value as a user would name it. */
function typeOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number' && Number.isNaN(value)) return 'nan';
  return typeof value;
}

/** A short rendering of a value given (a scalar only: objects and long strings are not echoed). */
function shown(value: unknown): string {
  if (typeof value === 'string') return value.length <= 60 ? JSON.stringify(value) : 'a longer string';
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return typeName(typeOf(value));
}

function plural(n: number | bigint, one: string, many: string): string {
  return `${n} ${Number(n) === 1 ? one : many}`;
}

/** The message for one issue of zod's own checks (undefined: keep zod's). */
export const zodMessage: z.core.$ZodErrorMap = (issue: Issue): string | undefined => {
  switch (issue.code) {
    case 'invalid_type': {
      const expected = typeName(issue.expected);
      if (issue.input === undefined) return `is required: add it (${expected})`;
      return `must be ${expected}, not ${typeName(typeOf(issue.input))}${typeof issue.input === 'object' ? '' : ` (got ${shown(issue.input)})`}`;
    }
    case 'invalid_value':
      if (issue.values.length === 1) return `must be ${JSON.stringify(issue.values[0])} (got ${shown(issue.input)})`;
      return `must be one of ${issue.values.map((v: unknown) => JSON.stringify(v)).join(', ')} (got ${shown(issue.input)})`;
    case 'too_small': {
      const n = issue.minimum;
      if (issue.origin === 'string')
        return Number(n) === 1 ? 'must not be empty' : `must be at least ${plural(n, 'character', 'characters')} long`;
      if (issue.origin === 'array' || issue.origin === 'set')
        return Number(n) === 1 ? 'must list at least one item' : `must list at least ${plural(n, 'item', 'items')}`;
      return issue.inclusive
        ? `must be at least ${n} (got ${shown(issue.input)})`
        : `must be more than ${n} (got ${shown(issue.input)})`;
    }
    case 'too_big': {
      const n = issue.maximum;
      if (issue.origin === 'string') return `must be at most ${plural(n, 'character', 'characters')} long`;
      if (issue.origin === 'array' || issue.origin === 'set') return `must list at most ${plural(n, 'item', 'items')}`;
      return issue.inclusive
        ? `must be at most ${n} (got ${shown(issue.input)})`
        : `must be less than ${n} (got ${shown(issue.input)})`;
    }
    case 'invalid_format': {
      if (issue.format === 'regex') return `is not in the expected format (got ${shown(issue.input)})`;
      if (issue.format === 'starts_with') return `must start with "${(issue as { prefix?: string }).prefix}"`;
      if (issue.format === 'ends_with') return `must end with "${(issue as { suffix?: string }).suffix}"`;
      return `must be ${FORMATS[issue.format] ?? `in ${issue.format} format`} (got ${shown(issue.input)})`;
    }
    case 'not_multiple_of':
      return `must be a multiple of ${issue.divisor}`;
    case 'unrecognized_keys':
      return issue.keys.length === 1
        ? `unknown field "${issue.keys[0]}": remove it, or check its spelling`
        : `unknown fields ${issue.keys.map((k: string) => `"${k}"`).join(', ')}: remove them, or check their spelling`;
    case 'invalid_union': {
      const options = (issue as { options?: unknown[] }).options;
      if (Array.isArray(options) && options.length > 0)
        return `must be one of ${options.map((o) => JSON.stringify(o)).join(', ')} in its discriminating field (such as "type")`;
      return 'matches none of the accepted forms: check it against the documentation';
    }
    case 'invalid_key':
      return `has an invalid key`;
    case 'invalid_element':
      return `has an invalid value`;
    default:
      return undefined;
  }
};

/** Installs the messages for the process (idempotent). */
export function installZodMessages(): void {
  z.config({ customError: zodMessage });
}
