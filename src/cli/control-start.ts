import type { Logger } from 'pino';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { startControlPlane } from '../control/plane.ts';
import { CONSOLE_DIST } from '../control/api/console-static.ts';
import { StoreOpenError } from '../control/store/open.ts';
import { KeyRingError, keyRingFromEnv } from '../control/secrets/key-ring.ts';
import { ConfigError } from '../config/load.ts';
import { ControlPlaneSettingsSchema, type ControlPlaneSettingsInput } from '../config/control-plane.ts';
import type { z } from 'zod';
import { type Command, parse, shownUrl, UsageError } from './command.ts';
import { waitForSignal } from './gateway-run.ts';
import { createLogger, logLevelOption } from './logger.ts';

export const controlStart: Command = {
  usage:
    "[--data-dir DIR] [--database-url postgres://…] [--host ADDR] [--admin-port N] [--gateway-port N] [--ops-port N] [--bootstrap-port N] [--sync-port N] [--advertise-host HOST] [--gateway-cert-validity DURATION] [--gateway-reenroll-window DURATION] [--alert-webhook URL] [--alert-auth-failures N] [--cloud-egress any|public] [--public-url URL] [--session-idle-timeout DURATION] [--session-lifetime DURATION] [--audit-retention-days N] [--shutdown-delay DURATION] [--drain-timeout DURATION] [--log-level LEVEL]\n\nDATABASE_URL=postgres://… stores state in PostgreSQL instead of SQLite under --data-dir (default ./data).\n--gateway-cert-validity: how long certificates issued to edge gateways are valid (default 24h); they are renewed\nover the live channel after two thirds of it.\n--gateway-reenroll-window: how long after its expiry a gateway certificate may still be traded for a new one\n(an instance that was down, a pod started from its Helm Secret; default 30d).\n--advertise-host: the host name or address edge gateways dial (written into install commands; default --host).\n--alert-webhook: POST every raised and resolved alert there as JSON. --alert-auth-failures: authentication\nfailures per minute and gateway that raise an alert (default 20).\n--cloud-egress: which addresses the cloud gateway's upstreams (and alert destinations' webhooks) may reach. Link-local addresses and the control\nplane's own ports are always refused; `public` refuses loopback and private addresses too (recommended when\nworkspaces belong to different customers). Default `any`.\n--public-url: the cloud gateway's URL as clients and backends see it (e.g. https://api.example.com); each\nworkspace environment's token issuer is <public URL>/<workspace>/<environment>. Default: the bound address.\nGATEHOUSE_RATE_LIMIT_REDIS_URL=redis://… shares the cloud gateway's rate-limit counters between control-plane\nreplicas (in the environment, so that its password does not show in the process list).\nGATEHOUSE_ENCRYPTION_KEY (or GATEHOUSE_ENCRYPTION_KEY_FILE): the key the secrets in the store are encrypted with\n(required with PostgreSQL, the same on every replica; docs/high-availability.md).\n--session-idle-timeout / --session-lifetime: a console session ends after this long without a request\n(default 30m) and this long after sign-in (default 12h). --audit-retention-days: how long the audit log keeps\nan entry, and the alert history a resolved alert (default 90).\n--shutdown-delay: on SIGTERM, keep serving this long while /readyz answers 503 (default 0). --drain-timeout: then\nlet requests in flight finish for up to this long (default 10s); edge gateways move to another replica at once.",
  async run(args) {
    const { values } = parse('control start', args, {
      'data-dir': { type: 'string', default: 'data' },
      'database-url': { type: 'string' },
      host: { type: 'string', default: '127.0.0.1' },
      'admin-port': { type: 'string' },
      'gateway-port': { type: 'string' },
      'ops-port': { type: 'string' },
      'bootstrap-port': { type: 'string' },
      'sync-port': { type: 'string' },
      'gateway-cert-validity': { type: 'string' },
      'gateway-reenroll-window': { type: 'string' },
      'advertise-host': { type: 'string' },
      'alert-webhook': { type: 'string' },
      'alert-auth-failures': { type: 'string' },
      'cloud-egress': { type: 'string', default: 'any' },
      'public-url': { type: 'string' },
      'session-idle-timeout': { type: 'string' },
      'session-lifetime': { type: 'string' },
      'audit-retention-days': { type: 'string' },
      'shutdown-delay': { type: 'string' },
      'drain-timeout': { type: 'string' },
      'log-level': { type: 'string', default: 'info' },
    });
    const raw: Flags = {
      dataDir: values['data-dir'],
      databaseUrl: values['database-url'] ?? process.env.DATABASE_URL,
      host: values.host,
      gatewayCertificateValidity: values['gateway-cert-validity'],
      gatewayReenrollWindow: values['gateway-reenroll-window'],
      alertWebhook: values['alert-webhook'],
      alertAuthFailures: values['alert-auth-failures'],
      advertiseHost: values['advertise-host'],
      publicUrl: values['public-url'],
      shutdownDelay: values['shutdown-delay'],
      drainTimeout: values['drain-timeout'],
      cloudEgress: values['cloud-egress'],
      cloudRateLimitRedisUrl: process.env.GATEHOUSE_RATE_LIMIT_REDIS_URL || undefined,
      adminPort: values['admin-port'],
      gatewayPort: values['gateway-port'],
      opsPort: values['ops-port'],
      bootstrapPort: values['bootstrap-port'],
      syncPort: values['sync-port'],
      sessionIdleTimeout: values['session-idle-timeout'],
      sessionLifetime: values['session-lifetime'],
      auditRetentionDays: values['audit-retention-days'],
    };
    const parsed = ControlPlaneSettingsSchema.safeParse(raw);
    const issue = parsed.success ? undefined : parsed.error.issues[0];
    // The ports are read after the log level, as they always were: a bad --log-level is named first.
    if (issue && !String(issue.path[0]).endsWith('Port')) throw settingError(raw, issue);
    const logger: Logger = createLogger(logLevelOption('control start', values['log-level']));
    if (issue || !parsed.success) throw settingError(raw, issue ?? parsed.error!.issues[0]!);
    const settings = parsed.data;
    let plane;
    try {
      plane = await startControlPlane({
        logger,
        dataDir: settings.dataDir,
        databaseUrl: settings.databaseUrl,
        host: settings.host,
        adminPort: settings.adminPort ?? 8081,
        gatewayPort: settings.gatewayPort ?? 8080,
        opsPort: settings.opsPort ?? 9090,
        bootstrapPort: settings.bootstrapPort ?? 8443,
        syncPort: settings.syncPort ?? 8444,
        gatewayCertificateValidityMs: settings.gatewayCertificateValidity,
        gatewayReenrollWindowMs: settings.gatewayReenrollWindow,
        shutdownDelayMs: settings.shutdownDelay,
        drainTimeoutMs: settings.drainTimeout,
        keyRing: keyRingFromEnv(),
        advertiseHost: settings.advertiseHost,
        sessionIdleTimeoutMs: settings.sessionIdleTimeout,
        sessionLifetimeMs: settings.sessionLifetime,
        auditRetentionDays: settings.auditRetentionDays,
        ...(settings.publicUrl ? { tokenExchange: { issuer: settings.publicUrl } } : {}),
        alerts: { webhookUrl: settings.alertWebhook, authFailureThreshold: settings.alertAuthFailures },
        cloudEgress: settings.cloudEgress,
        cloudRateLimitStore: settings.cloudRateLimitRedisUrl
          ? { type: 'redis', url: settings.cloudRateLimitRedisUrl }
          : undefined,
      });
    } catch (error) {
      if (error instanceof StoreOpenError || error instanceof KeyRingError) throw new ConfigError(error.message);
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'EADDRINUSE') throw new ConfigError(`cannot listen: ${(error as Error).message}`);
      throw error;
    }
    const admin = `http://${plane.admin.address}:${plane.admin.port}`;
    const gateway = `http://${plane.gateway.address}:${plane.gateway.port}`;
    const lines = [
      '',
      `Gatehouse control plane (${plane.store.kind})`,
      `  admin API      ${admin}/api/v1   (OpenAPI: ${admin}/api/openapi.json)`,
      `  console        ${admin}/console/   (${consoleNote()})`,
      `  cloud gateway  ${gateway}/<workspace>/<environment>/<base path>`,
      `  bootstrap      ${plane.endpoints.bootstrap}   (edge gateways: gatehouse gateway bootstrap; CA pin ${plane.ca.pin})`,
      `  config sync    ${plane.endpoints.sync}   (edge gateways, gRPC with mutual TLS; telemetry too)`,
    ];
    if (plane.bootstrapToken) {
      lines.push(
        '',
        'First start: created workspace "default" and an installation admin API client. Its token is shown this once:',
        '',
        `  ${plane.bootstrapToken}`,
        '',
        `  export GATEHOUSE_URL=${admin} GATEHOUSE_TOKEN=${plane.bootstrapToken}`,
        '',
        `To sign in to the console, create its first user with that token (the password is shown once), then open`,
        `${admin}/console/ and sign in with workspace "default", that email and password:`,
        '',
        '  gatehouse user create --email you@example.com',
      );
    }
    process.stderr.write(`${lines.join('\n')}\n\n`);
    await waitForSignal();
    logger.info('shutting down');
    await plane.close();
    logger.flush();
    return 0;
  },
};

/** How to use the console, or that it is not built (a checkout without `npm ci`'s build). */
function consoleNote(): string {
  return existsSync(join(CONSOLE_DIST, 'index.html'))
    ? 'sign in as a console user: gatehouse user create'
    : 'not built: run npm run console:build';
}

/** Each setting as the command line (or environment) gives it: a string, or absent. */
type Flags = Record<keyof ControlPlaneSettingsInput, string | undefined>;

/** The flag (or environment variable) of each setting; URLs are shown without credentials, the Redis URL not at all. */
const SOURCES: Record<keyof ControlPlaneSettingsInput, { flag?: string; env?: string; url?: boolean }> = {
  dataDir: { flag: 'data-dir' },
  databaseUrl: { flag: 'database-url', url: true },
  host: { flag: 'host' },
  gatewayCertificateValidity: { flag: 'gateway-cert-validity' },
  gatewayReenrollWindow: { flag: 'gateway-reenroll-window' },
  alertWebhook: { flag: 'alert-webhook', url: true },
  alertAuthFailures: { flag: 'alert-auth-failures' },
  advertiseHost: { flag: 'advertise-host' },
  publicUrl: { flag: 'public-url', url: true },
  shutdownDelay: { flag: 'shutdown-delay' },
  drainTimeout: { flag: 'drain-timeout' },
  cloudEgress: { flag: 'cloud-egress' },
  cloudRateLimitRedisUrl: { env: 'GATEHOUSE_RATE_LIMIT_REDIS_URL' },
  adminPort: { flag: 'admin-port' },
  gatewayPort: { flag: 'gateway-port' },
  opsPort: { flag: 'ops-port' },
  bootstrapPort: { flag: 'bootstrap-port' },
  syncPort: { flag: 'sync-port' },
  sessionIdleTimeout: { flag: 'session-idle-timeout' },
  sessionLifetime: { flag: 'session-lifetime' },
  auditRetentionDays: { flag: 'audit-retention-days' },
};

/** `control start: --<flag> <what is wrong>, got "<value>"` (an environment variable's value is never repeated). */
function settingError(raw: Flags, issue: z.core.$ZodIssue): UsageError {
  const key = issue.path[0] as keyof ControlPlaneSettingsInput;
  const source = SOURCES[key];
  if (source.env) return new UsageError(`control start: ${source.env} ${issue.message}`);
  const value = raw[key] ?? '';
  return new UsageError(
    `control start: --${source.flag} ${issue.message}, got "${source.url ? shownUrl(value) : value}"`,
  );
}
