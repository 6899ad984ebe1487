/**
 * The benchmark upstream: a minimal node:http server answering a small fixed JSON body on every path, with
 * keep-alive. `GET /__bench/last` answers the headers of the last other request it saw (to check what a proxy
 * forwards, e.g. that Gatehouse sends a JWT and not the API key).
 *
 * Usage: scripts/node bench/upstream.ts --port N [--host 127.0.0.1]
 */
import { createServer, type IncomingHttpHeaders } from 'node:http';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { port: { type: 'string' }, host: { type: 'string', default: '127.0.0.1' } } });
const port = Number(values.port ?? 0);

const BODY = Buffer.from(JSON.stringify({ id: 42, name: 'bench item', price: 9.99, tags: ['a', 'b'] }));
const HEADERS = { 'content-type': 'application/json', 'content-length': String(BODY.length) };
let last: IncomingHttpHeaders = {};
let lastUrl: string | undefined;

const server = createServer((req, res) => {
  if (req.url === '/__bench/last') {
    const body = JSON.stringify({ url: lastUrl, headers: last });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
    return;
  }
  last = req.headers;
  lastUrl = req.url;
  if (req.method === 'GET' || req.method === 'HEAD') {
    res.writeHead(200, HEADERS);
    res.end(BODY);
    return;
  }
  req.resume();
  req.on('end', () => {
    res.writeHead(200, HEADERS);
    res.end(BODY);
  });
});
server.keepAliveTimeout = 120_000;
server.headersTimeout = 125_000;
server.listen(port, values.host, () => {
  process.stdout.write(`listening ${values.host}:${port}\n`);
});
const stop = () => {
  server.close();
  server.closeAllConnections();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
