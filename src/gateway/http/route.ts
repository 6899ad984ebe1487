/**
 * Routing a request: what is refused before any route (HTTP version, CONNECT/TRACE), then the canonical path, a key
 * in the URL, the collection by host and base path, the Host the gateway may vouch for, and the endpoint. The
 * listener caches matches per route table (route-cache.ts); refusals are never cached.
 */
import type { IncomingMessage } from 'node:http';
import { carriesKey } from '../../shared/api-key.ts';
import { type Refusal, refusal } from '../../shared/errors.ts';
import type { CompiledCollection, CompiledEndpoint, RouteTable } from '../snapshot/compiled.ts';
import { canonicalize } from './canonical-path.ts';
import type { HostList } from './host-list.ts';
import { relativePath } from './router.ts';

export interface Routed {
  collection: CompiledCollection;
  endpoint: CompiledEndpoint;
  path: string;
  query: string;
  forwardPath: string;
  /** The Host to forward, when the gateway vouches for it. */
  forwardedHost: string | undefined;
  /** The endpoint's path parameters: raw canonical segments, in template order. */
  params: readonly string[];
}

export const NOT_FOUND = refusal('GH_ERR_ROUTE_NOT_FOUND');
const TRAVERSAL = refusal(
  'GH_ERR_REQUEST_PATH_TRAVERSAL',
  'A ".." segment climbs above the base path of the API collection.',
);

/**
 * What is refused whatever the route, before routing: a request line of another HTTP version than 1.0/1.1 (Node's
 * parser reads `HTTP/0.9` and `HTTP/2.0` lines but serves them as 1.1), and methods the gateway never forwards.
 */
export function refuseBeforeRouting(req: IncomingMessage): Refusal | undefined {
  if (req.httpVersionMajor !== 1) return HTTP_VERSION;
  const method = req.method;
  if (method === 'TRACE' || method === 'CONNECT') return METHOD_NOT_SUPPORTED;
  return undefined;
}

/** Canonical path and route match (uncached). */
export function matchRoute(
  req: IncomingMessage,
  table: RouteTable,
  publicHosts: HostList | undefined,
): Routed | Refusal {
  const headers = req.headers;
  // Checked here, on a route-cache miss only: a cached route was matched with this exact Host before.
  const host = headers.host;
  if (host !== undefined && !HOST.test(host)) return INVALID_HOST;
  const canonical = canonicalize(req.url ?? '', host);
  if (!canonical.ok) return refusal(canonical.code, canonical.detail);
  const { path, query, minDepthAfterDotDot } = canonical.value;
  // A key in the URL would reach the upstream, its logs and every cache on the way: refused wherever it sits.
  if (carriesKey(path) || (query !== '' && carriesKey(query)) || (host !== undefined && carriesKey(host)))
    return KEY_IN_URL;
  // `_method=DELETE` in the query: Symfony and Laravel run that method instead of the one authorized.
  if (query !== '' && hasMethodOverrideParameter(query)) return METHOD_OVERRIDE_PARAMETER;
  const collection = table.router.match(hostname(host), path);
  if (collection === undefined) return NOT_FOUND;
  if (minDepthAfterDotDot < collection.baseDepth) return TRAVERSAL;
  // A collection that names its host was matched by it; otherwise the Host must be a public one, when any is set.
  let forwardedHost: string | undefined;
  if (collection.host !== undefined) forwardedHost = host;
  else if (publicHosts !== undefined) {
    if (host === undefined || !publicHosts.has(host)) return UNKNOWN_HOST;
    forwardedHost = host;
  }
  const forwardPath = relativePath(collection.basePath, path);
  const match = collection.endpoints.match(req.method ?? 'GET', forwardPath);
  if (match === undefined) return NOT_FOUND;
  if ('allow' in match) return refusal('GH_ERR_ROUTE_METHOD_NOT_ALLOWED', undefined, { allow: match.allow.join(', ') });
  return { collection, endpoint: match.endpoint, path, query, forwardPath, forwardedHost, params: match.params };
}

/** A Host value: a host name (letters, digits, '.', '-', '_'), an IPv4 address or a bracketed IPv6 one, and an optional port. */
const HOST =
  /^(?:[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?)*\.?|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$/;
const INVALID_HOST = refusal('GH_ERR_REQUEST_INVALID_HOST');
const UNKNOWN_HOST = refusal('GH_ERR_REQUEST_UNKNOWN_HOST');
const KEY_IN_URL = refusal('GH_ERR_AUTH_KEY_IN_URL');
const METHOD_OVERRIDE_PARAMETER = refusal(
  'GH_ERR_REQUEST_METHOD_OVERRIDE',
  'A `_method` query parameter is not accepted: frameworks read it as another method than the one authorized. Send the real method.',
);

/** Whether a raw query holds a parameter named `_method` (any case, raw or percent-encoded). */
function hasMethodOverrideParameter(query: string): boolean {
  const lower = query.toLowerCase();
  if (lower.indexOf('method') === -1 && lower.indexOf('%') === -1) return false;
  for (const pair of query.split('&')) {
    const eq = pair.indexOf('=');
    let name = eq === -1 ? pair : pair.slice(0, eq);
    if (name.indexOf('%') !== -1) {
      try {
        name = decodeURIComponent(name);
      } catch {
        continue;
      }
    }
    if (name.toLowerCase() === '_method') return true;
  }
  return false;
}
const HTTP_VERSION = refusal('GH_ERR_REQUEST_HTTP_VERSION');
export const METHOD_NOT_SUPPORTED = refusal(
  'GH_ERR_REQUEST_METHOD_NOT_SUPPORTED',
  'The gateway does not serve CONNECT or TRACE.',
);

/** The Host header's name, lower case, without the port (as routes are matched). */
export function hostname(host: string | undefined): string | undefined {
  if (host === undefined) return undefined;
  const end = host.startsWith('[') ? host.indexOf(']') + 1 : host.indexOf(':');
  return (end > 0 ? host.slice(0, end) : host).toLowerCase();
}
