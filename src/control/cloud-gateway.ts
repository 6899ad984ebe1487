/**
 * The cloud gateway: the data plane embedded in the control plane's process, serving every collection whose
 * deployment target is `cloud`, of every workspace. Each (workspace, environment) is a tenant with its own
 * snapshot, compiled on its own — its own key index, roles, policy chains and token minter — and only the routers
 * are merged, under each tenant's `/<workspace>/<environment>` prefix. So a key of one workspace can never
 * authenticate on another workspace's collection, whatever the roles say: the collection's chain only knows its
 * tenant's keys. Tokens are signed with one key store, so each tenant's minter stamps its tenant's own issuer
 * (`iss`): a token minted for one tenant does not pass the issuer check of another tenant's backend.
 */
import type { Logger } from 'pino';
import { type ServerSettings, type Snapshot, type TokenExchange, TokenExchangeSchema } from '../config/schema.ts';
import type { EgressPolicy } from '../gateway/http/egress.ts';
import { CollectionRouter } from '../gateway/http/router.ts';
import { createGatewayInstance, type GatewayInstance } from '../gateway/instance.ts';
import type { CompiledCollection, KeyEntry, RouteTable } from '../gateway/snapshot/compiled.ts';
import { startCompile, type SnapshotCompilation } from '../gateway/snapshot/compile.ts';
import type { SigningKeyStore } from '../gateway/tokens/keystore.ts';
import { createMinter } from '../gateway/tokens/minter.ts';

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
  #generation = 0;

  private constructor(instance: GatewayInstance, tokenExchange: TokenExchange) {
    this.instance = instance;
    this.#tokenExchange = tokenExchange;
  }

  static async create(options: CloudGatewayOptions): Promise<CloudGateway> {
    const tokenExchange: TokenExchange = { ...TokenExchangeSchema.parse({ issuer: 'urn:gatehouse:cloud-gateway', audience: 'urn:gatehouse:cloud-gateway' }), ...options.signing };
    const instance = await createGatewayInstance({ logger: options.logger, server: options.server, tokenExchange, egress: options.egress, baseDir: options.baseDir });
    return new CloudGateway(instance, tokenExchange);
  }

  /** Sets (or with `undefined`, removes) tenants' snapshots and applies the result; resolves once it serves them. */
  async update(changes: ReadonlyMap<string, Snapshot | undefined>): Promise<{ applied: boolean; error?: string }> {
    for (const [scope, snapshot] of changes) {
      if (snapshot) this.#tenants.set(scope, snapshot);
      else this.#tenants.delete(scope);
    }
    const tenants = [...this.#tenants.values()];
    const version = `cloud-${++this.#generation}`;
    const keys = this.instance.keys;
    const result = await this.instance.apply(async () => mergedCompilation(version, tenants, this.#tokenExchange, keys), { source: 'cloud gateway', log: false });
    return { applied: result.applied, error: result.error };
  }
}

/**
 * A compilation whose table is the union of every tenant's separately compiled table. Each tenant's chains get a
 * minter of their own, made with the tenant's token settings (its issuer above all) over the shared key store,
 * and made anew at every compilation: no cached token outlives an applied change.
 */
function mergedCompilation(version: string, tenants: readonly Snapshot[], tokenExchange: TokenExchange, signingKeys: SigningKeyStore): SnapshotCompilation {
  const parts = tenants.map((s) => startCompile(s));
  const snapshot: Snapshot = { version, collections: [], roles: [], clients: [], legacyClients: [], legacyAuth: tenants[0]?.legacyAuth ?? { keyHeader: 'x-api-key', emailHeader: 'x-api-email' }, tokenExchange, rateLimits: {} };
  return {
    snapshot,
    add() {
      throw new Error('the cloud gateway compiles whole tenant snapshots');
    },
    hasKey: (hash) => parts.some((p) => p.hasKey(hash)),
    finish(deps): RouteTable {
      const tables = parts.map((p) => {
        const t = p.snapshot.tokenExchange;
        const minter = createMinter({ issuer: t.issuer, audience: t.audience, ttlMs: t.ttl, claims: t.claims, keys: signingKeys });
        return p.finish({ ...deps, minter });
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
      return { version, router, collections, keys, legacyKeys, legacyKeyHeader: snapshot.legacyAuth.keyHeader, legacyEmailHeader: snapshot.legacyAuth.emailHeader };
    },
  };
}
