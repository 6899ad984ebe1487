import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { loadGatewayFile } from '../config/load.ts';
import { tenantAudience } from '../config/schema.ts';
import { startDemoUpstream } from '../demo/upstream.ts';
import type { GatewayFile } from '../config/schema.ts';
import { explainListenError } from '../gateway/listeners.ts';
import { startGateway, type GatewayRuntime } from '../gateway/runtime.ts';
import { type Command, parse, portOption, UsageError } from './command.ts';
import { waitForSignal } from './gateway-run.ts';
import { createLogger } from './logger.ts';

const EXAMPLE = fileURLToPath(new URL('../../examples/gateway.yaml', import.meta.url));

/** What changes each of the demo's ports, as `npm run demo` passes flags. */
const changeWith = (flag: string) => `${flag} N (npm run demo -- ${flag} N)`;

export const demo: Command = {
  usage: `[--config FILE] [--port N] [--ops-port N] [--upstream-port N]

--port: the gateway's API port (default: the config file's, 8080 in examples/gateway.yaml).
--ops-port: its /healthz, /readyz and /metrics port (default: the config file's, 9090).
--upstream-port: the demo upstream's port (default: the port of the first collection's upstream, 9000); every
collection of the file that points at the demo upstream follows it.
A port in use stops the demo with one line naming the port and the flag, exit code 2, and nothing left running.`,
  async run(args) {
    const { values } = parse('demo', args, {
      config: { type: 'string', default: EXAMPLE },
      port: { type: 'string' },
      'ops-port': { type: 'string' },
      'upstream-port': { type: 'string' },
    });
    const port = portOption('demo', 'port', values.port);
    const opsPort = portOption('demo', 'ops-port', values['ops-port']);
    const config = await loadGatewayFile(values.config);
    const upstream = new URL(config.collections[0]!.upstream.url);
    const upstreamPort = portOption('demo', 'upstream-port', values['upstream-port']) ?? Number(upstream.port || 80);
    const listenHost = config.server.listen.host === '0.0.0.0' ? '127.0.0.1' : config.server.listen.host;
    const gatewayPort = port ?? config.server.listen.port;
    const gatewayUrl = `http://${listenHost}:${gatewayPort}`;
    // The upstream listens first: a port in use ends the demo before anything else holds a port.
    const { server, address } = await startDemoUpstream({
      host: upstream.hostname,
      port: upstreamPort,
      jwksUrl: `${gatewayUrl}/.well-known/jwks.json`,
      issuer: config.tokenExchange.issuer,
      audience: config.tokenExchange.audience,
    }).catch((error: unknown) => {
      throw (
        explainListenError(
          error,
          'the demo upstream',
          upstreamPort,
          upstream.hostname,
          changeWith('--upstream-port'),
        ) ?? error
      );
    });
    const upstreamOrigin = `http://${upstream.hostname}:${address.port}`;
    // The collections that point at the demo upstream follow it to the port it got.
    const adjust = (file: GatewayFile): GatewayFile => ({
      ...file,
      collections: file.collections.map((c) => {
        const url = new URL(c.upstream.url);
        if (url.host !== upstream.host) return c;
        url.port = String(address.port);
        return { ...c, upstream: { ...c.upstream, url: url.href } };
      }),
    });
    let logger: Logger | undefined;
    let runtime: GatewayRuntime;
    try {
      runtime = await startGateway({
        configFile: values.config,
        logger: (level) => (logger = createLogger(level)),
        port,
        opsPort,
        change: { port: changeWith('--port'), opsPort: changeWith('--ops-port') },
        adjust,
      });
    } catch (error) {
      // Nothing is left running: the upstream closes before the error is reported.
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      throw error;
    }
    const shown = `http://${listenHost}:${runtime.api.port}`;
    console.error(`
Gatehouse demo is running.
  gateway:  ${shown}   (ops: http://127.0.0.1:${runtime.ops.port}/metrics)
  upstream: ${upstreamOrigin} (verifies the gateway's JWT against ${shown}/.well-known/jwks.json)

Try:
  curl -H 'Authorization: Bearer ghk_OYD2bW6pY21HpMITxjvPCsGSwSb2qSlk17CIdB' ${shown}/billing/orgs/acme/invoices
  curl -i ${shown}/billing/orgs/acme/invoices            # 401, no key
  curl -i -X POST -H 'X-API-Key: ghk_OYD2bW6pY21HpMITxjvPCsGSwSb2qSlk17CIdB' ${shown}/billing/orgs/acme/invoices   # 403, role lacks invoices:write
Ctrl-C stops.
`);
    await waitForSignal();
    await runtime.close();
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
    logger?.flush();
    return 0;
  },
};

/** The demo upstream alone, trusting the control plane's cloud gateway: for the control-plane quickstart. */
export const demoUpstream: Command = {
  usage:
    "[--port 9000] [--gateway http://127.0.0.1:8080] [--issuer http://127.0.0.1:8080/default/dev] [--audience urn:gatehouse:default:dev]\n\n--issuer: the `iss` tokens must carry: the workspace environment whose collections may call this backend\n(default: the gateway URL + /default/dev).\n--audience: the `aud` tokens must carry (default: that workspace environment's, urn:gatehouse:<workspace>:<environment>).",
  async run(args) {
    const { values } = parse('demo upstream', args, {
      port: { type: 'string', default: '9000' },
      gateway: { type: 'string', default: 'http://127.0.0.1:8080' },
      issuer: { type: 'string' },
      audience: { type: 'string' },
    });
    const port = portOption('demo upstream', 'port', values.port)!;
    let gateway: URL;
    try {
      gateway = new URL(values.gateway);
    } catch {
      throw new UsageError(
        `demo upstream: --gateway must be a URL such as http://127.0.0.1:8080, got "${values.gateway}"`,
      );
    }
    // Every workspace environment is its own issuer: checking it is what keeps another tenant's tokens out.
    const issuer = values.issuer ?? `${gateway.origin}/default/dev`;
    // …and so is its audience: the last two segments of the issuer's path name the workspace and the environment.
    const [workspace = 'default', environment = 'dev'] = URL.canParse(issuer)
      ? new URL(issuer).pathname.split('/').filter(Boolean).slice(-2)
      : [];
    const audience = values.audience ?? tenantAudience(workspace, environment);
    const { server, address } = await startDemoUpstream({
      host: '127.0.0.1',
      port,
      jwksUrl: new URL('/.well-known/jwks.json', gateway).href,
      issuer,
      audience,
    }).catch((error: unknown) => {
      throw explainListenError(error, 'the demo upstream', port, '127.0.0.1', '--port N') ?? error;
    });
    console.error(
      `Demo upstream on http://127.0.0.1:${address.port}: it answers only requests carrying a JWT with issuer ${issuer} and audience ${audience}, signed by a key of ${gateway.origin}/.well-known/jwks.json. Ctrl-C stops.`,
    );
    await waitForSignal();
    await new Promise<void>((r) => server.close(() => r()));
    return 0;
  },
};
