/**
 * The runtime's ceiling: node:http in front of an undici Pool (keep-alive), request and response bodies streamed
 * with backpressure, hop-by-hop headers dropped, no policies, no logging. Same proxying mechanism as Gatehouse
 * (undici's dispatch handler API), so the gap between the two is the cost of Gatehouse's own work. It uses the
 * same server option as Gatehouse (`optimizeEmptyRequests`: a request without a body starts as an ended stream),
 * so that option's saving does not count as Gatehouse's.
 *
 * Usage: scripts/node bench/bare-proxy.ts --port N --upstream http://127.0.0.1:PORT
 */
import { createServer, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http';
import { parseArgs } from 'node:util';
import { Pool, type Dispatcher } from 'undici';

const { values } = parseArgs({ options: { port: { type: 'string' }, upstream: { type: 'string' }, host: { type: 'string', default: '127.0.0.1' } } });
const pool = new Pool(values.upstream!, { connections: 128, pipelining: 1, keepAliveTimeout: 30_000 });
const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'host']);

function strip(headers: IncomingHttpHeaders | Record<string, string | string[] | undefined>): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const name in headers) if (!HOP.has(name)) out[name] = headers[name];
  return out;
}

const server = createServer({ optimizeEmptyRequests: true }, (req, res) => {
  const hasBody = req.headers['transfer-encoding'] !== undefined || (req.headers['content-length'] ?? '0') !== '0';
  let controller: Dispatcher.DispatchController | undefined;
  res.once('close', () => {
    if (controller && !controller.aborted && !res.writableFinished) controller.abort(new Error('client closed the connection'));
  });
  pool.dispatch({ path: req.url!, method: req.method as Dispatcher.HttpMethod, headers: strip(req.headers) as Record<string, string>, body: hasBody ? req : null }, {
    onRequestStart(c) {
      controller = c;
    },
    onResponseStart(_c, status, headers) {
      res.writeHead(status, strip(headers));
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
  });
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
