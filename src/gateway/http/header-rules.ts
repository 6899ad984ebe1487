/**
 * Which client request headers never reach an upstream, and which end the request: one table, used by the proxy
 * and the listener and rendered into docs/security.md (a test fails when the two drift).
 *
 * The classes: headers that would make a framework or proxy behind the gateway route to another URL or method
 * than the one the gateway authorized (`X-Original-URL`, `X-Rewrite-URL`, …); headers that claim a client
 * address, a scheme, a host or an identity, which only the gateway may assert; hop-by-hop headers; and the
 * headers that carried the caller's credential. Method overrides are refused outright (400): a client that sends
 * one wants another method, and silently dropping it would run the wrong operation.
 */

import { HOP_BY_HOP_HEADERS } from '../../shared/hop-by-hop.ts';

export interface HeaderRule {
  /** Lower-case header names. */
  readonly names: readonly string[];
  /** Lower-case name prefixes: every header starting with one belongs to the rule. */
  readonly prefixes?: readonly string[];
  /** Why, for the docs. */
  readonly why: string;
}

/** Removed from every forwarded request (HTTP and WebSocket), whatever the collection. */
export const STRIPPED: readonly HeaderRule[] = [
  {
    names: HOP_BY_HOP_HEADERS,
    why: 'Hop-by-hop (RFC 9110 §7.6.1), plus every header the client lists in `Connection`. `Upgrade` is sent again by the gateway for a WebSocket it tunnels.',
  },
  {
    names: ['host'],
    why: "The upstream gets its own host (the collection's upstream URL); the client's goes into `X-Forwarded-Host` only when the gateway is configured for it (see below).",
  },
  {
    names: [
      'x-original-url',
      'x-rewrite-url',
      'x-override-url',
      'x-original-uri',
      'x-forwarded-uri',
      'x-forwarded-path',
      'x-envoy-original-path',
      'x-forwarded-prefix',
      'x-original-host',
      'x-forwarded-server',
      'x-host',
      'x-http-host-override',
    ],
    why: 'Rewrite headers: IIS, Symfony, Laravel, Spring, nginx and Envoy route by them, so a granted request could reach an endpoint the role does not grant.',
  },
  {
    names: [
      'forwarded',
      'x-forwarded-for',
      'x-forwarded-host',
      'x-forwarded-proto',
      'x-forwarded-port',
      'x-forwarded-scheme',
      'x-forwarded-ssl',
      'x-forwarded-protocol',
      'x-url-scheme',
      'x-scheme',
      'front-end-https',
      'x-real-ip',
      'x-client-ip',
      'client-ip',
      'true-client-ip',
      'cf-connecting-ip',
      'fastly-client-ip',
      'x-cluster-client-ip',
      'x-originating-ip',
      'x-remote-ip',
      'x-remote-addr',
      'x-proxyuser-ip',
      'x-envoy-external-address',
      'x-forwarded',
      'forwarded-for',
    ],
    why: "Client address, scheme and host: the gateway sets `Forwarded`, `X-Forwarded-For` (extending a trusted proxy's), `X-Forwarded-Proto` and `X-Forwarded-Host` itself.",
  },
  {
    names: [
      'x-request-id',
      'remote-user',
      'x-remote-user',
      'x-forwarded-user',
      'x-forwarded-email',
      'x-forwarded-groups',
      'x-forwarded-preferred-username',
      'x-forwarded-access-token',
      'x-user',
      'x-user-id',
      'x-userinfo',
      'x-credential-identifier',
      'x-client-cert',
      'x-forwarded-client-cert',
      'x-ssl-client-cert',
      'x-client-dn',
      'x-client-verify',
    ],
    prefixes: [
      'x-gatehouse-',
      'x-consumer-',
      'x-authenticated-',
      'x-auth-request-',
      'x-ssl-client-',
      'x-amzn-oidc-',
      'x-goog-authenticated-',
      'x-ms-client-principal',
    ],
    why: "Identity: headers that proxies and auth sidecars (oauth2-proxy, Kong, ALB, IAP, App Service, mTLS terminators) use to tell a backend who the caller is. Only the gateway's signed JWT says that.",
  },
];

/** Requests carrying one of these are refused with 400 GH_ERR_REQUEST_METHOD_OVERRIDE before routing. */
export const REFUSED_METHOD_OVERRIDES: readonly string[] = [
  'x-http-method-override',
  'x-http-method',
  'x-method-override',
  'x-original-method',
];

const exact = new Set<string>();
const prefixes: string[] = [];
for (const rule of STRIPPED) {
  for (const name of rule.names) exact.add(name);
  for (const prefix of rule.prefixes ?? []) prefixes.push(prefix);
}
/** Every stripped name (a Set lookup per header on the request path). */
export const STRIPPED_NAMES: ReadonlySet<string> = exact;
/** Stripped name prefixes; all start with `x-`, so only such names are compared with them. */
export const STRIPPED_PREFIXES: readonly string[] = prefixes;

/**
 * A header name as CGI, WSGI and Rack servers (and nginx with `underscores_in_headers on`) read it: `_` and `-`
 * are one character there (`X_Original_URL` and `X-Original-URL` both become `HTTP_X_ORIGINAL_URL`), so every rule
 * compares names with `_` read as `-`.
 */
export function headerKey(name: string): string {
  return name.indexOf('_') === -1 ? name : name.replaceAll('_', '-');
}

const REFUSED = new Set(REFUSED_METHOD_OVERRIDES);

/** The method-override header of a request, in any spelling (`X-HTTP-Method-Override`, `x_http_method_override`), if any. */
export function methodOverride(headers: Readonly<Record<string, unknown>>): string | undefined {
  for (const name in headers) {
    if (name.charCodeAt(0) === 0x78 /* x */ && REFUSED.has(headerKey(name))) return name;
  }
  return undefined;
}

/** Whether a lower-case request header name (any spelling, see `headerKey`) is removed before forwarding. */
export function isStripped(raw: string): boolean {
  const name = headerKey(raw);
  if (exact.has(name)) return true;
  if (name.charCodeAt(0) !== 0x78 /* x */) return false;
  for (const prefix of prefixes) if (name.startsWith(prefix)) return true;
  return false;
}

/** The Markdown list of docs/security.md between its generated markers. */
export function renderHeaderRules(): string {
  const lines: string[] = [];
  for (const rule of STRIPPED) {
    const names = [...rule.names.map((n) => `\`${n}\``), ...(rule.prefixes ?? []).map((p) => `\`${p}*\``)];
    lines.push(`- ${names.join(', ')}: ${rule.why}`);
  }
  lines.push(
    `- Refused with 400 \`GH_ERR_REQUEST_METHOD_OVERRIDE\`: ${REFUSED_METHOD_OVERRIDES.map((n) => `\`${n}\``).join(', ')}.`,
  );
  return lines.join('\n');
}
