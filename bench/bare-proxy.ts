/**
 * The runtime's ceiling: node:http in front of an undici Pool (keep-alive), request and response bodies streamed
 * with backpressure, hop-by-hop headers dropped, no policies, no logging. Same proxying mechanism as Gatehouse
 * (undici's dispatch handler API), so the gap between the two is the cost of Gatehouse's own work. It uses the
 * same server option as Gatehouse (`optimizeEmptyRequests`: a request without a body starts as an ended stream),
 * so that option's saving does not count as Gatehouse's.
 *
 * `--same-headers` (diagnosis only, never the baseline of a target): the bare proxy also sends the header bytes
 * Gatehouse sends with the full chain and no policy work behind them: upstream, X-Forwarded-For/Proto/Host/Prefix,
 * Forwarded, a counter X-Request-Id and, in place of the client's key, an `Authorization: Bearer` value as long
 * as Gatehouse's JWT (a constant); on the answer, RateLimit-Policy, a RateLimit counting down and X-Request-Id.
 * What remains between it and Gatehouse is the policies' own cost.
 *
 * Usage: scripts/node bench/bare-proxy.ts --port N --upstream http://127.0.0.1:PORT [--same-headers]
 */
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type OutgoingHttpHeaders } from 'node:http';
import { parseArgs } from 'node:util';
import { Pool, type Dispatcher } from 'undici';

const { values } = parseArgs({
  options: {
    port: { type: 'string' },
    upstream: { type: 'string' },
    host: { type: 'string', default: '127.0.0.1' },
    'same-headers': { type: 'boolean', default: false },
  },
});
const pool = new Pool(values.upstream!, { connections: 128, pipelining: 1, keepAliveTimeout: 30_000 });
const HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'host',
]);

function strip(headers: IncomingHttpHeaders | Record<string, string | string[] | undefined>): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const name in headers) if (!HOP.has(name)) out[name] = headers[name];
  return out;
}

/** The length of the JWT Gatehouse sends in the benchmark (`bench/lib/gatehouse-config.ts`'s claims, EdDSA). */
const JWT_LENGTH = 534;
const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const fakeJwt = Array.from({ length: JWT_LENGTH }, (_, i) =>
  i === 107 || i === 446 ? '.' : B64URL[(i * 37) % 64],
).join('');
const AUTHORIZATION = `Bearer ${fakeJwt}`;
const POLICY = '"key";q=1000000000;w=60, "client";q=1000000000;w=60, "org";q=1000000000;w=60';
const idPrefix = '5649a3c5d61f';
let counter = 0;
let remaining = 999_999_999;

/** What Gatehouse adds upstream, as flat pairs after the client's own headers (without its key). */
function withGatehouseHeaders(headers: OutgoingHttpHeaders, req: IncomingMessage, requestId: string): string[] {
  const out: string[] = [];
  for (const name in headers) if (name !== 'authorization') out.push(name, headers[name] as string);
  const ip = req.socket.remoteAddress!;
  const host = req.headers.host!;
  out.push('x-forwarded-for', ip, 'x-forwarded-proto', 'http', 'x-forwarded-host', host, 'x-forwarded-prefix', '/api');
  out.push(
    'forwarded',
    `for=${ip};proto=http;host="${host}"`,
    'x-request-id',
    requestId,
    'authorization',
    AUTHORIZATION,
  );
  return out;
}

const sameHeaders = values['same-headers'];
const server = createServer({ optimizeEmptyRequests: true }, (req, res) => {
  const requestId = sameHeaders ? idPrefix + (counter++).toString(36).padStart(8, '0') : '';
  const hasBody = req.headers['transfer-encoding'] !== undefined || (req.headers['content-length'] ?? '0') !== '0';
  let controller: Dispatcher.DispatchController | undefined;
  res.once('close', () => {
    if (controller && !controller.aborted && !res.writableFinished)
      controller.abort(new Error('client closed the connection'));
  });
  pool.dispatch(
    {
      path: req.url!,
      method: req.method as Dispatcher.HttpMethod,
      headers: sameHeaders
        ? withGatehouseHeaders(strip(req.headers), req, requestId)
        : (strip(req.headers) as Record<string, string>),
      body: hasBody ? req : null,
    },
    {
      onRequestStart(c) {
        controller = c;
      },
      onResponseStart(_c, status, headers) {
        if (!sameHeaders) res.writeHead(status, strip(headers));
        else {
          const out: string[] = [];
          for (const name in headers) if (!HOP.has(name)) out.push(name, headers[name] as string);
          out.push('ratelimit-policy', POLICY, 'ratelimit', `"key";r=${remaining--};t=60`, 'x-request-id', requestId);
          res.writeHead(status, out);
        }
      },
      onResponseData(c, chunk) {
        if (!res.write(chunk)) {
          c.pause();
          res.once('drain', () => c.resume());
        }
      },
      onResponseEnd() {
        res.end();
      },
      onResponseError(_c, error) {
        if (res.headersSent) res.destroy(error);
        else res.writeHead(502, { 'content-type': 'text/plain' }).end('bad gateway');
      },
    },
  );
});
server.keepAliveTimeout = 65_000;
server.listen(Number(values.port ?? 0), values.host);
const stop = () => {
  server.close();
  server.closeAllConnections();
  void pool.close();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
