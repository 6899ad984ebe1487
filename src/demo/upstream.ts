/**
 * The demo upstream: a backend that trusts only gateway-minted JWTs, verified the way any backend would —
 * with jose against the gateway's JWKS — and echoes what it received.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRemoteJWKSet, jwtVerify } from 'jose';

export interface DemoUpstreamOptions {
  port: number;
  host: string;
  /** The gateway's JWKS URL, e.g. http://127.0.0.1:8080/.well-known/jwks.json */
  jwksUrl: string;
  issuer: string;
  audience: string | string[];
}

export async function startDemoUpstream(
  options: DemoUpstreamOptions,
): Promise<{ server: Server; address: AddressInfo }> {
  const jwks = createRemoteJWKSet(new URL(options.jwksUrl));
  const server = createServer(async (req, res) => {
    const auth = req.headers.authorization;
    let claims: unknown;
    let status = 200;
    if (!auth?.startsWith('Bearer ')) {
      status = 401;
      claims = { error: 'no gateway token' };
    } else {
      try {
        claims = (await jwtVerify(auth.slice(7), jwks, { issuer: options.issuer, audience: options.audience })).payload;
      } catch (error) {
        status = 401;
        claims = { error: `token rejected: ${(error as Error).message}` };
      }
    }
    const body = JSON.stringify(
      {
        upstream: 'demo',
        method: req.method,
        path: req.url,
        tokenClaims: claims,
        requestId: req.headers['x-request-id'],
      },
      null,
      2,
    );
    req.resume();
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(`${body}\n`);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  return { server, address: server.address() as AddressInfo };
}
