/**
 * A collection's MCP endpoint (docs/mcp.md): Streamable HTTP in stateless mode, through the maintained SDK. Each
 * POST authenticates like a request to the collection (401 with `WWW-Authenticate: Bearer resource_metadata=…`
 * when it cannot), then gets a fresh SDK server over the snapshot's prebuilt tool set: `tools/list` answers the
 * tools the caller may call, and `tools/call` becomes one request to the endpoint that runs the endpoint's own
 * frozen policy chain (authenticate, IP allow-list, authorize, resource policies, rate limits, concurrency caps,
 * request validation, token exchange) and goes to the upstream; the upstream's answer is the tool's result.
 *
 * Over 400 lines on purpose: one MCP request's path (authenticate, JSON-RPC, a tool call made a request to its
 * endpoint, forwarding, the answer as a tool result) in the order it runs; the tool set is in tools.ts.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ServerResponse as NodeServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import {
  CallToolRequestSchema,
  type CallToolResult,
  ErrorCode as RpcError,
  ListToolsRequestSchema,
  McpError,
} from '@modelcontextprotocol/sdk/types.js';
import { AjvJsonSchemaValidator } from '@modelcontextprotocol/sdk/validation/ajv';
import type { Dispatcher } from 'undici';
import { ERRORS, type ErrorCode, problemBody, type Refusal, refusal, sendProblem } from '../../shared/errors.ts';
import { type ChainEnd, type ClientAddress, Exchange, publishAuthFailure, runChain } from '../http/exchange.ts';
import { canonicalize } from '../http/canonical-path.ts';
import { headerKey, isStripped } from '../http/header-rules.ts';
import { classify, upstreamHeaders, upstreamPath } from '../http/proxy.ts';
import { nextRequestId } from '../http/request-id.ts';
import { relativePath } from '../http/router.ts';
import type { Policy, RequestContext } from '../policies/policy.ts';
import type { CompiledCollection, CompiledEndpoint } from '../snapshot/compiled.ts';
import type { McpTool, McpToolSet } from './tools.ts';

/** Largest MCP request body (bytes): a JSON-RPC message with a tool's arguments. */
export const MCP_BODY_MAX = 1024 * 1024;
/** Largest upstream answer turned into a tool result (bytes); a bigger one is an error result. */
export const TOOL_RESULT_MAX = 1024 * 1024;
const GATEWAY_VERSION = '0.1.0';
/** Codes of a missing or unusable credential: the MCP client should (re)authenticate. */
const UNAUTHENTICATED = (code: ErrorCode) => ERRORS[code].status === 401;
/** Headers of the MCP request that are the transport's, not the tool call's. */
const TRANSPORT_HEADERS = new Set([
  'accept',
  'accept-encoding',
  'content-length',
  'content-type',
  'content-encoding',
  'expect',
  'transfer-encoding',
  'mcp-session-id',
  'mcp-protocol-version',
  'last-event-id',
]);
const META = 'gatehouse.dev/';
/**
 * The SDK server's JSON Schema validator (used only for elicitation, which these servers never ask for): one for the
 * process. By default every `Server` builds its own Ajv instance, which was 15 % of a tool call's CPU time.
 */
const SCHEMA_VALIDATOR = new AjvJsonSchemaValidator();
/** Header arguments never set: the credential is the MCP request's own. */
const CREDENTIAL_HEADERS = new Set(['authorization', 'proxy-authorization', 'x-api-key', 'cookie']);

export interface McpServeDeps {
  proto: 'http' | 'https';
  /** A tool call's exchange ended (metrics, access log, telemetry), as a proxied request's does. */
  finish(ctx: RequestContext, method: string, status: number, start: number, code: ErrorCode | undefined): void;
  /** The MCP request itself ended (not a tool call): for the access log and metrics, with its collection's name. */
  answered(
    req: IncomingMessage,
    requestId: string,
    status: number,
    start: number,
    code: ErrorCode | undefined,
    collection?: string,
  ): void;
  onError(error: unknown, requestId: string): void;
  onEgressDenied?: ((error: Error, collection: CompiledCollection, requestId: string) => void) | undefined;
}

/** Where a collection's MCP server is, as URLs its clients are told about. */
export interface McpTarget {
  collection: CompiledCollection;
  tools: McpToolSet;
  /** The MCP endpoint's URL (the protected resource of RFC 9728). */
  resource: string;
  /** The URL of its protected-resource metadata. */
  metadataUrl: string;
}

/**
 * One tool call (or the MCP request's own authentication) as the policy chain sees it: an `Exchange` whose route is
 * the tool's endpoint (the MCP request's own is its first tool's, at `/`).
 */
function mcpExchange(
  req: IncomingMessage,
  res: ServerResponse | null,
  requestId: string,
  ip: ClientAddress,
  endpoint: CompiledEndpoint,
  route: { path: string; forwardPath: string; params: readonly string[]; query: string },
  forwardedHost: string | undefined,
): Exchange {
  const routed = { ...route, collection: endpoint.collection, endpoint, forwardedHost };
  return new Exchange(req, res, requestId, performance.now(), routed, ip);
}

/** Runs a chain to its end as a promise: undefined when it passed, else the refusal (a throw is a bug). */
function chainResult(ctx: Exchange, chain: readonly Policy[]): Promise<Refusal | undefined> {
  return new Promise((resolve, reject) => {
    const end: ChainEnd<Exchange> = {
      passed: () => resolve(undefined),
      refused: (_c, r) => resolve(r),
      failed: (_c, error) => reject(error),
    };
    runChain(ctx, chain, 0, end);
  });
}

/**
 * Serves one request to a collection's MCP endpoint. `forwardedHost`: the Host the gateway vouches for (as for
 * the collection's requests).
 */
export function serveMcp(
  req: IncomingMessage,
  res: ServerResponse,
  requestId: string,
  start: number,
  target: McpTarget,
  ip: ClientAddress,
  forwardedHost: string | undefined,
  deps: McpServeDeps,
): void {
  const refuse = (r: Refusal) => {
    const status = sendProblem(res, r, requestId);
    deps.answered(req, requestId, status, start, r.code, target.collection.name);
  };
  if (req.method !== 'POST') {
    // Stateless: no server-initiated stream to GET, no session to DELETE (the transport allows 405 for both).
    req.resume();
    return refuse(
      refusal('GH_ERR_ROUTE_METHOD_NOT_ALLOWED', 'The MCP endpoint takes POST (Streamable HTTP, stateless).', {
        allow: 'POST',
      }),
    );
  }
  const { tools } = target;
  // The MCP request's own context: authentication reads only the credential headers and the address.
  const route = { path: '/', forwardPath: '/', params: [], query: '' };
  const self = mcpExchange(req, res, requestId, ip, tools.tools[0]!.endpoint, route, forwardedHost);
  chainResult(self, tools.authChain)
    .then((r) => {
      if (r !== undefined) {
        publishAuthFailure(self, r.code);
        if (!UNAUTHENTICATED(r.code)) return refuse(r);
        // RFC 9728 §5.1: tell the client where to learn how to get a credential.
        const presented = req.headers.authorization !== undefined || req.headers['x-api-key'] !== undefined;
        return refuse({
          ...r,
          headers: {
            'www-authenticate': `Bearer realm="gatehouse", resource_metadata="${target.metadataUrl}"${presented ? ', error="invalid_token"' : ''}`,
          },
        });
      }
      return readJson(req).then((body) => {
        if (body === TOO_LARGE) {
          res.shouldKeepAlive = false;
          return refuse(
            refusal('GH_ERR_REQUEST_BODY_TOO_LARGE', `An MCP message may be at most ${MCP_BODY_MAX} bytes.`),
          );
        }
        if (body === INVALID_JSON) return rpcParseError(res, requestId, deps, req, start, target.collection.name);
        return answer(req, res, requestId, start, target, self, ip, forwardedHost, body, deps);
      });
    })
    .catch((error: unknown) => {
      deps.onError(error, requestId);
      if (!res.headersSent) refuse(refusal('GH_ERR_GATEWAY_INTERNAL'));
      else res.destroy();
    });
}

const TOO_LARGE = Symbol('too large');
const INVALID_JSON = Symbol('invalid JSON');

function readJson(req: IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MCP_BODY_MAX) chunks.push(chunk);
    });
    req.on('end', () => {
      if (size > MCP_BODY_MAX) return resolve(TOO_LARGE);
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown);
      } catch {
        resolve(INVALID_JSON);
      }
    });
    req.on('error', reject);
  });
}

function rpcParseError(
  res: ServerResponse,
  requestId: string,
  deps: McpServeDeps,
  req: IncomingMessage,
  start: number,
  collection: string,
): void {
  const body = JSON.stringify({
    jsonrpc: '2.0',
    id: null,
    error: { code: RpcError.ParseError, message: 'Parse error: the body is not JSON' },
  });
  res.writeHead(400, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    'x-request-id': requestId,
  });
  res.end(body);
  deps.answered(req, requestId, 400, start, undefined, collection);
}

/** The SDK answers the (authenticated) message; one server and transport per request (stateless mode). */
async function answer(
  req: IncomingMessage,
  res: ServerResponse,
  requestId: string,
  start: number,
  target: McpTarget,
  self: Exchange,
  ip: ClientAddress,
  forwardedHost: string | undefined,
  body: unknown,
  deps: McpServeDeps,
): Promise<void> {
  const { tools } = target;
  const server = new Server(
    { name: tools.serverName, version: GATEWAY_VERSION },
    {
      capabilities: { tools: { listChanged: false } },
      jsonSchemaValidator: SCHEMA_VALIDATOR,
      ...(tools.settings.instructions !== undefined && { instructions: tools.settings.instructions }),
    },
  );
  server.setRequestHandler(ListToolsRequestSchema, () => ({ tools: [...tools.listFor(self)] }));
  server.setRequestHandler(CallToolRequestSchema, async (request) => {
    const tool = tools.byName.get(request.params.name);
    if (tool === undefined) throw new McpError(RpcError.InvalidParams, `Unknown tool: ${request.params.name}`);
    return callTool(req, tool, request.params.arguments ?? {}, ip, forwardedHost, deps, gone.signal);
  });
  const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
  // The client went away (or the answer is out): calls still waiting for their upstream are abandoned.
  const gone = new AbortController();
  res.once('close', () => {
    gone.abort();
    void transport.close();
    void server.close();
  });
  res.setHeader('x-request-id', requestId);
  await server.connect(transport);
  await transport.handleRequest(req, res, body);
  deps.answered(req, requestId, res.statusCode, start, undefined, target.collection.name);
}

/** A tool call: one request to its endpoint through the endpoint's policy chain, then to the upstream. */
async function callTool(
  mcpRequest: IncomingMessage,
  tool: McpTool,
  args: Record<string, unknown>,
  ip: ClientAddress,
  forwardedHost: string | undefined,
  deps: McpServeDeps,
  signal: AbortSignal,
): Promise<CallToolResult> {
  const built = buildRequest(tool, args);
  const endpoint = tool.endpoint;
  const collection = endpoint.collection;
  // The same canonical path and route a plain request would have: a value that changes the route is refused.
  const full = `${collection.basePath === '/' ? '' : collection.basePath}${built.path}`;
  const canonical = canonicalize(built.query === '' ? full : `${full}?${built.query}`, undefined);
  if (!canonical.ok)
    throw new McpError(RpcError.InvalidParams, `The arguments make an invalid path: ${canonical.detail}`);
  const forwardPath = relativePath(collection.basePath, canonical.value.path);
  const match = collection.endpoints.match(endpoint.method, forwardPath);
  if (match === undefined || 'allow' in match || match.endpoint !== endpoint)
    throw new McpError(RpcError.InvalidParams, 'A path argument changes which endpoint is called: send plain values.');

  const requestId = nextRequestId();
  const headers: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(mcpRequest.headers))
    if (value !== undefined && !TRANSPORT_HEADERS.has(name)) headers[name] = value;
  for (const [name, value] of built.headers) headers[name] = value;
  headers.accept = 'application/json, */*;q=0.8';
  if (built.body !== undefined) {
    headers['content-type'] = 'application/json';
    headers['content-length'] = String(built.body.length);
  }
  const synthetic = Object.assign(Readable.from(built.body === undefined ? [] : [built.body]), {
    method: endpoint.method,
    url: canonical.value.query === '' ? canonical.value.path : `${canonical.value.path}?${canonical.value.query}`,
    headers,
    httpVersion: '1.1',
    httpVersionMajor: 1,
    httpVersionMinor: 1,
    socket: mcpRequest.socket,
    complete: true,
  }) as unknown as IncomingMessage;
  // Its 'close' ends the call for the policies that hold something until the answer is complete (concurrency slots).
  const done = new NodeServerResponse(synthetic);
  const route = { path: canonical.value.path, forwardPath, params: match.params, query: canonical.value.query };
  const ctx = mcpExchange(synthetic, done, requestId, ip, endpoint, route, forwardedHost);
  try {
    const r = await chainResult(ctx, endpoint.chain);
    if (r !== undefined) {
      publishAuthFailure(ctx, r.code);
      deps.finish(ctx, endpoint.method, ERRORS[r.code].status, ctx.start, r.code);
      return refusalResult(r, requestId);
    }
    return await forward(ctx, canonical.value.path, built.body, deps, signal);
  } catch (error) {
    deps.onError(error, requestId);
    deps.finish(ctx, endpoint.method, 500, ctx.start, 'GH_ERR_GATEWAY_INTERNAL');
    return refusalResult(refusal('GH_ERR_GATEWAY_INTERNAL'), requestId);
  } finally {
    done.emit('close');
  }
}

interface BuiltRequest {
  /** Relative to the collection's base path, percent-encoded. */
  path: string;
  query: string;
  headers: [string, string][];
  body: Buffer | undefined;
}

/** Fills the tool's bindings with the call's arguments; a missing or ill-typed argument is an MCP InvalidParams error. */
export function buildRequest(tool: McpTool, args: Record<string, unknown>): BuiltRequest {
  const known = new Set(tool.bindings.map((b) => b.argument));
  if (tool.freeQuery) known.add('query');
  if (tool.body !== 'none') known.add('body');
  for (const name of Object.keys(args))
    if (!known.has(name)) throw new McpError(RpcError.InvalidParams, `Unknown argument "${name}" for ${tool.name}.`);
  const path = new Map<string, string>();
  const query: string[] = [];
  const headers: [string, string][] = [];
  for (const b of tool.bindings) {
    const value = args[b.argument];
    if (value === undefined || value === null) {
      if (b.required) throw new McpError(RpcError.InvalidParams, `The argument "${b.argument}" is required.`);
      continue;
    }
    if (b.in === 'path') {
      const text = scalar(value, b.argument);
      if (text === '' || text === '.' || text === '..')
        throw new McpError(RpcError.InvalidParams, `The argument "${b.argument}" must be a non-empty path segment.`);
      path.set(b.name, encodeURIComponent(text));
    } else if (b.in === 'query') addQuery(query, b.name, value, b.explode, b.argument);
    else {
      // The gateway sets or drops that header itself, or it carries a credential: the MCP request's decides.
      if (isStripped(b.name) || CREDENTIAL_HEADERS.has(headerKey(b.name))) continue;
      headers.push([
        b.name,
        Array.isArray(value) ? value.map((v) => scalar(v, b.argument)).join(',') : scalar(value, b.argument),
      ]);
    }
  }
  if (tool.freeQuery && args.query !== undefined && args.query !== null) {
    if (typeof args.query !== 'object' || Array.isArray(args.query))
      throw new McpError(RpcError.InvalidParams, 'The argument "query" must be an object of name: value.');
    for (const [name, value] of Object.entries(args.query as Record<string, unknown>))
      addQuery(query, name, value, true, `query.${name}`);
  }
  let body: Buffer | undefined;
  if (tool.body !== 'none' && args.body !== undefined) body = Buffer.from(JSON.stringify(args.body));
  else if (tool.body === 'required') throw new McpError(RpcError.InvalidParams, 'The argument "body" is required.');
  const template = tool.endpoint.template;
  const filled = template.replace(/\{([^}]+)\}/g, (_m, name: string) => path.get(name)!);
  return { path: filled, query: query.join('&'), headers, body };
}

function scalar(value: unknown, argument: string): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  throw new McpError(RpcError.InvalidParams, `The argument "${argument}" must be a string, number or boolean.`);
}

function addQuery(out: string[], name: string, value: unknown, explode: boolean, argument: string): void {
  const key = encodeURIComponent(name);
  if (Array.isArray(value)) {
    const items = value.map((v) => encodeURIComponent(scalar(v, argument)));
    if (explode) for (const item of items) out.push(`${key}=${item}`);
    else out.push(`${key}=${items.join(',')}`);
  } else if (value !== undefined && value !== null) {
    out.push(
      `${key}=${encodeURIComponent(typeof value === 'object' ? JSON.stringify(value) : scalar(value, argument))}`,
    );
  }
}

/** The upstream exchange of a tool call; its answer (at most TOOL_RESULT_MAX bytes) is the tool's result. */
async function forward(
  ctx: Exchange,
  path: string,
  body: Buffer | undefined,
  deps: McpServeDeps,
  signal: AbortSignal,
): Promise<CallToolResult> {
  const { collection, endpoint } = ctx;
  const upstream = collection.upstream;
  if (upstream.egressDenied !== undefined) {
    deps.onEgressDenied?.(upstream.egressDenied, collection, ctx.requestId);
    deps.finish(ctx, endpoint.method, 502, ctx.start, 'GH_ERR_UPSTREAM_EGRESS_DENIED');
    return refusalResult(refusal('GH_ERR_UPSTREAM_EGRESS_DENIED'), ctx.requestId);
  }
  const headers = upstreamHeaders(ctx, {
    peerIp: ctx.clientIp,
    trustedForwardedFor: undefined,
    proto: deps.proto,
  });
  let response: Dispatcher.ResponseData;
  try {
    response = await upstream.pool.request({
      path: upstreamPath(ctx, path, ctx.query),
      method: endpoint.method as Dispatcher.HttpMethod,
      headers,
      body: ctx.requestBody ?? body ?? null,
      headersTimeout: upstream.headersTimeout,
      bodyTimeout: upstream.bodyTimeout,
      signal,
    });
  } catch (error) {
    const code = classify(error as Error);
    if (code === 'GH_ERR_UPSTREAM_EGRESS_DENIED') deps.onEgressDenied?.(error as Error, collection, ctx.requestId);
    deps.finish(ctx, endpoint.method, code === 'GH_ERR_UPSTREAM_TIMEOUT' ? 504 : 502, ctx.start, code);
    return refusalResult(refusal(code), ctx.requestId);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of response.body) {
      size += (chunk as Buffer).length;
      if (size > TOOL_RESULT_MAX) {
        response.body.destroy();
        break;
      }
      chunks.push(chunk as Buffer);
    }
  } catch (error) {
    const code = classify(error as Error);
    deps.finish(ctx, endpoint.method, 502, ctx.start, code);
    return refusalResult(refusal(code), ctx.requestId);
  }
  const status = response.statusCode;
  deps.finish(ctx, endpoint.method, status, ctx.start, undefined);
  const meta: Record<string, unknown> = { [`${META}status`]: status, [`${META}requestId`]: ctx.requestId };
  const extra = ctx.responseHeaders;
  if (extra !== undefined) {
    const h: Record<string, string> = {};
    for (let i = 0; i + 1 < extra.length; i += 2) h[extra[i]!] = extra[i + 1]!;
    meta[`${META}headers`] = h;
  }
  if (size > TOOL_RESULT_MAX)
    return {
      isError: true,
      content: [
        {
          type: 'text',
          text: `The API's answer (status ${status}) exceeds ${TOOL_RESULT_MAX} bytes: narrow the request.`,
        },
      ],
      _meta: meta,
    };
  const bytes = Buffer.concat(chunks);
  const type = String(response.headers['content-type'] ?? '')
    .split(';')[0]!
    .trim()
    .toLowerCase();
  const result: CallToolResult = { isError: status >= 400, content: [], _meta: meta };
  if (type.startsWith('image/')) {
    result.content.push({ type: 'image', data: bytes.toString('base64'), mimeType: type });
    return result;
  }
  const text = bytes.toString('utf8');
  result.content.push({ type: 'text', text });
  if (/^application\/(?:[\w.+-]+\+)?json$/.test(type)) {
    try {
      const parsed = JSON.parse(text) as unknown;
      if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed))
        result.structuredContent = parsed as Record<string, unknown>;
    } catch {
      // not JSON after all: the text is the result
    }
  }
  return result;
}

/** A refusal as a tool error: the problem document a plain request would get, and its status and code in `_meta`. */
function refusalResult(r: Refusal, requestId: string): CallToolResult {
  const status = ERRORS[r.code].status;
  const retryAfter = r.headers?.['retry-after'];
  const problem = JSON.parse(problemBody(r, requestId)) as Record<string, unknown>;
  if (retryAfter !== undefined) problem.retryAfter = Number(retryAfter);
  return {
    isError: true,
    content: [{ type: 'text', text: JSON.stringify(problem) }],
    _meta: {
      [`${META}status`]: status,
      [`${META}code`]: r.code,
      [`${META}requestId`]: requestId,
      ...(retryAfter !== undefined && { [`${META}retryAfter`]: Number(retryAfter) }),
    },
  };
}
