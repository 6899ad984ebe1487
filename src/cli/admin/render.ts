/**
 * Human output of the admin commands: the default table (lists) and `field  value` lines (one object), and the
 * renderings of answers that need more (a token shown once, an install command, gateways with their instances).
 */
import { heading, table } from '../output.ts';

type Item = Record<string, unknown>;

export interface Column {
  header: string;
  get(item: Item, now: number): string;
}

export interface RenderContext {
  /** The workspace the command acted on. */
  workspace: string;
  /** Positional arguments and flags by field or parameter name, as given. */
  args: Readonly<Record<string, unknown>>;
}

/** Renders an answer (a JSON object) for people. */
export type Render = (answer: Item, ctx: RenderContext) => string;

/** A cell: scalars as they are, lists of scalars joined with ",", anything else as compact JSON. */
export function cell(value: unknown): string {
  if (value === undefined || value === null) return '';
  if (typeof value !== 'object') return String(value);
  if (Array.isArray(value) && value.every((v) => typeof v !== 'object')) return value.join(',');
  return JSON.stringify(value);
}

/** Columns for items without a column override: their scalar fields and lists of scalars (id and name first). */
export function defaultColumns(items: readonly Item[]): Column[] {
  const keys: string[] = [];
  for (const item of items.slice(0, 20))
    for (const [k, v] of Object.entries(item)) {
      const simple = typeof v !== 'object' || v === null || (Array.isArray(v) && v.every((x) => typeof x !== 'object'));
      if (simple && !keys.includes(k)) keys.push(k);
    }
  const ordered = [
    ...keys.filter((k) => k === 'id' || k === 'name'),
    ...keys.filter((k) => k !== 'id' && k !== 'name'),
  ];
  return ordered
    .slice(0, 8)
    .map((k) => ({ header: k.replace(/([A-Z])/g, ' $1').toLowerCase(), get: (i) => cell(i[k]) }));
}

export function renderList(items: readonly Item[], columns: readonly Column[] | undefined, now = Date.now()): string {
  const cols = columns ?? defaultColumns(items);
  return table(
    cols.map((c) => c.header),
    items.map((i) => cols.map((c) => c.get(i, now))),
  );
}

/** One object as `field  value` lines, nested objects as `field.inner` (deeper ones as compact JSON). */
export function renderObject(answer: Item): string {
  const entries = Object.entries(answer).flatMap(([k, v]): [string, unknown][] =>
    typeof v === 'object' && v !== null && !Array.isArray(v)
      ? Object.entries(v).map(([inner, x]): [string, unknown] => [`${k}.${inner}`, x])
      : [[k, v]],
  );
  const width = Math.max(0, ...entries.map(([k]) => k.length));
  return entries
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${heading(k.padEnd(width))}  ${cell(v)}`)
    .join('\n');
}

/** `draft` (never published), `v3`, or `v3 + draft changes`. */
export function publication(c: Item): string {
  if (c.publishedVersion === undefined) return 'draft';
  return c.unpublishedChanges ? `v${c.publishedVersion as number} + draft changes` : `v${c.publishedVersion as number}`;
}

/** A collection's deployment target: `cloud` or `edge:<gateway>`. */
export function target(c: Item): string {
  const t = c.target as { type?: string; gateway?: string } | undefined;
  if (!t || t.type === undefined || t.type === 'cloud') return 'cloud';
  return t.gateway ? `${t.type}:${t.gateway}` : t.type;
}

/** The lines shown when a token is issued: the only time it is ever shown. */
export function tokenLines(token: string): string[] {
  return ['', 'Token (store it now, it is not shown again):', '', `  ${token}`, ''];
}

function describeClient(c: Item): string[] {
  const list = (v: unknown) => (v as string[]).join(', ');
  return [
    `  role          ${c.role as string}`,
    `  environments  ${list(c.environments)}`,
    `  projects      ${list(c.projects)}`,
    ...((c.allowedIps as string[] | undefined)?.length ? [`  allowed IPs   ${list(c.allowedIps)}`] : []),
    ...(c.userId ? [`  user id       ${c.userId as string}`] : []),
    ...(c.orgId ? [`  org id        ${c.orgId as string}`] : []),
    ...(c.expiresAt ? [`  expires at    ${c.expiresAt as string}`] : []),
    `  status        ${c.status as string}`,
  ];
}

/** `{client, token}` answers: create, import, regenerate. */
export function withToken(how: 'create' | 'import' | 'regenerate'): Render {
  return (answer, ctx) => {
    const client = answer.client as Item;
    const token = answer.token as string | undefined;
    const name = `API client "${client.name as string}" (${client.id as string})`;
    if (how === 'regenerate') {
      const until = (client.keys as { expiresAt?: string }[])
        .map((k) => k.expiresAt)
        .filter((e) => e !== undefined)
        .sort()
        .at(-1);
      const old = until ? `The previous token keeps working until ${until}.` : 'The previous token no longer works.';
      return [`Regenerated the token of ${name}. ${old}`, ...tokenLines(token!)].join('\n');
    }
    const verb = how === 'create' ? 'Created' : 'Imported legacy';
    return [
      `${verb} ${name} in workspace ${ctx.workspace}`,
      ...describeClient(client),
      ...(token ? tokenLines(token) : []),
    ].join('\n');
  };
}

export function clientDone(verb: string): Render {
  return (c, ctx) =>
    [
      `${verb} API client "${c.name as string}" (${c.id as string}) in workspace ${ctx.workspace}`,
      ...describeClient(c),
    ].join('\n');
}

export function roleDone(verb: string): Render {
  return (role, ctx) => {
    const permissions = role.permissions as string[];
    const what = permissions.length ? `permissions ${permissions.join(', ')}` : 'no permissions';
    return `${verb} role "${role.name as string}" (${role.id as string}) in workspace ${ctx.workspace} with ${what}`;
  };
}

export function collectionDone(verb: string, tail: string): Render {
  return (c, ctx) =>
    `${verb} collection "${c.name as string}" (${c.id as string}) in ${c.environment as string} of workspace ${ctx.workspace}${tail}`;
}

interface GatewayItem {
  id: string;
  name: string;
  environment: string;
  installMethod: string;
  instancesOnline: number;
  versions: string[];
  lastSyncedAt?: string;
  updateAvailable?: { version: string; command: string; releaseNotes: string };
  instances: {
    instanceId: string;
    hostname?: string;
    online: boolean;
    softwareVersion: string;
    appliedVersion: number;
    lastSeenAt: string;
    lastError?: string;
    nackedVersion?: number;
  }[];
}

/** `{gateway, install}` answers: create and a new install command. */
export function gatewayInstall(how: 'create' | 'regenerate'): Render {
  return (answer, ctx) => {
    const gateway = answer.gateway as unknown as GatewayItem;
    const install = answer.install as { expiresAt: string; command: string; localCommand: string };
    const first =
      how === 'create'
        ? `Created edge gateway "${gateway.name}" (${gateway.id}) for environment ${gateway.environment} in workspace ${ctx.workspace}`
        : `New install command for edge gateway "${gateway.name}" (${gateway.id}); earlier unused tokens no longer work.`;
    return [
      first,
      '',
      `Install command (${gateway.installMethod}; its registration token works once, until ${install.expiresAt}; shown this once):`,
      '',
      `  ${install.command}`,
      '',
      'Or, on a machine with the gatehouse command:',
      '',
      `  ${install.localCommand}`,
      '',
      `A new token: gatehouse gateway install-command ${gateway.name}`,
    ].join('\n');
  };
}

/** Gateways, then their instances, then the updates available. */
export const gatewayListing: Render = (answer) => {
  const items = answer.items as GatewayItem[];
  if (items.length === 0)
    return 'No edge gateways (within your environments). Create one: gatehouse gateway create --name NAME --env ENV';
  const rows = items.map((g) => [
    g.name,
    g.environment,
    g.installMethod,
    String(g.instancesOnline),
    g.versions.join(',') || '-',
    g.lastSyncedAt ?? 'never',
    g.updateAvailable ? `${g.updateAvailable.version} available` : '-',
  ]);
  const lines = [table(['name', 'environment', 'install', 'online', 'versions', 'last synced', 'update'], rows)];
  const instances = items.flatMap((g) =>
    g.instances.map((i) => [
      g.name,
      i.instanceId,
      i.hostname ?? '-',
      i.softwareVersion,
      String(i.appliedVersion),
      i.online ? 'online' : 'offline',
      i.lastSeenAt,
      i.lastError ? `NACK v${i.nackedVersion ?? '?'}: ${i.lastError}` : '-',
    ]),
  );
  if (instances.length > 0)
    lines.push(
      '',
      table(['gateway', 'instance', 'host', 'version', 'config', 'status', 'last seen', 'error'], instances),
    );
  for (const g of items)
    if (g.updateAvailable)
      lines.push(
        '',
        `Update available for "${g.name}": Gatehouse ${g.updateAvailable.version} (release notes: ${g.updateAvailable.releaseNotes}). Instances keep their config directory across the update:`,
        `  ${g.updateAvailable.command}`,
      );
  return lines.join('\n');
};

interface PromotionAnswer {
  collection: string;
  from: { environment: string; version: number };
  to: { environment: string; target: Item; previousVersion?: number; version?: number };
  dryRun: boolean;
  changed: boolean;
  draftReplaced: boolean;
  changes: { path: string; change: string; from?: unknown; to?: unknown }[];
}

/** A promotion: what moved where, and the diff of the destination's published spec. */
export const promotion: Render = (answer) => {
  const p = answer as unknown as PromotionAnswer;
  const where = `${p.to.environment} (${target({ target: p.to.target })})`;
  const head = p.dryRun
    ? `Dry run: promoting ${p.collection} v${p.from.version} from ${p.from.environment} to ${where} would ${p.changed ? 'change' : 'change nothing'}${p.changed ? ':' : '.'}`
    : p.changed
      ? `Promoted ${p.collection} v${p.from.version} from ${p.from.environment} to ${where}: now v${p.to.version ?? '?'} there${p.to.previousVersion ? ` (was v${p.to.previousVersion})` : ''}.`
      : `${p.to.environment} already serves ${p.collection} v${p.from.version}'s content: nothing changed.`;
  const show = (v: unknown) => (v === undefined ? '' : typeof v === 'string' ? v : JSON.stringify(v));
  const lines = p.changes.map((c) =>
    c.change === 'changed'
      ? `  ~ ${c.path}: ${show(c.from)} → ${show(c.to)}`
      : `  ${c.change === 'added' ? '+' : '-'} ${c.path}: ${show(c.change === 'added' ? c.to : c.from)}`,
  );
  return [
    head,
    ...lines,
    ...(p.draftReplaced
      ? [`The draft in ${p.to.environment} held unpublished edits; the promoted version replaces them.`]
      : []),
  ].join('\n');
};

/** `active`, `disabled`, or `expired` once its expiry has passed; legacy clients are marked. */
export function clientStatus(c: Record<string, unknown>, now: number): string {
  if (c.status === 'active' && typeof c.expiresAt === 'string' && Date.parse(c.expiresAt) <= now) return 'expired';
  return c.kind === 'legacy' ? `${c.status as string} (legacy)` : String(c.status);
}
