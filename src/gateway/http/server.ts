/**
 * Length (about 710 lines): the listener class and the three ways a request ends (proxied, refused,
 * upgraded to a WebSocket tunnel), which share its private state; routing (route.ts) and the request and its
 * policy chain (exchange.ts) live apart.
 *
 * The data-plane listener: canonical path → route match → the collection's frozen policy chain → proxy.
 * The route table is one reference; applying a snapshot swaps it, requests in flight keep the table they
 * started with.
 */
import { blockList } from '../../shared/block-list.ts';
import { nextRequestId } from './request-id.ts';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Duplex } from 'node:stream';
import { BlockList, isIPv4, type AddressInfo } from 'node:net';
import type { AccessLog } from '../observability/access-log.ts';
import { channels } from '../observability/channels.ts';
import type { GatewayMetrics } from '../observability/metrics.ts';
import type { RequestContext } from '../policies/policy.ts';
import type { CompiledCollection, RouteTable } from '../snapshot/compiled.ts';
import { type ChainEnd, type ClientAddress, Exchange, publishAuthFailure, runChain } from './exchange.ts';
import { ERRORS, type ErrorCode, type Refusal, refusal, sendProblem, writeRawProblem } from '../../shared/errors.ts';
import { methodOverride } from './header-rules.ts';
import { type TokenAnswer, type TokenEndpoint, TOKEN_PATH } from '../tokens/token-endpoint.ts';
import { HostList } from './host-list.ts';
import { classify, type ForwardInfo, proxy, type ProxyDone, upstreamHeaders, upstreamPath } from './proxy.ts';
import { RouteCache, routeKey } from './route-cache.ts';
import { hostname, matchRoute, METHOD_NOT_SUPPORTED, NOT_FOUND, refuseBeforeRouting, type Routed } from './route.ts';
import { canonicalize } from './canonical-path.ts';
import { relativePath } from './router.ts';
import type { McpServeDeps } from '../mcp/endpoint.ts';
import {
  AUTHORIZATION_SERVER_PATH,
  authorizationServerMetadata,
  metadataUrl,
  PROTECTED_RESOURCE_PATH,
  protectedResourceMetadata,
  publicOrigin,
} from '../mcp/metadata.ts';

/** What a 404 says beyond "no route": given the request's path, its Host's name and the table in force. */
export type NotFoundHint = (path: string, host: string | undefined, table: RouteTable) => string | undefined;

export interface GatewayServerOptions {
  /** One line per request; undefined when the log level is above info. */
  accessLog: AccessLog | undefined;
  /** A bug on the request path (the client gets a 500 with the request id; the details go here, not to it). */
  onError: (error: unknown, requestId: string) => void;
  metrics: GatewayMetrics;
  /** JWKS body for /.well-known/jwks.json. */
  jwks: () => string;
  /** JWKS body for `<prefix>/.well-known/jwks.json` (a tenant's keys on the cloud gateway); undefined: not found. */
  tenantJwks?: (prefix: string) => string | undefined;
  /** The detail of a 404 (a path that would match elsewhere); called only when no route matched. */
  notFoundHint?: NotFoundHint;
  /** CIDR ranges of proxies allowed to set X-Forwarded-For. */
  trustedProxies?: readonly string[];
  /**
   * Hosts the gateway answers for (`api.example.com`, `api.example.com:8443`, `*.example.com`): a request whose Host
   * is none of them is refused (421) unless its collection names its own host, and only such a Host is forwarded in
   * `X-Forwarded-Host`/`Forwarded`. Empty or absent: every Host is served and none is forwarded.
   */
  publicHosts?: readonly string[];
  tls?: { cert: Buffer | string; key: Buffer | string };
  /** An upstream connection the egress policy refused (`EgressDeniedError`), for the log: with its collection. */
  onEgressDenied?: (error: Error, collection: CompiledCollection, requestId: string) => void;
}

const UNSUPPORTED_TE = refusal('GH_ERR_REQUEST_UNSUPPORTED_TRANSFER_CODING');
const METHOD_OVERRIDE = refusal(
  'GH_ERR_REQUEST_METHOD_OVERRIDE',
  'Method-override headers are not accepted; send the real method.',
);
const WEBSOCKET_NOT_ALLOWED = refusal('GH_ERR_WEBSOCKET_NOT_ALLOWED');
const JWKS_PATH = '/.well-known/jwks.json';
const INTERNAL = refusal('GH_ERR_GATEWAY_INTERNAL');
/** Largest token request body accepted (bytes). */
const TOKEN_BODY_MAX = 16_384;
/** Seconds a client is told to wait while the gateway has no configuration yet. */
const NOT_READY_RETRY_AFTER_S = 2;

export class GatewayServer {
  readonly server: Server;
  #table: RouteTable | undefined;
  /** Route matches of `#table` (a new table gets a new cache). */
  #routes = new RouteCache<Routed>();
  #accessLog: AccessLog | undefined;
  #onError: (error: unknown, requestId: string) => void;
  #onEgressDenied: GatewayServerOptions['onEgressDenied'];
  #metrics: GatewayMetrics;
  #jwks: () => string;
  #tenantJwks: ((prefix: string) => string | undefined) | undefined;
  #notFoundHint: NotFoundHint | undefined;
  #trusted: BlockList | undefined;
  #publicHosts: HostList | undefined;
  #proto: 'http' | 'https';
  /** Open WebSocket tunnels (client sockets): closed on shutdown, since the server no longer tracks them. */
  #tunnels = new Set<Duplex>();

  constructor(options: GatewayServerOptions) {
    this.#accessLog = options.accessLog;
    this.#onError = options.onError;
    this.#onEgressDenied = options.onEgressDenied;
    this.#metrics = options.metrics;
    this.#jwks = options.jwks;
    this.#tenantJwks = options.tenantJwks;
    this.#notFoundHint = options.notFoundHint;
    this.#proto = options.tls ? 'https' : 'http';
    this.#mcpDeps.proto = this.#proto;
    if (options.publicHosts?.length) this.#publicHosts = new HostList(options.publicHosts);
    if (options.trustedProxies?.length) {
      this.#trusted = blockList(options.trustedProxies);
    }
    // A throw in a request handler would take the whole process down: contain it to the one request.
    const handler = (req: IncomingMessage, res: ServerResponse) => {
      try {
        this.#handle(req, res);
      } catch (error) {
        this.#internalError(res, error);
      }
    };
    // joinDuplicateHeaders: a header sent twice arrives as one value joined with ", " instead of the first copy
    // winning silently, so a doubled Host fails the Host check and a doubled credential is a malformed key.
    const listenerOptions = { optimizeEmptyRequests: true, joinDuplicateHeaders: true };
    this.server = options.tls
      ? createHttpsServer({ cert: options.tls.cert, key: options.tls.key, ...listenerOptions }, handler)
      : createHttpServer(listenerOptions, handler);
    this.server.keepAliveTimeout = 65_000;
    this.server.headersTimeout = 30_000;
    this.server.requestTimeout = 0; // streaming uploads may take long; per-chunk inactivity is bounded by the socket timeout
    this.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.#upgrade(req, socket, head));
    // CONNECT asks for a tunnel: the gateway is no forward proxy. Without a listener Node would close the
    // connection without an answer.
    this.server.on('connect', (req: IncomingMessage, socket: Duplex) =>
      this.#refuseRaw(req, socket, METHOD_NOT_SUPPORTED),
    );
    this.server.on('clientError', (error: NodeJS.ErrnoException, socket: Duplex) => {
      // A parse error after an answer was started (e.g. a body that breaks its framing while the response to its
      // request is out) must not add a second response to the connection: close it. Node's own handler checks
      // the same internal field.
      const answering = (socket as Duplex & { _httpMessage?: ServerResponse | null })._httpMessage;
      if (!socket.writable || error.code === 'ECONNRESET' || (answering != null && answering.headersSent))
        return socket.destroy();
      const requestId = nextRequestId();
      const r = refusal(
        error.code === 'HPE_HEADER_OVERFLOW' ? 'GH_ERR_REQUEST_HEADERS_TOO_LARGE' : 'GH_ERR_REQUEST_MALFORMED',
      );
      writeRawProblem(socket, r, requestId);
      const status = ERRORS[r.code].status;
      this.#metrics.observe('', '', '', status, 0);
      this.#accessLog?.event(
        {
          reqId: requestId,
          method: '',
          status,
          code: r.code,
          ms: 0,
          ip: unmapIp((socket as Duplex & { remoteAddress?: string }).remoteAddress ?? ''),
        },
        'refused',
      );
    });
  }

  /**
   * Why no configuration is in force yet, for the 503 a request gets meanwhile (set by the instance's `config`
   * readiness check; never secret: it names what the gateway waits for).
   */
  notReadyDetail: string | undefined = undefined;

  #notReady(): Refusal {
    const why = this.notReadyDetail === undefined ? '' : ` (${this.notReadyDetail})`;
    return refusal('GH_ERR_GATEWAY_NOT_READY', `The gateway has no configuration yet${why}. Retry shortly.`, {
      'retry-after': String(NOT_READY_RETRY_AFTER_S),
    });
  }

  get table(): RouteTable | undefined {
    return this.#table;
  }

  /** Swaps the route table: one reference assignment. */
  setTable(table: RouteTable): void {
    this.#table = table;
    if (table.collections.some((c) => c.mcp !== undefined)) void loadMcp().catch(() => undefined); // warm up
    this.#routes = new RouteCache();
  }

  async listen(port: number, host: string): Promise<AddressInfo> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    return this.server.address() as AddressInfo;
  }

  /** Stops accepting, lets requests in flight finish for up to `drainMs`, then cuts what is left. */
  async close(drainMs = 10_000): Promise<void> {
    for (const socket of this.#tunnels) socket.destroy();
    this.#tunnels.clear();
    await new Promise<void>((resolve) => {
      const deadline = setTimeout(() => this.server.closeAllConnections(), drainMs);
      deadline.unref();
      this.server.close(() => {
        clearTimeout(deadline);
        resolve();
      });
      this.server.closeIdleConnections();
    });
  }

  #clientIp(req: IncomingMessage): ClientAddress {
    const peerIp = unmapIp(req.socket.remoteAddress ?? '');
    const trusted = this.#trusted;
    const xff = req.headers['x-forwarded-for'];
    if (trusted === undefined || typeof xff !== 'string' || !isTrusted(trusted, peerIp))
      return { clientIp: peerIp, peerIp, trustedForwardedFor: undefined };
    // Walk right to left past trusted proxies: the first untrusted hop is the client.
    const hops = xff.split(',').map((h) => unmapIp(h.trim()));
    let clientIp = peerIp;
    for (let i = hops.length - 1; i >= 0; i--) {
      clientIp = hops[i]!;
      if (!isTrusted(trusted, clientIp)) break;
    }
    return { clientIp, peerIp, trustedForwardedFor: xff };
  }

  /** Shared by HTTP requests and upgrades: canonical path and route match. */
  #route(req: IncomingMessage, table: RouteTable): Routed | Refusal {
    const headers = req.headers;
    if (methodOverride(headers) !== undefined) return METHOD_OVERRIDE;
    // Only matches are cached: refused targets (scans, attacks) would only push the real routes out.
    const routes = this.#routes;
    const key = routeKey(req.method ?? 'GET', req.url ?? '', headers.host);
    const cached = routes.get(key);
    if (cached !== undefined) return cached;
    const routed = matchRoute(req, table, this.#publicHosts);
    if (!('code' in routed)) routes.set(key, Object.freeze(routed));
    return routed;
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const start = performance.now();
    const requestId = nextRequestId();
    const table = this.#table;
    const method = req.method ?? 'GET';

    const before = refuseBeforeRouting(req);
    if (before !== undefined) {
      res.shouldKeepAlive = false;
      return this.#refuse(req, res, requestId, before, start);
    }
    if (table === undefined) return this.#refuse(req, res, requestId, this.#notReady(), start);
    const te = req.headers['transfer-encoding'];
    if (te !== undefined && te !== 'chunked' && te.trim().toLowerCase() !== 'chunked') {
      // Only `chunked` is decoded; forwarding the body without the other codings would change it. The body is
      // not read, so the connection cannot be reused.
      res.shouldKeepAlive = false;
      return this.#refuse(req, res, requestId, UNSUPPORTED_TE, start);
    }
    const routed = this.#route(req, table);
    if ('code' in routed) {
      // A collection's own route wins over the MCP endpoint and the OAuth metadata: looked for only on a 404.
      if (routed === NOT_FOUND && this.#serveMcpOrMetadata(req, res, requestId, table, start)) return;
      const tokenEndpoint = routed === NOT_FOUND ? tokenEndpointOf(table, req.url ?? '/') : undefined;
      if (tokenEndpoint !== undefined) return this.#serveToken(req, res, requestId, tokenEndpoint, start);
      if (routed === NOT_FOUND && (method === 'GET' || method === 'HEAD') && req.url?.endsWith(JWKS_PATH)) {
        const body = req.url === JWKS_PATH ? this.#jwks() : this.#tenantJwks?.(req.url.slice(0, -JWKS_PATH.length));
        if (body !== undefined) return this.#serveJwks(res, requestId, body);
      }
      if (routed === NOT_FOUND && this.#notFoundHint !== undefined) {
        const url = req.url ?? '/';
        const q = url.indexOf('?');
        const detail = this.#notFoundHint(q === -1 ? url : url.slice(0, q), hostname(req.headers.host), table);
        if (detail !== undefined)
          return this.#refuse(req, res, requestId, refusal('GH_ERR_ROUTE_NOT_FOUND', detail), start);
      }
      return this.#refuse(req, res, requestId, routed, start);
    }

    const ctx = new Exchange(req, res, requestId, start, routed, this.#clientIp(req));
    runChain(ctx, routed.endpoint.chain, 0, this.#http);
  }

  /** The end of an HTTP request's chain and of its upstream exchange; one object for all requests. */
  readonly #http: ChainEnd<Exchange> & ProxyDone<Exchange> = {
    passed: (ctx) => {
      const info: ForwardInfo = {
        peerIp: ctx.peerIp,
        trustedForwardedFor: ctx.trustedForwardedFor,
        proto: this.#proto,
      };
      proxy(ctx, upstreamPath(ctx, ctx.path, ctx.query), upstreamHeaders(ctx, info), this.#http);
    },
    refused: (ctx, r) => this.#refuseCtx(ctx, r, ctx.start),
    failed: (ctx, error) => {
      this.#onError(error, ctx.requestId);
      this.#refuseCtx(ctx, INTERNAL, ctx.start);
    },
    proxyDone: (ctx, status, upstreamError, error) => {
      if (upstreamError === 'GH_ERR_UPSTREAM_EGRESS_DENIED')
        this.#onEgressDenied?.(error!, ctx.collection, ctx.requestId);
      this.#finish(ctx, ctx.method, status, ctx.start, upstreamError);
    },
  };

  /** What the MCP endpoints need from the listener: its scheme, and the ends of their requests and tool calls. */
  readonly #mcpDeps: McpServeDeps = {
    proto: 'http', // set in the constructor, once the listener's scheme is known
    finish: (ctx, method, status, start, code) => this.#finish(ctx, method, status, start, code),
    answered: (req, requestId, status, start, code, collection) => {
      const ms = performance.now() - start;
      this.#metrics.observe(collection ?? '', '', req.method ?? 'POST', status, ms / 1000);
      this.#accessLog?.event(
        {
          reqId: requestId,
          method: req.method ?? 'POST',
          status,
          code,
          ms,
          collection,
          ip: this.#clientIp(req).clientIp,
        },
        'mcp',
      );
    },
    onError: (error, requestId) => this.#onError(error, requestId),
    onEgressDenied: (error, collection, requestId) => this.#onEgressDenied?.(error, collection, requestId),
  };

  /**
   * A collection's MCP endpoint (`<basePath><mcp.path>`), its RFC 9728 metadata
   * (`/.well-known/oauth-protected-resource<basePath><mcp.path>`), or the gateway's RFC 8414 metadata
   * (`/.well-known/oauth-authorization-server<token endpoint prefix>`): true when the request was one of them.
   */
  #serveMcpOrMetadata(
    req: IncomingMessage,
    res: ServerResponse,
    requestId: string,
    table: RouteTable,
    start: number,
  ): boolean {
    const canonical = canonicalize(req.url ?? '/', req.headers.host);
    if (!canonical.ok) return false;
    const path = canonical.value.path;
    const ip = this.#clientIp(req);
    const origin = () => publicOrigin(req, this.#proto, ip.trustedForwardedFor !== undefined);
    if (path.startsWith(PROTECTED_RESOURCE_PATH) || path.startsWith(AUTHORIZATION_SERVER_PATH)) {
      if (req.method !== 'GET' && req.method !== 'HEAD') return false;
      let document: Record<string, unknown> | undefined;
      if (path.startsWith(PROTECTED_RESOURCE_PATH)) {
        const resourcePath = path.slice(PROTECTED_RESOURCE_PATH.length);
        const target = resourcePath === '' ? undefined : this.#mcpTarget(req, table, resourcePath);
        if (target === undefined) return false;
        const { collection } = target;
        document = protectedResourceMetadata(
          origin(),
          resourcePath,
          issuerPrefix(table, collection.basePath),
          collection.mcp!.tools.serverName,
        );
      } else {
        const prefix = path.slice(AUTHORIZATION_SERVER_PATH.length);
        if (table.tokenEndpoints?.get(prefix) === undefined) return false;
        document = authorizationServerMetadata(origin(), prefix);
      }
      const body = JSON.stringify(document);
      res.writeHead(200, {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(body),
        'cache-control': 'no-store',
        'x-request-id': requestId,
      });
      res.end(req.method === 'HEAD' ? undefined : body);
      this.#mcpDeps.answered(req, requestId, 200, start, undefined);
      return true;
    }
    const target = this.#mcpTarget(req, table, path);
    if (target === undefined) return false;
    const o = origin();
    loadMcp().then(
      ({ serveMcp }) =>
        serveMcp(
          req,
          res,
          requestId,
          start,
          {
            collection: target.collection,
            tools: target.collection.mcp!.tools,
            resource: `${o}${path}`,
            metadataUrl: metadataUrl(o, path),
          },
          ip,
          target.forwardedHost,
          this.#mcpDeps,
        ),
      (error: unknown) => this.#internalError(res, error),
    );
    return true;
  }

  /** The collection whose MCP endpoint is at `path` (canonical) for this request's Host, as routing would find it. */
  #mcpTarget(
    req: IncomingMessage,
    table: RouteTable,
    path: string,
  ): { collection: CompiledCollection; forwardedHost: string | undefined } | undefined {
    const host = req.headers.host;
    const collection = table.router.match(hostname(host), path);
    const mcp = collection?.mcp;
    if (collection === undefined || mcp === undefined || relativePath(collection.basePath, path) !== mcp.path)
      return undefined;
    if (collection.host !== undefined) return { collection, forwardedHost: host };
    if (this.#publicHosts === undefined) return { collection, forwardedHost: undefined };
    if (host === undefined || !this.#publicHosts.has(host)) return undefined;
    return { collection, forwardedHost: host };
  }

  #internalError(res: ServerResponse, error: unknown): void {
    const requestId = (res.getHeader('x-request-id') as string | undefined) ?? nextRequestId();
    this.#onError(error, requestId);
    if (!res.headersSent) sendProblem(res, refusal('GH_ERR_GATEWAY_INTERNAL'), requestId);
    else res.destroy();
  }

  #serveJwks(res: ServerResponse, requestId: string, body: string): void {
    res.writeHead(200, {
      'content-type': 'application/jwk-set+json',
      'content-length': Buffer.byteLength(body),
      'cache-control': 'public, max-age=60',
      'x-request-id': requestId,
    });
    res.end(body);
  }

  /**
   * The token endpoint (tokens/token-endpoint.ts): a form-encoded POST of at most 16 KiB, answered with RFC 8693
   * JSON or RFC 6749 error JSON, never cached.
   */
  #serveToken(
    req: IncomingMessage,
    res: ServerResponse,
    requestId: string,
    endpoint: TokenEndpoint,
    start: number,
  ): void {
    const clientIp = this.#clientIp(req).clientIp;
    const answer = (a: TokenAnswer, extra: Record<string, string> = {}) => {
      const body = JSON.stringify(a.body);
      res.writeHead(a.status, {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(body),
        'cache-control': 'no-store',
        pragma: 'no-cache',
        'x-request-id': requestId,
        ...extra,
      });
      res.end(body);
      const ms = performance.now() - start;
      this.#metrics.observe('', '', req.method ?? 'POST', a.status, ms / 1000);
      this.#accessLog?.event(
        { reqId: requestId, method: req.method ?? 'POST', status: a.status, code: a.code, ms, ip: clientIp },
        'token exchange',
      );
    };
    const invalid = (description: string): TokenAnswer => ({
      status: 400,
      body: { error: 'invalid_request', error_description: description, code: 'GH_ERR_DERIVED_REQUEST_INVALID' },
      code: 'GH_ERR_DERIVED_REQUEST_INVALID',
    });
    if (req.method !== 'POST') {
      req.resume();
      return answer({ ...invalid('The token endpoint takes POST only.'), status: 405 }, { allow: 'POST' });
    }
    const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (type !== 'application/x-www-form-urlencoded') {
      req.resume();
      return answer(invalid('Send the parameters as application/x-www-form-urlencoded.'));
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= TOKEN_BODY_MAX) chunks.push(chunk);
    });
    req.on('end', () => {
      if (size > TOKEN_BODY_MAX) return answer(invalid(`The request body exceeds ${TOKEN_BODY_MAX} bytes.`));
      try {
        answer(endpoint.exchange(new URLSearchParams(Buffer.concat(chunks).toString()), clientIp));
      } catch (error) {
        this.#internalError(res, error);
      }
    });
    req.on('error', () => res.destroy());
  }

  /** Refuses a request answered on its raw socket (CONNECT): counted and logged like any refusal. */
  #refuseRaw(req: IncomingMessage, socket: Duplex, r: Refusal): void {
    const requestId = nextRequestId();
    writeRawProblem(socket, r, requestId);
    const status = ERRORS[r.code].status;
    this.#metrics.observe('', '', req.method ?? '', status, 0);
    this.#accessLog?.event(
      { reqId: requestId, method: req.method ?? '', status, code: r.code, ms: 0, ip: this.#clientIp(req).clientIp },
      'refused',
    );
  }

  #refuse(req: IncomingMessage, res: ServerResponse, requestId: string, r: Refusal, start: number): void {
    sendProblem(res, r, requestId);
    const status = ERRORS[r.code].status;
    this.#metrics.observe('', '', req.method ?? 'GET', status, (performance.now() - start) / 1000);
    this.#accessLog?.event(
      {
        reqId: requestId,
        method: req.method ?? 'GET',
        status,
        code: r.code,
        ms: performance.now() - start,
        ip: this.#clientIp(req).clientIp,
      },
      'refused',
    );
    if (channels.requestEnd.hasSubscribers) this.#publishEnd(req, requestId, undefined, status, start, r.code);
  }

  #refuseCtx(ctx: RequestContext, r: Refusal, start: number): void {
    publishAuthFailure(ctx, r.code);
    if (ctx.res) sendProblem(ctx.res, r, ctx.requestId);
    this.#finish(ctx, ctx.req.method ?? 'GET', ERRORS[r.code].status, start, r.code);
  }

  #finish(ctx: RequestContext, method: string, status: number, start: number, code: ErrorCode | undefined): void {
    const ms = performance.now() - start;
    this.#metrics.observeEndpoint(ctx.endpoint, ctx.collection.name, ctx.endpoint.template, method, status, ms / 1000);
    this.#accessLog?.request(ctx, method, status, ms, code);
    if (channels.requestEnd.hasSubscribers) this.#publishEnd(ctx.req, ctx.requestId, ctx, status, start, code, method);
  }

  /** Telemetry's view of an answered request (see `RequestEndEvent`); called only when someone subscribes. */
  #publishEnd(
    req: IncomingMessage,
    requestId: string,
    ctx: RequestContext | undefined,
    status: number,
    start: number,
    code: ErrorCode | undefined,
    method = req.method ?? 'GET',
  ): void {
    channels.requestEnd.publish({
      server: this,
      requestId,
      method,
      collection: ctx?.collection,
      endpoint: ctx?.endpoint,
      status,
      ms: performance.now() - start,
      principal: ctx?.principal,
      key: ctx?.key,
      derived: ctx?.derived,
      clientIp: ctx?.clientIp ?? this.#clientIp(req).clientIp,
      code,
      quota: ctx?.quotaDebit,
    });
  }

  #upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const start = performance.now();
    const requestId = nextRequestId();
    const table = this.#table;
    /**
     * A refused upgrade counts like a refused request: in the request metrics (by route once one matched) and in
     * the access log with what is known of it (route, client, key label, client IP).
     */
    const reject = (r: Refusal, routedCtx?: RequestContext, matched?: Routed) => {
      writeRawProblem(socket, r, requestId);
      const status = ERRORS[r.code].status;
      const method = req.method ?? 'GET';
      const ms = performance.now() - start;
      const collection = routedCtx?.collection ?? matched?.collection;
      const endpoint = routedCtx?.endpoint ?? matched?.endpoint;
      if (collection !== undefined && endpoint !== undefined)
        this.#metrics.observeEndpoint(endpoint, collection.name, endpoint.template, method, status, ms / 1000);
      else this.#metrics.observe('', '', method, status, ms / 1000);
      this.#accessLog?.event(
        {
          reqId: requestId,
          method,
          status,
          code: r.code,
          ms,
          collection: collection?.name,
          route: endpoint?.template,
          clientId: routedCtx?.principal?.id,
          key: routedCtx?.key?.label,
          ip: routedCtx?.clientIp ?? this.#clientIp(req).clientIp,
        },
        'upgrade refused',
      );
      if (channels.requestEnd.hasSubscribers) this.#publishEnd(req, requestId, routedCtx, status, start, r.code);
    };
    const before = refuseBeforeRouting(req);
    if (before !== undefined) return reject(before);
    if (table === undefined) return reject(this.#notReady());
    const routed = this.#route(req, table);
    if ('code' in routed) return reject(routed);
    if (!routed.collection.websocket) return reject(WEBSOCKET_NOT_ALLOWED, undefined, routed);
    const ctx = new Exchange(req, null, requestId, start, routed, this.#clientIp(req));
    const tunnel = () => {
      const info: ForwardInfo = {
        peerIp: ctx.peerIp,
        trustedForwardedFor: ctx.trustedForwardedFor,
        proto: this.#proto,
      };
      const headers = upstreamHeaders(ctx, info);
      routed.collection.upstream.pool
        .upgrade({
          path: upstreamPath(ctx, routed.path, routed.query),
          method: req.method ?? 'GET',
          headers,
          protocol: req.headers.upgrade ?? 'websocket',
        })
        .then(({ headers: upstreamResponseHeaders, socket: upstream }) => {
          let head101 = 'HTTP/1.1 101 Switching Protocols\r\n';
          for (const [name, value] of Object.entries(upstreamResponseHeaders)) {
            if (name === 'x-request-id') continue; // the gateway's own follows, as on HTTP answers
            for (const v of Array.isArray(value) ? value : [value]) if (v !== undefined) head101 += `${name}: ${v}\r\n`;
          }
          if (socket.destroyed) return upstream.destroy();
          this.#tunnels.add(socket);
          socket.once('close', () => this.#tunnels.delete(socket));
          socket.write(`${head101}x-request-id: ${requestId}\r\n\r\n`);
          if (head.length > 0) upstream.write(head);
          upstream.pipe(socket).pipe(upstream);
          const end = () => {
            upstream.destroy();
            socket.destroy();
          };
          upstream.on('error', end).on('close', end);
          socket.on('error', end).on('close', end);
          this.#finish(ctx, 'GET', 101, start, undefined);
        })
        .catch((error: Error) => {
          const code =
            classify(error) === 'GH_ERR_UPSTREAM_EGRESS_DENIED'
              ? 'GH_ERR_UPSTREAM_EGRESS_DENIED'
              : 'GH_ERR_UPSTREAM_WEBSOCKET_REFUSED';
          if (code === 'GH_ERR_UPSTREAM_EGRESS_DENIED') this.#onEgressDenied?.(error, routed.collection, requestId);
          if (channels.upstreamError.hasSubscribers)
            channels.upstreamError.publish({ collection: routed.collection.name, code, error, requestId });
          reject(refusal(code), ctx);
        });
    };
    runChain(ctx, routed.endpoint.chain, 0, {
      passed: tunnel,
      refused: (_ctx, r) => {
        publishAuthFailure(ctx, r.code);
        reject(r, ctx);
      },
      failed: (_ctx, error) => {
        this.#onError(error, requestId);
        reject(INTERNAL, ctx);
      },
    });
  }
}

let mcpEndpoint: Promise<typeof import('../mcp/endpoint.ts')> | undefined;

/**
 * The MCP endpoint's code and the SDK it runs on, loaded when a snapshot first serves a collection as an MCP server:
 * a gateway without one never loads them.
 */
function loadMcp(): Promise<typeof import('../mcp/endpoint.ts')> {
  return (mcpEndpoint ??= import('../mcp/endpoint.ts'));
}

/**
 * The prefix of the token endpoint that serves a collection's clients: '' on an edge gateway, the tenant's
 * `/<workspace>/<environment>` (which begins its collections' base paths) on the cloud gateway.
 */
function issuerPrefix(table: RouteTable, basePath: string): string {
  let best = '';
  for (const prefix of table.tokenEndpoints?.keys() ?? [])
    if (prefix.length > best.length && (basePath === prefix || basePath.startsWith(`${prefix}/`))) best = prefix;
  return best;
}

/** The token endpoint a path names (`<prefix>/oauth2/token`, query ignored), if the table has one there. */
function tokenEndpointOf(table: RouteTable, url: string): TokenEndpoint | undefined {
  const endpoints = table.tokenEndpoints;
  if (endpoints === undefined) return undefined;
  const q = url.indexOf('?');
  const path = q === -1 ? url : url.slice(0, q);
  if (!path.endsWith(TOKEN_PATH)) return undefined;
  return endpoints.get(path.slice(0, -TOKEN_PATH.length));
}

function unmapIp(ip: string): string {
  return ip.startsWith('::ffff:') && isIPv4(ip.slice(7)) ? ip.slice(7) : ip;
}

function isTrusted(list: BlockList, ip: string): boolean {
  return list.check(ip, isIPv4(ip) ? 'ipv4' : 'ipv6');
}
