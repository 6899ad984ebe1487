/**
 * Proxying end to end on real sockets: upstream failures and timeouts become 502/504 problems, hop-by-hop
 * headers are removed in both directions, statuses, bodies and repeated headers pass through untouched, a client
 * that goes away mid-response does not hurt the gateway, and the upstream URL's path and the base path combine as
 * configured.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { eventually } from '../src/testing/eventually.ts';
import {
  parseRaw,
  rawRequest,
  startGateway,
  startUpstream,
  TOKEN_EXCHANGE,
  type GatewayProcess,
  type Upstream,
  expectProblem,
  waitForLine,
} from './helpers.ts';

/** A loopback port nothing listens on: bound once, then closed. */
async function deadPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

/** Header lines of a raw response head, lower-cased names, in order. */
function headerLines(head: string): [string, string][] {
  return head
    .split('\r\n')
    .slice(1)
    .map((line) => {
      const colon = line.indexOf(':');
      return [line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim()] as [string, string];
    });
}

describe('proxying to upstreams on a running gateway', () => {
  let upstream: Upstream;
  let gw: GatewayProcess;
  /** Responses of the streaming route, to see whether the gateway aborted them when the client left. */
  const streams: { closed: Promise<boolean> }[] = [];
  const hanging = new Set<ServerResponse>();

  before(async () => {
    upstream = await startUpstream((req: IncomingMessage, res: ServerResponse) => {
      const url = req.url!;
      if (url.startsWith('/hang/')) {
        // Never answers; the gateway's headersTimeout must give up first.
        hanging.add(res);
        req.resume();
        return true;
      }
      if (url === '/api/v2/hop') {
        req.resume();
        res.writeHead(200, [
          ['Content-Type', 'text/plain'],
          ['Connection', 'keep-alive, X-Up-Private'],
          ['Keep-Alive', 'timeout=7, max=77'],
          ['Upgrade', 'h2c'],
          ['Proxy-Connection', 'keep-alive'],
          ['Transfer-Encoding', 'chunked'],
          ['X-Up-Private', 'hop-only'],
          ['X-Up-Custom', 'end-to-end'],
        ]);
        res.write('hop ');
        res.end('done');
        return true;
      }
      if (url === '/api/v2/cookies') {
        req.resume();
        res.writeHead(200, [
          ['X-Request-Id', 'chosen-by-the-upstream'],
          ['Set-Cookie', 'a=1; Path=/; HttpOnly'],
          ['Set-Cookie', 'b=2; Path=/svc; Secure; SameSite=Strict'],
          ['Set-Cookie', 'c=3; Expires=Wed, 21 Oct 2037 07:28:00 GMT'],
          ['Content-Length', '0'],
        ]);
        res.end();
        return true;
      }
      if (url === '/api/v2/things' && req.method === 'POST') {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
          const body = Buffer.concat(chunks);
          res.writeHead(201, { 'content-type': 'application/json', location: '/things/42' });
          res.end(
            JSON.stringify({ id: 42, length: body.length, sha256: createHash('sha256').update(body).digest('hex') }),
          );
        });
        return true;
      }
      if (url === '/api/v2/things/missing') {
        req.resume();
        res.writeHead(404, { 'content-type': 'application/json', 'x-upstream': 'yes' });
        res.end('{"error":"no such thing","from":"upstream"}');
        return true;
      }
      if (url === '/api/v2/teapot') {
        req.resume();
        res.writeHead(418, { 'content-type': 'text/plain' });
        res.end("I'm a teapot");
        return true;
      }
      if (url === '/api/v2/stream') {
        req.resume();
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        const chunk = Buffer.alloc(64 * 1024, 0x61);
        const timer = setInterval(() => res.write(chunk), 5);
        const stop = setTimeout(() => res.end(), 8_000);
        streams.push({
          closed: new Promise((resolve) =>
            res.once('close', () => {
              clearInterval(timer);
              clearTimeout(stop);
              resolve(!res.writableFinished);
            }),
          ),
        });
        return true;
      }
      return false;
    });
    const collection = (
      name: string,
      basePath: string,
      up: unknown,
      endpoints: [string, string][],
      extra: Record<string, unknown> = {},
    ) => ({
      name,
      basePath,
      upstream: up,
      project: 'payments',
      environment: 'PROD',
      authRequired: false,
      endpoints: endpoints.map(([method, path]) => ({ method, path, permission: `${name}:call` })),
      ...extra,
    });
    gw = await startGateway({
      tokenExchange: TOKEN_EXCHANGE,
      // The hosts the keep-alive test below switches between, and the address the others call.
      server: { publicHosts: ['127.0.0.1', 'one.example', 'two.example:8443'] },
      collections: [
        collection('svc', '/svc', `${upstream.url}/api/v2/`, [
          ['GET', '/'],
          ['GET', '/echo'],
          ['POST', '/echo'],
          ['GET', '/hop'],
          ['GET', '/cookies'],
          ['POST', '/things'],
          ['GET', '/things/{id}'],
          ['GET', '/teapot'],
          ['GET', '/stream'],
        ]),
        collection('kept', '/kept/v1', `${upstream.url}/pre`, [['GET', '/echo']], { stripBasePath: false }),
        collection('bare', '/bare', upstream.url, [['GET', '/echo']]),
        collection('down', '/down', `http://127.0.0.1:${await deadPort()}/api`, [['GET', '/echo']]),
        collection('slow', '/slow', { url: `${upstream.url}/hang`, headersTimeout: '300ms' }, [['GET', '/wait']]),
      ],
    });
  });

  after(async () => {
    for (const res of hanging) res.destroy();
    await gw?.stop();
    await upstream?.close();
  });

  const problem = expectProblem;

  /** Asserts that /metrics has `line` (a regular expression source matched against whole lines). */
  async function metric(line: string): Promise<void> {
    const metrics = await (await fetch(`${gw.opsUrl}/metrics`)).text();
    assert.ok(new RegExp(`^${line}$`, 'm').test(metrics), `no line /${line}/ in /metrics`);
  }

  it('answers 502 GH_ERR_UPSTREAM_UNAVAILABLE when the upstream refuses the connection', async () => {
    await problem(await fetch(`${gw.url}/down/echo`), 502, 'GH_ERR_UPSTREAM_UNAVAILABLE');
    await metric('gatehouse_upstream_errors_total\\{collection="down",code="GH_ERR_UPSTREAM_UNAVAILABLE"\\} 1');
    await metric('gatehouse_requests_total\\{collection="down",route="/echo",method="GET",status="502"\\} 1');
  });

  it('answers 504 GH_ERR_UPSTREAM_TIMEOUT when the upstream sends no headers within headersTimeout', async () => {
    const before = upstream.requests.length;
    const started = performance.now();
    // Bounded wait: the gateway must answer well within 2 s; a hung request must fail this test, not stall the file.
    const res = await fetch(`${gw.url}/slow/wait`, { signal: AbortSignal.timeout(2_500) }).catch(
      (error: Error) => error,
    );
    const elapsed = performance.now() - started;
    assert.ok(
      res instanceof Response,
      `no answer within 2.5 s (${String(res)}): upstream.headersTimeout "300ms" was not applied as 300 ms`,
    );
    await problem(res, 504, 'GH_ERR_UPSTREAM_TIMEOUT');
    assert.equal(upstream.requests.length, before + 1, 'the request reached the upstream');
    assert.ok(elapsed >= 250 && elapsed < 2_000, `answered after ${Math.round(elapsed)} ms`);
    await metric('gatehouse_upstream_errors_total\\{collection="slow",code="GH_ERR_UPSTREAM_TIMEOUT"\\} 1');
    await metric('gatehouse_requests_total\\{collection="slow",route="/wait",method="GET",status="504"\\} 1');
  });

  it('removes hop-by-hop headers, and those the client lists in Connection, before forwarding', async () => {
    const raw = await rawRequest(
      gw.port,
      [
        'GET /svc/echo HTTP/1.1',
        `Host: 127.0.0.1:${gw.port}`,
        'Connection: close, X-Foo',
        'X-Foo: hop-only',
        'Keep-Alive: timeout=9',
        'TE: trailers',
        'Proxy-Connection: keep-alive',
        'Proxy-Authorization: Basic c2VjcmV0OnNlY3JldA==',
        'Trailer: X-Checksum',
        'X-Bar: end-to-end',
        '',
        '',
      ].join('\r\n'),
    );
    const res = parseRaw(raw);
    assert.equal(res.status, 200, res.body);
    const seen = upstream.requests.at(-1)!;
    assert.equal(seen.url, '/api/v2/echo');
    for (const name of ['x-foo', 'keep-alive', 'te', 'proxy-connection', 'proxy-authorization', 'trailer']) {
      assert.equal(seen.headers[name], undefined, `the upstream received ${name}`);
    }
    assert.doesNotMatch(String(seen.headers.connection ?? ''), /x-foo|close/i);
    assert.equal(seen.headers['x-bar'], 'end-to-end');
  });

  it('removes hop-by-hop headers, and those the upstream lists in Connection, from the response', async () => {
    const raw = await rawRequest(
      gw.port,
      `GET /svc/hop HTTP/1.1\r\nHost: 127.0.0.1:${gw.port}\r\nConnection: close\r\n\r\n`,
    );
    const res = parseRaw(raw);
    assert.equal(res.status, 200);
    const lines = headerLines(res.headers);
    const names = lines.map(([name]) => name);
    assert.equal(lines.find(([name]) => name === 'x-up-custom')?.[1], 'end-to-end');
    assert.ok(!names.includes('upgrade'), 'upgrade reached the client');
    assert.ok(!names.includes('proxy-connection'), 'proxy-connection reached the client');
    assert.ok(
      !lines.some(([, value]) => value === 'timeout=7, max=77'),
      "the upstream's keep-alive reached the client",
    );
    // The gateway answers with its own connection management only.
    assert.deepEqual(
      lines.filter(([name]) => name === 'connection'),
      [['connection', 'close']],
    );
    // The gateway re-frames the body itself; what arrives is the whole body, once.
    assert.ok(res.body.includes('hop ') && res.body.includes('done'));
    // RFC 9110 §7.6.1: a proxy must remove the header fields the upstream named in its Connection header.
    assert.ok(
      !names.includes('x-up-private'),
      "x-up-private, listed in the upstream's Connection header, reached the client: src/gateway/http/proxy.ts onResponseStart " +
        'strips only the fixed RESPONSE_STRIP set, not the tokens of the response Connection header (the request side does)',
    );
  });

  it('passes several Set-Cookie headers from the upstream through intact', async () => {
    const res = await fetch(`${gw.url}/svc/cookies`);
    assert.equal(res.status, 200);
    assert.deepEqual(res.headers.getSetCookie(), [
      'a=1; Path=/; HttpOnly',
      'b=2; Path=/svc; Secure; SameSite=Strict',
      'c=3; Expires=Wed, 21 Oct 2037 07:28:00 GMT',
    ]);
    await res.arrayBuffer();
  });

  it("answers with the gateway's request id, once, even when the upstream sends its own", async () => {
    const res = await fetch(`${gw.url}/svc/cookies`);
    await res.arrayBuffer();
    const id = res.headers.get('x-request-id');
    assert.match(String(id), /^[0-9a-f]{12}[0-9a-z]{8}$/, "one value, not the upstream's joined to it");
    assert.equal(upstream.requests.at(-1)!.headers['x-request-id'], id);
  });

  it('sends Forwarded for each request of a keep-alive connection, also when its Host changes', async () => {
    const socket = connect(Number(new URL(gw.url).port), '127.0.0.1');
    await new Promise<void>((r) => socket.once('connect', () => r()));
    const seen: (string | string[] | undefined)[] = [];
    let received = '';
    socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
    for (const host of ['one.example', 'one.example', 'two.example:8443', 'one.example']) {
      const before = upstream.requests.length;
      socket.write(`GET /svc/echo HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
      await eventually(() => upstream.requests.length > before, 10_000, `the request with Host ${host} upstream`, 5);
      seen.push(upstream.requests.at(-1)!.headers.forwarded);
    }
    await eventually(() => (received.match(/HTTP\/1\.1 200/g)?.length ?? 0) >= 4, 10_000, 'four responses', 5);
    socket.destroy();
    assert.deepEqual(seen, [
      'for=127.0.0.1;proto=http;host="one.example"',
      'for=127.0.0.1;proto=http;host="one.example"',
      'for=127.0.0.1;proto=http;host="two.example:8443"',
      'for=127.0.0.1;proto=http;host="one.example"',
    ]);
    assert.equal(received.match(/HTTP\/1\.1 200/g)?.length, 4);
  });

  it('passes a 201 with its body and headers through', async () => {
    const res = await fetch(`${gw.url}/svc/things`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"name":"x"}',
    });
    assert.equal(res.status, 201);
    assert.equal(res.headers.get('location'), '/things/42');
    assert.equal(res.headers.get('content-type'), 'application/json');
    assert.deepEqual(await res.json(), {
      id: 42,
      length: 12,
      sha256: createHash('sha256').update('{"name":"x"}').digest('hex'),
    });
  });

  it("passes the upstream's own 404 and its body through instead of a gateway problem", async () => {
    const res = await fetch(`${gw.url}/svc/things/missing`);
    assert.equal(res.status, 404);
    assert.equal(res.headers.get('content-type'), 'application/json');
    assert.equal(res.headers.get('x-upstream'), 'yes');
    assert.equal(await res.text(), '{"error":"no such thing","from":"upstream"}');
    const teapot = await fetch(`${gw.url}/svc/teapot`);
    assert.equal(teapot.status, 418);
    assert.equal(await teapot.text(), "I'm a teapot");
  });

  it('answers HEAD through a GET endpoint with headers and no body', async () => {
    const res = await fetch(`${gw.url}/svc/echo`, { method: 'HEAD' });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-upstream'), 'yes');
    assert.equal(res.headers.get('content-type'), 'application/json');
    assert.equal(await res.text(), '');
    assert.equal(upstream.requests.at(-1)!.method, 'HEAD');
    assert.equal(upstream.requests.at(-1)!.url, '/api/v2/echo');
  });

  it('forwards a POST body of a few KB intact, with a length and chunked', async () => {
    const body = randomBytes(48 * 1024);
    const digest = createHash('sha256').update(body).digest('hex');
    const sized = await fetch(`${gw.url}/svc/things`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream' },
      body,
    });
    assert.equal(sized.status, 201);
    assert.deepEqual(await sized.json(), { id: 42, length: body.length, sha256: digest });
    assert.equal(upstream.requests.at(-1)!.headers['content-length'], String(body.length));

    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < body.length; i += 5_000) controller.enqueue(body.subarray(i, i + 5_000));
        controller.close();
      },
    });
    const chunked = await fetch(`${gw.url}/svc/things`, {
      method: 'POST',
      body: stream,
      duplex: 'half',
    } as RequestInit);
    assert.equal(chunked.status, 201);
    assert.deepEqual(await chunked.json(), { id: 42, length: body.length, sha256: digest });
  });

  it('survives a slow client that goes away mid-response, and aborts the upstream response', async () => {
    const before = streams.length;
    await new Promise<void>((resolve, reject) => {
      const socket = connect(gw.port, '127.0.0.1');
      socket.on('error', reject);
      socket.write(`GET /svc/stream HTTP/1.1\r\nHost: 127.0.0.1:${gw.port}\r\n\r\n`);
      socket.once('data', (first: Buffer) => {
        try {
          assert.match(first.toString('latin1'), /^HTTP\/1\.1 200 /);
        } catch (error) {
          reject(error as Error);
        }
        // Read nothing more for a while (the gateway must apply backpressure), then vanish. The pause is the
        // scenario, not a wait: however long it lasts, the upstream response must be aborted after it.
        socket.pause();
        setTimeout(() => {
          socket.destroy();
          resolve();
        }, 300);
      });
    });
    assert.equal(streams.length, before + 1);
    const aborted = await Promise.race([streams.at(-1)!.closed, sleep(10_000, 'still streaming', { ref: false })]);
    assert.equal(aborted, true, 'the gateway kept the upstream response running after the client left');
    assert.equal(gw.child.exitCode, null);
    const next = await fetch(`${gw.url}/svc/echo`);
    assert.equal(next.status, 200);
    await next.arrayBuffer();
  });

  it('prepends the upstream URL path and strips the base path by default', async () => {
    const res = await fetch(`${gw.url}/svc/echo?a=1&b=%2F`);
    assert.equal(res.status, 200);
    assert.equal(((await res.json()) as { url: string }).url, '/api/v2/echo?a=1&b=%2F');
    assert.equal(upstream.requests.at(-1)!.headers['x-forwarded-prefix'], '/svc');
    const root = await fetch(`${gw.url}/svc`);
    assert.equal(root.status, 200);
    assert.equal(((await root.json()) as { url: string }).url, '/api/v2');
    const bare = await fetch(`${gw.url}/bare/echo`);
    assert.equal(((await bare.json()) as { url: string }).url, '/echo');
  });

  it('keeps the base path after the upstream URL path with stripBasePath: false', async () => {
    const res = await fetch(`${gw.url}/kept/v1/echo?x=y`);
    assert.equal(res.status, 200);
    assert.equal(((await res.json()) as { url: string }).url, '/pre/kept/v1/echo?x=y');
    assert.equal(upstream.requests.at(-1)!.headers['x-forwarded-prefix'], undefined);
  });
});

describe('a standalone gateway with server.egress: public', () => {
  let upstream: Upstream;
  let gw: GatewayProcess;
  let connections = 0;

  before(async () => {
    upstream = await startUpstream();
    upstream.server.on('connection', () => connections++);
    const collection = (name: string, url: string, extra: Record<string, unknown> = {}) => ({
      name,
      basePath: `/${name}`,
      upstream: url,
      project: 'payments',
      environment: 'PROD',
      authRequired: false,
      endpoints: [{ method: 'GET', path: '/x', permission: `${name}:call` }],
      ...extra,
    });
    gw = await startGateway({
      server: { egress: 'public' },
      tokenExchange: TOKEN_EXCHANGE,
      collections: [
        collection('literal', upstream.url),
        collection('named', `http://localhost:${upstream.port}`, { websocket: true }),
      ],
    });
  });
  after(async () => {
    await gw?.stop();
    await upstream?.close();
  });

  it('refuses loopback upstreams, by address or by a name resolving to loopback, HTTP and WebSocket alike', async () => {
    await expectProblem(await fetch(`${gw.url}/literal/x`), 502, 'GH_ERR_UPSTREAM_EGRESS_DENIED');
    await expectProblem(await fetch(`${gw.url}/named/x`), 502, 'GH_ERR_UPSTREAM_EGRESS_DENIED');
    const upgrade = parseRaw(
      await rawRequest(
        gw.port,
        `GET /named/x HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`,
      ),
    );
    assert.equal(upgrade.status, 502);
    assert.equal(upgrade.json?.code, 'GH_ERR_UPSTREAM_EGRESS_DENIED');
    assert.equal(connections, 0, 'the upstream saw a connection');
    await waitForLine(gw, /"collection":"named".*"msg":"upstream connection refused by the egress policy"/, 0);
  });
});
