/**
 * The one table of error codes. Every refusal leaves as RFC 9457 `application/problem+json` with one of these
 * codes; `docs/errors.md` is generated from this table (`gatehouse docs errors`) and a test fails if they drift.
 *
 * Over 400 lines on purpose: most of it is the table, one entry per code (a new code is one entry here); the writers
 * that send every code sit beside it.
 */
import type { ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';

export interface ErrorDef {
  readonly status: number;
  readonly title: string;
  /** What it means and what the caller can do; rendered into docs/errors.md. */
  readonly doc: string;
}

export const ERRORS = {
  GH_ERR_REQUEST_MALFORMED_TARGET: {
    status: 400,
    title: 'Malformed request target',
    doc: 'The request target is not a valid origin-form path (or absolute-form URL), has invalid percent-encoding, invalid UTF-8, or a fragment.',
  },
  GH_ERR_REQUEST_ENCODED_SLASH: {
    status: 400,
    title: 'Encoded slash or backslash in path',
    doc: 'The path contains `%2F`, `%5C`, a raw `\\`, or a character that Unicode compatibility normalisation (NFKC) turns into `/` or `\\` (such as U+FF0F `／`). Upstreams disagree on what these mean, so the gateway refuses them.',
  },
  GH_ERR_REQUEST_DOUBLE_ENCODING: {
    status: 400,
    title: 'Double percent-encoding in path',
    doc: 'The path contains `%25` followed by two hex digits, which decodes to another escape. Send the path encoded once.',
  },
  GH_ERR_REQUEST_CONTROL_CHARACTER: {
    status: 400,
    title: 'Control character in path',
    doc: 'The path contains NUL or another control character, raw or percent-encoded.',
  },
  GH_ERR_REQUEST_PATH_PARAMETER: {
    status: 400,
    title: 'Path parameter in path',
    doc: 'The path contains `;` (raw or `%3B`). Matrix/path parameters are interpreted differently by upstreams and are refused.',
  },
  GH_ERR_REQUEST_AMBIGUOUS_SEGMENT: {
    status: 400,
    title: 'Ambiguous path segment',
    doc: 'The path contains an encoded `?` or `#` (`%3F`, `%23`), a segment made only of dots beyond `..` (`...`), or a character that Unicode compatibility normalisation (NFKC) turns into `?`, `#` or `.` (such as U+FF0E `．`). Backends read these differently, so the gateway refuses them. Send the path without them (put data in the query or the body).',
  },
  GH_ERR_REQUEST_PATH_TRAVERSAL: {
    status: 400,
    title: 'Path climbs above its base',
    doc: 'A `..` segment would climb above the root or above the base path of the API collection the path resolves to.',
  },
  GH_ERR_REQUEST_HOST_MISMATCH: {
    status: 400,
    title: 'Absolute-form target disagrees with Host',
    doc: 'The request line carries an absolute URL whose authority differs from the Host header.',
  },
  GH_ERR_REQUEST_INVALID_HOST: {
    status: 400,
    title: 'Invalid Host header',
    doc: 'The Host header is empty, sent more than once, or not a host name or IP address with an optional port.',
  },
  GH_ERR_REQUEST_UNKNOWN_HOST: {
    status: 421,
    title: 'Host not served here',
    doc: 'The Host header names none of the hosts this gateway is configured for (`server.publicHosts`, or `--public-url` on the control plane), and no API collection names it. Call the gateway by one of its public host names.',
  },
  GH_ERR_REQUEST_HTTP_VERSION: {
    status: 505,
    title: 'HTTP version not supported',
    doc: 'The request line names an HTTP version other than HTTP/1.0 or HTTP/1.1 (such as `HTTP/0.9` or `HTTP/2.0` in an HTTP/1 request line). Send HTTP/1.1. The connection is closed.',
  },
  GH_ERR_REQUEST_METHOD_NOT_SUPPORTED: {
    status: 501,
    title: 'Method not supported',
    doc: 'The gateway never serves `CONNECT` (it is not a forward proxy) or `TRACE` (it would echo credentials back). The connection is closed.',
  },
  GH_ERR_REQUEST_MALFORMED: {
    status: 400,
    title: 'Malformed HTTP request',
    doc: 'The request is not valid HTTP/1.1: an unparseable request line or header, conflicting or invalid `Content-Length`/`Transfer-Encoding`, or a body that does not match its framing (such as a bad chunk). The connection is closed.',
  },
  GH_ERR_REQUEST_HEADERS_TOO_LARGE: {
    status: 431,
    title: 'Request headers too large',
    doc: "The request line and headers together exceed the gateway's limit (16 KiB). The connection is closed.",
  },
  GH_ERR_REQUEST_UNSUPPORTED_TRANSFER_CODING: {
    status: 501,
    title: 'Transfer coding not supported',
    doc: "The request's `Transfer-Encoding` names a coding other than `chunked` (such as `gzip, chunked`). Send the body with `Content-Length` or plain `chunked`, and compress it with `Content-Encoding`.",
  },
  GH_ERR_REQUEST_METHOD_OVERRIDE: {
    status: 400,
    title: 'Method-override header refused',
    doc: 'Headers such as `X-HTTP-Method-Override`, `X-HTTP-Method`, `X-Method-Override` or `X-Original-Method` would let the upstream see a different method than the gateway authorized. Send the real method.',
  },
  GH_ERR_REQUEST_VALIDATION: {
    status: 400,
    title: 'Request does not match the API description',
    doc: "The collection validates requests against its OpenAPI operations, and this request's path or query parameters, headers or JSON body do not match. `errors[]` names each failing field by JSON pointer (`/body/items/0/qty`, `/query/limit`, `/header/x-tenant`) and the rule it breaks; the values sent are never repeated. Fix the request to match the API's description.",
  },
  GH_ERR_REQUEST_BODY_TOO_LARGE: {
    status: 413,
    title: 'Request body too large to validate',
    doc: "The collection validates request bodies, and this one is larger than the collection's `maxBodyBytes` (default 1 MiB). It was refused before being read in full.",
  },
  GH_ERR_ROUTE_NOT_FOUND: {
    status: 404,
    title: 'No route matches',
    doc: 'No API collection on this gateway serves this host and path, or the collection has no endpoint with this path.',
  },
  GH_ERR_ROUTE_METHOD_NOT_ALLOWED: {
    status: 405,
    title: 'Method not allowed',
    doc: 'The endpoint exists but not for this method; the `Allow` header lists the methods it has.',
  },
  GH_ERR_DERIVED_INVALID: {
    status: 401,
    title: 'Derived credential invalid',
    doc: 'The `ghd_` credential is malformed, altered, or was minted with a signing key no longer in force (keys rotate): mint a new one at the token endpoint (see docs/agents.md).',
  },
  GH_ERR_DERIVED_EXPIRED: {
    status: 401,
    title: 'Derived credential expired',
    doc: 'The derived credential outlived its `expires_in`: mint a new one from the API key (or the credential it was derived from).',
  },
  GH_ERR_DERIVED_PARENT_REVOKED: {
    status: 401,
    title: 'Parent API key no longer valid',
    doc: 'The API key this credential was derived from was revoked, regenerated or deleted: every credential derived from it ends with it. Mint a new one from a valid key.',
  },
  GH_ERR_DERIVED_REVOKED: {
    status: 401,
    title: 'Derived credential revoked',
    doc: "This derived credential was revoked on its own (by its id, or every credential of its agent or session) through the admin API (`POST /api/v1/workspaces/{workspace}/clients/{client}/derived-credential-revocations`) or a standalone gateway's `revokedCredentials`; credentials delegated from it end with it. Other credentials of the same API key keep working: mint a new one if the agent should go on.",
  },
  GH_ERR_DERIVED_FORBIDDEN: {
    status: 403,
    title: 'Outside the derived credential',
    doc: "The endpoint needs a permission the derived credential was not minted with, or a path parameter differs from the value the credential is pinned to (`resource_pin`). Mint a credential with that scope (within the parent's).",
  },
  GH_ERR_DERIVED_WIDENING: {
    status: 400,
    title: 'Derived credential would be wider than its parent',
    doc: 'A token-exchange request asked for more than the parent credential has: a permission it lacks (`invalid_scope`), a lifetime beyond its expiry or the `tokenExchange.derived.maxTtl` cap, IP ranges outside its own, or a changed resource pin (`invalid_target`). Ask for a subset.',
  },
  GH_ERR_DERIVED_DEPTH: {
    status: 400,
    title: 'Delegation too deep',
    doc: 'The subject token is a derived credential already at the delegation depth limit (`tokenExchange.derived.maxDepth`): mint from a shallower credential.',
  },
  GH_ERR_DERIVED_REQUEST_INVALID: {
    status: 400,
    title: 'Token-exchange request invalid',
    doc: 'The token endpoint needs `grant_type=urn:ietf:params:oauth:grant-type:token-exchange`, `subject_token`, `subject_token_type=urn:ietf:params:oauth:token-type:access_token` and `agent_id`, form-encoded in a POST; the description names what is missing or malformed.',
  },
  GH_ERR_AUTH_IP_NOT_ALLOWED: {
    status: 403,
    title: 'Client IP address not allowed',
    doc: "The request comes from an address outside the API client's allowed IP ranges.",
  },
  GH_ERR_AUTH_MISSING_KEY: {
    status: 401,
    title: 'API key required',
    doc: 'Send the API key as `Authorization: Bearer <key>` or `X-API-Key: <key>` (legacy clients: key and email headers).',
  },
  GH_ERR_AUTH_KEY_IN_URL: {
    status: 400,
    title: 'API key in the URL',
    doc: 'The path or the query carries a Gatehouse API key (also percent-encoded). Keys in URLs end up in access logs, browser histories and caches, so the gateway refuses the request instead of forwarding the key. Send the key as `Authorization: Bearer <key>` or `X-API-Key`, and treat the key as leaked: regenerate it.',
  },
  GH_ERR_AUTH_MALFORMED_KEY: {
    status: 401,
    title: 'Malformed API key',
    doc: 'The key does not have the Gatehouse key format or its checksum does not match. It was refused without a lookup.',
  },
  GH_ERR_AUTH_INVALID_KEY: {
    status: 401,
    title: 'Invalid API key',
    doc: 'No active API client has this key: it was never issued, was regenerated, or its client was deleted.',
  },
  GH_ERR_AUTH_EXPIRED_KEY: {
    status: 401,
    title: 'API key expired',
    doc: 'The key, or the API client it belongs to, has passed its expiry.',
  },
  GH_ERR_AUTH_CLIENT_DISABLED: {
    status: 403,
    title: 'API client disabled',
    doc: 'The API client exists but is disabled.',
  },
  GH_ERR_AUTH_FORBIDDEN_ENDPOINT: {
    status: 403,
    title: 'Endpoint not granted',
    doc: "The API client's role does not grant this endpoint.",
  },
  GH_ERR_AUTH_FORBIDDEN_SCOPE: {
    status: 403,
    title: 'Environment or project not granted',
    doc: "The collection's environment or project is not among the API client's.",
  },
  GH_ERR_AUTH_FORBIDDEN_RESOURCE: {
    status: 403,
    title: 'Resource not granted by policy',
    doc: "The collection's resource policies (Cedar) deny this client this operation on this resource: a `forbid` policy applied, or no `permit` policy did. The gateway logs the ids of the deciding policies; the body lists them in `policies` only when the collection sets `policies.exposeDecidingPolicies`. Ask the API's owner for access, or check the policies with `gatehouse policy test`.",
  },
  GH_ERR_RATE_LIMITED: {
    status: 429,
    title: 'Rate limit exceeded',
    doc: 'A rate limit for this key, client or organisation is exhausted. Retry after the number of seconds in `Retry-After`.',
  },
  GH_ERR_RATE_LIMIT_STORE_UNAVAILABLE: {
    status: 503,
    title: 'Rate limit cannot be checked',
    doc: "A rate limit configured with `onStoreFailure: closed` governs this request, and the shared rate-limit store (Redis) is not answering, so the gateway refuses rather than count on this instance alone. Retry after the number of seconds in `Retry-After`; the gateway's `/readyz` check `rateLimitStore` says what is wrong.",
  },
  GH_ERR_CONCURRENCY_LIMITED: {
    status: 429,
    title: 'Too many requests in flight',
    doc: "A concurrency cap for this key, client or organisation is reached: that many of its requests are in flight at once, across every gateway instance. Retry after the number of seconds in `Retry-After`, or once one of your requests in flight has finished; the collection's `concurrency.queue` lets requests wait for a slot instead.",
  },
  GH_ERR_CONCURRENCY_STORE_UNAVAILABLE: {
    status: 503,
    title: 'Concurrency cap cannot be checked',
    doc: 'A concurrency cap configured with `onStoreFailure: closed` governs this request, and the shared limit store (Redis) is not answering, so the gateway refuses rather than count on this instance alone. Retry after the number of seconds in `Retry-After`.',
  },
  GH_ERR_QUOTA_EXHAUSTED: {
    status: 429,
    title: 'Quota exhausted',
    doc: "The daily or monthly quota of this client or organisation is used up: the requests admitted in the current calendar period (each counting its operation's cost) add up to the quota. The detail names the quota and when it resets (also in the body's `resetsAt`); `Retry-After` is the number of seconds until then, and the `RateLimit` header shows `r=0` for the quota. Periods are calendar days and months in UTC unless the collection's `quotas.timeZone` names another time zone.",
  },
  GH_ERR_QUOTA_STORE_UNAVAILABLE: {
    status: 503,
    title: 'Quota cannot be checked',
    doc: "A quota configured with `onStoreFailure: closed` governs this request, and the shared store (Redis) is not answering, so the gateway refuses rather than count on this instance alone. Retry after the number of seconds in `Retry-After`; the gateway's `/readyz` check `quotaStore` says what is wrong.",
  },
  GH_ERR_UPSTREAM_UNAVAILABLE: {
    status: 502,
    title: 'Upstream unavailable',
    doc: 'The gateway could not connect to the upstream, or the connection failed before a complete response.',
  },
  GH_ERR_UPSTREAM_TIMEOUT: {
    status: 504,
    title: 'Upstream timed out',
    doc: 'The upstream did not answer (connect or response headers) within the configured timeout.',
  },
  GH_ERR_UPSTREAM_EGRESS_DENIED: {
    status: 502,
    title: 'Upstream address not allowed',
    doc: "The collection's upstream is, or resolves to, an address the gateway's egress policy refuses, so no connection was made. The cloud gateway always refuses link-local addresses (cloud metadata services) and the control plane's own ports; a gateway whose egress is `public` refuses loopback, private and every other non-public address. Point the upstream at an address the gateway may reach.",
  },
  GH_ERR_UPSTREAM_WEBSOCKET_REFUSED: {
    status: 502,
    title: 'Upstream refused the WebSocket upgrade',
    doc: 'The upstream did not answer the upgrade with 101 Switching Protocols.',
  },
  GH_ERR_WEBSOCKET_NOT_ALLOWED: {
    status: 400,
    title: 'WebSocket not enabled',
    doc: 'The API collection does not allow WebSocket upgrades.',
  },
  GH_ERR_TOKEN_EXCHANGE_FAILED: {
    status: 500,
    title: 'Token exchange failed',
    doc: 'The gateway could not mint the upstream token. This is a gateway fault; it is logged with the request id.',
  },
  GH_ERR_ADMIN_UNAUTHENTICATED: {
    status: 401,
    title: 'Admin API credentials required',
    doc: 'Send an API client token as `Authorization: Bearer <token>` (or `X-API-Key`), or log in to get a session cookie. The token may be unknown, regenerated, expired, or its client or role deleted.',
  },
  GH_ERR_ADMIN_FORBIDDEN: {
    status: 403,
    title: 'Admin operation not granted',
    doc: "The caller's role does not grant this admin API operation, its IP address is not allowed, or the change would give another client more than the caller holds.",
  },
  GH_ERR_ADMIN_OUT_OF_SCOPE: {
    status: 403,
    title: "Outside the caller's environments or projects",
    doc: "The resource belongs to an environment or project that is not among the caller's.",
  },
  GH_ERR_ADMIN_NOT_FOUND: {
    status: 404,
    title: 'Resource not found',
    doc: 'No such resource in this workspace (resources of other workspaces are never visible).',
  },
  GH_ERR_ADMIN_INVALID_BODY: {
    status: 400,
    title: 'Invalid request',
    doc: 'The body, query or path does not match the schema, or refers to something that does not exist. `errors[]` lists every problem as `{ path, message }`; nothing was written.',
  },
  GH_ERR_ADMIN_CONFLICT: {
    status: 409,
    title: 'Conflict',
    doc: 'The name is taken, the base path is already served by another collection of the same gateway, or the resource changed meanwhile. Nothing was written.',
  },
  GH_ERR_ADMIN_ENTITY_LIMIT: {
    status: 409,
    title: 'Too many entities in the collection',
    doc: "The write would take the collection's relationship data past the bound a collection may hold (1,000,000 entities; docs/policies.md). Nothing was written: delete entities first, or split the data across collections.",
  },
  GH_ERR_ADMIN_ROLE_IN_USE: {
    status: 409,
    title: 'The role is in use',
    doc: "API clients hold the role: deleting it would make their requests fail. `clients[]` lists them (`id`, `name`; those outside the caller's environments and projects are only counted in the detail). Give them another role or delete them first, or delete with `?force=true` (`gatehouse role delete NAME --force`) to refuse their requests from then on. Nothing was deleted.",
  },
  GH_ERR_ADMIN_NO_DEPLOYMENT_TARGET: {
    status: 409,
    title: 'No deployment target in the destination environment',
    doc: 'A collection served by an edge gateway was promoted to an environment that has no edge gateway, and the promotion named no target there. Create the edge gateway of that environment (`gatehouse gateway create`), or give the target in the destination (`"target": {"type": "cloud"}`). Nothing was written.',
  },
  GH_ERR_ADMIN_DEV_ONLY: {
    status: 409,
    title: 'Only in the development environment',
    doc: "Project deployment and collaborator management exist only in the workspace's development environment (DEV by default).",
  },
  GH_ERR_ADMIN_TOO_MANY_ATTEMPTS: {
    status: 429,
    title: 'Too many failed logins',
    doc: 'Too many failed password logins for this account or from this address in the last 15 minutes. Retry after the number of seconds in `Retry-After`.',
  },
  GH_ERR_ADMIN_UNSUPPORTED_MEDIA_TYPE: {
    status: 415,
    title: 'JSON required',
    doc: 'Send the body as `application/json`.',
  },
  GH_ERR_ADMIN_CSRF: {
    status: 403,
    title: 'CSRF token missing or wrong',
    doc: "A state-changing request authenticated by the console session cookie must send the session's CSRF token as `X-CSRF-Token` (returned by `POST /api/v1/auth/login` and `GET /api/v1/me`). Fetch it again with `GET /api/v1/me`; API clients sending a token in `Authorization` need none.",
  },
  GH_ERR_ADMIN_BODY_TOO_LARGE: {
    status: 413,
    title: 'Request body too large',
    doc: 'Admin API bodies are limited to 1 MiB (an OpenAPI import to 64 MiB).',
  },
  GH_ERR_ADMIN_OPENAPI_INVALID: {
    status: 422,
    title: 'OpenAPI document refused',
    doc: 'The uploaded OpenAPI document cannot be imported: `errors[]` lists every problem at once, each with its JSON pointer (`pointer`) and, for a document sent as text, its `line` and `column`. Nothing was changed. Fix the document (or set `x-gatehouse-permission` where a scope is not a permission name) and import again.',
  },
  GH_ERR_BOOTSTRAP_INVALID_REQUEST: {
    status: 400,
    title: 'Invalid bootstrap request',
    doc: 'The bootstrap endpoint got a malformed body, registration token or certificate signing request. Run the install command as the control plane printed it.',
  },
  GH_ERR_BOOTSTRAP_TOKEN_REFUSED: {
    status: 401,
    title: 'Registration token refused',
    doc: 'The registration token is unknown, was already used, expired (tokens live 5 minutes), or its gateway was deleted. Regenerate the install command (`gatehouse gateway install-command`).',
  },
  GH_ERR_BOOTSTRAP_CERTIFICATE_REFUSED: {
    status: 401,
    title: 'Gateway certificate refused',
    doc: "An edge gateway asked to re-enroll with its certificate, and the control plane refused: the certificate is not from its CA, unknown, revoked (the gateway was deleted), expired longer ago than the re-enrollment window (default 30 days), or the CSR is not for the certificate's key. Bootstrap the gateway again with a new install command.",
  },
  GH_ERR_GATEWAY_NOT_READY: {
    status: 503,
    title: 'Gateway not ready',
    doc: "The gateway has no configuration in force yet: it is starting, or waiting for its control plane (its cached configuration is missing or was refused). Retry after the number of seconds in `Retry-After`; the gateway's `/readyz` says what it waits for.",
  },
  GH_ERR_ADMIN_INTERNAL: {
    status: 500,
    title: 'Internal error',
    doc: "An unexpected control-plane fault while answering an admin API request. Nothing is known to have been written unless the operation says so; details are in the control plane's log under the request id, never in the response.",
  },
  GH_ERR_BOOTSTRAP_INTERNAL: {
    status: 500,
    title: 'Internal error',
    doc: "An unexpected control-plane fault while registering or re-enrolling a gateway. Details are in the control plane's log under the request id. Retry; if it persists, regenerate the install command.",
  },
  GH_ERR_GATEWAY_INTERNAL: {
    status: 500,
    title: 'Internal error',
    doc: 'An unexpected gateway fault. Details are in the gateway log under the request id, never in the response.',
  },
} as const satisfies Record<string, ErrorDef>;

export type ErrorCode = keyof typeof ERRORS;

/**
 * A problem to answer with: an expected refusal carried as a value through the policy chain, or an error of the
 * admin API or the bootstrap endpoint. Every server writes it with `sendProblem` (or `writeRawProblem` on a raw
 * socket): one shape of body and headers for all.
 */
export interface Refusal {
  readonly code: ErrorCode;
  /** Safe, caller-facing detail (never internal state or secrets). */
  readonly detail?: string;
  readonly headers?: Readonly<Record<string, string>>;
  /** Extension members of the body (RFC 9457 §3.2), e.g. the admin API's `errors[]`. */
  readonly extensions?: Readonly<Record<string, unknown>>;
}

export function refusal(code: ErrorCode, detail?: string, headers?: Record<string, string>): Refusal {
  return { code, detail, headers };
}

export const DOCS_BASE = 'https://gatehouse.dev/docs/errors';

/** The problem+json body of `r`; `instance` names the request id. */
export function problemBody(r: Refusal, requestId: string): string {
  const def = ERRORS[r.code];
  return JSON.stringify({
    type: `${DOCS_BASE}#${r.code.toLowerCase()}`,
    title: def.title,
    status: def.status,
    code: r.code,
    ...(r.detail ? { detail: r.detail } : {}),
    ...r.extensions,
    instance: `urn:gatehouse:request:${requestId}`,
  });
}

/** The realm of `WWW-Authenticate` on a 401: the data plane's keys, or the admin API's credentials. */
export type Realm = 'gatehouse' | 'gatehouse-admin';

/**
 * Writes `r` as problem+json and returns its status. When an answer was already started (a failure mid-response)
 * the connection is cut instead: a second answer would corrupt the stream.
 */
export function sendProblem(res: ServerResponse, r: Refusal, requestId: string, realm: Realm = 'gatehouse'): number {
  const def = ERRORS[r.code];
  if (res.headersSent) {
    res.destroy();
    return def.status;
  }
  const body = problemBody(r, requestId);
  const headers: Record<string, string | number> = {
    'content-type': 'application/problem+json',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    'x-request-id': requestId,
    ...r.headers,
  };
  // A refusal may carry its own challenge (an MCP endpoint's `resource_metadata`, RFC 9728 §5.1).
  if (def.status === 401 && r.headers?.['www-authenticate'] === undefined)
    headers['www-authenticate'] = `Bearer realm="${realm}"`;
  res.writeHead(def.status, headers);
  res.end(body);
  return def.status;
}

/** Writes `r` on a raw socket (a refused WebSocket upgrade, CONNECT, a parse error) and closes it. */
export function writeRawProblem(socket: Duplex, r: Refusal, requestId: string): void {
  const def = ERRORS[r.code];
  const body = problemBody(r, requestId);
  let extra = '';
  for (const [name, value] of Object.entries(r.headers ?? {})) extra += `${name}: ${value}\r\n`;
  if (def.status === 401) extra += 'www-authenticate: Bearer realm="gatehouse"\r\n';
  socket.end(
    `HTTP/1.1 ${def.status} ${def.title}\r\ncontent-type: application/problem+json\r\ncontent-length: ${Buffer.byteLength(body)}\r\ncache-control: no-store\r\nx-request-id: ${requestId}\r\nconnection: close\r\n${extra}\r\n${body}`,
  );
}

/** docs/errors.md, generated from the table. */
export function renderErrorDocs(): string {
  const lines = [
    '# Error codes',
    '',
    '<!-- Generated from src/shared/errors.ts by `gatehouse docs errors`; do not edit by hand. -->',
    '',
    'Every refusal is an RFC 9457 `application/problem+json` body:',
    '',
    '```json',
    '{ "type": "https://gatehouse.dev/docs/errors#gh_err_auth_invalid_key", "title": "Invalid API key", "status": 401,',
    '  "code": "GH_ERR_AUTH_INVALID_KEY", "instance": "urn:gatehouse:request:<request id>" }',
    '```',
    '',
    'The `code` is stable; match on it rather than on `title` or `detail`. The request id is also in the',
    '`X-Request-Id` response header and in the gateway access log.',
    '',
    '| Code | Status | Title |',
    '| --- | --- | --- |',
  ];
  for (const [code, def] of Object.entries(ERRORS))
    lines.push(`| [\`${code}\`](#${code.toLowerCase()}) | ${def.status} | ${def.title} |`);
  lines.push('');
  for (const [code, def] of Object.entries(ERRORS)) {
    lines.push(`## ${code.toLowerCase()}`, '', `**${code}** — ${def.status} ${def.title}`, '', def.doc, '');
  }
  return lines.join('\n');
}
