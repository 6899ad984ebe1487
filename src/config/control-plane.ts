/**
 * The control plane's own settings: what `gatehouse control start` takes (its flags, and the environment
 * variables named below), parsed into what `startControlPlane` takes (durations in milliseconds, numbers). The
 * command validates its flags with this one schema; each message completes "--<flag> …", e.g.
 * `--gateway-cert-validity must be a duration of at least 1s such as 24h or 30m`.
 */
import { z } from 'zod';
import { parseDuration } from './duration.ts';
import { RateLimitStoreSchema } from './schema.ts';

/** A port as a flag gives it: decimal digits only (Number() would take "", " 80", "0x50" and "1e3"); 0: a free port. */
const PortSchema = z.string().transform((value, ctx) => {
  const port = /^\d{1,5}$/.test(value) ? Number(value) : NaN;
  if (port >= 0 && port <= 65535) return port;
  ctx.addIssue({ code: 'custom', message: 'must be a whole number from 0 to 65535' });
  return z.NEVER;
});

/** A duration flag ("24h", "30m"), in milliseconds, at least `minMs`; `zero` also takes "0". */
function durationFlag(message: string, options: { minMs?: number; zero?: boolean } = {}) {
  return z.string().transform((value, ctx) => {
    const ms = options.zero && value.trim() === '0' ? 0 : parseDuration(value);
    if (ms !== undefined && ms >= (options.minMs ?? 0)) return ms;
    ctx.addIssue({ code: 'custom', message });
    return z.NEVER;
  });
}

export const ControlPlaneSettingsSchema = z.strictObject({
  /** SQLite data directory (also holds the cloud gateway's signing keys). */
  dataDir: z.string().default('data'),
  /** `postgres://…` to store state in PostgreSQL instead of SQLite (`DATABASE_URL`). Default: SQLite in `dataDir`. */
  databaseUrl: z.string().optional(),
  /** Bind address of every listener. */
  host: z.string().default('127.0.0.1'),
  /** How long certificates issued to edge gateways are valid (renewed after two thirds of it). */
  gatewayCertificateValidity: durationFlag('must be a duration of at least 1s such as 24h or 30m', {
    minMs: 1000,
  }).optional(),
  /** How long after its expiry a gateway certificate may still be traded for a new one; 0: only unexpired ones. */
  gatewayReenrollWindow: durationFlag('must be a duration such as 30d or 12h (0: only certificates not expired yet)', {
    zero: true,
  }).optional(),
  /** Every raised and resolved alert is POSTed there as JSON. */
  alertWebhook: z
    .string()
    .regex(/^https?:\/\/[^\s]+$/, 'must be an http:// or https:// URL')
    .optional(),
  /** Authentication failures per minute and gateway that raise an alert. */
  alertAuthFailures: z
    .string()
    .transform((value, ctx) => {
      const n = Number(value);
      if (Number.isInteger(n) && n > 0) return n;
      ctx.addIssue({ code: 'custom', message: 'must be a positive whole number' });
      return z.NEVER;
    })
    .optional(),
  /** The host name or address edge gateways dial (written into install commands); default: `host`. */
  advertiseHost: z
    .string()
    .regex(/^[A-Za-z0-9.:-]+$/, 'must be a host name or IP address')
    .optional(),
  /** The cloud gateway's URL as clients and backends see it: the base of each environment's token issuer. */
  publicUrl: z
    .string()
    .regex(
      /^https?:\/\/[^\s/?#]+(?:\/[^\s?#]*[^\s?#/])?$/,
      'must be an http:// or https:// URL without a query or trailing "/"',
    )
    .optional(),
  /**
   * Which addresses the cloud gateway's upstream connections may reach. Link-local addresses (cloud metadata) and
   * the control plane's own ports on this machine are refused always; `public` also refuses loopback and private
   * addresses — use it when tenants you do not fully trust write collections.
   */
  cloudEgress: z.enum(['any', 'public'], { error: 'must be any or public' }).default('any'),
  /** A Redis shared by control-plane replicas for the cloud gateway's rate limits (`GATEHOUSE_RATE_LIMIT_REDIS_URL`). */
  cloudRateLimitRedisUrl: z
    .string()
    .refine(
      (url) => RateLimitStoreSchema.safeParse({ type: 'redis', url }).success,
      'must be a redis:// or rediss:// URL with a host, such as redis://127.0.0.1:6379',
    )
    .optional(),
  /** A console session ends after this long without a request (sliding). Default 30m. */
  sessionIdleTimeout: durationFlag('must be a duration of at least 1m such as 30m or 2h', { minMs: 60_000 }).optional(),
  /** A console session ends this long after sign-in, however active. Default 12h. */
  sessionLifetime: durationFlag('must be a duration of at least 1m such as 12h or 7d', { minMs: 60_000 }).optional(),
  /** Days the audit log keeps an entry; older ones are pruned hourly. Default 90. */
  auditRetentionDays: z
    .string()
    .transform((value, ctx) => {
      const n = /^\d{1,5}$/.test(value) ? Number(value) : NaN;
      if (n >= 1) return n;
      ctx.addIssue({ code: 'custom', message: 'must be a whole number of days, at least 1' });
      return z.NEVER;
    })
    .optional(),
  /**
   * On SIGTERM: how long the replica keeps serving while `/readyz` answers 503, so that load balancers take it out
   * of rotation before its listeners close (a Kubernetes Service needs a few seconds). Default 0.
   */
  shutdownDelay: durationFlag('must be a duration such as 5s (0: close at once)', { zero: true }).optional(),
  /** On SIGTERM: how long admin API and cloud gateway requests in flight may take to finish. Default 10 s. */
  drainTimeout: durationFlag('must be a duration such as 10s (0: do not wait)', { zero: true }).optional(),
  /** Admin API port. Default 8081. */
  adminPort: PortSchema.optional(),
  /** Cloud gateway API port. Default 8080. */
  gatewayPort: PortSchema.optional(),
  /** Operations port (/healthz, /readyz, /metrics). Default 9090. */
  opsPort: PortSchema.optional(),
  /** Bootstrap endpoint (HTTPS) port for edge gateways. Default 8443. */
  bootstrapPort: PortSchema.optional(),
  /** Config sync and telemetry endpoint (gRPC, mutual TLS) port. Default 8444. */
  syncPort: PortSchema.optional(),
});
export type ControlPlaneSettings = z.output<typeof ControlPlaneSettingsSchema>;
export type ControlPlaneSettingsInput = z.input<typeof ControlPlaneSettingsSchema>;
