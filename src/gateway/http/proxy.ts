/**
 * Forwarding to the upstream through an undici pool with the dispatcher handler API: bodies stream in both
 * directions with backpressure (never buffered whole), hop-by-hop, rewrite, address and identity headers are
 * dropped (header-rules.ts), the headers the gateway sets are set by it alone, and upstream failures become
 * 502/504 problems.
 */
import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import type { Dispatcher } from 'undici';
import { channels } from '../observability/channels.ts';
import type { RequestContext } from '../policies/policy.ts';
import { ERRORS, type ErrorCode, refusal, sendProblem } from '../../shared/errors.ts';
import { headerKey, isStripped } from './header-rules.ts';

const EGRESS_DENIED = refusal('GH_ERR_UPSTREAM_EGRESS_DENIED');
const CLIENT_BODY_FAILED = refusal(
  'GH_ERR_REQUEST_MALFORMED',
  'The request body ended before its framing said it would, or did not match it.',
);
const RESPONSE_STRIP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

export interface ForwardInfo {
  /** Address the gateway saw the request from (the socket peer). */
  peerIp: string;
  /** Incoming X-Forwarded-For to extend, only when the peer is a trusted proxy. */
  trustedForwardedFor: string | undefined;
  proto: 'http' | 'https';
}

/**
 * Builds the upstream request headers as flat name/value pairs (undici takes them as they are; an object would be
 * copied into one first).
 */
export function upstreamHeaders(ctx: RequestContext, info: ForwardInfo): string[] {
  const incoming: IncomingHttpHeaders = ctx.req.headers;
  const out: string[] = [];
  const connection = incoming.connection;
  const listed =
    connection && connection.toLowerCase() !== 'keep-alive' && connection.toLowerCase() !== 'close'
      ? connectionTokens(connection)
      : undefined;
  const credentials = ctx.credentialHeaders;
  for (const name in incoming) {
    // Hop-by-hop, rewrite, address and identity headers (header-rules.ts), and what the client lists in Connection.
    if (isStripped(name) || listed?.has(name)) continue;
    if (credentials !== undefined && credentials.includes(headerKey(name))) continue;
    const value = incoming[name];
    if (value === undefined) continue;
    if (typeof value === 'string') out.push(name, value);
    else for (const v of value) out.push(name, v);
  }
  // The client's Host only when the gateway vouches for it (the collection's host, or server.publicHosts).
  const host = ctx.forwardedHost;
  out.push(
    'x-forwarded-for',
    info.trustedForwardedFor ? `${info.trustedForwardedFor}, ${info.peerIp}` : info.peerIp,
    'x-forwarded-proto',
    info.proto,
  );
  if (host) out.push('x-forwarded-host', host);
  if (ctx.collection.stripBasePath && ctx.collection.basePath !== '/')
    out.push('x-forwarded-prefix', ctx.collection.basePath);
  else if (ctx.collection.mountPath !== '') out.push('x-forwarded-prefix', ctx.collection.mountPath);
  out.push('forwarded', forwardedValue(ctx, info.proto, host), 'x-request-id', ctx.requestId);
  if (ctx.upstreamAuthorization !== undefined) out.push('authorization', ctx.upstreamAuthorization);
  return out;
}

/** The last Forwarded value made for a client connection: on keep-alive, the next request's is usually the same. */
interface ForwardedMemo {
  clientIp: string;
  proto: string;
  host: string | undefined;
  value: string;
}
const forwardedMemo = new WeakMap<object, ForwardedMemo>();

function forwardedValue(ctx: RequestContext, proto: string, host: string | undefined): string {
  const socket = ctx.req.socket;
  const memo = forwardedMemo.get(socket);
  if (memo !== undefined && memo.host === host && memo.clientIp === ctx.clientIp && memo.proto === proto)
    return memo.value;
  const value = `for=${forwardedNode(ctx.clientIp)};proto=${proto}${host ? `;host="${forwardedHost(host)}"` : ''}`;
  forwardedMemo.set(socket, { clientIp: ctx.clientIp, proto, host, value });
  return value;
}

/** The Host value inside a quoted-string: quotes and backslashes dropped (they are not valid in a host anyway). */
function forwardedHost(host: string): string {
  return host.includes('"') || host.includes('\\') ? host.replace(/["\\]/g, '') : host;
}

/** Whether flat name/value pairs hold a pair named `name`. */
function hasName(pairs: readonly string[], name: string): boolean {
  for (let i = 0; i < pairs.length; i += 2) if (pairs[i] === name) return true;
  return false;
}

function connectionTokens(value: string | string[]): Set<string> {
  return new Set(
    (Array.isArray(value) ? value.join(',') : value)
      .toLowerCase()
      .split(',')
      .map((t) => t.trim())
      .filter(Boolean),
  );
}

function forwardedNode(ip: string): string {
  return ip.includes(':') ? `"[${ip}]"` : ip;
}

/** The path sent upstream: the upstream URL's path + the canonical path (without the base path when stripped). */
export function upstreamPath(ctx: RequestContext, fullPath: string, query: string): string {
  const c = ctx.collection;
  const path = c.stripBasePath
    ? ctx.forwardPath
    : c.mountPath === ''
      ? fullPath
      : fullPath.slice(c.mountPath.length) || '/';
  const joined =
    c.upstream.pathPrefix === '' ? path : path === '/' ? c.upstream.pathPrefix : c.upstream.pathPrefix + path;
  return query === '' ? joined : `${joined}?${query}`;
}

export function hasBody(headers: IncomingHttpHeaders): boolean {
  const length = headers['content-length'];
  return headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

/** Told when a proxied exchange has ended either way: the final status, and on an upstream failure its code and error. */
export interface ProxyDone<C extends RequestContext> {
  proxyDone(ctx: C, status: number, upstreamError?: ErrorCode, error?: Error): void;
}

const kExchange = Symbol('gatehouse.exchange');
type WithExchange = ServerResponse & { [kExchange]?: UpstreamExchange<RequestContext> };

/**
 * Forwards the request; `done.proxyDone` is called once the exchange has ended either way. One object per request
 * is the undici handler, and the client-close and drain listeners are shared functions that find it on the
 * response: nothing else is allocated for the exchange.
 */
export function proxy<C extends RequestContext>(ctx: C, path: string, headers: string[], done: ProxyDone<C>): void {
  const { req, collection } = ctx;
  const res = ctx.res!;
  const upstream = collection.upstream;
  if (upstream.egressDenied !== undefined) {
    // An IP literal the egress policy refuses: no connection is attempted.
    if (channels.upstreamError.hasSubscribers)
      channels.upstreamError.publish({
        collection: collection.name,
        code: EGRESS_DENIED.code,
        error: upstream.egressDenied,
        requestId: ctx.requestId,
      });
    sendProblem(res, EGRESS_DENIED, ctx.requestId);
    return done.proxyDone(ctx, ERRORS[EGRESS_DENIED.code].status, EGRESS_DENIED.code, upstream.egressDenied);
  }
  const exchange = new UpstreamExchange(ctx, res, done);
  (res as WithExchange)[kExchange] = exchange as unknown as UpstreamExchange<RequestContext>;
  res.on('close', onClientClose);
  upstream.pool.dispatch(
    {
      path,
      method: req.method as Dispatcher.HttpMethod,
      headers,
      body: ctx.requestBody ?? (hasBody(req.headers) ? req : null),
      headersTimeout: upstream.headersTimeout,
      bodyTimeout: upstream.bodyTimeout,
    },
    exchange,
  );
}

/** The client went away: abort the upstream request unless the exchange already ended. */
function onClientClose(this: WithExchange): void {
  const exchange = this[kExchange];
  const controller = exchange?.controller;
  if (exchange !== undefined && !exchange.finished && controller !== undefined && !controller.aborted)
    controller.abort(new Error('client closed the connection'));
}

function onClientDrain(this: WithExchange): void {
  this[kExchange]?.controller?.resume();
}

class UpstreamExchange<C extends RequestContext> implements Dispatcher.DispatchHandler {
  readonly ctx: C;
  readonly res: ServerResponse;
  readonly done: ProxyDone<C>;
  controller: Dispatcher.DispatchController | undefined = undefined;
  finished = false;

  constructor(ctx: C, res: ServerResponse, done: ProxyDone<C>) {
    this.ctx = ctx;
    this.res = res;
    this.done = done;
  }

  onRequestStart(c: Dispatcher.DispatchController): void {
    this.controller = c;
    if (this.res.destroyed) c.abort(new Error('client closed the connection'));
  }

  onResponseStart(_c: Dispatcher.DispatchController, statusCode: number, responseHeaders: IncomingHttpHeaders): void {
    const out: string[] = [];
    const connection = responseHeaders.connection;
    const listed =
      connection === undefined || connection === 'keep-alive' || connection === 'close'
        ? undefined
        : connectionTokens(connection);
    // The gateway's own headers (the request id, a policy's headers) replace the upstream's of the same name.
    const extraHeaders = this.ctx.responseHeaders;
    for (const name in responseHeaders) {
      if (
        RESPONSE_STRIP.has(name) ||
        name === 'x-request-id' ||
        listed?.has(name) ||
        (extraHeaders !== undefined && hasName(extraHeaders, name))
      )
        continue;
      const value = responseHeaders[name];
      if (value === undefined) continue;
      if (typeof value === 'string') out.push(name, value);
      else for (const v of value) out.push(name, v);
    }
    if (extraHeaders !== undefined) for (let i = 0; i < extraHeaders.length; i++) out.push(extraHeaders[i]!);
    out.push('x-request-id', this.ctx.requestId);
    this.res.writeHead(statusCode, out);
  }

  onResponseData(c: Dispatcher.DispatchController, chunk: Buffer): void {
    if (!this.res.write(chunk)) {
      c.pause();
      this.res.once('drain', onClientDrain);
    }
  }

  onResponseEnd(): void {
    this.finished = true;
    this.res.end();
    this.done.proxyDone(this.ctx, this.res.statusCode);
  }

  onResponseError(_c: Dispatcher.DispatchController, error: Error): void {
    this.finished = true;
    const { ctx, res } = this;
    const req = ctx.req;
    if (req.destroyed && !req.complete) {
      // The client's side failed, not the upstream: its body broke its framing (Node answers the parse error) or
      // it went away mid-upload. Counted as the client's 400, never as an upstream error.
      if (!res.headersSent && !res.destroyed) sendProblem(res, CLIENT_BODY_FAILED, ctx.requestId);
      this.done.proxyDone(
        ctx,
        res.headersSent && res.statusCode < 500 ? res.statusCode : 400,
        CLIENT_BODY_FAILED.code,
        error,
      );
      return;
    }
    const code = classify(error);
    if (channels.upstreamError.hasSubscribers)
      channels.upstreamError.publish({ collection: ctx.collection.name, code, error, requestId: ctx.requestId });
    if (res.headersSent) res.destroy();
    else if (!res.destroyed) sendProblem(res, refusal(code), ctx.requestId);
    this.done.proxyDone(
      ctx,
      res.headersSent && res.statusCode < 500 ? res.statusCode : code === 'GH_ERR_UPSTREAM_TIMEOUT' ? 504 : 502,
      code,
      error,
    );
  }
}

/** The error code of an upstream failure (exported for WebSocket upgrades). */
export function classify(error: Error & { code?: string }): ErrorCode {
  switch (error.code) {
    case 'GH_ERR_UPSTREAM_EGRESS_DENIED':
      return 'GH_ERR_UPSTREAM_EGRESS_DENIED';
    case 'UND_ERR_CONNECT_TIMEOUT':
    case 'UND_ERR_HEADERS_TIMEOUT':
    case 'ETIMEDOUT':
      return 'GH_ERR_UPSTREAM_TIMEOUT';
    default:
      return 'GH_ERR_UPSTREAM_UNAVAILABLE';
  }
}
