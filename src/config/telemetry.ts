/**
 * Telemetry from gateways to the control plane: the `TelemetryBatch` message of proto/gatehouse/v1/sync.proto as
 * a zod schema and its TypeScript type. The gateway's collector produces `TelemetryBatch` objects; the control
 * plane validates what arrives with `TelemetryBatchSchema` before storing anything.
 *
 * The shape is the message as `@grpc/proto-loader` decodes it with the channel's options (`PROTO_LOADER_OPTIONS`
 * in sync-proto.ts: `{ keepCase: false, longs: Number, enums: String, defaults: true, oneofs: true }`): camelCase
 * fields, 64-bit integers as JS numbers, every field present with its proto3 default. Encoding a `TelemetryBatch`
 * and decoding it again gives an equal object: absent optional strings are `''`, never `undefined`. The schema
 * also accepts 64-bit integers as decimal strings (`longs: String`) and absent arrays (`defaults: false`).
 *
 * Never a key or token: a security event names the key only by its label or its display prefix (`ghk_AbCd…`).
 * The schema refuses a batch in which any field holds something shaped like a whole Gatehouse key.
 */
import { z } from 'zod';
import { NAME_PATTERN } from './schema.ts';

/** What stands for "none" in the aggregate keys: no collection or endpoint matched, or no client was identified. */
export const NONE = '-';

/** Security event kinds. */
export const SecurityEventKind = {
  /**
   * The key was missing, malformed, unknown or expired, or its client is disabled (`GH_ERR_AUTH_*`); or a derived
   * credential was invalid, expired or revoked (`GH_ERR_DERIVED_*`).
   */
  authFailure: 'auth_failure',
  /** A known client called from outside its allowed IP ranges (`GH_ERR_AUTH_IP_NOT_ALLOWED`). */
  ipNotAllowed: 'ip_not_allowed',
  /**
   * A known client called an endpoint, environment or project it is not granted (`GH_ERR_AUTH_FORBIDDEN_*`), or a
   * derived credential went beyond its scope or pins (`GH_ERR_DERIVED_FORBIDDEN`).
   */
  forbidden: 'forbidden',
  /**
   * Not a refusal: the instance's shared rate-limit store is degraded, so its limits hold per instance (or refuse,
   * where `onStoreFailure: closed`). Sent when it happens and every 15 s while it lasts; reason
   * `GH_ERR_RATE_LIMIT_STORE_UNAVAILABLE`, no client, key or IP. Alerting raises `rate_limit_store_degraded` on it.
   */
  rateLimitStoreDegraded: 'rate_limit_store_degraded',
} as const;
export type SecurityEventKind = (typeof SecurityEventKind)[keyof typeof SecurityEventKind];

const DERIVED_AUTH_FAILURES: ReadonlySet<string> = new Set([
  'GH_ERR_DERIVED_INVALID',
  'GH_ERR_DERIVED_EXPIRED',
  'GH_ERR_DERIVED_PARENT_REVOKED',
  'GH_ERR_DERIVED_REVOKED',
]);

/** The security event kind of a refusal's error code; undefined for refusals that are not security events. */
export function securityEventKind(code: string): SecurityEventKind | undefined {
  // A derived credential refused (invalid, expired, revoked, its parent key gone), or used outside its scope.
  if (code.startsWith('GH_ERR_DERIVED_'))
    return code === 'GH_ERR_DERIVED_FORBIDDEN'
      ? SecurityEventKind.forbidden
      : DERIVED_AUTH_FAILURES.has(code)
        ? SecurityEventKind.authFailure
        : undefined;
  if (!code.startsWith('GH_ERR_AUTH_')) return undefined;
  if (code === 'GH_ERR_AUTH_IP_NOT_ALLOWED') return SecurityEventKind.ipNotAllowed;
  if (code.startsWith('GH_ERR_AUTH_FORBIDDEN')) return SecurityEventKind.forbidden;
  return SecurityEventKind.authFailure;
}

/** A whole Gatehouse API key (`ghk_` + 38 base62 characters) anywhere in a string. */
const WHOLE_KEY = /ghk_[0-9A-Za-z]{38}/;

/** Whether a string holds something shaped like a whole Gatehouse API key (a batch carrying one is refused). */
export function containsKey(s: string): boolean {
  return WHOLE_KEY.test(s);
}
const MAX_EVENTS = 50_000;

const text = (max: number) =>
  z
    .string()
    .max(max)
    .refine((s) => !containsKey(s), 'must not contain an API key');
/** uint64: a number with `longs: Number`, a decimal string with `longs: String`. */
const uint64 = z.union([
  z.int().min(0).max(Number.MAX_SAFE_INTEGER),
  z
    .string()
    .regex(/^\d{1,15}$/)
    .transform(Number),
]);
const uint32 = z.int().min(0).max(0xffff_ffff);
const ms = z.number().min(0).max(1e12);
/** An ISO minute as `Date.prototype.toISOString()` writes it: the store adds up rows with equal minutes. */
const minute = z
  .string()
  .regex(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:00\.000Z$/, 'must be an ISO minute such as 2026-01-31T08:35:00.000Z');
const at = z.iso.datetime();
/** A collection name, or `-`; `''` (the proto3 default) reads as `-`. */
const collectionOrNone = z
  .union([z.string().regex(NAME_PATTERN), z.literal(NONE), z.literal('')])
  .transform((s) => s || NONE);
/** `METHOD /template`, or `-`. */
const endpoint = z
  .union([z.string().regex(/^[A-Z]{1,16} \/\S{0,2047}$/), z.literal(NONE), z.literal('')])
  .transform((s) => s || NONE);
const clientIdOrNone = text(256).transform((s) => s || NONE);
/**
 * The agent (`act.sub`) or session (`act.session`) of a derived credential; absent when the request carried none.
 * On the wire `''` (the proto3 default, also what gateways that predate agents send) and `-` stand for absent:
 * `withoutEmptyAgent` drops them before the object is parsed, so that a parsed message has no such key.
 */
const optionalAgent = text(200).optional();
function withoutEmptyAgent(value: unknown): unknown {
  if (typeof value !== 'object' || value === null) return value;
  const v = value as Record<string, unknown>;
  const empty = (s: unknown) => s === undefined || s === '' || s === NONE;
  if (!('agent' in v || 'session' in v) || (!empty(v.agent) && !empty(v.session))) return value;
  const { agent, session, ...rest } = v;
  return { ...rest, ...(!empty(agent) && { agent }), ...(!empty(session) && { session }) };
}
const optionalCollection = z.union([z.string().regex(NAME_PATTERN), z.literal('')]);
/** The client address as the gateway resolved it; behind a trusted proxy it comes from X-Forwarded-For. */
const ip = text(64);

/**
 * Requests of one minute with the same collection, endpoint, client and status: the telemetry row. The one schema
 * of it: the gateway's collector makes these, the control plane checks what arrives with it, the store keeps
 * `TelemetryRowSchema` (this plus workspace and gateway; its SQL table is checked against it at compile time, see
 * `src/control/telemetry/ingest.ts`) and the admin API returns it (plus the gateway's name).
 */
const RequestCountShape = z.object({
  minute: minute.describe('ISO minute, e.g. `2026-11-22T08:35:00.000Z`'),
  collection: collectionOrNone.pipe(z.string()).describe('Collection name, or `-` when none matched'),
  endpoint: endpoint.pipe(z.string()).describe('`METHOD /template`, or `-` when none matched'),
  clientId: clientIdOrNone.pipe(z.string()).describe('Client id, or `-` when no key was recognised'),
  agent: optionalAgent.describe("The derived credential's agent (`act.sub`); absent for other credentials"),
  session: optionalAgent.describe("The derived credential's session (`act.session`); absent when it names none"),
  status: uint32.max(999),
  count: uint64.pipe(z.int().min(1)),
  /** Sum and maximum of the request durations in milliseconds. */
  durationMsSum: ms,
  durationMsMax: ms,
});
export const RequestCountSchema = z.preprocess(withoutEmptyAgent, RequestCountShape);
export type RequestCount = z.output<typeof RequestCountShape>;

/** A telemetry row as the control plane stores it: a `RequestCount` of one workspace and one gateway. */
export const TelemetryRowSchema = RequestCountShape.extend({
  workspaceId: z.string(),
  gatewayId: z.string().describe('Gateway id, or `cloud`'),
});
export type TelemetryRow = z.output<typeof TelemetryRowSchema>;

/** A refusal worth an operator's attention (see `SecurityEventKind`); optional fields are `''` when unknown. */
const SecurityEventShape = z.object({
  at,
  kind: z.string().regex(/^[a-z][a-z_]{0,63}$/),
  /** The error code, e.g. `GH_ERR_AUTH_INVALID_KEY`. */
  reason: z.string().regex(/^GH_ERR_[A-Z0-9_]{1,64}$/),
  collection: optionalCollection,
  clientId: text(256),
  /** The key's label (its configured id, or `<client>#<hash prefix>`) or its display prefix; never the key. */
  keyLabel: text(256),
  ip,
  /** The derived credential's agent and session, when the refused request carried one. */
  agent: optionalAgent,
  session: optionalAgent,
});
export const SecurityEventSchema = z.preprocess(withoutEmptyAgent, SecurityEventShape);
export type SecurityEvent = z.output<typeof SecurityEventShape>;

/**
 * One request, from a sample: `path` is the endpoint template that matched (or `-`), not the concrete path,
 * which may carry identifiers or credentials.
 */
const AccessEventShape = z.object({
  at,
  requestId: text(128),
  method: z.string().regex(/^[A-Z]{1,16}$/),
  path: text(2048),
  status: uint32.max(999),
  durationMs: ms,
  clientId: text(256),
  collection: optionalCollection,
  /** The derived credential's agent and session, when the request carried one. */
  agent: optionalAgent,
  session: optionalAgent,
});
export const AccessEventSchema = z.preprocess(withoutEmptyAgent, AccessEventShape);
export type AccessEvent = z.output<typeof AccessEventShape>;

/**
 * A security event as the control plane stores it (the store's `SecurityEventRecord`) and the admin API returns
 * it (named by gateway rather than by workspace): a `SecurityEvent` with an id, its workspace and gateway, and
 * its optional fields absent rather than `''`. The one schema of it; the SQL table and `SecurityEventSchema` are
 * checked against it at compile time (`src/control/telemetry/ingest.ts`).
 */
export const SecurityEventRecordSchema = z.object({
  id: z.string(),
  workspaceId: z.string(),
  gatewayId: z.string().describe('Gateway id, or `cloud`'),
  at: z.string(),
  kind: z.string().describe('`auth_failure`, `ip_not_allowed`, `forbidden`'),
  reason: z.string().describe('The error code, e.g. `GH_ERR_AUTH_INVALID_KEY`'),
  collection: z.string().optional(),
  clientId: z.string().optional(),
  keyLabel: z.string().optional().describe("The key's label or display prefix; never the key"),
  ip: z.string().optional(),
  agent: z.string().optional().describe("The derived credential's agent (`act.sub`), when the request carried one"),
  session: z.string().optional().describe("The derived credential's session (`act.session`)"),
});
export type SecurityEventRecord = z.output<typeof SecurityEventRecordSchema>;

/**
 * An access event as the control plane keeps it in memory (`TelemetryIngest.accessEvents`) and the admin API
 * returns it (plus the gateway's name): an `AccessEvent` with the gateway and instance that sent it. The one
 * schema of it; `AccessEventSchema` is checked against it at compile time (`src/control/telemetry/ingest.ts`).
 */
export const ReceivedAccessEventSchema = z.object({
  gatewayId: z.string().describe('Gateway id, or `cloud`'),
  instanceId: z.string(),
  at: z.string(),
  requestId: z.string(),
  method: z.string(),
  path: z.string().describe('The endpoint template, or `-`'),
  status: z.int(),
  durationMs: z.number(),
  clientId: z.string(),
  collection: z.string(),
  agent: z.string().optional().describe("The derived credential's agent, when the request carried one"),
  session: z.string().optional().describe("The derived credential's session"),
});
export type ReceivedAccessEvent = z.output<typeof ReceivedAccessEventSchema>;

/** Quota units admitted by one gateway instance since its last batch, for one quota and calendar period. */
export const QuotaUsageSchema = z.object({
  collection: z.string().min(1).max(256),
  scope: z.enum(['client', 'org']),
  subject: z.string().min(1).max(256),
  period: z.enum(['daily', 'monthly']),
  periodId: z.string().regex(/^[0-9]{4}-[0-9]{2}(-[0-9]{2})?$/, 'must be YYYY-MM-DD or YYYY-MM'),
  units: uint64.pipe(z.int().min(1)),
});
export type QuotaUsage = z.output<typeof QuotaUsageSchema>;

export const TelemetryBatchSchema = z.object({
  instanceId: z.string().min(1).max(128),
  /** Increases by one per batch of an instance, from 1; a resent batch keeps its sequence. */
  sequence: uint64.pipe(z.number().min(1)),
  requests: z.array(RequestCountSchema).max(MAX_EVENTS).default([]),
  securityEvents: z.array(SecurityEventSchema).max(MAX_EVENTS).default([]),
  accessEvents: z.array(AccessEventSchema).max(MAX_EVENTS).default([]),
  /** Events dropped since the previous batch because the gateway's bounded buffer was full. */
  dropped: uint64.default(0),
  /** Quota units admitted since the previous batch (absent from gateways older than quotas). */
  quotaUsage: z.array(QuotaUsageSchema).max(MAX_EVENTS).default([]),
});
export type TelemetryBatch = z.output<typeof TelemetryBatchSchema>;

/** The number of events a batch carries (request rows, security events, access events). */
export function batchSize(
  batch: Pick<TelemetryBatch, 'requests' | 'securityEvents' | 'accessEvents'> & { quotaUsage?: readonly unknown[] },
): number {
  return (
    batch.requests.length + batch.securityEvents.length + batch.accessEvents.length + (batch.quotaUsage?.length ?? 0)
  );
}
