/**
 * The cloud gateway: the data plane embedded in the control plane's process, serving every collection whose
 * deployment target is `cloud`, of every workspace. Each (workspace, environment) is a tenant with its own
 * snapshot, compiled on its own — its own key index, roles, policy chains and token minter — and only the routers
 * are merged, under each tenant's `/<workspace>/<environment>` prefix. So a key of one workspace can never
 * authenticate on another workspace's collection, whatever the roles say: the collection's chain only knows its
 * tenant's keys. Each tenant's minter stamps its tenant's own issuer (`iss`) and signs with its tenant's keys
 * (`signingKeys` of its snapshot, owned by the control plane and shared with the environment's edge gateways):
 * a token minted for one tenant does not pass the issuer or signature check of another tenant's backend.
 * `/.well-known/jwks.json` serves every tenant's public keys (and the local store's while a tenant snapshot without
 * keys uses it); `<prefix>/.well-known/jwks.json` — that is `${iss}/.well-known/jwks.json` — one tenant's.
 *
 * Nothing of it is on disk: the local store is in memory. The publisher gives every tenant snapshot its
 * environment's keys from the store (sealed there like every secret), so every replica signs with the same keys and
 * serves the same JWKS; a per-replica key file would only add a key that signs nothing and differs per replica.
 */
import type { Logger } from 'pino';
import { type ServerSettings, type Snapshot, type TokenExchange, TokenExchangeSchema } from '../config/schema.ts';
import {
  createGatewayInstance,
  createMinter,
  type EgressPolicy,
  type GatewayInstance,
  mergeRouteTables,
  openDistributedKeyStore,
  type RouteTable,
  type SigningKeyStore,
  type SnapshotCompilation,
  startCompile,
} from '../gateway/index.ts';
import { canonicalJson } from '../config/snapshot-encoding.ts';

export interface CloudGatewayOptions {
  logger: Logger;
  server: ServerSettings;
  /**
   * The signing algorithm and token lifetime of the key store every tenant's tokens are signed with (the tenants'
   * snapshots carry the same). Default: `EdDSA`, 5 minutes.
   */
  signing?: Pick<TokenExchange, 'algorithm' | 'ttl'>;
  /** Where upstream connections may go; see `startControlPlane`. Default: made from `server.egress`. */
  egress?: EgressPolicy;
  baseDir?: string;
}

export class CloudGateway {
  readonly instance: GatewayInstance;
  /** The merged table's token settings: they configure the key store; the instance's own minter mints nothing. */
  readonly #tokenExchange: TokenExchange;
  readonly #tenants = new Map<string, Snapshot>();
  readonly #jwks: TenantJwks;
  /** Distributed key stores by the canonical JSON of their keys, reused while a tenant's keys do not change. */
  #stores = new Map<string, SigningKeyStore>();
  #generation = 0;
  #queue: Promise<unknown> = Promise.resolve();

  private constructor(instance: GatewayInstance, tokenExchange: TokenExchange, jwks: TenantJwks) {
    this.instance = instance;
    this.#tokenExchange = tokenExchange;
    this.#jwks = jwks;
  }

  static async create(options: CloudGatewayOptions): Promise<CloudGateway> {
    const tokenExchange: TokenExchange = {
      ...TokenExchangeSchema.parse({ issuer: 'urn:gatehouse:cloud-gateway', audience: 'urn:gatehouse:cloud-gateway' }),
      ...options.signing,
    };
    const jwks = new TenantJwks();
    const instance = await createGatewayInstance({
      logger: options.logger,
      server: options.server,
      tokenExchange,
      egress: options.egress,
      baseDir: options.baseDir,
      jwks: (prefix) => jwks.body(prefix),
      notFoundHint: (path, host, table) => tenantPrefixHint(path, host, table, jwks.tenants.keys()),
      keysFromSnapshots: true,
    });
    return new CloudGateway(instance, tokenExchange, jwks);
  }

  /** Sets (or with `undefined`, removes) tenants' snapshots and applies the result; resolves once it serves them. */
  async update(changes: ReadonlyMap<string, Snapshot | undefined>): Promise<{ applied: boolean; error?: string }> {
    for (const [scope, snapshot] of changes) {
      if (snapshot) this.#tenants.set(scope, snapshot);
      else this.#tenants.delete(scope);
    }
    // One at a time: the JWKS published around an application must be that application's.
    const run = this.#queue.then(() => this.#apply());
    this.#queue = run.catch(() => {});
    return run;
  }

  async #apply(): Promise<{ applied: boolean; error?: string }> {
    const tenants = [...this.#tenants.values()];
    const version = `cloud-${++this.#generation}`;
    // The cloud snapshot carries no keys of its own: the instance's keys are the local store.
    const local = this.instance.keys;
    const before = this.#jwks.tenants;
    let after: Map<string, SigningKeyStore> | undefined;
    const result = await this.instance.apply(
      async () => {
        const stores = new Map<string, SigningKeyStore>();
        const tenantKeys: SigningKeyStore[] = [];
        after = new Map();
        for (const t of tenants) {
          let store = local;
          if (t.signingKeys !== undefined) {
            const source = canonicalJson(t.signingKeys);
            store = stores.get(source) ?? this.#stores.get(source) ?? (await openDistributedKeyStore(t.signingKeys));
            stores.set(source, store);
          }
          tenantKeys.push(store);
          const prefix = issuerPrefix(t.tokenExchange.issuer);
          if (prefix !== undefined) after.set(prefix, store);
        }
        this.#stores = stores;
        // The local (in-memory) keys are published only while a tenant signs with them.
        this.#jwks.local = tenantKeys.includes(local) ? local : undefined;
        // New keys are published before the table that signs with them is in force (old ones stay until after).
        this.#jwks.set(new Map([...before, ...after]));
        return mergedCompilation(version, tenants, tenantKeys, this.#tokenExchange);
      },
      { source: 'cloud gateway', log: false },
    );
    this.#jwks.set(result.applied && after !== undefined ? after : before);
    // Relationship data of collections no tenant serves any more is dropped.
    if (result.applied)
      this.instance.entitySets.retain(new Set(tenants.flatMap((t) => Object.values(t.entitySets ?? {}))));
    return { applied: result.applied, error: result.error };
  }
}

/**
 * The JWKS bodies the cloud gateway serves: per tenant prefix (`/<workspace>/<environment>`), and the union of
 * every tenant's keys (and the local store's, while a tenant uses it) at `/.well-known/jwks.json`, computed once
 * per change.
 */
class TenantJwks {
  local: SigningKeyStore | undefined;
  tenants = new Map<string, SigningKeyStore>();
  #union: { local: string; body: string } | undefined;

  set(tenants: Map<string, SigningKeyStore>): void {
    this.tenants = tenants;
    this.#union = undefined;
  }

  body(prefix: string): string | undefined {
    if (prefix !== '') return this.tenants.get(prefix)?.jwks();
    const local = this.local?.jwks() ?? '{"keys":[]}';
    if (this.#union?.local !== local) {
      const keys = new Map<string, unknown>();
      for (const text of [local, ...new Set([...this.tenants.values()].map((s) => s.jwks()))]) {
        for (const k of (JSON.parse(text) as { keys: { kid: string }[] }).keys) keys.set(k.kid, k);
      }
      this.#union = { local, body: JSON.stringify({ keys: [...keys.values()] }) };
    }
    return this.#union.body;
  }
}

/** `/<workspace>/<environment>` of a tenant issuer (`tenantIssuer`): its last two path segments. */
function issuerPrefix(issuer: string): string | undefined {
  if (!URL.canParse(issuer)) return undefined;
  const segments = new URL(issuer).pathname.split('/').filter(Boolean);
  return segments.length < 2 ? undefined : `/${segments.slice(-2).join('/')}`;
}

/**
 * A compilation whose table is the union of every tenant's separately compiled table. Each tenant's chains get a
 * minter of their own, made with the tenant's token settings (its issuer above all) over the tenant's keys,
 * and made anew at every compilation: no cached token outlives an applied change.
 */
function mergedCompilation(
  version: string,
  tenants: readonly Snapshot[],
  tenantKeys: readonly SigningKeyStore[],
  tokenExchange: TokenExchange,
): SnapshotCompilation {
  const parts = tenants.map((s) => startCompile(s));
  const snapshot: Snapshot = {
    version,
    collections: [],
    roles: [],
    clients: [],
    legacyClients: [],
    legacyAuth: tenants[0]?.legacyAuth ?? { keyHeader: 'x-api-key', emailHeader: 'x-api-email' },
    tokenExchange,
    rateLimits: {},
  };
  return {
    snapshot,
    add() {
      throw new Error('the cloud gateway compiles whole tenant snapshots');
    },
    hasKey: (hash) => parts.some((p) => p.hasKey(hash)),
    finish(deps): RouteTable {
      const tables = parts.map((p, i) => {
        const t = p.snapshot.tokenExchange;
        const minter = createMinter({
          issuer: t.issuer,
          audience: t.audience,
          ttlMs: t.ttl,
          claims: t.claims,
          keys: tenantKeys[i]!,
        });
        return p.finish({ ...deps, minter });
      });
      const prefixes = parts.map((p) => issuerPrefix(p.snapshot.tokenExchange.issuer));
      return mergeRouteTables(version, tables, snapshot.legacyAuth, prefixes);
    },
  };
}

/** At most this many tenants are named in one 404. */
const HINTS = 3;

/**
 * The detail of a cloud-gateway 404 for a path that lacks its tenant prefix: every collection sits under its
 * workspace environment's `/<workspace>/<environment>`, and a path that would match with one of them says so.
 */
export function tenantPrefixHint(
  path: string,
  host: string | undefined,
  table: RouteTable,
  prefixes: Iterable<string>,
): string | undefined {
  if (path.length > 512 || !path.startsWith('/')) return undefined;
  const hits: string[] = [];
  for (const prefix of prefixes) {
    if (path === prefix || path.startsWith(`${prefix}/`)) continue;
    const collection = table.router.match(host, prefix + path);
    if (collection !== undefined) hits.push(`${prefix}${path} (collection "${collection.name}")`);
    if (hits.length === HINTS) break;
  }
  if (hits.length === 0) return undefined;
  return `No API collection serves ${path}. On the cloud gateway every collection sits under its workspace and environment, /<workspace>/<environment>: try ${hits.join(' or ')}.`;
}
