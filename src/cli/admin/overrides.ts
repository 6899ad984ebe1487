/**
 * Where the command generated from an admin operation reads badly, this table says how it should read: its noun
 * and verb, which path parameters or body fields are positional arguments, flag names and help (of body fields,
 * path and query parameters: the query parameters themselves come from the OpenAPI document), examples, table
 * columns and the human rendering of the answer. Everything not said here is derived from the operation (commands.ts). An operation that is not a
 * command says why in HIDDEN. Keys are operation ids. A table of one entry per operation: it grows with the admin
 * API, and reads best in one place (about 480 lines).
 */
import {
  clientDone,
  clientStatus,
  collectionDone,
  gatewayInstall,
  gatewayListing,
  promotion,
  publication,
  roleDone,
  target,
  withToken,
  type Column,
  type Render,
  type RenderContext,
} from './render.ts';

export interface Override {
  noun?: string;
  verb?: string;
  /** A shorter one-line summary than the operation's. */
  summary?: string;
  /** Path parameters or body fields taken as positional arguments, in order (default: the path parameters). */
  positionals?: string[];
  /** How a positional argument is shown in usage (`ID`); default its name upper-cased. */
  display?: Record<string, string>;
  /** Flag names of body fields or path parameters, where the default (kebab-case of the field) reads badly. */
  flags?: Record<string, string>;
  /** Help of a positional argument or flag, by field or parameter name. */
  help?: Record<string, string>;
  /** At least one; commands without any get a generated one. */
  examples?: string[];
  /** Text after the options in help and docs. */
  notes?: string;
  /** The table of a list answer. */
  columns?: Column[];
  /** The human rendering of an answer (default: a table for lists, `field  value` lines for an object). */
  render?: Render;
  /** Printed when the list is empty. */
  empty?: string;
  /** Printed after an operation without an answer body (default: `Deleted role "deployer".`). */
  done?: (ctx: RenderContext) => string;
}

/** Flag names of body fields and path parameters in every command (list fields take singular, repeatable flags). */
export const FIELD_FLAGS: Record<string, string> = {
  environment: 'env',
  environments: 'env',
  projects: 'project',
  allowedIps: 'allow-ip',
  permissions: 'permission',
  privileges: 'privilege',
  collections: 'collection',
};

/** How the value of a field's flag is shown in usage, where its upper-cased name reads badly. */
export const FIELD_PLACEHOLDERS: Record<string, string> = {
  allowedIps: 'CIDR',
  expiresAt: 'ISO-8601',
  userId: 'ID',
  orgId: 'ID',
  permissions: 'PERMISSION',
  gracePeriod: 'DURATION',
  environments: 'ENV',
  environment: 'ENV',
  projects: 'PROJECT',
  to: 'ENV',
  devEnvironment: 'ENV',
};

/** Help of fields that mean the same in every command. */
export const FIELD_HELP: Record<string, string> = {
  environment: 'the environment, e.g. DEV',
  environments: 'environments (comma list, repeatable); "*" for all of yours',
  projects: 'projects (comma list, repeatable); "*" for all of yours',
  name: 'its name',
  description: 'a description for people',
  allowedIps: 'CIDR ranges requests must come from (comma list, repeatable)',
  userId: 'user id carried into exchanged tokens',
  orgId: 'org id carried into exchanged tokens; keys org rate limits',
  expiresAt: 'ISO 8601 date-time with offset; refused afterwards',
  metadata: 'metadata carried into exchanged tokens (JSON/YAML object)',
  rateLimits: 'rate-limit overrides (JSON/YAML, e.g. "{client: {limit: 100, window: 1m}}")',
  permissions: 'permissions (comma list, repeatable): admin:clients:write, invoices:read, prefix:*, *',
  endpoints: 'individual endpoints (JSON/YAML list of {collection, method, path})',
  status: 'active or disabled',
  operator: 'acts on every workspace (operator clients only)',
  role: 'the role name',
  target: 'where it is deployed (JSON/YAML): {type: cloud} or {type: edge, gateway: NAME}',
  hidePermissions: 'a 403 does not name the permission the endpoint needs',
  email: 'an email address',
};

/** Operations that are deliberately not commands, with the reason (shown in docs/cli.md). */
export const HIDDEN: Record<string, string> = {
  login: 'console sessions (cookies); the CLI authenticates with API client tokens',
  logout: 'console sessions (cookies); the CLI authenticates with API client tokens',
  importCollectionOpenApi:
    '`collection import` (hand-written: it bundles a multi-file document and names its problems by file and line)',
  exportCollectionOpenApi: '`collection export` (hand-written: it writes the document to a file)',
};

const SINCE = 'from this ISO time, or this long ago (30m, 24h)';
const GATEWAY = 'only this gateway (name, id, or "cloud")';
const LIMIT = 'at most this many (default 100)';
const ENV_ARG = { collection: 'NAME' };

export const OVERRIDES: Record<string, Override> = {
  // deleteEntity is `entity delete TYPE ID`; this one takes a list in one request.
  deleteEntities: { verb: 'delete-many' },
  getCaller: {
    noun: 'auth',
    verb: 'whoami',
    summary: 'who the token is: client or user, workspace, permissions and scope',
    examples: ['gatehouse auth whoami'],
  },
  listWorkspaces: { examples: ['gatehouse workspace list'] },
  createWorkspace: {
    positionals: ['name'],
    summary: 'create a workspace (operator clients only)',
    help: { devEnvironment: 'the development environment, where collections are published first (default DEV)' },
    examples: ['gatehouse workspace create acme --env DEV,TEST,PROD --project default'],
  },
  getWorkspace: { examples: ['gatehouse workspace get', 'gatehouse workspace get --workspace acme --json'] },
  addEnvironment: {
    positionals: ['name'],
    display: { name: 'ENV' },
    summary: 'add an environment to the workspace',
    examples: ['gatehouse environment add STAGING'],
  },
  listProjects: { examples: ['gatehouse project list'] },
  createProject: { positionals: ['name'], examples: ['gatehouse project create billing --description "Billing APIs"'] },
  deleteProject: { examples: ['gatehouse project delete billing'] },
  deployProject: {
    summary: 'promote a project’s published collections from the development environment to another',
    help: { to: 'the environment to deploy to, e.g. TEST', collections: 'only these collections (comma list)' },
    examples: ['gatehouse project deploy default --env DEV --to TEST'],
  },
  listCollections: {
    summary: "list an environment's collections: base path, upstream, deployment target, what is published",
    help: { project: 'only this project' },
    columns: [
      { header: 'name', get: (c) => String(c.name) },
      { header: 'project', get: (c) => String(c.project) },
      { header: 'base path', get: (c) => `${(c.host as string | undefined) ?? ''}${c.basePath as string}` },
      { header: 'upstream', get: (c) => String((c.upstream as { url: string }).url) },
      { header: 'target', get: (c) => target(c) },
      { header: 'endpoints', get: (c) => String((c.endpoints as unknown[]).length) },
      { header: 'published', get: (c) => publication(c) },
    ],
    empty: 'No collections in this environment (within your projects).',
    examples: ['gatehouse collection list --env DEV', 'gatehouse collection list --env PROD --project billing --json'],
  },
  createCollection: {
    summary: 'create an API collection (a draft until published) from a YAML or JSON file',
    render: collectionDone('Created', ': a draft until published.'),
    examples: ['gatehouse collection create --env DEV -f orders.yaml'],
    notes:
      'FILE holds one collection: name, basePath, upstream, project, endpoints, … ("-" reads stdin). To create, update and publish many at once, use `gatehouse collection apply`.',
  },
  getCollection: { display: ENV_ARG, examples: ['gatehouse collection get orders --env DEV --json'] },
  replaceCollection: {
    verb: 'update',
    display: ENV_ARG,
    summary: "replace a collection's draft from a file (gateways keep serving the published version)",
    render: collectionDone('Updated', ': the draft changed; publish it to serve it.'),
    examples: ['gatehouse collection update orders --env DEV -f orders.yaml'],
  },
  deleteCollection: {
    display: ENV_ARG,
    summary: 'delete a collection and its versions; gateways stop serving it at once',
    examples: ['gatehouse collection delete orders --env DEV'],
  },
  publishCollection: {
    display: ENV_ARG,
    summary: 'publish the draft as a new version, or republish an earlier one (--version: rollback)',
    help: { version: 'republish this earlier version instead of the draft (a rollback)' },
    examples: [
      'gatehouse collection publish orders --env DEV',
      'gatehouse collection publish orders --env DEV --version 3',
    ],
  },
  promoteCollection: {
    display: ENV_ARG,
    summary: 'promote a published collection version to the next environment (or --to), with a diff of what changes',
    help: {
      to: 'the destination environment (default: the next one, DEV → TEST → PROD)',
      version: 'the version to promote (default: the published one)',
      target: "where the destination serves it (JSON/YAML; default: the destination's own target)",
      dryRun: 'print what would change, and change nothing',
    },
    render: promotion,
    examples: [
      'gatehouse collection promote orders --env DEV --dry-run',
      'gatehouse collection promote orders --env TEST --to PROD',
    ],
  },
  listCollectionVersions: {
    noun: 'collection',
    verb: 'versions',
    display: ENV_ARG,
    columns: [
      { header: 'version', get: (v) => `v${v.version as number}` },
      { header: 'published at', get: (v) => String(v.publishedAt ?? '') },
      { header: 'target', get: (v) => target((v.spec ?? {}) as Record<string, unknown>) },
    ],
    examples: ['gatehouse collection versions orders --env DEV'],
  },
  getCollectionVersion: {
    noun: 'collection',
    verb: 'version',
    display: ENV_ARG,
    examples: ['gatehouse collection version orders 2 --env DEV --json'],
  },
  listRoles: {
    columns: [
      { header: 'name', get: (r) => String(r.name) },
      { header: 'permissions', get: (r) => (r.permissions as string[]).join(',') || '-' },
      { header: 'endpoints', get: (r) => String((r.endpoints as unknown[]).length) },
      { header: 'description', get: (r) => String(r.description ?? '') },
    ],
    examples: ['gatehouse role list'],
  },
  createRole: {
    render: roleDone('Created'),
    examples: [
      "gatehouse role create --name deployer --permission 'admin:collections:*,admin:deploy' --description CI",
    ],
    notes:
      'Permissions: admin API operations (admin:clients:write, admin:collections:*), endpoint permissions (invoices:read), "prefix:*" and "*". You can hand out only admin permissions your own role holds.',
  },
  getRole: { examples: ['gatehouse role get deployer'] },
  updateRole: {
    summary: 'change a client role; every client holding it is affected at once',
    render: roleDone('Updated'),
    examples: ['gatehouse role update deployer --permission admin:collections:read'],
  },
  deleteRole: {
    summary: 'delete a client role; refused while API clients hold it (it names them), unless --force',
    help: { force: 'delete even while API clients hold it: their requests are refused from then on' },
    examples: ['gatehouse role delete deployer', 'gatehouse role delete deployer --force'],
  },
  listClients: {
    summary: "list the workspace's API clients (never their tokens)",
    columns: [
      { header: 'id', get: (c) => String(c.id) },
      { header: 'name', get: (c) => String(c.name) },
      { header: 'role', get: (c) => String(c.role) },
      { header: 'environments', get: (c) => (c.environments as string[]).join(',') },
      { header: 'projects', get: (c) => (c.projects as string[]).join(',') },
      { header: 'status', get: (c, now) => clientStatus(c, now) },
      { header: 'last used', get: (c) => String(c.lastUsedAt ?? 'never') },
    ],
    empty: 'No API clients (within your environments and projects).',
    examples: ['gatehouse client list', 'gatehouse client list --json'],
  },
  createClient: {
    summary: 'create an API client of the admin API and gateways; prints its token once',
    render: withToken('create'),
    examples: [
      'gatehouse client create --name billing-app --role invoice-reader --env DEV,PROD --project billing',
      "TOKEN=$(gatehouse client create --name ci --role deployer --env DEV --project '*' --json | jq -r .token)",
    ],
  },
  createLegacyClient: {
    noun: 'client',
    verb: 'import-legacy',
    summary: 'import a legacy client (existing API key + email); usable until deleted, never regenerable',
    help: { key: 'the existing API key ("-" reads it from stdin: a flag shows in ps)' },
    render: withToken('import'),
    examples: [
      'gatehouse client import-legacy --name old-app --role reader --env PROD --project default --email ops@example.com --key - < key.txt',
    ],
  },
  getClient: { display: { client: 'ID' }, examples: ['gatehouse client get cli_4fQ… --json'] },
  updateClient: {
    display: { client: 'ID' },
    summary: "change an API client's role, scope, limits, expiry or status (disable/enable); enforced at once",
    render: clientDone('Updated'),
    examples: [
      'gatehouse client update cli_4fQ… --status disabled',
      'gatehouse client update cli_4fQ… --role reader --env DEV',
    ],
  },
  deleteClient: {
    display: { client: 'ID' },
    done: (ctx) => `Deleted API client ${ctx.args.client as string}: its tokens no longer work.`,
    summary: 'delete an API client; its tokens stop working at once',
    examples: ['gatehouse client delete cli_4fQ…'],
  },
  regenerateClientToken: {
    noun: 'client',
    verb: 'regenerate',
    display: { client: 'ID' },
    summary: 'issue a new token for an API client; the old one stops working at once or after --grace-period',
    help: { gracePeriod: 'keep the old token working this long (30m, 1h, 7d; at most 30 days)' },
    render: withToken('regenerate'),
    examples: ['gatehouse client regenerate cli_4fQ…', 'gatehouse client regenerate cli_4fQ… --grace-period 1h'],
  },
  revokeDerivedCredentials: {
    noun: 'agent-credential',
    verb: 'revoke',
    display: { client: 'ID' },
    examples: [
      'gatehouse agent-credential revoke cli_4fQ… --credential 3q2-7wEjRUW9s1FbfQ0k1A --reason "leaked in a transcript"',
      'gatehouse agent-credential revoke cli_4fQ… --agent invoice-assistant --session chat-7f3a',
    ],
  },
  listDerivedCredentialRevocations: {
    noun: 'agent-credential',
    verb: 'revocations',
    display: { client: 'ID' },
    examples: ['gatehouse agent-credential revocations cli_4fQ…'],
  },
  listUserRoles: { noun: 'user-role', examples: ['gatehouse user-role list'] },
  createUserRole: {
    noun: 'user-role',
    positionals: ['name'],
    help: { privileges: 'what its users may change (comma list)' },
    examples: ['gatehouse user-role create support --privilege clients,roles'],
  },
  listCollaborators: {
    noun: 'user',
    summary: "list the workspace's console users",
    examples: ['gatehouse user list --env DEV'],
  },
  addCollaborator: {
    noun: 'user',
    summary: 'add a console user with a role',
    help: {
      password: 'the initial password, at least 12 characters ("-" reads it from stdin: a flag shows in ps)',
      role: 'its console user role (see `gatehouse user-role list`)',
    },
    examples: ['gatehouse user add --env DEV --email ana@example.com --role admin --password - < password.txt'],
  },
  removeCollaborator: {
    noun: 'user',
    summary: 'remove a console user and end its sessions',
    examples: ['gatehouse user remove usr_1a2b… --env DEV'],
  },
  getSnapshot: {
    summary: 'show the snapshot a gateway of this environment serves',
    help: { target: '"cloud" (default) or "edge:<gateway>"' },
    examples: [
      'gatehouse snapshot get --env DEV --json',
      'gatehouse snapshot get --env PROD --target edge:local --json',
    ],
  },
  getSigningKeys: {
    noun: 'signing-key',
    verb: 'list',
    summary: "list the environment's token-signing keys (public parts)",
    examples: ['gatehouse signing-key list --env PROD'],
  },
  rotateSigningKeys: {
    noun: 'signing-key',
    verb: 'rotate',
    summary: 'make a new signing key active at once; the old ones stay in the JWKS until their tokens expire',
    examples: ['gatehouse signing-key rotate --env PROD'],
  },
  listGateways: {
    summary: 'list edge gateways: instances online, versions, update availability, last synced',
    help: { instances: 'none: counts only, without the instance rows' },
    render: gatewayListing,
    examples: ['gatehouse gateway list'],
  },
  createGateway: {
    summary: 'create the edge gateway of an environment; prints its install command (one-time token) once',
    render: gatewayInstall('create'),
    examples: [
      'gatehouse gateway create --name local --env DEV',
      'gatehouse gateway create --name k8s --env PROD --install-method helm',
    ],
  },
  getGateway: { examples: ['gatehouse gateway get local'] },
  renameGateway: {
    verb: 'rename',
    positionals: ['gateway', 'name'],
    display: { gateway: 'NAME', name: 'NEW-NAME' },
    summary: 'rename an edge gateway; collections deployed to it follow',
    render: (answer, ctx) =>
      `Renamed edge gateway "${ctx.args.gateway}" (${answer.id as string}) to "${answer.name as string}". Running instances keep their identity; no new bootstrap is needed.`,
    examples: ['gatehouse gateway rename local edge-1'],
  },
  deleteGateway: {
    display: { gateway: 'NAME' },
    done: (ctx) =>
      `Deleted edge gateway "${ctx.args.gateway as string}": its certificates are revoked and its instances disconnected. Collections deployed to it are served nowhere until retargeted.`,
    summary: 'delete an edge gateway: its certificates are revoked and its instances disconnected at once',
    examples: ['gatehouse gateway delete local'],
  },
  regenerateGatewayInstallCommand: {
    noun: 'gateway',
    verb: 'install-command',
    display: { gateway: 'NAME' },
    summary: 'issue a new install command for an edge gateway; its unused tokens stop working',
    render: gatewayInstall('regenerate'),
    examples: ['gatehouse gateway install-command local'],
  },
  getTelemetry: {
    summary: 'request counts per minute, gateway, collection, endpoint, client and status',
    help: { since: SINCE, gateway: GATEWAY },
    examples: ['gatehouse telemetry get --since 15m', 'gatehouse telemetry get --gateway cloud --json'],
  },
  listSecurityEvents: {
    summary: 'authentication failures and other refusals reported by gateways, newest first',
    help: { since: SINCE, gateway: GATEWAY, limit: LIMIT },
    examples: ['gatehouse security-event list --since 1h --limit 20'],
  },
  listAccessEvents: {
    summary: 'a sample of recent requests reported by gateways, newest first',
    help: { gateway: GATEWAY, limit: LIMIT },
    examples: ['gatehouse access-event list --gateway local'],
  },
  listAlerts: {
    summary: 'alerts (auth-failure spikes, version mismatch, connectivity loss, degraded rate limits), newest first',
    help: {
      open: 'only open alerts (--no-open: only resolved ones)',
      limit: LIMIT,
      before: 'the `next` cursor of the previous page: the older alerts',
    },
    examples: ['gatehouse alert list --open', 'gatehouse alert list --limit 50 --before CURSOR'],
  },
  listAlertRules: {
    summary: 'list the alert rules: which alerts go to which webhook destinations',
    examples: ['gatehouse alert-rule list'],
  },
  createAlertRule: {
    summary: 'create an alert rule sending an alert kind to webhook destinations',
    examples: [
      'gatehouse alert-rule create --name auth-spikes --kind auth_failure_spike --threshold 10 --destinations ops',
    ],
  },
  getAlertRule: { display: { rule: 'NAME' }, examples: ['gatehouse alert-rule get auth-spikes'] },
  updateAlertRule: {
    display: { rule: 'NAME' },
    summary: 'replace an alert rule (every field; absent optional ones are removed)',
    examples: [
      'gatehouse alert-rule update auth-spikes --name auth-spikes --kind auth_failure_spike --threshold 20 --destinations ops',
    ],
  },
  deleteAlertRule: {
    display: { rule: 'NAME' },
    summary: 'delete an alert rule; its alerts are still raised and listed',
    examples: ['gatehouse alert-rule delete auth-spikes'],
  },
  listAlertDestinations: {
    summary: 'list the webhook destinations of alerts',
    examples: ['gatehouse alert-destination list'],
  },
  createAlertDestination: {
    summary: 'create a webhook destination; prints its signing secret once',
    flags: { url: 'webhook-url' },
    examples: ['gatehouse alert-destination create --name ops --webhook-url https://hooks.example.com/gatehouse'],
  },
  updateAlertDestination: {
    display: { destination: 'NAME' },
    flags: { url: 'webhook-url' },
    summary: 'rename a webhook destination, change its URL or rotate its signing secret',
    examples: ['gatehouse alert-destination update ops --rotate-secret'],
  },
  deleteAlertDestination: {
    display: { destination: 'NAME' },
    summary: 'delete a webhook destination; the rules sending to it stop doing so',
    examples: ['gatehouse alert-destination delete ops'],
  },
  getCollectionPermissions: {
    noun: 'collection',
    verb: 'permissions',
    display: ENV_ARG,
    examples: ['gatehouse collection permissions orders --env DEV'],
  },
  // The analytics operations, under one noun (their ids would make `analytics-sery get`, `top-client get`, …).
  getAnalyticsSeries: {
    noun: 'analytics',
    verb: 'series',
    summary:
      'requests, errors, 4xx, 5xx, 429s and latency (avg, p50, p95, p99, max) over time, one point per --bucket; --group-by splits it into the --top busiest series',
    examples: [
      'gatehouse analytics series --from 6h --bucket 15m',
      'gatehouse analytics series --collection billing --group-by client --top 10 --json',
    ],
  },
  getTopClients: {
    noun: 'analytics',
    verb: 'top-clients',
    summary: 'the clients with the most requests, with their errors, 429s and latency (default: the last 24h)',
    examples: ['gatehouse analytics top-clients --from 7d --limit 20'],
  },
  getTopAgents: {
    noun: 'analytics',
    verb: 'top-agents',
    summary:
      "the agents (of derived credentials) with the most requests, with their errors, 429s and latency; --client: one client's agents",
    examples: ['gatehouse analytics top-agents --client billing-app'],
  },
  getTopRefusals: {
    noun: 'analytics',
    verb: 'top-refusals',
    summary:
      'the most frequent refused requests with their error codes; --by agent splits them per agent and session too',
    examples: ['gatehouse analytics top-refusals --from 1h --by agent'],
  },
  listReleaseNotes: {
    summary:
      "the release notes of the versions after --since (e.g. a gateway's version) up to this control plane's, newest first (without --since: every released version)",
    examples: ['gatehouse release-note list --since 0.1.0'],
  },
  listAuditLog: {
    summary: 'who changed what and when, newest first; --cursor: the previous page’s nextCursor',
    examples: [
      'gatehouse audit-log list --since 24h --actor cli_4fQ…',
      'gatehouse audit-log list --action deleteClient',
    ],
  },
  sendTestAlert: {
    noun: 'alert-destination',
    verb: 'send-test',
    display: { destination: 'NAME' },
    summary: 'send a signed test alert to a destination now and print how the receiver answered',
    examples: ['gatehouse alert-destination send-test ops'],
  },
};
