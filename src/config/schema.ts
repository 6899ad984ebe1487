/**
 * Length (about 1,010 lines): the snapshot contract — every field of the gateway file and the snapshot, each
 * with its documentation comment — read as one document; resources.ts, telemetry.ts and control-plane.ts derive
 * from it.
 *
 * The configuration contract of Gatehouse.
 *
 * `SnapshotSchema` is what a gateway serves: API collections, client roles, API clients, legacy clients,
 * token-exchange settings and default rate limits. A standalone gateway reads it from a declarative file
 * (`GatewayFileSchema` = snapshot + local `server` settings); the control plane compiles exactly the same shape.
 * Types are inferred from these schemas — there are no hand-kept duplicates.
 */
import { z } from 'zod';
import { KEY_PREFIX } from '../shared/api-key.ts';
import { HOP_BY_HOP_HEADERS } from '../shared/hop-by-hop.ts';
import { WILDCARD } from '../shared/permissions.ts';
import { parseDuration } from './duration.ts';
import { installZodMessages } from './zod-messages.ts';
import { RevokedCredentialSchema } from './revocations.ts';

// Every schema of Gatehouse is read through this module: zod's own messages become ones written for users.
installZodMessages();
import {
  CollectionPoliciesSchema,
  EndpointResourceSchema,
  EntitySetIdSchema,
  entityKey,
  type SnapshotEntity,
  SnapshotEntitySchema,
} from './resource-policies.ts';

/** The patterns of names and environments, shared with the fast client validator (`clients-file.ts`). */
export const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
export const ENVIRONMENT_PATTERN = /^[A-Z][A-Z0-9_]{0,31}$/;

/** A name usable in URLs, logs and metric labels. */
export const NameSchema = z
  .string()
  .regex(NAME_PATTERN, 'must be 1-128 characters: letters, digits, ".", "_" or "-", starting with a letter or digit');

/** What a resource that people name and describe (a project, a role) starts with. */
export const NamedSchema = z.strictObject({
  name: NameSchema,
  description: z.string().max(1024).optional(),
});

/** Environments are upper-case names such as DEV, TEST, PROD. */
export const EnvironmentSchema = z
  .string()
  .regex(ENVIRONMENT_PATTERN, 'must be an upper-case environment name such as DEV, TEST or PROD');

export const HttpMethodSchema = z.enum(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);
export type HttpMethod = z.infer<typeof HttpMethodSchema>;

/**
 * A duration: a number of seconds, or a string such as "250ms", "30s", "5m", "2h", "7d". Output: milliseconds, a
 * safe integer (fields that need less say how much at most, e.g. `RateLimitSchema.window`).
 */
export const DurationSchema = z.union([z.number().positive(), z.string()]).transform((value, ctx) => {
  const ms = parseDuration(value);
  if (ms === undefined) {
    ctx.addIssue({
      code: 'custom',
      message: `invalid duration ${JSON.stringify(value)}: use seconds or "250ms", "30s", "5m", "2h", "7d"`,
    });
    return z.NEVER;
  }
  if (!Number.isSafeInteger(ms)) {
    ctx.addIssue({ code: 'custom', message: `duration ${JSON.stringify(value)} is too long` });
    return z.NEVER;
  }
  return ms;
});

const DAY_MS = 86_400_000;
/** The longest rate-limit window: a monthly quota fits; header values (`w=` seconds) stay small integers. */
export const MAX_RATE_LIMIT_WINDOW_MS = 31 * DAY_MS;
/** The longest token lifetime: a token outlives a revoked key or a rotated signing key by at most this much. */
export const MAX_TOKEN_TTL_MS = DAY_MS;

const SEGMENT = /^(?:[A-Za-z0-9\-._~!$&'()*+,=:@]|%[0-9A-Fa-f]{2})+$/;
const PARAM = /^\{([A-Za-z_][A-Za-z0-9_.-]*)\}$/;
/** Escapes a canonical path never contains: encoded '/', '\\', ';', '%', '.', and control characters. */
const AMBIGUOUS_ESCAPE = /%(?:2f|5c|3b|25|2e|[01][0-9a-f]|7f)/i;

/**
 * A path template such as `/orgs/{orgId}/invoices`: literal segments and `{param}` segments, which match exactly
 * one non-empty segment. No dot segments, empty segments, `;` or encoded slashes: templates are matched against
 * canonical paths, which never contain those.
 */
export const PathTemplateSchema = z.string().superRefine((value, ctx) => {
  if (value === '/') return;
  if (!value.startsWith('/') || value.endsWith('/')) {
    ctx.addIssue({ code: 'custom', message: 'must start with "/" and not end with "/"' });
    return;
  }
  const names = new Set<string>();
  for (const segment of value.slice(1).split('/')) {
    const param = PARAM.exec(segment);
    if (param) {
      if (names.has(param[1]!)) ctx.addIssue({ code: 'custom', message: `parameter {${param[1]}} appears twice` });
      names.add(param[1]!);
    } else if (
      segment === '' ||
      segment === '.' ||
      segment === '..' ||
      !SEGMENT.test(segment) ||
      AMBIGUOUS_ESCAPE.test(segment)
    ) {
      ctx.addIssue({
        code: 'custom',
        message: `invalid segment ${JSON.stringify(segment)}: use literal characters or {param}`,
      });
    }
  }
});

/** A base path: `/` or `/seg/seg` with literal segments only. */
export const BasePathSchema = z.string().superRefine((value, ctx) => {
  if (value === '/') return;
  if (
    !value.startsWith('/') ||
    value.endsWith('/') ||
    value
      .slice(1)
      .split('/')
      .some((s) => s === '.' || s === '..' || !SEGMENT.test(s) || s.includes('%'))
  ) {
    ctx.addIssue({
      code: 'custom',
      message: 'must be "/" or literal segments such as "/billing/v1", without a trailing "/"',
    });
  }
});

export const HostSchema = z
  .string()
  .regex(
    /^(?:\*\.)?[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/,
    'must be a lower-case host name (optionally "*.example.com"), without port',
  );

/** An upstream URL. Messages never repeat it: a URL that does not parse may still hold a password. */
export const HttpUrlSchema = z.string().superRefine((value, ctx) => {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    ctx.addIssue({
      code: 'custom',
      message: 'invalid URL (not repeated here, as it may hold credentials): check the scheme, host and port',
    });
    return;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    ctx.addIssue({ code: 'custom', message: 'must be an http:// or https:// URL' });
  if (url.search || url.hash) ctx.addIssue({ code: 'custom', message: 'must not carry a query or fragment' });
  if (url.username || url.password) ctx.addIssue({ code: 'custom', message: 'must not carry credentials' });
});

/** A CIDR range, written as its network address: `10.1.2.3/8` is refused (did you mean 10.0.0.0/8?). */
export const CidrSchema = z
  .union([z.cidrv4(), z.cidrv6()], { error: 'must be a CIDR range such as 10.0.0.0/8 or 2001:db8::/32' })
  .superRefine((value, ctx) => {
    const network = networkOf(value);
    if (network !== value) ctx.addIssue({ code: 'custom', message: `has host bits set: did you mean ${network}?` });
  });

/** The CIDR range written with its network address (host bits cleared); `value` itself when it already is. */
export function networkOf(value: string): string {
  const slash = value.lastIndexOf('/');
  const address = value.slice(0, slash);
  const bits = Number(value.slice(slash + 1));
  if (!address.includes(':')) {
    const octets = address.split('.').map(Number);
    const n = ((octets[0]! << 24) | (octets[1]! << 16) | (octets[2]! << 8) | octets[3]!) >>> 0;
    const mask = bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0;
    const network = (n & mask) >>> 0;
    return network === n
      ? value
      : `${[network >>> 24, (network >>> 16) & 255, (network >>> 8) & 255, network & 255].join('.')}/${bits}`;
  }
  const groups = ipv6Groups(address);
  let changed = false;
  for (let i = 0; i < 8; i++) {
    const keep = Math.max(0, Math.min(16, bits - i * 16)); // leading bits of this group that belong to the network
    const masked = keep === 0 ? 0 : groups[i]! & ((0xffff << (16 - keep)) & 0xffff);
    if (masked !== groups[i]) changed = true;
    groups[i] = masked;
  }
  return changed ? `${formatIpv6(groups)}/${bits}` : value;
}

/** The 8 16-bit groups of an IPv6 address that `z.cidrv6` accepted (`::` and a trailing IPv4 part included). */
function ipv6Groups(address: string): number[] {
  const parse = (part: string) => {
    const out: number[] = [];
    for (const g of part === '' ? [] : part.split(':')) {
      if (g.includes('.')) {
        const [a, b, c, d] = g.split('.').map(Number);
        out.push((a! << 8) | b!, (c! << 8) | d!);
      } else {
        out.push(parseInt(g, 16));
      }
    }
    return out;
  };
  const [head, tail] = address.split('::');
  const left = parse(head!);
  const right = tail === undefined ? [] : parse(tail);
  return [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
}

/** RFC 5952 text: lower-case hex, the longest run of two or more zero groups (the first of equals) as `::`. */
function formatIpv6(groups: number[]): string {
  let best = -1;
  let bestLength = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) [best, bestLength] = [i, j - i];
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLength).join(':')}`;
}

export const RateLimitSchema = z.strictObject({
  /** Requests allowed per window. */
  limit: z.int().positive(),
  /** Window length (sliding window), at most 31 days. */
  window: DurationSchema.pipe(z.number().max(MAX_RATE_LIMIT_WINDOW_MS, 'must be at most 31d')),
  /**
   * While the shared rate-limit store (`server.rateLimitStore: redis`) is degraded: `open` (the default) goes on
   * counting on each instance alone, so the limit holds per instance; `closed` refuses the requests it governs
   * with 503 `GH_ERR_RATE_LIMIT_STORE_UNAVAILABLE` until the store answers again. No effect with the memory store.
   */
  onStoreFailure: z.enum(['open', 'closed']).optional(),
});
export type RateLimit = z.output<typeof RateLimitSchema>;

/** Limits by who is counted: one API key, all keys of one client, all clients of one org (customer). */
export const RateLimitPoliciesSchema = z.strictObject({
  key: RateLimitSchema.optional(),
  client: RateLimitSchema.optional(),
  org: RateLimitSchema.optional(),
});
export type RateLimitPolicies = z.output<typeof RateLimitPoliciesSchema>;

/** A cap on requests in flight at once, across every gateway instance sharing the limit store. */
export const ConcurrencyCapSchema = z.strictObject({
  /** Requests in flight at once. */
  max: z.int().positive().max(1_000_000),
  /**
   * While the shared store (`server.rateLimitStore: redis`) is unavailable: `open` (the default) goes on with a
   * local share of the cap (⌈max / instances⌉); `closed` refuses with 503 `GH_ERR_CONCURRENCY_STORE_UNAVAILABLE`.
   */
  onStoreFailure: z.enum(['open', 'closed']).optional(),
});
export type ConcurrencyCap = z.output<typeof ConcurrencyCapSchema>;

/** Concurrency caps by who is counted (one key, all keys of a client, all clients of an org), and the wait queue. */
export const ConcurrencyPoliciesSchema = z.strictObject({
  key: ConcurrencyCapSchema.optional(),
  client: ConcurrencyCapSchema.optional(),
  org: ConcurrencyCapSchema.optional(),
  /**
   * Over a cap, wait for a slot instead of being refused at once: at most `maxWait` (up to 30 s), with at most
   * `maxLength` requests waiting per cap and gateway instance. Absent: refused at once with 429.
   */
  queue: z
    .strictObject({
      maxWait: DurationSchema.pipe(z.number().max(30_000, 'must be at most 30s')),
      maxLength: z.int().positive().max(100_000),
    })
    .optional(),
});
export type ConcurrencyPolicies = z.output<typeof ConcurrencyPoliciesSchema>;

/** A quota of one scope: units per calendar day and/or per calendar month (each request spends its endpoint's `cost`). */
export const QuotaSchema = z
  .strictObject({
    /** Units per calendar day (midnight to midnight in the quotas' `timeZone`). */
    daily: z.int().positive().max(Number.MAX_SAFE_INTEGER).optional(),
    /** Units per calendar month (the 1st, midnight, to the next 1st in the quotas' `timeZone`). */
    monthly: z.int().positive().max(Number.MAX_SAFE_INTEGER).optional(),
    /**
     * While the shared store (`server.rateLimitStore: redis`) is unavailable: `open` (the default) goes on counting
     * on each instance from the last usage Redis reported, and adds what it admitted to Redis once it answers
     * again; `closed` refuses with 503 `GH_ERR_QUOTA_STORE_UNAVAILABLE`. No effect with the memory store.
     */
    onStoreFailure: z.enum(['open', 'closed']).optional(),
  })
  .refine((q) => q.daily !== undefined || q.monthly !== undefined, 'needs "daily", "monthly" or both');
export type Quota = z.output<typeof QuotaSchema>;

/** An IANA time zone name such as `Europe/Berlin`, or `UTC`. */
export const TimeZoneSchema = z
  .string()
  .max(64)
  .refine((zone) => {
    try {
      new Intl.DateTimeFormat('en-US', { timeZone: zone });
      return true;
    } catch {
      return false;
    }
  }, 'must be an IANA time zone name such as "UTC" or "Europe/Berlin"');

/** Quotas by who is counted (all keys of one client, all clients of one org), and the time zone of their periods. */
export const QuotaPoliciesSchema = z.strictObject({
  client: QuotaSchema.optional(),
  org: QuotaSchema.optional(),
  /** Where calendar days and months begin: an IANA time zone. @default 'UTC' */
  timeZone: TimeZoneSchema.optional(),
});
export type QuotaPolicies = z.output<typeof QuotaPoliciesSchema>;

/** A permission name such as `invoices:read`; in a role's grants `prefix:*` and `*` are wildcards. */
export const PermissionNameSchema = z
  .string()
  .regex(/^[A-Za-z0-9._:*-]{1,128}$/, 'must be 1-128 characters: letters, digits, ".", "_", ":", "-", "*"');

/** A JSON Schema (2020-12) as OpenAPI 3.1 writes it: an object, or `true`/`false`. */
export const JsonSchemaSchema = z.union([z.boolean(), z.record(z.string(), z.unknown())]);

/** One parameter an endpoint's request validation checks (OpenAPI's Parameter Object, resolved). */
export const RequestParameterSchema = z.strictObject({
  name: z.string().min(1).max(256),
  in: z.enum(['path', 'query', 'header']),
  required: z.boolean().optional(),
  /** OpenAPI's serialisation: `simple` (path, header), `form` (query) by default. */
  style: z.enum(['simple', 'label', 'matrix', 'form', 'spaceDelimited', 'pipeDelimited', 'deepObject']).optional(),
  explode: z.boolean().optional(),
  schema: JsonSchemaSchema.optional(),
});
export type RequestParameter = z.output<typeof RequestParameterSchema>;

/** What an endpoint's request is validated against (from the OpenAPI operation; see docs/openapi.md). */
export const RequestValidationSchema = z.strictObject({
  parameters: z.array(RequestParameterSchema).max(256).optional(),
  /** The JSON request body (`application/json` or `+json` media types). */
  body: z
    .strictObject({
      required: z.boolean().optional(),
      schema: JsonSchemaSchema,
    })
    .optional(),
});
export type RequestValidation = z.output<typeof RequestValidationSchema>;

export const EndpointSchema = z
  .strictObject({
    method: HttpMethodSchema,
    path: PathTemplateSchema,
    /** The permission a client's role must grant to call this endpoint, e.g. `invoices:read`. */
    permission: PermissionNameSchema,
    /**
     * Alternatives instead of the one `permission` (OpenAPI security semantics): a role may call the endpoint when
     * it grants every permission of at least one set. `permission` then only names the endpoint in the catalogue.
     */
    permissionSets: z.array(z.array(PermissionNameSchema).min(1).max(16)).min(1).max(16).optional(),
    /** The OpenAPI operation this endpoint came from, and its summary (the permission catalogue shows both). */
    operationId: z.string().min(1).max(256).optional(),
    summary: z.string().max(1024).optional(),
    /** No key, no role check, no token: only in a collection with `publicEndpoints: true`. */
    public: z.boolean().optional(),
    /** Rate-limit cost of one call (default 1): the hit counts this many times against every limit. */
    cost: z.int().min(1).max(1000).optional(),
    /** Validate requests to this endpoint against `request` (default: the collection's `validateRequests`). */
    validate: z.boolean().optional(),
    request: RequestValidationSchema.optional(),
    /**
     * The resource a request touches, for the collection's Cedar policies (docs/policies.md): its type and the
     * path parameter holding its id, and parents from other parameters.
     */
    resource: EndpointResourceSchema.optional(),
  })
  .superRefine((endpoint, ctx) => {
    if (endpoint.resource === undefined) return;
    const params = new Set([...endpoint.path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]));
    [endpoint.resource, ...endpoint.resource.in].forEach((e, i) => {
      if (!params.has(e.param))
        ctx.addIssue({
          code: 'custom',
          path: i === 0 ? ['resource', 'param'] : ['resource', 'in', i - 1, 'param'],
          message: `the path ${endpoint.path} has no parameter {${e.param}}`,
        });
    });
  });
export type Endpoint = z.output<typeof EndpointSchema>;

export const UpstreamSchema = z.strictObject({
  url: HttpUrlSchema,
  /** Time to establish a connection. */
  connectTimeout: DurationSchema.default(5_000),
  /** Time until the response headers arrive. */
  headersTimeout: DurationSchema.default(30_000),
  /** Longest pause between two body chunks of the response. */
  bodyTimeout: DurationSchema.default(30_000),
  /** Keep-alive connections per upstream origin and gateway process. */
  connections: z.int().positive().max(10_000).default(128),
});

/** `aud` of one or more upstreams: a string or a non-empty list. */
export const AudienceSchema = z.union([z.string().min(1).max(512), z.array(z.string().min(1).max(512)).min(1).max(32)]);

/**
 * A collection served to agents as a Model Context Protocol server (docs/mcp.md): one tool per endpoint, at
 * `<basePath><path>` over Streamable HTTP. A collection endpoint at the same path wins over it.
 */
export const McpSettingsSchema = z.strictObject({
  /** Serve the MCP endpoint (default true when `mcp` is given). */
  enabled: z.boolean().default(true),
  /** Where, relative to the collection's base path: literal segments, e.g. `/mcp` (the default). */
  path: BasePathSchema.refine(
    (p) => p !== '/',
    'must not be "/": the base path itself belongs to the upstream',
  ).default('/mcp'),
  /** What the server tells clients it is (`serverInfo.name`, default the collection's name). */
  name: z.string().min(1).max(128).optional(),
  /** Guidance for the agent about this API (`instructions` of the initialize answer). */
  instructions: z.string().max(4096).optional(),
});
export type McpSettings = z.output<typeof McpSettingsSchema>;

export const CollectionSchema = z.strictObject({
  name: NameSchema,
  /** Requests whose canonical path starts with this base path (and whose Host matches `host`, if set) belong here. */
  basePath: BasePathSchema,
  host: HostSchema.optional(),
  /** The upstream URL, or an object with the URL and connection settings. */
  upstream: z.preprocess((value) => (typeof value === 'string' ? { url: value } : value), UpstreamSchema),
  project: NameSchema,
  environment: EnvironmentSchema,
  /** Remove the base path before forwarding (the upstream URL's own path is prepended). */
  stripBasePath: z.boolean().default(true),
  /**
   * The start of `basePath` that is the gateway's own and never reaches the upstream: the cloud gateway serves a
   * workspace's collection under `/<workspace>/<env>` (set by the control plane). With `stripBasePath: false` the
   * upstream receives the path without it, and `X-Forwarded-Prefix` names it.
   */
  mountPath: BasePathSchema.optional(),
  /** Let WebSocket upgrades through to the upstream. */
  websocket: z.boolean().default(false),
  /** When false, endpoints are public: no key, no role check, no token exchange. */
  authRequired: z.boolean().default(true),
  /**
   * `aud` of the tokens sent to this collection's upstream, instead of `tokenExchange.audience`: give each backend
   * its own, and a token one backend received cannot be replayed at another.
   */
  audience: AudienceSchema.optional(),
  rateLimits: RateLimitPoliciesSchema.optional(),
  /**
   * A 403 for an endpoint the client's role does not grant names the permission the endpoint needs (in the problem
   * detail and as `requiredPermission`), so that the caller can ask for the right role. `true` keeps it out, for
   * collections whose permission names are not for their callers to see.
   */
  hidePermissions: z.boolean().optional(),
  /** Allow endpoints marked `public` (OpenAPI `security: []`); otherwise every endpoint needs a key and a role. */
  publicEndpoints: z.boolean().optional(),
  /** Validate requests against each endpoint's `request` (an endpoint's `validate` overrides this). */
  validateRequests: z.boolean().optional(),
  /** Largest request body (bytes) read for validation; bigger ones are refused before parsing. Default 1 MiB. */
  maxBodyBytes: z
    .int()
    .positive()
    .max(64 * 1024 * 1024)
    .optional(),
  /**
   * JSON Schemas the endpoints' request schemas reference as `urn:gatehouse:schemas#/$defs/<key>` (the OpenAPI
   * document's components, keyed by their JSON pointer in it).
   */
  schemas: z.record(z.string(), JsonSchemaSchema).optional(),
  /** Caps on requests in flight; each field overrides the snapshot's `concurrency` default. */
  concurrency: ConcurrencyPoliciesSchema.optional(),
  /** Daily and monthly quotas (cost-weighted); each field overrides the snapshot's `quotas` default. */
  quotas: QuotaPoliciesSchema.optional(),
  endpoints: z.array(EndpointSchema).min(1),
  /** Resource-level policies in Cedar, evaluated at the gateway on the endpoints they name (docs/policies.md). */
  policies: CollectionPoliciesSchema.optional(),
  /** Serve the collection to agents as an MCP server (docs/mcp.md). */
  mcp: McpSettingsSchema.optional(),
});
export type Collection = z.output<typeof CollectionSchema>;

export const EndpointRefSchema = z.strictObject({
  collection: NameSchema,
  method: HttpMethodSchema,
  path: PathTemplateSchema,
});
export type EndpointRef = z.output<typeof EndpointRefSchema>;

export const RoleSchema = NamedSchema.extend({
  /** Permission names granted; `*` grants every endpoint, `invoices:*` every endpoint whose permission starts with `invoices:`. */
  permissions: z.array(PermissionNameSchema).default([]),
  /** Individual endpoints granted. */
  endpoints: z.array(EndpointRefSchema).default([]),
});
export type Role = z.output<typeof RoleSchema>;

export const KeyHashSchema = z
  .string()
  .transform((value) => value.toLowerCase().replace(/^sha256:/, ''))
  .pipe(z.string().regex(/^[0-9a-f]{64}$/, 'must be a SHA-256 hash: 64 hex digits, optionally prefixed "sha256:"'));

/**
 * A Gatehouse key, or a piece of one longer than the 8 random characters of the display id that `gatehouse key
 * generate` prints (`ghk_OYD2bW6p...`). Exported for the clients file's fast check.
 */
export const KEY_IN_LABEL = new RegExp(`${KEY_PREFIX}[0-9A-Za-z]{9}`);

export const ClientKeySchema = z.strictObject({
  /** SHA-256 of the key, as printed by `gatehouse key generate`. */
  hash: KeyHashSchema,
  /** A label for logs and audit, never the key itself (e.g. its first characters). */
  id: z
    .string()
    .max(64)
    .refine(
      (id) => !KEY_IN_LABEL.test(id),
      `must not be the key itself (it is written to every access-log line): use its first 12 characters, e.g. "${KEY_PREFIX}Ab12Cd34...", as \`gatehouse key generate\` prints them`,
    )
    .optional(),
  /** When this key stops working (used for a regeneration grace period). */
  expiresAt: z.iso.datetime({ offset: true }).optional(),
});

/** Extra claims of a client's tokens (`metadata` claim). */
export const MetadataSchema = z.record(z.string().max(128), z.union([z.string().max(1024), z.number(), z.boolean()]));

/** An environment name, or `*` for all of a workspace's environments. */
export const EnvironmentScopeSchema = z.union([EnvironmentSchema, z.literal(WILDCARD)]);
/** A project name, or `*` for all of a workspace's projects. */
export const ProjectScopeSchema = z.union([NameSchema, z.literal(WILDCARD)]);
export const ClientStatusSchema = z.enum(['active', 'disabled']);

/**
 * The fields every API client has, in the snapshot and in the admin API (`resources.ts` derives its client
 * schemas from this one): a field added here appears in both.
 */
export const ClientBaseSchema = z.strictObject({
  id: NameSchema,
  name: z.string().max(256).optional(),
  role: NameSchema,
  /** Environments whose collections the client may call; `*` (as in `["*"]`): all of them. */
  environments: z.array(EnvironmentScopeSchema).min(1),
  /** Projects whose collections the client may call; `*` (as in `["*"]`): all of them. */
  projects: z.array(ProjectScopeSchema).min(1),
  allowedIps: z.array(CidrSchema).optional(),
  userId: z.string().max(256).optional(),
  orgId: z.string().max(256).optional(),
  metadata: MetadataSchema.optional(),
  rateLimits: RateLimitPoliciesSchema.omit({ org: true }).optional(),
  /** This client's own daily/monthly quota, instead of the collections' `quotas.client` (docs/limits.md). */
  quotas: QuotaPoliciesSchema.pick({ client: true }).optional(),
  expiresAt: z.iso.datetime({ offset: true }).optional(),
  status: ClientStatusSchema.default('active'),
});

export const ClientSchema = ClientBaseSchema.extend({
  keys: z.array(ClientKeySchema).min(1),
});
export type Client = z.output<typeof ClientSchema>;

/** A migrated client that authenticates with an API key plus an email header. */
export const LegacyClientSchema = ClientBaseSchema.extend({
  email: z.email(),
  keyHash: KeyHashSchema,
});
export type LegacyClient = z.output<typeof LegacyClientSchema>;

export const ClaimNameSchema = z.enum([
  'client_id',
  'user_id',
  'org_id',
  'permissions',
  'environment',
  'project',
  'metadata',
]);

export const TokenExchangeSchema = z.strictObject({
  issuer: z.string().min(1),
  audience: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]),
  /** Lifetime of minted tokens (at least 1s: tokens carry whole seconds). */
  ttl: DurationSchema.pipe(
    z.number().min(1_000, 'must be at least 1s').max(MAX_TOKEN_TTL_MS, 'must be at most 24h'),
  ).default(300_000),
  algorithm: z.enum(['EdDSA', 'ES256']).default('EdDSA'),
  /** Claims added to each token besides iss, aud, sub, iat, exp, jti. */
  claims: z.array(ClaimNameSchema).default(['client_id', 'user_id', 'org_id', 'permissions', 'environment']),
  /** Derived credentials for agents (docs/agents.md): absent, the defaults (1h, depth 3). */
  derived: z
    .strictObject({
      /** Longest lifetime of a derived credential. Default 1h. */
      maxTtl: DurationSchema.pipe(
        z.number().min(1_000, 'must be at least 1s').max(MAX_TOKEN_TTL_MS, 'must be at most 24h'),
      ).optional(),
      /** Longest delegation chain: 1 lets only API keys mint, 2 lets a derived credential mint once more, … Default 3. */
      maxDepth: z.number().int().min(1).max(5).optional(),
    })
    .optional(),
});
export type TokenExchange = z.output<typeof TokenExchangeSchema>;

/**
 * The default `aud` of the tokens minted for a workspace environment of the control plane,
 * `urn:gatehouse:<workspace>:<environment>` (lower case): each tenant has its own, so that a backend that checks
 * `aud` (and not `iss`) against the control plane's JWKS still refuses another workspace's tokens.
 */
export function tenantAudience(workspaceName: string, environment: string): string {
  return `urn:gatehouse:${workspaceName}:${environment.toLowerCase()}`;
}

/**
 * Request headers a legacy key or email cannot be read from: `Authorization` (Gatehouse keys, and the token sent
 * upstream), hop-by-hop and framing headers, the headers the gateway sets or removes before forwarding (see
 * `proxy.ts`), and `Cookie` and `Content-Type`: the legacy headers are removed from every request forwarded on an
 * authenticated collection, whichever client sent it.
 */
const GATEWAY_HEADERS = new Set([
  ...HOP_BY_HOP_HEADERS,
  'authorization',
  'cookie',
  'host',
  'content-length',
  'content-type',
  'forwarded',
  'x-forwarded-for',
  'x-forwarded-host',
  'x-forwarded-proto',
  'x-forwarded-port',
  'x-forwarded-prefix',
  'x-real-ip',
  'x-request-id',
]);
const LegacyHeaderSchema = z
  .string()
  .regex(/^[a-z0-9-]+$/, 'must be a lower-case header name')
  .refine(
    (name) => !GATEWAY_HEADERS.has(name) && !name.startsWith('x-gatehouse-'),
    'is a header HTTP or the gateway itself uses: choose one of its own (the legacy headers are removed from every forwarded request)',
  );

export const LegacyAuthSchema = z
  .strictObject({
    keyHeader: LegacyHeaderSchema.default('x-api-key'),
    /** Not `x-api-key`, which carries keys (Gatehouse keys, or the legacy one with the default `keyHeader`). */
    emailHeader: LegacyHeaderSchema.refine(
      (name) => name !== 'x-api-key',
      'must not be x-api-key, which carries keys',
    ).default('x-api-email'),
  })
  .superRefine((value, ctx) => {
    if (value.keyHeader === value.emailHeader)
      ctx.addIssue({ code: 'custom', path: ['emailHeader'], message: 'must differ from keyHeader' });
  });

/**
 * A token-signing key as a JWK (Ed25519 or P-256): `x` (and `y` for P-256) the public part, `d` the private part.
 * The one JWK schema: the distributed signing keys, the gateway's key file (`keystore.ts`) and the admin API's
 * public keys all use it.
 */
export const SigningJwkSchema = z.strictObject({
  kty: z.enum(['OKP', 'EC']),
  crv: z.enum(['Ed25519', 'P-256']),
  x: z.string().min(1),
  y: z.string().min(1).optional(),
  d: z.string().min(1).optional(),
});
export type SigningJwk = z.output<typeof SigningJwkSchema>;
/** A signing key's private JWK: `d` is present. */
export const PrivateSigningJwkSchema = SigningJwkSchema.required({ d: true });
/** A signing key's public JWK: no `d`. */
export const PublicSigningJwkSchema = SigningJwkSchema.omit({ d: true });

/**
 * Token-signing keys distributed by the control plane, the same to every gateway of a workspace environment (the
 * cloud gateway and each replica of its edge gateways): `active` signs, every listed key is published in the JWKS.
 * A list, so that a rotation can keep an old key published until its tokens have expired. Each `kid` is the
 * RFC 7638 thumbprint of the public key (checked by the gateway when it imports the keys).
 */
export const SigningKeysSchema = z.strictObject({
  active: z.string().min(1),
  keys: z
    .array(
      z.strictObject({
        kid: z.string().min(1).max(128),
        alg: z.enum(['EdDSA', 'ES256']),
        privateJwk: PrivateSigningJwkSchema,
      }),
    )
    .min(1)
    .max(16),
});
export type SigningKeys = z.output<typeof SigningKeysSchema>;

const SnapshotShape = z.strictObject({
  /** Opaque version of this snapshot (the control plane sets a monotonically increasing number). */
  version: z.union([z.int().nonnegative(), z.string().max(128)]).optional(),
  collections: z.array(CollectionSchema).default([]),
  roles: z.array(RoleSchema).default([]),
  clients: z.array(ClientSchema).default([]),
  legacyClients: z.array(LegacyClientSchema).default([]),
  legacyAuth: LegacyAuthSchema.default({ keyHeader: 'x-api-key', emailHeader: 'x-api-email' }),
  tokenExchange: TokenExchangeSchema,
  /** Defaults for every collection; a collection's own `rateLimits` and a client's override these. */
  rateLimits: RateLimitPoliciesSchema.default({}),
  /** Default concurrency caps of every collection; a collection's own `concurrency` fields override these. */
  concurrency: ConcurrencyPoliciesSchema.optional(),
  /** Default quotas of every collection; a collection's own `quotas` fields override these. */
  quotas: QuotaPoliciesSchema.optional(),
  /**
   * Token-signing keys set by the control plane. Absent (standalone config files): the gateway signs with its
   * own local key store (`server.signingKeysFile`).
   */
  signingKeys: SigningKeysSchema.optional(),
  /**
   * Relationship data of the collections' policies: entities, each of one collection (docs/policies.md). Absent
   * when there is none, so that snapshots without policies keep their content hash.
   */
  entities: z.array(SnapshotEntitySchema).optional(),
  /**
   * Collections whose relationship data arrives over the entity stream instead (sync.proto `EntityChanges`, sent
   * by the control plane): collection name → id of its entity set. Absent when none.
   */
  entitySets: z.record(NameSchema, EntitySetIdSchema).optional(),
  /**
   * Derived credentials revoked on their own (docs/agents.md#revoking-one-credential), each until every
   * credential it can match has expired. Absent when there is none, so that other snapshots keep their hash.
   */
  revokedCredentials: z
    .array(RevokedCredentialSchema)
    .max(100_000)
    .optional()
    .superRefine((list, ctx) => {
      const ids = new Set<string>();
      list?.forEach((r, i) => {
        if (ids.has(r.id))
          ctx.addIssue({ code: 'custom', path: [i, 'id'], message: `duplicate revocation id "${r.id}"` });
        ids.add(r.id);
      });
    }),
});

/** What a gateway serves. The control plane compiles this same shape. */
export const SnapshotSchema = SnapshotShape.superRefine(checkReferences).superRefine(checkSigningKeys);
export type Snapshot = z.output<typeof SnapshotSchema>;
export type SnapshotInput = z.input<typeof SnapshotSchema>;

const ListenSchema = z.strictObject({
  host: z.string().default('0.0.0.0'),
  port: z.int().min(0).max(65535),
});
/** The ops listener is unauthenticated: it binds to loopback unless told otherwise. */
const OpsListenSchema = z.strictObject({
  host: z.string().default('127.0.0.1'),
  port: z.int().min(0).max(65535),
});

/** Settings local to one gateway process; not part of the snapshot. */
/** A redis:// or rediss:// URL; its password, if any, is never repeated in an error. */
const RedisUrlSchema = z.string().superRefine((value, ctx) => {
  let url: URL | undefined;
  try {
    url = new URL(value);
  } catch {
    url = undefined;
  }
  if (url === undefined || (url.protocol !== 'redis:' && url.protocol !== 'rediss:') || url.hostname === '') {
    ctx.addIssue({
      code: 'custom',
      message: 'must be a redis:// or rediss:// URL with a host, such as redis://127.0.0.1:6379',
    });
  }
});

export const RateLimitStoreSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('memory') }),
  z.strictObject({
    type: z.literal('redis'),
    url: RedisUrlSchema,
    /**
     * `lease` (default): exact across instances — each instance leases a share of what a limit still allows from
     * Redis, spends it locally and gives back what it does not spend (docs/limits.md). `sync`: decided on each
     * instance's view of the totals, synced every `syncInterval` (cheaper, and over-admits by what the other
     * instances admit within one interval).
     */
    mode: z.enum(['lease', 'sync']).default('lease'),
    /**
     * How long a lease of rate-limit units or concurrency slots lives without renewal (mode `lease`, and
     * concurrency caps): a gateway that dies gives back what it held after at most this. Quotas (leased in either
     * mode): a dead gateway's holding expires after this and is forfeited (its units stay counted: 0 over).
     */
    leaseTtl: DurationSchema.default(2_000).refine((ms) => ms >= 200 && ms <= 60_000, 'must be between 200ms and 60s'),
    /** Prefix of the counters' Redis keys: gateways that share limits use the same one. */
    prefix: z.string().min(1).max(200).default('gatehouse:rl:'),
    /** How often each instance sends its hits and reads the totals: the bound on how stale its view can be. */
    syncInterval: DurationSchema.default(100).refine((ms) => ms >= 10 && ms <= 10_000, 'must be between 10ms and 10s'),
    /**
     * How long a command to Redis (a sync, a health PING, the connection handshake) may take before the store
     * counts as degraded and the connection is dialled again. Requests never wait for Redis, so this bounds how
     * long a hung Redis goes unnoticed, not request latency.
     */
    commandTimeout: DurationSchema.default(500).refine(
      (ms) => ms >= 10 && ms <= 60_000,
      'must be between 10ms and 60s',
    ),
    /** How long connecting to Redis (TCP, and TLS for rediss://) may take. */
    connectTimeout: DurationSchema.default(2_000).refine(
      (ms) => ms >= 10 && ms <= 60_000,
      'must be between 10ms and 60s',
    ),
  }),
]);
export type RateLimitStoreSettings = z.output<typeof RateLimitStoreSchema>;

/** A `server.publicHosts` entry: a host name or IP literal, optionally with a port, or `*.` + a domain. */
const PublicHostSchema = z
  .string()
  .max(260)
  .regex(
    /^(?:\*\.)?(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$/,
    'must be a host name or IP address with an optional port (e.g. api.example.com, api.example.com:8443, *.example.com)',
  );

export const ServerSchema = z.strictObject({
  listen: ListenSchema.default({ host: '0.0.0.0', port: 8080 }),
  /** Operations listener: /healthz, /readyz, /metrics. */
  ops: OpsListenSchema.default({ host: '127.0.0.1', port: 9090 }),
  /** Serve API traffic over TLS (PEM files). */
  tls: z.strictObject({ cert: z.string(), key: z.string() }).optional(),
  /** Peers allowed to set X-Forwarded-For (e.g. your load balancer); otherwise the socket address is the client. */
  trustedProxies: z.array(CidrSchema).default([]),
  /**
   * Host names the gateway answers for (`api.example.com`, `api.example.com:8443`, `*.example.com`). When set, a
   * request for another Host is refused (421) unless its collection names that host, and only these hosts are
   * forwarded in `X-Forwarded-Host`/`Forwarded`. Unset: every Host is served and no client Host is forwarded.
   */
  publicHosts: z.array(PublicHostSchema).max(1000).default([]),
  /** JSON file holding the token-signing keys (created with mode 0600 when missing). Unset: keys live in memory only. */
  signingKeysFile: z.string().optional(),
  /** Rotate the signing key this often; the old public key stays in the JWKS until its tokens have expired. */
  signingKeyRotation: DurationSchema.optional(),
  /**
   * Which addresses upstream connections may reach: `any` (default), or `public` to refuse loopback, private,
   * link-local and other non-public addresses, checked at connect time (every address a host name resolves to).
   */
  egress: z.enum(['any', 'public']).default('any'),
  log: z
    .strictObject({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info') })
    .default({ level: 'info' }),
  /** Watch the config file and reload on change (SIGHUP always reloads). */
  watch: z.boolean().default(true),
  /**
   * Where rate-limit counters live: `memory` (default, per instance), or `redis` to share them between every
   * gateway instance that names the same Redis and prefix (decided locally, synced every `syncInterval`).
   */
  rateLimitStore: RateLimitStoreSchema.default({ type: 'memory' }),
});
export type ServerSettings = z.output<typeof ServerSchema>;

/** The declarative gateway config file: the snapshot's fields plus local `server` settings and `clientsFile`. */
export const GatewayFileSchema = SnapshotShape.omit({ signingKeys: true })
  .extend({
    server: ServerSchema.default(() => ServerSchema.parse({})),
    /**
     * An NDJSON file of more API clients, one `clients[]` entry per line, for client sets too large for the config
     * file (see `clients-file.ts`). Relative to the config file's directory. Not part of the snapshot: the gateway
     * merges its clients into the snapshot it compiles.
     */
    clientsFile: z.string().min(1).optional(),
  })
  .superRefine(checkReferences);
export type GatewayFile = z.output<typeof GatewayFileSchema>;

function endpointKey(collection: string, method: string, path: string): string {
  return `${collection} ${method} ${templateShape(path)}`;
}

/** Two templates that differ only in parameter names match the same requests. */
function templateShape(path: string): string {
  return path.replace(/\{[^}]+\}/g, '{}');
}

type Ctx = z.core.$RefinementCtx<{
  collections: Collection[];
  roles: Role[];
  clients: Client[];
  legacyClients: LegacyClient[];
  entities?: SnapshotEntity[] | undefined;
}>;

function checkReferences(
  value: {
    collections: Collection[];
    roles: Role[];
    clients: Client[];
    legacyClients: LegacyClient[];
    entities?: SnapshotEntity[] | undefined;
  },
  ctx: Ctx,
): void {
  const issue = (path: (string | number)[], message: string) => ctx.addIssue({ code: 'custom', path, message });

  const collections = new Map<string, Collection>();
  const routes = new Map<string, string>();
  const endpoints = new Set<string>();
  value.collections.forEach((c, i) => {
    if (collections.has(c.name)) issue(['collections', i, 'name'], `duplicate collection name "${c.name}"`);
    collections.set(c.name, c);
    const route = `${c.host ?? '*'} ${c.basePath}`;
    const other = routes.get(route);
    if (other)
      issue(
        ['collections', i, 'basePath'],
        `base path "${c.basePath}"${c.host ? ` on host ${c.host}` : ''} is already used by collection "${other}"`,
      );
    routes.set(route, c.name);
    const seen = new Set<string>();
    c.endpoints.forEach((e, j) => {
      const key = endpointKey(c.name, e.method, e.path);
      if (seen.has(key)) issue(['collections', i, 'endpoints', j], `duplicate endpoint ${e.method} ${e.path}`);
      if (e.public && !c.publicEndpoints)
        issue(
          ['collections', i, 'endpoints', j, 'public'],
          `endpoint ${e.method} ${e.path} is public, but the collection does not allow public endpoints (set publicEndpoints: true)`,
        );
      seen.add(key);
      endpoints.add(key);
    });
  });

  const roles = new Set<string>();
  value.roles.forEach((r, i) => {
    if (roles.has(r.name)) issue(['roles', i, 'name'], `duplicate role name "${r.name}"`);
    roles.add(r.name);
    r.endpoints.forEach((e, j) => {
      if (!collections.has(e.collection))
        issue(['roles', i, 'endpoints', j, 'collection'], `unknown collection "${e.collection}"`);
      else if (!endpoints.has(endpointKey(e.collection, e.method, e.path)))
        issue(['roles', i, 'endpoints', j], `collection "${e.collection}" has no endpoint ${e.method} ${e.path}`);
    });
  });

  const ids = new Set<string>();
  const hashes = new Set<string>();
  const checkClient = (kind: 'clients' | 'legacyClients', c: Client | LegacyClient, i: number) => {
    if (ids.has(c.id)) issue([kind, i, 'id'], `duplicate client id "${c.id}"`);
    ids.add(c.id);
    if (!roles.has(c.role)) issue([kind, i, 'role'], `unknown role "${c.role}"`);
  };
  value.clients.forEach((c, i) => {
    checkClient('clients', c, i);
    c.keys.forEach((k, j) => {
      if (hashes.has(k.hash)) issue(['clients', i, 'keys', j, 'hash'], 'this key hash is already used by another key');
      hashes.add(k.hash);
    });
  });
  value.legacyClients.forEach((c, i) => {
    checkClient('legacyClients', c, i);
    if (hashes.has(c.keyHash)) issue(['legacyClients', i, 'keyHash'], 'this key hash is already used by another key');
    hashes.add(c.keyHash);
  });

  const entities = new Set<string>();
  value.entities?.forEach((e, i) => {
    if (!collections.has(e.collection)) issue(['entities', i, 'collection'], `unknown collection "${e.collection}"`);
    const key = entityKey(e);
    if (entities.has(key)) issue(['entities', i, 'uid'], `duplicate entity ${key}`);
    entities.add(key);
  });
}

/**
 * The distributed signing keys must be usable as they are: the active key is listed and has the token exchange's
 * algorithm, kids are unique, and each key's type fits its algorithm. Messages never quote key material.
 */
function checkSigningKeys(
  value: { tokenExchange: TokenExchange; signingKeys?: SigningKeys | undefined },
  ctx: z.core.$RefinementCtx<{ tokenExchange: TokenExchange; signingKeys?: SigningKeys | undefined }>,
): void {
  const keys = value.signingKeys;
  if (keys === undefined) return;
  const issue = (path: (string | number)[], message: string) =>
    ctx.addIssue({ code: 'custom', path: ['signingKeys', ...path], message });
  const kids = new Set<string>();
  keys.keys.forEach((k, i) => {
    if (kids.has(k.kid)) issue(['keys', i, 'kid'], `duplicate kid "${k.kid}"`);
    kids.add(k.kid);
    const [kty, crv] = k.alg === 'EdDSA' ? ['OKP', 'Ed25519'] : ['EC', 'P-256'];
    if (k.privateJwk.kty !== kty || k.privateJwk.crv !== crv || (kty === 'EC') !== (k.privateJwk.y !== undefined))
      issue(['keys', i, 'privateJwk'], `is not an ${k.alg} key (expected kty ${kty}, crv ${crv})`);
  });
  const active = keys.keys.find((k) => k.kid === keys.active);
  if (active === undefined) issue(['active'], `names no key of signingKeys.keys ("${keys.active}")`);
  else if (active.alg !== value.tokenExchange.algorithm)
    issue(
      ['keys', keys.keys.indexOf(active), 'alg'],
      `the active key is ${active.alg}, but tokenExchange.algorithm is ${value.tokenExchange.algorithm}`,
    );
}

/** Formats zod issues as `where: what` lines, e.g. `snapshot.clients[3].role: unknown role "x"`. */
export function formatIssues(error: z.ZodError, max = 20): string {
  const lines = error.issues.slice(0, max).map((i) => `${formatPath(i.path) || '(root)'}: ${i.message}`);
  if (error.issues.length > max) lines.push(`… and ${error.issues.length - max} more`);
  return lines.join('\n');
}

export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out ? `.${String(p)}` : String(p);
  return out;
}
