/**
 * The admin API as the `gatehouse <noun> <verb>` commands see it: where the control plane is (`--url`,
 * `GATEHOUSE_URL`), who calls (`--token`, `GATEHOUSE_TOKEN`), which workspace (`--workspace`,
 * `GATEHOUSE_WORKSPACE`, else the caller's own from `GET /api/v1/me`), and one `request()` that turns
 * problem+json answers into errors a user can act on: a 4xx is the user's mistake (`AdminRequestError`, a
 * `UsageError`: exit 2), a 5xx the control plane's (`ControlPlaneError`: exit 1, with the request id to find it in
 * the control plane's log). A success answer without the expected shape means --url is not a Gatehouse control
 * plane (a `UsageError`, like no answer at all). Messages show the URL with its password masked.
 */
import type { ParseArgsConfig } from 'node:util';
import { type Command, parse, shownUrl, UsageError } from './command.ts';

export const DEFAULT_URL = 'http://127.0.0.1:8081';
const TIMEOUT_MS = 30_000;

/** The options every admin command accepts (`adminCommand` adds them to the command's own). */
export const CONNECTION_OPTIONS = {
  url: { type: 'string' },
  token: { type: 'string' },
  workspace: { type: 'string' },
  output: { type: 'string', short: 'o' },
  json: { type: 'boolean' },
} as const;

export const CONNECTION_USAGE = '[--url URL] [--token TOKEN] [--workspace NAME] [--output table|json]';

export const CONNECTION_HELP = `Connection: --url (default $GATEHOUSE_URL, else ${DEFAULT_URL}), --token (default $GATEHOUSE_TOKEN;
prefer the variable: a --token shows up in shell history and ps), --workspace (default $GATEHOUSE_WORKSPACE, else
the token's own workspace). --output json (or --json) prints the admin API's answer for scripts.`;

/** Whether `--output json` (or `--json`) was asked for; `--output` takes table or json. */
export function jsonOutput(
  command: string,
  values: { output?: string | undefined; json?: boolean | undefined },
): boolean {
  if (values.output !== undefined && values.output !== 'json' && values.output !== 'table')
    throw new UsageError(`${command}: --output must be table or json, got "${values.output}"`);
  return values.json === true || values.output === 'json';
}

/** One entry of a problem+json answer's `errors[]`. */
export interface FieldProblem {
  path: string;
  message: string;
}

/** The admin API refused the request (4xx): printed as its detail and field problems, exit code 2. */
export class AdminRequestError extends UsageError {
  readonly status: number;
  readonly code: string;
  readonly errors: readonly FieldProblem[];
  constructor(status: number, code: string, detail: string, errors: readonly FieldProblem[] = []) {
    const single = errors.length === 1 && detail === `${errors[0]!.path}: ${errors[0]!.message}`;
    super([detail, ...(single ? [] : errors.map((e) => `  ${e.path}: ${e.message}`))].join('\n'));
    this.status = status;
    this.code = code;
    this.errors = errors;
  }
}

/** The control plane failed (5xx, or no answer in time): not the user's mistake; exit code 1. */
export class ControlPlaneError extends Error {
  override readonly name = 'ControlPlaneError';
}

interface Problem {
  code?: string;
  detail?: string;
  errors?: FieldProblem[];
}

/**
 * What a success answer must hold, as dotted paths and their kind: enough to tell a Gatehouse control plane's
 * answer from another server's before a command reads it.
 */
export type Expected = Readonly<Record<string, 'string' | 'number' | 'boolean' | 'object' | 'array'>>;

/** The answer of a list operation: `{ items: [...] }`. */
export const LIST: Expected = { items: 'array' };

/** Why `value` lacks the `expected` shape (`no string workspace.name`), or undefined when it has it. */
function shapeProblem(value: unknown, expected: Expected = {}): string | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'not a JSON object';
  for (const [path, kind] of Object.entries(expected)) {
    const found = path
      .split('.')
      .reduce<unknown>(
        (v, key) => (typeof v === 'object' && v !== null ? (v as Record<string, unknown>)[key] : undefined),
        value,
      );
    const ok =
      kind === 'array'
        ? Array.isArray(found)
        : kind === 'object'
          ? typeof found === 'object' && found !== null && !Array.isArray(found)
          : typeof found === kind;
    if (!ok) return `no ${kind === 'array' ? 'list' : kind} ${path}`;
  }
  return undefined;
}

function isProblem(value: unknown): value is Problem {
  return typeof value === 'object' && value !== null && typeof (value as Problem).detail === 'string';
}

/** Reads a value from the environment; an empty variable counts as unset. */
function fromEnv(name: string): string | undefined {
  const value = process.env[name];
  return value === undefined || value === '' ? undefined : value;
}

export interface ConnectionValues {
  url?: string | undefined;
  token?: string | undefined;
  workspace?: string | undefined;
}

export class AdminClient {
  /** The control plane's admin API base, without a trailing slash. */
  readonly url: string;
  /** `url` as messages show it: its password masked. */
  readonly shownUrl: string;
  readonly #token: string;
  #workspace: string | undefined;

  constructor(url: string, token: string, workspace?: string) {
    this.url = url.replace(/\/+$/, '');
    this.shownUrl = shownUrl(this.url);
    this.#token = token;
    this.#workspace = workspace;
  }

  /**
   * Sends one request; resolves with the parsed JSON answer (undefined for 204 or an empty answer when nothing is
   * `expected`). A success answer that is not a JSON object with the `expected` fields is refused.
   */
  async request<T>(method: string, path: string, body?: unknown, expected?: Expected): Promise<T> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.#token}`, accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    let res: Response;
    try {
      res = await fetch(`${this.url}${path}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(TIMEOUT_MS),
      });
    } catch (error) {
      if ((error as Error).name === 'TimeoutError')
        throw new ControlPlaneError(
          `the control plane at ${this.shownUrl} did not answer ${method} ${path} within ${TIMEOUT_MS / 1000} s`,
        );
      // ECONNREFUSED, ENOTFOUND, …; or the Fetch standard's reason, e.g. "bad port" for ports fetch never uses.
      const cause = (error as Error).cause as NodeJS.ErrnoException | undefined;
      const reason = cause?.code ?? cause?.message;
      throw new UsageError(
        `cannot reach the control plane at ${this.shownUrl}: is \`gatehouse control start\` running?${reason ? ` (${reason})` : ''}`,
      );
    }
    const text = await res.text();
    let json: unknown;
    try {
      json = text === '' ? undefined : JSON.parse(text);
    } catch {
      json = undefined;
    }
    if (res.ok) {
      if (text === '' && expected === undefined) return undefined as T;
      const problem = text === '' ? 'an empty answer' : json === undefined ? 'not JSON' : shapeProblem(json, expected);
      if (problem)
        throw new UsageError(
          `${this.shownUrl}: the answer to ${method} ${path} is not a Gatehouse control plane's (${problem}): is --url the admin API of a Gatehouse control plane?`,
        );
      return json as T;
    }
    const requestId = res.headers.get('x-request-id') ?? 'unknown';
    if (res.status >= 500) {
      const detail = isProblem(json) ? json.detail : `${res.status} ${res.statusText}`;
      throw new ControlPlaneError(`the control plane failed on ${method} ${path}: ${detail} (request id ${requestId})`);
    }
    if (!isProblem(json))
      throw new UsageError(
        `${this.shownUrl} answered ${res.status} ${res.statusText} to ${method} ${path}: is --url the admin API of a Gatehouse control plane?`,
      );
    throw new AdminRequestError(res.status, json.code ?? String(res.status), json.detail!, json.errors ?? []);
  }

  /** The workspace to act on: as given, else the caller's own (from `GET /api/v1/me`). */
  async workspace(): Promise<string> {
    if (this.#workspace === undefined) {
      const me = await this.request<{ workspace: { name: string } }>('GET', '/api/v1/me', undefined, {
        'workspace.name': 'string',
      });
      this.#workspace = me.workspace.name;
    }
    return this.#workspace;
  }

  /** `/api/v1/workspaces/<workspace>` plus `rest`, each segment of `rest` given separately and encoded. */
  async workspacePath(...rest: string[]): Promise<string> {
    return ['/api/v1/workspaces', ...[await this.workspace(), ...rest].map(encodeURIComponent)].join('/');
  }
}

/** The admin client for a command's connection options and environment variables. */
export function connect(command: string, values: ConnectionValues): AdminClient {
  const url = values.url ?? fromEnv('GATEHOUSE_URL') ?? DEFAULT_URL;
  let parsed: URL;
  try {
    parsed = new URL(url);
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new Error('not http');
  } catch {
    throw new UsageError(
      `${command}: --url must be an http:// or https:// URL such as ${DEFAULT_URL}, got "${shownUrl(url)}"`,
    );
  }
  // fetch() refuses such a URL outright, which would read as "cannot reach the control plane".
  if (parsed.username !== '' || parsed.password !== '') {
    throw new UsageError(
      `${command}: --url must not hold a user name or password (the token authenticates), got "${shownUrl(url)}"`,
    );
  }
  const token = values.token ?? fromEnv('GATEHOUSE_TOKEN');
  if (token === undefined)
    throw new UsageError(`${command}: no API client token: set GATEHOUSE_TOKEN (or pass --token)`);
  return new AdminClient(url, token, values.workspace ?? fromEnv('GATEHOUSE_WORKSPACE'));
}

type Options = NonNullable<ParseArgsConfig['options']>;

/** An admin command's flags as parsed: its own options and the connection options. */
export type AdminValues<T extends Options> = ReturnType<typeof parse<typeof CONNECTION_OPTIONS & T>>['values'];

/** An admin command: its own options, taken beside the connection options, and its usage around theirs. */
export interface AdminCommand<T extends Options> {
  /** As typed after `gatehouse` (in its usage errors). */
  name: string;
  /** The command's own arguments, first in the usage line (the connection options follow). */
  args: string;
  /** The usage text after the usage line (the connection options' help follows). */
  help: string;
  options: T;
  run(values: AdminValues<T>): Promise<number>;
}

/**
 * The command for an admin command: its flags parsed with the connection options, and a control plane failure
 * printed as one line with exit 1, without a stack trace.
 */
export function adminCommand<T extends Options>(command: AdminCommand<T>): Command {
  return {
    usage: `${command.args} ${CONNECTION_USAGE}\n\n${command.help}\n\n${CONNECTION_HELP}`,
    async run(args) {
      try {
        return await command.run(parse(command.name, args, { ...CONNECTION_OPTIONS, ...command.options }).values);
      } catch (error) {
        if (!(error instanceof ControlPlaneError)) throw error;
        console.error(`gatehouse: ${error.message}`);
        return 1;
      }
    },
  };
}
