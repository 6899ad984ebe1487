import type { Logger } from 'pino';
import { startControlPlane } from '../control/plane.ts';
import { StoreOpenError } from '../control/store/open.ts';
import { ConfigError } from '../config/load.ts';
import { parseDuration } from '../config/duration.ts';
import { RateLimitStoreSchema } from '../config/schema.ts';
import { type Command, parse, portOption, shownUrl, UsageError } from './command.ts';
import { waitForSignal } from './gateway-run.ts';
import { createLogger, logLevelOption } from './logger.ts';

export const controlStart: Command = {
  usage: '[--data-dir DIR] [--database-url postgres://…] [--host ADDR] [--admin-port N] [--gateway-port N] [--ops-port N] [--bootstrap-port N] [--sync-port N] [--advertise-host HOST] [--gateway-cert-validity DURATION] [--gateway-reenroll-window DURATION] [--alert-webhook URL] [--alert-auth-failures N] [--cloud-egress any|public] [--public-url URL] [--log-level LEVEL]\n\nDATABASE_URL=postgres://… stores state in PostgreSQL instead of SQLite under --data-dir (default ./data).\n--gateway-cert-validity: how long certificates issued to edge gateways are valid (default 24h); they are renewed\nover the live channel after two thirds of it.\n--gateway-reenroll-window: how long after its expiry a gateway certificate may still be traded for a new one\n(an instance that was down, a pod started from its Helm Secret; default 30d).\n--advertise-host: the host name or address edge gateways dial (written into install commands; default --host).\n--alert-webhook: POST every raised and resolved alert there as JSON. --alert-auth-failures: authentication\nfailures per minute and gateway that raise an alert (default 20).\n--cloud-egress: which addresses the cloud gateway\'s upstreams may reach. Link-local addresses and the control\nplane\'s own ports are always refused; `public` refuses loopback and private addresses too (recommended when\nworkspaces belong to different customers). Default `any`.\n--public-url: the cloud gateway\'s URL as clients and backends see it (e.g. https://api.example.com); each\nworkspace environment\'s token issuer is <public URL>/<workspace>/<environment>. Default: the bound address.\nGATEHOUSE_RATE_LIMIT_REDIS_URL=redis://… shares the cloud gateway\'s rate-limit counters between control-plane\nreplicas (in the environment, so that its password does not show in the process list).',
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
      'log-level': { type: 'string', default: 'info' },
    });
    const certValidity = values['gateway-cert-validity'];
    const gatewayCertificateValidityMs = certValidity === undefined ? undefined : parseDuration(certValidity);
    if (certValidity !== undefined && !((gatewayCertificateValidityMs ?? 0) >= 1000)) {
      throw new UsageError(`control start: --gateway-cert-validity must be a duration of at least 1s such as 24h or 30m, got "${certValidity}"`);
    }
    const reenrollWindow = values['gateway-reenroll-window'];
    const gatewayReenrollWindowMs = reenrollWindow === undefined ? undefined : reenrollWindow.trim() === '0' ? 0 : parseDuration(reenrollWindow);
    if (reenrollWindow !== undefined && gatewayReenrollWindowMs === undefined) {
      throw new UsageError(`control start: --gateway-reenroll-window must be a duration such as 30d or 12h (0: only certificates not expired yet), got "${reenrollWindow}"`);
    }
    const webhookUrl = values['alert-webhook'];
    if (webhookUrl !== undefined && !/^https?:\/\/[^\s]+$/.test(webhookUrl)) throw new UsageError(`control start: --alert-webhook must be an http:// or https:// URL, got "${shownUrl(webhookUrl)}"`);
    const failures = values['alert-auth-failures'];
    const authFailureThreshold = failures === undefined ? undefined : Number(failures);
    if (authFailureThreshold !== undefined && !(Number.isInteger(authFailureThreshold) && authFailureThreshold > 0)) {
      throw new UsageError(`control start: --alert-auth-failures must be a positive whole number, got "${failures}"`);
    }
    const advertiseHost = values['advertise-host'];
    if (advertiseHost !== undefined && !/^[A-Za-z0-9.:-]+$/.test(advertiseHost)) throw new UsageError(`control start: --advertise-host must be a host name or IP address, got "${advertiseHost}"`);
    const publicUrl = values['public-url'];
    if (publicUrl !== undefined && !/^https?:\/\/[^\s/?#]+(?:\/[^\s?#]*[^\s?#/])?$/.test(publicUrl)) {
      throw new UsageError(`control start: --public-url must be an http:// or https:// URL without a query or trailing "/", got "${shownUrl(publicUrl)}"`);
    }
    const cloudEgress = values['cloud-egress'];
    if (cloudEgress !== 'any' && cloudEgress !== 'public') throw new UsageError(`control start: --cloud-egress must be any or public, got "${cloudEgress}"`);
    const redisUrl = process.env.GATEHOUSE_RATE_LIMIT_REDIS_URL;
    const cloudRateLimitStore = redisUrl ? { type: 'redis' as const, url: redisUrl } : undefined;
    if (cloudRateLimitStore && !RateLimitStoreSchema.safeParse(cloudRateLimitStore).success) {
      throw new UsageError('control start: GATEHOUSE_RATE_LIMIT_REDIS_URL must be a redis:// or rediss:// URL with a host, such as redis://127.0.0.1:6379');
    }
    const logger: Logger = createLogger(logLevelOption('control start', values['log-level']));
    let plane;
    try {
      plane = await startControlPlane({
        logger,
        dataDir: values['data-dir'],
        databaseUrl: values['database-url'] ?? process.env.DATABASE_URL,
        host: values.host,
        adminPort: portOption('control start', 'admin-port', values['admin-port']) ?? 8081,
        gatewayPort: portOption('control start', 'gateway-port', values['gateway-port']) ?? 8080,
        opsPort: portOption('control start', 'ops-port', values['ops-port']) ?? 9090,
        bootstrapPort: portOption('control start', 'bootstrap-port', values['bootstrap-port']) ?? 8443,
        syncPort: portOption('control start', 'sync-port', values['sync-port']) ?? 8444,
        gatewayCertificateValidityMs,
        gatewayReenrollWindowMs,
        advertiseHost,
        ...(publicUrl ? { tokenExchange: { issuer: publicUrl } } : {}),
        alerts: { webhookUrl, authFailureThreshold },
        cloudEgress,
        cloudRateLimitStore,
      });
    } catch (error) {
      if (error instanceof StoreOpenError) throw new ConfigError(error.message);
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
