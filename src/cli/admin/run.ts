/**
 * Running a generated admin command: arguments → path, query and body (flags over `-f FILE`), one admin API
 * request, then the answer as a table or lines for people, or as JSON (`--output json`, `--json`) for scripts.
 * A refusal that names a body field (`body.environments[1]: …`) is said in terms of what the user typed: the flag
 * and its value, or the file and the field.
 */
import { AdminRequestError, connect, CONNECTION_OPTIONS, jsonOutput } from '../admin-client.ts';
import { parse, suggest, UsageError } from '../command.ts';
import { printJson } from '../output.ts';
import type { AdminCommand, AdminFlag } from './commands.ts';
import { renderList, renderObject, type RenderContext } from './render.ts';

type Values = Record<string, string | boolean | string[] | boolean[] | undefined>;

/** parseArgs options of a command: its flags and the connection and output options. */
export function optionsOf(command: AdminCommand) {
  const options: Record<string, { type: 'string' | 'boolean'; multiple?: boolean; short?: string }> = {
    ...CONNECTION_OPTIONS,
  };
  for (const f of command.flags)
    options[f.name] = {
      type: f.kind === 'boolean' ? 'boolean' : 'string',
      ...(f.kind === 'list' || f.kind === 'string-or-list' ? { multiple: true } : {}),
      ...(f.short ? { short: f.short } : {}),
    };
  return options;
}

/** A repeatable flag whose values may also be comma lists: `--env DEV,PROD --env TEST` → DEV, PROD, TEST. */
export function listValues(values: readonly string[]): string[] {
  return values
    .flatMap((v) => v.split(','))
    .map((v) => v.trim())
    .filter((v) => v !== '');
}

async function readSecret(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8').split(/\r?\n/)[0]!;
}

/** The value sent for one flag, checked against its kind and choices. */
async function valueOf(command: string, flag: AdminFlag, raw: string | boolean | string[]): Promise<unknown> {
  const bad = (what: string, got: string) => new UsageError(`${command}: --${flag.name}: ${what} (got "${got}")`);
  const choose = (v: string) => {
    if (flag.choices && !flag.choices.includes(v)) {
      const near = suggest(v, flag.choices);
      throw bad(`must be one of ${flag.choices.join(', ')}${near ? `; did you mean ${near}?` : ''}`, v);
    }
    return v;
  };
  switch (flag.kind) {
    case 'boolean':
      return raw;
    case 'list':
      return listValues(raw as string[]).map(choose);
    case 'string-or-list': {
      const list = listValues(raw as string[]);
      return list.length === 1 ? list[0] : list;
    }
    case 'integer':
    case 'number': {
      const text = raw as string;
      const pattern = flag.kind === 'integer' ? /^-?\d+$/ : /^-?\d+(\.\d+)?$/;
      if (!pattern.test(text)) throw bad(flag.kind === 'integer' ? 'must be a whole number' : 'must be a number', text);
      return Number(text);
    }
    case 'number-or-string': {
      const text = raw as string;
      return /^\d+(\.\d+)?$/.test(text) ? Number(text) : text;
    }
    case 'structured': {
      const { parse: parseYaml } = await import('yaml');
      try {
        return parseYaml(raw as string);
      } catch (error) {
        throw bad(`must be JSON or YAML: ${(error as Error).message.split('\n')[0]}`, raw as string);
      }
    }
    default:
      if (flag.secret && raw === '-') return readSecret();
      return choose(raw as string);
  }
}

/** Where each body field came from, to say a refusal in the user's terms. */
type Sources = Map<string, { flag: AdminFlag; given: unknown } | { positional: string } | { file: string }>;

/** Runs one admin command; resolves with the exit code. */
export async function runAdminCommand(command: AdminCommand, args: string[]): Promise<number> {
  const name = command.name;
  const { values, positionals } = parse(name, args, optionsOf(command), true) as {
    values: Values;
    positionals: string[];
  };
  const output = jsonOutput(name, values as { output?: string; json?: boolean }) ? 'json' : 'table';

  const wanted = command.positionals;
  const least = wanted.filter((p) => p.required).length;
  if (positionals.length < least || positionals.length > wanted.length) {
    const shown = wanted.map((p) => (p.required ? p.display : `[${p.display}]`)).join(' ') || 'no arguments';
    throw new UsageError(
      `${name}: expected ${shown}, got ${positionals.length} argument(s)${positionals.length ? `: ${positionals.join(' ')}` : ''}. Run 'gatehouse ${name} --help'`,
    );
  }

  const params: Record<string, string> = {};
  const query = new URLSearchParams();
  const sources: Sources = new Map();
  let body: Record<string, unknown> | undefined;
  const op = command.operation;
  if (op.body) {
    body = {};
    const file = values.file as string | undefined;
    if (file !== undefined) {
      const { readDocument } = await import('../collection-file.ts');
      const doc = await readDocument(file);
      if (typeof doc !== 'object' || doc === null || Array.isArray(doc))
        throw new UsageError(`${name}: ${file}: must hold one object (the request body)`);
      body = { ...(doc as Record<string, unknown>) };
      for (const key of Object.keys(body)) sources.set(key, { file });
    }
  }
  const args_: Record<string, unknown> = {};
  wanted.forEach((p, i) => {
    const value = positionals[i];
    if (value === undefined) return;
    args_[p.field] = value;
    if (p.to === 'param') params[p.field] = value;
    else {
      body![p.field] = value;
      sources.set(p.field, { positional: p.display });
    }
  });
  for (const flag of command.flags) {
    if (flag.to === 'file') continue;
    const raw = values[flag.name] as string | boolean | string[] | undefined;
    if (raw === undefined) continue;
    const value = await valueOf(name, flag, raw);
    args_[flag.field] = value;
    if (flag.to === 'param') params[flag.field] = value as string;
    else if (flag.to === 'query') query.set(flag.field, String(value));
    else {
      body![flag.field] = value;
      sources.set(flag.field, { flag, given: raw });
    }
  }
  for (const flag of command.flags) {
    const missing =
      flag.to === 'param' ? params[flag.field] === undefined : flag.to === 'body' && body?.[flag.field] === undefined;
    if (flag.required && missing)
      throw new UsageError(
        values.file !== undefined && flag.to === 'body'
          ? `${name}: ${values.file as string}: ${flag.field}: is required (in the file, or as --${flag.name})`
          : `${name}: --${flag.name} is required`,
      );
  }
  for (const p of wanted)
    if (p.required && p.to === 'body' && body?.[p.field] === undefined)
      throw new UsageError(`${name}: ${p.display} is required`);

  const api = connect(name, values as { url?: string; token?: string; workspace?: string });
  let path = op.path;
  for (const param of op.params) {
    const value = param === 'workspace' ? await api.workspace() : params[param];
    path = path.replace(`{${param}}`, encodeURIComponent(value!));
  }
  if (query.size > 0) path += `?${query}`;
  let answer: unknown;
  try {
    answer = await api.request(op.method, path, body, op.status === 204 ? undefined : op.expect);
  } catch (error) {
    if (error instanceof AdminRequestError) throw inUserTerms(name, error, sources);
    throw error;
  }

  const last = wanted.at(-1);
  if (output === 'json') {
    if (op.status === 204)
      printJson(op.method === 'DELETE' && last ? { deleted: args_[last.field] } : { done: command.name });
    else printJson(op.list ? (answer as { items: unknown[] }).items : answer);
    return 0;
  }
  const ctx: RenderContext = { workspace: op.params.includes('workspace') ? await api.workspace() : '', args: args_ };
  if (op.status === 204) {
    console.log(command.done ? command.done(ctx) : done(command, ctx));
    return 0;
  }
  const item = answer as Record<string, unknown>;
  if (command.render) console.log(command.render(item, ctx));
  else if (op.list) {
    const items = item.items as Record<string, unknown>[];
    console.log(items.length === 0 ? (command.empty ?? 'Nothing found.') : renderList(items, command.columns));
  } else console.log(renderObject(item));
  return 0;
}

const PAST: Record<string, string> = { delete: 'Deleted', remove: 'Removed', rotate: 'Rotated' };

/** What a command without an answer body did: `Deleted role "deployer".` */
function done(command: AdminCommand, ctx: RenderContext): string {
  const what = command.positionals.map((p) => `"${String(ctx.args[p.field])}"`).join(' ');
  return `${PAST[command.verb] ?? 'Done:'} ${command.noun}${what ? ` ${what}` : ''}.`;
}

/**
 * `body.environments[1]: must be …` → `client create: --env: must be … (got "prod")`, or `FILE: basePath: …` for a
 * field that came from `-f FILE`. Other refusals stay as the admin API said them.
 */
function inUserTerms(command: string, error: AdminRequestError, sources: Sources): UsageError {
  const say = (path: string, message: string): string | undefined => {
    const m = /^body\.([A-Za-z0-9_]+)(?:\[(\d+)\])?(.*)$/.exec(path);
    if (!m) return undefined;
    const source = sources.get(m[1]!);
    if (!source) return undefined;
    if ('file' in source) return `${source.file}: ${path.slice('body.'.length)}: ${message}`;
    if ('positional' in source) return `${command}: ${source.positional}: ${message}`;
    const given = source.given;
    // The element of a list flag the refusal is about (the message names a scalar's value itself).
    const value = m[2] !== undefined && Array.isArray(given) ? listValues(given as string[])[Number(m[2])] : undefined;
    const secret = source.flag.secret;
    return `${command}: --${source.flag.name}: ${message}${value !== undefined && !secret ? ` (got "${value}")` : ''}`;
  };
  const mapped = error.errors.map((e) => say(e.path, e.message));
  if (mapped.some((line) => line !== undefined))
    return new AdminRequestError(
      error.status,
      error.code,
      mapped.map((line, i) => line ?? `${error.errors[i]!.path}: ${error.errors[i]!.message}`).join('\n'),
    );
  const detail = /^(body\.[^:]+): (.*)$/.exec(error.message);
  const line = detail && say(detail[1]!, detail[2]!);
  return line ? new AdminRequestError(error.status, error.code, line) : error;
}
