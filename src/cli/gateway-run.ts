import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { ConfigError } from '../config/load.ts';
import { RateLimitStoreSchema } from '../config/schema.ts';
import { startGateway } from '../gateway/runtime.ts';
import { defaultConfigDir } from '../gateway/sync/config-dir.ts';
import { startEdgeGateway } from '../gateway/sync/edge-runtime.ts';
import { type Command, parse, portOption, UsageError } from './command.ts';
import { createLogger, logLevelOption } from './logger.ts';

export const gatewayRun: Command = {
  usage:
    '[--config FILE|DIR] [--port N] [--ops-port N] [--host ADDR] [--log-level LEVEL] [--egress any|public]\n\n' +
    'DIR: a directory written by `gatehouse gateway bootstrap` (it holds gateway.json; default: where bootstrap writes\n' +
    'by default, $XDG_CONFIG_HOME/gatehouse/edge-gateway, /etc/gatehouse/edge-gateway as root, $GATEHOUSE_CONFIG_DIR\n' +
    'when set): an edge gateway that syncs\n' +
    'its configuration from the control plane and serves its cached snapshot while the control plane is out of reach.\n' +
    'It listens on 127.0.0.1:8080 (ops 127.0.0.1:9090) unless told otherwise: loopback, so that a gateway started by\n' +
    'hand serves only this machine until you choose an address; --host 0.0.0.0 serves every interface (the container\n' +
    'image does this, where the container network and its published ports are the boundary).\n' +
    'FILE: a declarative config file (YAML or JSON) for a standalone gateway. --log-level applies to edge gateways\n' +
    '(a config file sets server.log.level), and so does --egress: `public` refuses upstreams on loopback, private\n' +
    'and link-local addresses (a config file sets server.egress).\n\n' +
    'Environment: GATEHOUSE_RATE_LIMIT_REDIS_URL=redis://… makes an edge gateway share rate-limit counters with the\n' +
    'other instances that name the same Redis (a config file sets server.rateLimitStore); in the environment, so that\n' +
    'a password in it does not show in the process list. GATEHOUSE_GATEWAY_HOST is the default of --host (the\n' +
    'container image sets 0.0.0.0).',
  async run(args) {
    const { values } = parse('gateway run', args, {
      config: { type: 'string', short: 'c' },
      port: { type: 'string' },
      'ops-port': { type: 'string' },
      host: { type: 'string' },
      'log-level': { type: 'string' },
      egress: { type: 'string' },
    });
    const egress = values.egress;
    if (egress !== undefined && egress !== 'any' && egress !== 'public')
      throw new UsageError(`gateway run: --egress must be any or public, got "${egress}"`);
    const config = values.config ?? defaultConfigDir();
    if (values.config === undefined && !(await isFile(join(config, 'gateway.json'))))
      throw new UsageError(
        `gateway run: --config FILE|DIR is required: a config file, or a directory written by \`gatehouse gateway bootstrap\` (the default, ${config}, holds no gateway.json yet)`,
      );
    values.config = config;
    // The container image sets GATEHOUSE_GATEWAY_HOST=0.0.0.0: there the container's network is the boundary.
    values.host ??= process.env.GATEHOUSE_GATEWAY_HOST || undefined;
    const port = portOption('gateway run', 'port', values.port);
    const opsPort = portOption('gateway run', 'ops-port', values['ops-port']);
    const logLevel = values['log-level'] === undefined ? undefined : logLevelOption('gateway run', values['log-level']);
    if (await isDirectory(values.config)) {
      if (!(await isFile(join(values.config, 'gateway.json')))) {
        throw new ConfigError(
          `${values.config}: a directory without gateway.json; write one with \`gatehouse gateway bootstrap -t TOKEN -o ${values.config} standalone\`, or pass a config file`,
        );
      }
      const logger = createLogger(logLevel ?? 'info');
      const redisUrl = process.env.GATEHOUSE_RATE_LIMIT_REDIS_URL;
      const rateLimitStore = redisUrl ? { type: 'redis' as const, url: redisUrl } : undefined;
      if (rateLimitStore && !RateLimitStoreSchema.safeParse(rateLimitStore).success) {
        throw new UsageError(
          'gateway run: GATEHOUSE_RATE_LIMIT_REDIS_URL must be a redis:// or rediss:// URL with a host, such as redis://127.0.0.1:6379',
        );
      }
      const edge = await startEdgeGateway({
        dir: values.config,
        logger,
        port,
        opsPort,
        host: values.host,
        opsHost: values.host,
        egress,
        rateLimitStore,
        change: { port: '--port N', opsPort: '--ops-port N' },
      });
      await waitForSignal();
      logger.info('shutting down');
      await edge.close();
      logger.flush();
      return 0;
    }
    if (egress !== undefined)
      throw new UsageError('gateway run: --egress applies to edge gateways; a config file sets server.egress');
    if (logLevel !== undefined)
      throw new UsageError('gateway run: --log-level applies to edge gateways; a config file sets server.log.level');
    let logger: Logger | undefined;
    const runtime = await startGateway({
      configFile: values.config,
      logger: (level) => (logger = createLogger(level)),
      port,
      opsPort,
      host: values.host,
      change: {
        port: `--port N (or server.listen.port in ${values.config})`,
        opsPort: `--ops-port N (or server.ops.port in ${values.config})`,
      },
    });
    await waitForSignal();
    logger?.info('shutting down');
    await runtime.close();
    logger?.flush();
    return 0;
  },
};

async function isDirectory(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined))?.isDirectory() ?? false;
}

async function isFile(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined))?.isFile() ?? false;
}

export function waitForSignal(): Promise<void> {
  return new Promise((resolve) => {
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}
