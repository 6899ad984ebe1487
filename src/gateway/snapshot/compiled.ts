/** The compiled, immutable form of a snapshot that the request path reads. */
import type { TokenEndpoint } from '../tokens/token-endpoint.ts';
import type { BlockList } from 'node:net';
import type { Pool } from 'undici';
import type { Quota, RateLimit } from '../../config/schema.ts';
import type { EgressDeniedError } from '../http/egress.ts';
import type { Policy } from '../policies/policy.ts';
import type { CollectionRouter, EndpointMatcher, RouteEndpoint } from '../http/router.ts';
import type { McpToolSet } from '../mcp/tools.ts';

export interface CompiledUpstream {
  readonly origin: string;
  /** The upstream URL's own path without trailing '/', prepended to the forwarded path ('' for none). */
  readonly pathPrefix: string;
  readonly pool: Pool;
  readonly headersTimeout: number;
  readonly bodyTimeout: number;
  /** Set when the host is an IP literal the egress policy refuses: requests are refused without a connection attempt. */
  readonly egressDenied: EgressDeniedError | undefined;
}

export interface CompiledCollection {
  readonly name: string;
  readonly basePath: string;
  readonly baseDepth: number;
  readonly host: string | undefined;
  readonly project: string;
  readonly environment: string;
  readonly stripBasePath: boolean;
  /** The start of the base path that is the gateway's own (`Collection.mountPath`), '' for none. */
  readonly mountPath: string;
  readonly websocket: boolean;
  readonly authRequired: boolean;
  readonly upstream: CompiledUpstream;
  readonly limits: { readonly key?: RateLimit; readonly client?: RateLimit; readonly org?: RateLimit };
  readonly endpoints: EndpointMatcher<CompiledCollection, CompiledEndpoint>;
  /** The frozen policy chain the collection's endpoints run (an endpoint may have its own: see `CompiledEndpoint`). */
  readonly chain: readonly Policy[];
  /** The MCP server's tools, when the collection is served as one (`mcp`), and its path relative to the base path. */
  readonly mcp?: { readonly path: string; readonly tools: McpToolSet } | undefined;
}

export interface CompiledEndpoint extends RouteEndpoint<CompiledCollection> {
  /**
   * The frozen policy chain every request to this endpoint runs: the collection's, or for a public endpoint only
   * the credential stripping, or the collection's with request validation (OpenAPI) before token exchange.
   */
  readonly chain: readonly Policy[];
  /** Units one call spends of every rate limit and quota (the endpoint's `cost`, or `x-gatehouse-cost`): 1 by default. */
  readonly cost: number;
}

export interface CompiledRole {
  readonly name: string;
  /** Permission names carried in minted tokens. */
  readonly permissions: readonly string[];
  /** Ids of the endpoints this role grants (expanded from permissions, wildcards included, and endpoint grants). */
  readonly endpointIds: ReadonlySet<string>;
}

/** An API client or legacy client, as the request path sees it. */
export interface Principal {
  readonly kind: 'client' | 'legacy';
  readonly id: string;
  readonly role: CompiledRole;
  /** Holds `*` when the client may call collections of every environment. */
  readonly environments: ReadonlySet<string>;
  /** Holds `*` when the client may call collections of every project. */
  readonly projects: ReadonlySet<string>;
  readonly allowedIps: BlockList | undefined;
  /** The same ranges as written (CIDR): derived credentials may only narrow them. */
  readonly allowedIpRanges?: readonly string[] | undefined;
  readonly userId: string | undefined;
  readonly orgId: string | undefined;
  readonly metadata: Record<string, string | number | boolean> | undefined;
  readonly limits: { readonly key?: RateLimit; readonly client?: RateLimit };
  /** The client's own quota, overriding the collections' `quotas.client`. */
  readonly quota?: Quota | undefined;
  /** Epoch ms, or Infinity. */
  readonly expiresAt: number;
  readonly disabled: boolean;
  /** Legacy clients: lower-cased email that must accompany the key. */
  readonly email: string | undefined;
}

/** One API key. A class, so a million of them share one shape and the log label is built only when logged. */
export class KeyEntry {
  readonly principal: Principal;
  /** SHA-256 hex of the key: the identity of the key in counters and caches, never the key itself. */
  readonly hash: string;
  /** Epoch ms, or Infinity. */
  readonly expiresAt: number;
  readonly #id: string | undefined;

  constructor(principal: Principal, hash: string, expiresAt: number, id: string | undefined) {
    this.principal = principal;
    this.hash = hash;
    this.expiresAt = expiresAt;
    this.#id = id;
  }

  /** Safe label for logs: the configured key id, else `<client>#<first 8 hex of the hash>`. */
  get label(): string {
    return this.#id ?? `${this.principal.id}#${this.principal.kind === 'legacy' ? 'legacy' : this.hash.slice(0, 8)}`;
  }
}

export interface RouteTable {
  readonly version: string;
  readonly router: CollectionRouter<CompiledCollection>;
  readonly collections: readonly CompiledCollection[];
  /** SHA-256 hex → key, for Gatehouse-format keys. */
  readonly keys: ReadonlyMap<string, KeyEntry>;
  /** SHA-256 hex → key, for legacy clients (key + email). */
  readonly legacyKeys: ReadonlyMap<string, KeyEntry>;
  readonly legacyKeyHeader: string;
  readonly legacyEmailHeader: string;
  /**
   * Token endpoints (derived credentials) by path prefix: '' on an edge gateway, `/<workspace>/<environment>` per
   * tenant on the cloud gateway.
   */
  readonly tokenEndpoints?: ReadonlyMap<string, TokenEndpoint>;
}
