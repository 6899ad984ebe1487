/**
 * Compiles a validated snapshot into the immutable route table the request path reads: routers, key index,
 * roles expanded to endpoint-id sets (wildcard permissions included, so authorization stays one Set lookup), per-collection frozen policy chains. Runs once per snapshot; applying a
 * new snapshot is then one reference swap.
 *
 * Over 400 lines on purpose: one compilation pass over a snapshot; the helpers below it serve only that pass.
 */
import { blockList } from '../../shared/block-list.ts';
import type {
  Client,
  ConcurrencyPolicies,
  QuotaPolicies,
  Endpoint,
  LegacyClient,
  RateLimitPolicies,
  Snapshot,
} from '../../config/schema.ts';
import type { ConcurrencyStore } from '../../shared/concurrency-store.ts';
import { concurrency } from '../policies/concurrency/policy.ts';
import { defaultSlots } from '../policies/concurrency/memory-slots.ts';
import { concurrencyStats } from '../policies/concurrency/stats.ts';
import type { QuotaStore } from '../../shared/quota-store.ts';
import { createMemoryQuotas } from '../policies/quota/memory-quotas.ts';
import { quota } from '../policies/quota/policy.ts';
import { grantsPermission, WILDCARD } from '../../shared/permissions.ts';
import { segmentDepth } from '../http/canonical-path.ts';
import { CollectionRouter, EndpointMatcher } from '../http/router.ts';
import type { UpstreamPools } from '../http/upstream-pools.ts';
import { authenticate, stripCredentials } from '../policies/authenticate.ts';
import { authorize } from '../policies/authorize.ts';
import { ipAllow } from '../policies/ip-allow.ts';
import { DEFAULT_DERIVED, DerivedVerifier, TokenEndpoint } from '../tokens/token-endpoint.ts';
import type { Policy, RequestContext } from '../policies/policy.ts';
import type { RateLimitStore } from '../../shared/rate-limit-store.ts';
import { rateLimit } from '../policies/rate-limit/policy.ts';
import { tokenExchange } from '../policies/token-exchange.ts';
import { compilePolicySet, type Decision } from '../policies/resource-policy/compile-cedar.ts';
import { entityStore } from '../policies/resource-policy/entities.ts';
import type { EntitySets } from '../policies/resource-policy/entity-sets.ts';
import { resourcePolicy } from '../policies/resource-policy/policy.ts';
import type { EntityJson } from '../../shared/cedar.ts';
import { CollectionValidators } from '../policies/validate-request.ts';
import type { Minter } from '../tokens/minter.ts';
import { buildToolSet, type McpToolSet } from '../mcp/tools.ts';
import { CredentialRevocations } from '../tokens/revocations.ts';
import {
  type CompiledCollection,
  type CompiledEndpoint,
  type CompiledRole,
  KeyEntry,
  type Principal,
  type RouteTable,
} from './compiled.ts';

/** The in-process quota store of tables compiled without one (made on first use: most snapshots have no quotas). */
let defaultQuotas: QuotaStore | undefined;

export interface CompileDeps {
  pools: UpstreamPools;
  rateLimitStore: RateLimitStore;
  /** Where concurrency slots are counted; default: in this process (one store for every table, so a reload keeps the count). */
  concurrencyStore?: ConcurrencyStore;
  /** Where quotas are counted; default: in this process (one store for every table, so a reload keeps the count). */
  quotaStore?: QuotaStore;
  minter: Minter;
  onTokenError: (error: unknown, ctx: RequestContext) => void;
  /** Called when a collection's resource policies deny a request (the log names the deciding policies). */
  onResourceDenied?: ((ctx: RequestContext, decision: Decision) => void) | undefined;
  /** Relationship data of the collections the snapshot's `entitySets` names (kept across snapshots). */
  entitySets?: EntitySets;
  now?: () => number;
}

export function endpointId(collection: string, method: string, template: string): string {
  return `${collection} ${method} ${template}`;
}

/** Compiles a snapshot in one go. */
export function compileSnapshot(snapshot: Snapshot, deps: CompileDeps): RouteTable {
  return startCompile(snapshot).finish(deps);
}

/**
 * A snapshot being compiled: more clients can be added before `finish`, so that a large client set (a clients
 * file) streams into the key index one client at a time and no array of a million client objects is ever held.
 * Nothing outside the compilation is touched before `finish`: an abandoned compilation is just garbage.
 */
export interface SnapshotCompilation {
  /** The snapshot being compiled (its clients are not all of the clients when more are added). */
  readonly snapshot: Snapshot;
  /** Adds one client of the same snapshot (already validated and cross-checked: its role and key hashes). */
  add(client: Client): void;
  /** Whether a client or legacy client compiled so far has a key with this hash. */
  hasKey(hash: string): boolean;
  /** Builds the route table; call once. */
  finish(deps: CompileDeps): RouteTable;
}

export function startCompile(snapshot: Snapshot): SnapshotCompilation {
  const roles = compileRoles(snapshot);
  const interned = new Interner();
  const keys = new Map<string, KeyEntry>();
  const legacyKeys = new Map<string, KeyEntry>();
  let clientLimits = false;
  let clientQuotas = false;

  const addClient = (client: Client) => {
    if (client.rateLimits && (client.rateLimits.key || client.rateLimits.client)) clientLimits = true;
    if (client.quotas?.client) clientQuotas = true;
    const principal = compilePrincipal('client', client, roles, interned);
    if (!principal) return;
    for (const key of client.keys) {
      keys.set(key.hash, new KeyEntry(principal, key.hash, epoch(key.expiresAt), key.id));
    }
  };
  for (const client of snapshot.clients) addClient(client);
  for (const client of snapshot.legacyClients) {
    if (client.rateLimits && (client.rateLimits.key || client.rateLimits.client)) clientLimits = true;
    if (client.quotas?.client) clientQuotas = true;
    const principal = compilePrincipal('legacy', client, roles, interned);
    if (!principal) continue;
    legacyKeys.set(client.keyHash, new KeyEntry(principal, client.keyHash, Infinity, undefined));
  }

  return {
    snapshot,
    add: addClient,
    hasKey: (hash) => keys.has(hash) || legacyKeys.has(hash),
    finish: (deps) => finishCompile(snapshot, deps, keys, legacyKeys, clientLimits, clientQuotas),
  };
}

function finishCompile(
  snapshot: Snapshot,
  deps: CompileDeps,
  keys: Map<string, KeyEntry>,
  legacyKeys: Map<string, KeyEntry>,
  clientLimits: boolean,
  clientQuotas: boolean,
): RouteTable {
  const derivedSettings = snapshot.tokenExchange.derived;
  const verifier = new DerivedVerifier(
    keys,
    deps.minter.keys,
    deps.now,
    new CredentialRevocations(snapshot.revokedCredentials, deps.now),
  );
  const tokenEndpoint = new TokenEndpoint(
    keys,
    deps.minter.keys,
    {
      maxTtlMs: derivedSettings?.maxTtl ?? DEFAULT_DERIVED.maxTtlMs,
      maxDepth: derivedSettings?.maxDepth ?? DEFAULT_DERIVED.maxDepth,
    },
    verifier,
    deps.now,
  );
  const auth = authenticate({
    derived: verifier,
    keys,
    legacyKeys,
    legacyKeyHeader: snapshot.legacyAuth.keyHeader,
    legacyEmailHeader: snapshot.legacyAuth.emailHeader,
    now: deps.now,
  });
  const strip = stripCredentials({
    legacyKeys,
    legacyKeyHeader: snapshot.legacyAuth.keyHeader,
    legacyEmailHeader: snapshot.legacyAuth.emailHeader,
  });
  const ip = ipAllow(verifier);
  const authz = authorize({ explain: true });
  const authzQuiet = authorize({ explain: false });

  const router = new CollectionRouter<CompiledCollection>();
  const collections: CompiledCollection[] = [];
  const entitiesOf = new Map<string, EntityJson[]>();
  for (const e of snapshot.entities ?? []) {
    let list = entitiesOf.get(e.collection);
    if (!list) entitiesOf.set(e.collection, (list = []));
    list.push({ uid: e.uid, attrs: e.attrs, parents: e.parents } as EntityJson);
  }
  // A collection named in `entitySets` reads the set the entity stream keeps; one of a static snapshot, its own.
  const entitiesFor = (collection: string) => {
    const set = snapshot.entitySets?.[collection];
    if (set !== undefined && deps.entitySets !== undefined) return deps.entitySets.get(set);
    return entityStore(entitiesOf.get(collection));
  };
  for (const c of snapshot.collections) {
    const url = new URL(c.upstream.url);
    const limits = mergeLimits(snapshot.rateLimits, c.rateLimits);
    const chain: Policy[] = [];
    if (c.authRequired) {
      chain.push(auth, ip, c.hidePermissions ? authzQuiet : authz);
      // Throws on a policy set that does not parse: the snapshot is refused and the last good one stays.
      if (c.policies && c.policies.cedar.trim() !== '')
        chain.push(
          resourcePolicy({
            collection: c,
            policies: compilePolicySet(c.policies.cedar),
            entities: entitiesFor(c.name),
            onDeny: deps.onResourceDenied,
          }),
        );
      if (limits.key || limits.client || limits.org || clientLimits) {
        chain.push(
          rateLimit({
            store: deps.rateLimitStore,
            limits,
            collection: c.name,
            route: `${c.host ?? '*'} ${c.basePath}`,
          }),
        );
      }
      const caps = mergeCaps(snapshot.concurrency, c.concurrency);
      if (caps.key || caps.client || caps.org) {
        chain.push(
          concurrency({
            store: deps.concurrencyStore ?? defaultSlots,
            caps,
            route: `${c.host ?? '*'} ${c.basePath}`,
            stats: concurrencyStats,
          }),
        );
      }
      const quotas = mergeQuotas(snapshot.quotas, c.quotas);
      if (quotas.client || quotas.org || clientQuotas) {
        chain.push(
          quota({
            store: deps.quotaStore ?? (defaultQuotas ??= createMemoryQuotas()),
            quotas,
            collection: c.name,
            route: `${c.host ?? '*'} ${c.basePath}`,
          }),
        );
      }
      chain.push(
        tokenExchange({
          minter: deps.minter,
          environment: c.environment,
          project: c.project,
          audience: c.audience,
          onError: deps.onTokenError,
        }),
      );
    } else {
      chain.push(strip);
    }
    const endpoints = new EndpointMatcher<CompiledCollection, CompiledEndpoint>();
    // Filled in once the endpoints are compiled (the tools point at them); frozen with it.
    const mcp = c.mcp?.enabled ? { path: c.mcp.path, tools: undefined as unknown as McpToolSet } : undefined;
    const collection: CompiledCollection = Object.freeze({
      name: c.name,
      basePath: c.basePath,
      baseDepth: segmentDepth(c.basePath),
      host: c.host,
      project: c.project,
      environment: c.environment,
      stripBasePath: c.stripBasePath,
      mountPath: c.mountPath !== undefined && c.mountPath !== '/' ? c.mountPath : '',
      websocket: c.websocket,
      authRequired: c.authRequired,
      upstream: {
        origin: url.origin,
        pathPrefix: url.pathname.replace(/\/+$/, ''),
        pool: deps.pools.get({
          origin: url.origin,
          connections: c.upstream.connections,
          connectTimeout: c.upstream.connectTimeout,
        }),
        headersTimeout: c.upstream.headersTimeout,
        bodyTimeout: c.upstream.bodyTimeout,
        egressDenied: deps.pools.literalRefusal(url),
      },
      limits,
      endpoints,
      chain: Object.freeze(chain),
      mcp,
    });
    const publicChain: readonly Policy[] = Object.freeze([strip]);
    let validators: CollectionValidators | undefined;
    const chainOf = (e: Endpoint): readonly Policy[] => {
      const base = c.authRequired && e.public && c.publicEndpoints ? publicChain : collection.chain;
      if (!(e.validate ?? c.validateRequests) || !e.request) return base;
      validators ??= new CollectionValidators(c.schemas);
      const check = validators.policy(e, c.maxBodyBytes);
      if (!check) return base;
      // Validation runs after authorization and rate limiting (an unauthorized caller learns nothing about the
      // schema and cannot spend the gateway's CPU for free), before a token is minted.
      const last = base[base.length - 1];
      return Object.freeze(
        base === collection.chain && c.authRequired ? [...base.slice(0, -1), check, last!] : [...base, check],
      );
    };
    const compiledEndpoints: CompiledEndpoint[] = [];
    for (const e of c.endpoints) {
      const endpoint: CompiledEndpoint = Object.freeze({
        id: endpointId(c.name, e.method, e.path),
        method: e.method,
        template: e.path,
        permission: e.permission,
        collection,
        paramNames: [...e.path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]!),
        // A public endpoint (OpenAPI `security: []`) exists only where the collection allows it (schema check).
        chain: chainOf(e),
        cost: e.cost ?? 1,
      });
      endpoints.add(endpoint);
      compiledEndpoints.push(endpoint);
    }
    if (mcp !== undefined) {
      // The MCP request authenticates as the collection's requests do (the tools run their endpoints' chains).
      mcp.tools = buildToolSet(c, c.mcp!, compiledEndpoints, c.authRequired ? [auth, ip] : []);
      Object.freeze(mcp);
    }
    router.add(collection);
    collections.push(collection);
  }

  return Object.freeze({
    version: snapshot.version === undefined ? new Date().toISOString() : String(snapshot.version),
    router,
    collections,
    keys,
    legacyKeys,
    legacyKeyHeader: snapshot.legacyAuth.keyHeader,
    legacyEmailHeader: snapshot.legacyAuth.emailHeader,
    tokenEndpoints: new Map([['', tokenEndpoint]]),
  });
}

/**
 * One route table serving the collections and keys of several compiled ones (the cloud gateway's tenants, each
 * compiled on its own with its own minter): routers merged, key maps merged.
 */
export function mergeRouteTables(
  version: string,
  tables: readonly RouteTable[],
  legacyAuth: { keyHeader: string; emailHeader: string },
  /** Each table's path prefix (`/<workspace>/<environment>`), where its token endpoint answers; undefined: none. */
  prefixes: readonly (string | undefined)[] = [],
): RouteTable {
  const tokenEndpoints = new Map<string, TokenEndpoint>();
  tables.forEach((t, i) => {
    const endpoint = t.tokenEndpoints?.get('');
    const prefix = prefixes[i];
    if (endpoint !== undefined && prefix !== undefined) tokenEndpoints.set(prefix, endpoint);
  });
  const router = new CollectionRouter<CompiledCollection>();
  const collections: CompiledCollection[] = [];
  const keys = new Map<string, KeyEntry>();
  const legacyKeys = new Map<string, KeyEntry>();
  for (const t of tables) {
    for (const c of t.collections) {
      router.add(c);
      collections.push(c);
    }
    for (const [h, k] of t.keys) keys.set(h, k);
    for (const [h, k] of t.legacyKeys) legacyKeys.set(h, k);
  }
  return Object.freeze({
    version,
    router,
    collections,
    keys,
    legacyKeys,
    legacyKeyHeader: legacyAuth.keyHeader,
    legacyEmailHeader: legacyAuth.emailHeader,
    tokenEndpoints,
  });
}

function compileRoles(snapshot: Snapshot): Map<string, CompiledRole> {
  // Permission name → endpoint ids, across all collections.
  const byPermission = new Map<string, string[]>();
  const all: string[] = [];
  // Endpoints with permission sets (OpenAPI security: OR of ANDs): a role must grant every permission of one set.
  const bySets: { id: string; sets: readonly (readonly string[])[] }[] = [];
  for (const c of snapshot.collections) {
    for (const e of c.endpoints) {
      const id = endpointId(c.name, e.method, e.path);
      all.push(id);
      if (e.permissionSets) {
        bySets.push({ id, sets: e.permissionSets });
        continue;
      }
      let list = byPermission.get(e.permission);
      if (!list) byPermission.set(e.permission, (list = []));
      list.push(id);
    }
  }
  const roles = new Map<string, CompiledRole>();
  for (const r of snapshot.roles) {
    const ids = new Set<string>();
    for (const p of r.permissions) {
      if (p === WILDCARD) {
        for (const id of all) ids.add(id);
      } else if (p.endsWith(':*')) {
        for (const [permission, list] of byPermission)
          if (grantsPermission(p, permission)) for (const id of list) ids.add(id);
      } else {
        for (const id of byPermission.get(p) ?? []) ids.add(id);
      }
    }
    for (const { id, sets } of bySets) {
      if (sets.some((set) => set.every((needed) => r.permissions.some((held) => grantsPermission(held, needed)))))
        ids.add(id);
    }
    for (const e of r.endpoints) {
      // Match by template shape, so a grant survives a renamed path parameter.
      const shape = e.path.replace(/\{[^}]+\}/g, '{}');
      const collection = snapshot.collections.find((c) => c.name === e.collection);
      const target = collection?.endpoints.find(
        (x) => x.method === e.method && x.path.replace(/\{[^}]+\}/g, '{}') === shape,
      );
      if (target) ids.add(endpointId(e.collection, target.method, target.path));
    }
    roles.set(
      r.name,
      Object.freeze({ name: r.name, permissions: Object.freeze([...r.permissions]), endpointIds: ids }),
    );
  }
  return roles;
}

/**
 * Clients mostly share a handful of environment and project combinations: one Set per distinct combination
 * instead of two per client keeps a million-client snapshot within its memory budget.
 */
class Interner {
  #sets = new Map<string, ReadonlySet<string>>();

  set(values: readonly string[]): ReadonlySet<string> {
    const id = values.length === 1 ? values[0]! : values.join('\u0000');
    let set = this.#sets.get(id);
    if (!set) this.#sets.set(id, (set = new Set(values)));
    return set;
  }
}

function compilePrincipal(
  kind: 'client' | 'legacy',
  c: Client | LegacyClient,
  roles: Map<string, CompiledRole>,
  interned: Interner,
): Principal | undefined {
  const role = roles.get(c.role);
  if (!role) return undefined; // the schema refuses unknown roles; a role deleted under a client fails closed
  return Object.freeze({
    kind,
    id: c.id,
    role,
    environments: interned.set(c.environments),
    projects: interned.set(c.projects),
    allowedIps: c.allowedIps?.length ? blockList(c.allowedIps) : undefined,
    allowedIpRanges: c.allowedIps?.length ? c.allowedIps : undefined,
    userId: c.userId,
    orgId: c.orgId,
    metadata: c.metadata,
    limits: c.rateLimits ? { key: c.rateLimits.key, client: c.rateLimits.client } : NO_LIMITS,
    quota: c.quotas?.client,
    expiresAt: epoch(c.expiresAt),
    disabled: c.status === 'disabled',
    email: 'email' in c ? c.email.toLowerCase() : undefined,
  });
}

const NO_LIMITS = Object.freeze({});

function mergeLimits(defaults: RateLimitPolicies, own: RateLimitPolicies | undefined): RateLimitPolicies {
  return { key: own?.key ?? defaults.key, client: own?.client ?? defaults.client, org: own?.org ?? defaults.org };
}

function mergeQuotas(defaults: QuotaPolicies | undefined, own: QuotaPolicies | undefined): QuotaPolicies {
  const timeZone = own?.timeZone ?? defaults?.timeZone;
  return {
    client: own?.client ?? defaults?.client,
    org: own?.org ?? defaults?.org,
    ...(timeZone !== undefined ? { timeZone } : {}),
  };
}

function mergeCaps(
  defaults: ConcurrencyPolicies | undefined,
  own: ConcurrencyPolicies | undefined,
): ConcurrencyPolicies {
  return {
    key: own?.key ?? defaults?.key,
    client: own?.client ?? defaults?.client,
    org: own?.org ?? defaults?.org,
    queue: own?.queue ?? defaults?.queue,
  };
}

function epoch(iso: string | undefined): number {
  return iso === undefined ? Infinity : Date.parse(iso);
}
