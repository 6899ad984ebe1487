import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { loadGatewayFile } from '../config/load.ts';
import { tenantAudience } from '../config/schema.ts';
import { startDemoUpstream } from '../demo/upstream.ts';
import { startGateway } from '../gateway/runtime.ts';
import { type Command, parse, portOption, UsageError } from './command.ts';
import { waitForSignal } from './gateway-run.ts';
import { createLogger } from './logger.ts';

const EXAMPLE = fileURLToPath(new URL('../../examples/gateway.yaml', import.meta.url));

export const demo: Command = {
  usage: '[--config FILE]',
  async run(args) {
    const { values } = parse('demo', args, { config: { type: 'string', default: EXAMPLE } });
    const config = await loadGatewayFile(values.config);
    const upstream = new URL(config.collections[0]!.upstream.url);
    const gatewayUrl = `http://${config.server.listen.host === '0.0.0.0' ? '127.0.0.1' : config.server.listen.host}:${config.server.listen.port}`;
    const { server } = await startDemoUpstream({
      host: upstream.hostname,
      port: Number(upstream.port || 80),
      jwksUrl: `${gatewayUrl}/.well-known/jwks.json`,
      issuer: config.tokenExchange.issuer,
      audience: config.tokenExchange.audience,
    });
    let logger: Logger | undefined;
    const runtime = await startGateway({
      configFile: values.config,
      logger: (level) => (logger = createLogger(level)),
    });
    console.error(`
Gatehouse demo is running.
  gateway:  ${gatewayUrl}   (ops: http://127.0.0.1:${runtime.ops.port}/metrics)
  upstream: ${upstream.origin} (verifies the gateway's JWT against ${gatewayUrl}/.well-known/jwks.json)

Try:
  curl -H 'Authorization: Bearer ghk_OYD2bW6pY21HpMITxjvPCsGSwSb2qSlk17CIdB' ${gatewayUrl}/billing/orgs/acme/invoices
  curl -i ${gatewayUrl}/billing/orgs/acme/invoices            # 401, no key
  curl -i -X POST -H 'X-API-Key: ghk_OYD2bW6pY21HpMITxjvPCsGSwSb2qSlk17CIdB' ${gatewayUrl}/billing/orgs/acme/invoices   # 403, role lacks invoices:write
Ctrl-C stops.
`);
    await waitForSignal();
    await runtime.close();
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
    const { server } = await startDemoUpstream({
      host: '127.0.0.1',
      port,
      jwksUrl: new URL('/.well-known/jwks.json', gateway).href,
      issuer,
      audience,
    });
    console.error(
      `Demo upstream on http://127.0.0.1:${port}: it answers only requests carrying a JWT with issuer ${issuer} and audience ${audience}, signed by a key of ${gateway.origin}/.well-known/jwks.json. Ctrl-C stops.`,
    );
    await waitForSignal();
    await new Promise<void>((r) => server.close(() => r()));
    return 0;
  },
};
