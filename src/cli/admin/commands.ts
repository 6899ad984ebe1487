/**
 * The `gatehouse <noun> <verb>` command of each admin API operation, derived from the operation (api.json, see
 * manifest.ts) and the overrides table:
 *
 * - noun and verb from the operation id (`listClients` → `client list`, `rotateSigningKeys` → `signing-key rotate`);
 * - `{workspace}` is `--workspace` (default: the token's own), `{environment}` is `--env`, every other path
 *   parameter a positional argument;
 * - each top-level body field a flag of its kind (string, number, boolean with `--no-…`, repeatable comma list,
 *   JSON/YAML for structured values), required when the schema requires it; with a body, `-f FILE` (or `-` for
 *   stdin) gives the whole body, flags override its fields;
 * - each query parameter the OpenAPI document describes a flag of its name and kind;
 * - examples, table columns and renderings from the overrides.
 *
 * A new operation gets a command without code; `commands.test.ts` fails when one has none (or clashes).
 */
import manifest from './api.json' with { type: 'json' };
import type { ApiField, ApiManifest, ApiOperation, FieldKind } from './manifest.ts';
import { FIELD_FLAGS, FIELD_HELP, FIELD_PLACEHOLDERS, HIDDEN, OVERRIDES, type Override } from './overrides.ts';
import type { Column, Render, RenderContext } from './render.ts';

export interface AdminFlag {
  /** Without the dashes. */
  name: string;
  short?: string;
  kind: FieldKind;
  required: boolean;
  choices?: string[];
  help: string;
  /** Where its value goes. */
  to: 'body' | 'param' | 'query' | 'file';
  field: string;
  /** Read from stdin when given as "-" (secrets: a flag's value shows in ps). */
  secret?: boolean;
}

export interface AdminPositional {
  /** Shown in usage: `ID`, `NAME`. */
  display: string;
  help: string;
  to: 'body' | 'param';
  field: string;
  required: boolean;
}

export interface AdminCommand {
  name: string;
  noun: string;
  verb: string;
  summary: string;
  /**
   * Who may call it, said once: the operation's permission, or for one open to any caller the condition its summary
   * states (`admin:clients:write, or the caller is the client itself`), which the summary then leaves out.
   */
  permission: string;
  operation: ApiOperation;
  positionals: AdminPositional[];
  flags: AdminFlag[];
  examples: string[];
  notes?: string;
  columns?: Column[];
  render?: Render;
  empty?: string;
  done?: (ctx: RenderContext) => string;
}

const SECRET = /^(password|key|secret|token)$/;

function words(id: string): string[] {
  return id
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .toLowerCase()
    .split(' ');
}

function singular(word: string): string {
  if (word === 'series') return word;
  if (word.endsWith('ies')) return `${word.slice(0, -3)}y`;
  if (word.endsWith('ss') || !word.endsWith('s')) return word;
  return word.slice(0, -1);
}

function kebab(name: string): string {
  return name.replace(/([a-z0-9])([A-Z])/g, '$1-$2').toLowerCase();
}

/** `listClients` → client list; `regenerateGatewayInstallCommand` → gateway-install-command regenerate. */
export function nounAndVerb(id: string): { noun: string; verb: string } {
  const [verb, ...rest] = words(id);
  const noun = rest.map((w, i) => (i === rest.length - 1 ? singular(w) : w)).join('-');
  return { noun: noun || verb!, verb: verb! };
}

function describe(field: ApiField): string {
  const kinds: Record<FieldKind, string> = {
    string: '',
    integer: '',
    number: '',
    boolean: '',
    list: 'comma list, repeatable',
    'number-or-string': '',
    'string-or-list': 'comma list, repeatable',
    structured: 'JSON or YAML',
  };
  return kinds[field.kind];
}

function placeholderFor(flag: AdminFlag): string {
  if (flag.kind === 'boolean') return '';
  if (flag.choices) return flag.choices.join('|');
  if (flag.kind === 'structured') return 'JSON';
  if (flag.kind === 'integer' || flag.kind === 'number') return 'N';
  const known = flag.to === 'query' ? undefined : FIELD_PLACEHOLDERS[flag.field];
  const base = known ?? flag.name.toUpperCase().replace(/-/g, '_');
  return flag.kind === 'list' || flag.kind === 'string-or-list' ? `${base}[,${base}]` : base;
}

/** `--env ENV[,ENV]`, `--version N`, `--[no-]websocket`. */
export function flagSynopsis(flag: AdminFlag): string {
  if (flag.kind === 'boolean') return `--${flag.name}`;
  const short = flag.short ? `-${flag.short}, ` : '';
  return `${short}--${flag.name} ${placeholderFor(flag)}`;
}

/** One command of one operation (undefined for a hidden operation). */
export function adminCommandOf(op: ApiOperation, override: Override = OVERRIDES[op.id] ?? {}): AdminCommand {
  const derived = nounAndVerb(op.id);
  const noun = override.noun ?? derived.noun;
  const verb = override.verb ?? derived.verb;
  const help = (field: string, fallback = '') => override.help?.[field] ?? FIELD_HELP[field] ?? fallback;
  const pathParams = op.params.filter((p) => p !== 'workspace' && p !== 'environment');
  const positionalNames = override.positionals ?? pathParams;
  const positionals: AdminPositional[] = positionalNames.map((field) => {
    const isParam = op.params.includes(field);
    return {
      display: override.display?.[field] ?? field.toUpperCase(),
      help: help(field, isParam ? `the ${field} (name or id)` : ''),
      to: isParam ? 'param' : 'body',
      field,
      required: isParam || (op.body?.[field]?.required ?? false),
    };
  });
  const flags: AdminFlag[] = [];
  const taken = new Set(['url', 'token', 'workspace', 'output', 'json', 'help', 'file']);
  const flagName = (field: string) => {
    const preferred = override.flags?.[field] ?? FIELD_FLAGS[field] ?? kebab(field);
    return taken.has(preferred) ? kebab(field) : preferred;
  };
  if (op.params.includes('environment')) {
    flags.push({
      name: 'env',
      kind: 'string',
      required: true,
      help: 'the environment, e.g. DEV',
      to: 'param',
      field: 'environment',
    });
    taken.add('env');
  }
  for (const param of pathParams.filter((p) => !positionalNames.includes(p))) {
    const name = flagName(param);
    taken.add(name);
    flags.push({ name, kind: 'string', required: true, help: help(param, `the ${param}`), to: 'param', field: param });
  }
  for (const [field, f] of Object.entries(op.body ?? {})) {
    if (positionalNames.includes(field)) continue;
    const name = flagName(field);
    taken.add(name);
    const extra = describe(f);
    const text = help(field, f.description ?? `the request's ${field} field`);
    flags.push({
      name,
      kind: f.kind,
      required: f.required,
      ...(f.choices ? { choices: f.choices } : {}),
      help: extra && !text.includes('comma list') && !text.includes('JSON') ? `${text} (${extra})` : text,
      to: 'body',
      field,
      ...(SECRET.test(field) ? { secret: true } : {}),
    });
  }
  // Query parameters: those the OpenAPI document describes, each a flag of its own name.
  for (const [field, q] of Object.entries(op.query ?? {})) {
    const name = taken.has(kebab(field)) ? `query-${kebab(field)}` : kebab(field);
    taken.add(name);
    flags.push({
      name,
      kind: q.kind,
      required: q.required,
      ...(q.choices ? { choices: q.choices } : {}),
      help: help(field, q.description ? lowerFirst(q.description) : `the ${field} query parameter`),
      to: 'query',
      field,
    });
  }
  if (op.body)
    flags.push({
      name: 'file',
      short: 'f',
      kind: 'string',
      required: false,
      help: 'the whole body as YAML or JSON ("-" reads stdin); flags override its fields',
      to: 'file',
      field: '',
    });
  const who = permissionOf(op, override.summary ?? lowerFirst(op.summary));
  const command: AdminCommand = {
    name: `${noun} ${verb}`,
    noun,
    verb,
    summary: inFlags(who.summary, flags),
    permission: who.permission,
    operation: op,
    positionals,
    flags,
    examples: [],
    ...(override.notes ? { notes: override.notes } : {}),
    ...(override.columns ? { columns: override.columns } : {}),
    ...(override.render ? { render: override.render } : {}),
    ...(override.empty ? { empty: override.empty } : {}),
    ...(override.done ? { done: override.done } : {}),
  };
  command.examples = override.examples ?? [generatedExample(command)];
  return command;
}

/** An open operation's "Needs X, or Y." sentence as its permission, taken out of the summary. */
function permissionOf(op: ApiOperation, summary: string): { summary: string; permission: string } {
  if (op.permission !== null) return { summary, permission: op.permission };
  const needs = /\.? Needs ([^.]+)\.?$/.exec(summary);
  if (!needs) return { summary, permission: 'any caller' };
  return { summary: summary.slice(0, needs.index), permission: needs[1]! };
}

/**
 * The API's words for query parameters (`?from=`, `?bucket=` 1m|5m, `?version=N`) as this command's flags
 * (`--from`, `--bucket` 1m|5m, `--version N`): summaries come from the admin API, help speaks in flags.
 */
export function inFlags(summary: string, flags: readonly AdminFlag[]): string {
  return summary.replace(/`\?([A-Za-z]+)=([^`]*)`/g, (text, field: string, value: string) => {
    const flag = flags.find((f) => f.to === 'query' && f.field === field);
    return flag ? `\`--${flag.name}${value ? ` ${value}` : ''}\`` : text;
  });
}

function lowerFirst(text: string): string {
  return /^[A-Z][a-z]/.test(text) ? text[0]!.toLowerCase() + text.slice(1) : text;
}

/** `gatehouse role get ROLE`, with the required flags and placeholder values. */
function generatedExample(command: AdminCommand): string {
  const parts = ['gatehouse', command.name, ...command.positionals.filter((p) => p.required).map((p) => p.display)];
  for (const f of command.flags.filter((f) => f.required))
    parts.push(`--${f.name}`, f.name === 'env' ? 'DEV' : f.kind === 'boolean' ? '' : placeholderFor(f));
  return parts.filter((p) => p !== '').join(' ');
}

/** Every operation of the admin API, as the CLI knows it. */
export const API: ApiManifest = manifest as ApiManifest;

let commands: AdminCommand[] | undefined;

/** Every admin command (hidden operations left out), in the order of the admin API. */
export function adminCommands(): AdminCommand[] {
  commands ??= API.operations.filter((op) => HIDDEN[op.id] === undefined).map((op) => adminCommandOf(op));
  return commands;
}
