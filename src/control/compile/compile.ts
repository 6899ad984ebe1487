/**
 * Compiles a workspace's control-plane records into the snapshots its gateways serve: one per environment and
 * deployment target (the cloud gateway, or one edge gateway). Pure: the caller loads the records, assigns
 * versions and stores the results; `snapshotHash` (config/snapshot-encoding.ts) says whether anything changed.
 *
 * The same state always gives byte-identical snapshots (entries in canonical order), whatever order the store
 * listed the records in.
 */
import type { CollectionSpec, DeploymentTarget } from '../../config/resources.ts';
import {
  type Client,
  type Collection,
  formatIssues,
  type LegacyClient,
  networkOf,
  type RateLimitPolicies,
  type Role,
  type SigningKeys,
  type Snapshot,
  SnapshotSchema,
  tenantAudience,
  type TokenExchange,
} from '../../config/schema.ts';
import { compareStrings, encodeSnapshot, inCanonicalOrder } from '../../config/snapshot-encoding.ts';
import type { RevokedCredential } from '../../config/revocations.ts';
import type {
  ClientRecord,
  DerivedRevocationRecord,
  CollectionRecord,
  CollectionVersionRecord,
  KeyRecord,
  RoleRecord,
  WorkspaceRecord,
} from '../store/store.ts';

/** Everything of one workspace that its snapshots are made of. */
export interface WorkspaceState {
  workspace: WorkspaceRecord;
  /** The drafts: only their published versions are compiled. */
  collections: CollectionRecord[];
  /** Collection id → its published version record; a collection without an entry is not served. */
  published: Map<string, CollectionVersionRecord>;
  roles: RoleRecord[];
  clients: ClientRecord[];
  /** The keys of the workspace's clients. */
  keys: KeyRecord[];
  /** Derived credentials revoked on their own; those expired by `now` are left out. */
  revocations?: DerivedRevocationRecord[];
}

export interface CompileOptions {
  /**
   * Token-exchange settings of every scope, as parsed by `TokenExchangeSchema` (ttl in milliseconds), but the
   * issuer: each workspace environment has its own (`tenantIssuer`).
   */
  tokenExchange: TenantTokenSettings;
  /** The cloud gateway's base URL (`http://127.0.0.1:8080`), which every environment's issuer starts with. */
  issuerBase: string;
  /** Legacy-client headers, as parsed by `LegacyAuthSchema`. Default: `x-api-key` and `x-api-email`. */
  legacyAuth?: Snapshot['legacyAuth'];
  /** Default rate limits of every collection, as parsed by `RateLimitPoliciesSchema`. Default: none. */
  rateLimits?: RateLimitPolicies;
  /** Keys whose grace period ended at or before this time (ms since the epoch) are left out. Default: now. */
  now?: number;
  /**
   * The edge gateways registered per environment (`{ PROD: ['eu-1'] }`). Each gets a scope even before any
   * collection targets it, so that a new gateway receives its clients and roles and can report ready.
   */
  edgeGateways?: Readonly<Record<string, readonly string[]>>;
  /**
   * The token-signing keys of each environment (`{ PROD: {...} }`), put into every scope of that environment:
   * its cloud gateway tenant and all of its edge gateways sign with the same keys. An environment without an
   * entry gets none (its gateways sign with their local keys).
   */
  signingKeys?: Readonly<Record<string, SigningKeys>>;
}

/** The scope of a snapshot: `wsp_…/PROD/cloud` or `wsp_…/PROD/edge:eu-1`. */
export function snapshotScope(workspaceId: string, environment: string, target: DeploymentTarget): string {
  return `${workspaceId}/${environment}/${target.type === 'cloud' ? 'cloud' : `edge:${target.gateway}`}`;
}

/**
 * Where a collection is served on the cloud gateway. That gateway is multi-tenant (one process serves the cloud
 * collections of every workspace), so each workspace environment lives under `/<workspace>/<environment>`.
 */
export function cloudBasePath(workspaceName: string, environment: string, basePath: string): string {
  const prefix = `/${workspaceName}/${environment.toLowerCase()}`;
  return basePath === '/' ? prefix : `${prefix}${basePath}`;
}

/**
 * Token settings shared by every workspace environment: the issuer is always each environment's own, and the
 * audience too unless the operator sets one for all (`tenantAudience`).
 */
export type TenantTokenSettings = Omit<TokenExchange, 'issuer' | 'audience'> & { audience?: TokenExchange['audience'] };

/**
 * The issuer (`iss`) of the tokens minted for a workspace environment: the cloud gateway's base URL and the
 * environment's cloud prefix, `http://127.0.0.1:8080/default/dev`. Tokens of one tenant of the multi-tenant cloud
 * gateway are thus never valid for a backend of another tenant that checks `iss`, although they share the
 * signing keys. The environment's edge gateways mint with the same issuer (under their own keys), so a backend
 * checks the same `iss` wherever its collection is deployed.
 */
export function tenantIssuer(issuerBase: string, workspaceName: string, environment: string): string {
  return `${issuerBase.replace(/\/+$/, '')}${cloudBasePath(workspaceName, environment, '/')}`;
}

/**
 * One validated snapshot per scope (`snapshotScope`), without a version. Every environment of the workspace has
 * a cloud scope, possibly without collections; an environment has an edge scope for every gateway that one of its
 * published collections targets or that `options.edgeGateways` names.
 *
 * Throws when a snapshot is not valid: that is a bug here or inconsistent records, never a user mistake, because
 * the admin API validates what it stores.
 */
export function compileWorkspace(state: WorkspaceState, options: CompileOptions): Map<string, Snapshot> {
  const { workspace } = state;
  const now = options.now ?? Date.now();
  const legacyAuth = options.legacyAuth ?? { keyHeader: 'x-api-key', emailHeader: 'x-api-email' };
  const rateLimits = options.rateLimits ?? {};

  const roleNames = new Map(state.roles.map((r) => [r.id, r.name]));
  const keysByClient = new Map<string, KeyRecord[]>();
  for (const key of state.keys) {
    if (key.expiresAt !== undefined && Date.parse(key.expiresAt) <= now) continue;
    const keys = keysByClient.get(key.clientId);
    if (keys) keys.push(key);
    else keysByClient.set(key.clientId, [key]);
  }

  const snapshots = new Map<string, Snapshot>();
  for (const environment of [...workspace.environments].sort(compareStrings)) {
    const served = publishedSpecs(state, environment);
    const targets = new Map<string, DeploymentTarget>([[targetName({ type: 'cloud' }), { type: 'cloud' }]]);
    for (const { spec } of served) targets.set(targetName(spec.target), spec.target);
    for (const gateway of options.edgeGateways?.[environment] ?? []) targets.set(gateway, { type: 'edge', gateway });

    const { clients, legacyClients } = compileClients(state.clients, environment, roleNames, keysByClient);
    const tokenExchange: TokenExchange = {
      ...options.tokenExchange,
      issuer: tenantIssuer(options.issuerBase, workspace.name, environment),
      audience: options.tokenExchange.audience ?? tenantAudience(workspace.name, environment),
    };
    for (const [name, target] of [...targets].sort(([a], [b]) => compareStrings(a, b))) {
      const scope = snapshotScope(workspace.id, environment, target);
      const specs = served.filter(({ spec }) => targetName(spec.target) === name);
      const collections = specs.map(({ spec }) =>
        toCollection(spec, environment, target.type === 'cloud' ? workspace.name : undefined),
      );
      const entitySets = compileEntitySets(specs);
      const revokedCredentials = compileRevocations(state, clients, now);
      const draft: Snapshot = inCanonicalOrder({
        collections,
        roles: compileRoles(state.roles, collections),
        clients,
        legacyClients,
        legacyAuth,
        tokenExchange,
        rateLimits,
        ...(options.signingKeys?.[environment] && { signingKeys: options.signingKeys[environment] }),
        ...(Object.keys(entitySets).length > 0 && { entitySets }),
        ...(revokedCredentials.length > 0 && { revokedCredentials }),
      });
      // Encoded first: parsed durations are milliseconds, and a number given to the schema means seconds.
      const result = SnapshotSchema.safeParse(encodeSnapshot(draft));
      if (!result.success)
        throw new Error(`the compiled snapshot of ${scope} is invalid:\n${formatIssues(result.error)}`);
      snapshots.set(scope, result.data);
    }
  }
  return snapshots;
}

function targetName(target: DeploymentTarget): string {
  // '/' cannot occur in a gateway name, so the cloud sorts before every edge gateway and never collides with one.
  return target.type === 'cloud' ? '/cloud' : target.gateway;
}

/** The published specs of an environment's collections (drafts are never served), with their collection ids. */
function publishedSpecs(state: WorkspaceState, environment: string): { id: string; spec: CollectionSpec }[] {
  const specs: { id: string; spec: CollectionSpec }[] = [];
  for (const record of state.collections) {
    if (record.environment !== environment) continue;
    const version = state.published.get(record.id);
    if (version) specs.push({ id: record.id, spec: version.spec });
  }
  return specs;
}

/**
 * The entity sets of the served collections that have policies (the others' relationship data is never sent): the
 * entities travel beside the snapshot, on the entity stream (entity-feed.ts).
 */
function compileEntitySets(specs: { id: string; spec: CollectionSpec }[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const { id, spec } of specs) if (spec.policies !== undefined) out[spec.name] = id;
  return out;
}

/** The revocations in force of the environment's clients (a credential is only ever of its root key's client). */
function compileRevocations(state: WorkspaceState, clients: Client[], now: number): RevokedCredential[] {
  if (!state.revocations?.length) return [];
  const ids = new Set(clients.map((c) => c.id));
  return state.revocations
    .filter((r) => ids.has(r.clientId) && Date.parse(r.expiresAt) > now)
    .map((r) =>
      defined({
        id: r.id,
        client: r.clientId,
        credential: r.credential,
        agent: r.agent,
        session: r.session,
        issuedBefore: r.issuedBefore,
        expiresAt: r.expiresAt,
      }),
    );
}

function toCollection(spec: CollectionSpec, environment: string, cloudWorkspace: string | undefined): Collection {
  const { description: _description, target: _target, ...collection } = spec;
  if (cloudWorkspace === undefined) return { ...collection, environment };
  return {
    ...collection,
    environment,
    basePath: cloudBasePath(cloudWorkspace, environment, spec.basePath),
    // The prefix is the cloud gateway's: a backend that keeps the base path receives the one it declared.
    mountPath: cloudBasePath(cloudWorkspace, environment, '/'),
  };
}

/**
 * Every role of the workspace, keeping only the endpoint grants this scope can serve: a grant of an endpoint of
 * another scope's collection, or of one that the published version no longer has, would fail the snapshot's
 * reference check and hold back the whole environment.
 */
function compileRoles(records: RoleRecord[], collections: Collection[]): Role[] {
  const endpoints = new Set<string>();
  for (const c of collections) for (const e of c.endpoints) endpoints.add(endpointKey(c.name, e.method, e.path));
  return records.map((r) =>
    defined({
      name: r.name,
      description: r.description,
      permissions: r.permissions,
      endpoints: r.endpoints.filter((e) => endpoints.has(endpointKey(e.collection, e.method, e.path))),
    }),
  );
}

/** As the snapshot's reference check compares endpoints: templates differing only in parameter names are one. */
function endpointKey(collection: string, method: string, path: string): string {
  return `${collection} ${method} ${path.replace(/\{[^}]+\}/g, '{}')}`;
}

/**
 * The clients of an environment (`*` included) whose role exists and that have a key that still works. A client
 * whose role was deleted is left out, so its keys stop working everywhere.
 */
function compileClients(
  records: ClientRecord[],
  environment: string,
  roleNames: Map<string, string>,
  keysByClient: Map<string, KeyRecord[]>,
): { clients: Client[]; legacyClients: LegacyClient[] } {
  const clients: Client[] = [];
  const legacyClients: LegacyClient[] = [];
  for (const record of records) {
    if (!record.environments.includes(environment) && !record.environments.includes('*')) continue;
    const role = roleNames.get(record.roleId);
    const keys = [...(keysByClient.get(record.id) ?? [])].sort(
      (a, b) => compareStrings(a.createdAt, b.createdAt) || compareStrings(a.id, b.id),
    );
    if (role === undefined || keys.length === 0) continue;
    const common = defined({
      id: record.id,
      name: record.name,
      role,
      environments: record.environments,
      projects: record.projects,
      // Written as network addresses: ranges stored before host bits were refused (`10.1.2.3/8`) meant the same.
      allowedIps: record.allowedIps?.map(networkOf),
      userId: record.userId,
      orgId: record.orgId,
      metadata: record.metadata,
      rateLimits: record.rateLimits,
      quotas: record.quotas,
      expiresAt: record.expiresAt,
      status: record.status,
    });
    if (record.kind === 'legacy') {
      // A legacy client has exactly one key, never regenerated; the oldest wins should the records say otherwise.
      legacyClients.push({ ...common, email: record.email!, keyHash: keys[0]!.hash });
    } else {
      clients.push({ ...common, keys: keys.map((k) => defined({ hash: k.hash, id: k.id, expiresAt: k.expiresAt })) });
    }
  }
  return { clients, legacyClients };
}

/** The object without its undefined members, so that equal content compares and serializes equal. */
function defined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}
