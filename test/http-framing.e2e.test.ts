/**
 * Requests that are not clean HTTP/1.1, on raw sockets to a running gateway:
 * - a Host sent twice or not a host → 400;
 * - a credential header sent twice → 401 malformed key, never the first copy;
 * - a transfer coding other than chunked → 501, never forwarded stripped of it;
 * - unparseable requests and oversized headers → a problem+json answer and a closed connection;
 * - a body that breaks its framing after the request was routed → the client's 400 in the log and the metrics,
 *   not an upstream error, and never a second response on a connection that already had its answer.
 */
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { after, before, describe, it } from 'node:test';
import {
  metricValue,
  newKey,
  parseRaw,
  rawRequest,
  startGateway,
  startUpstream,
  TOKEN_EXCHANGE,
  waitForLine,
  type GatewayProcess,
  type Upstream,
} from './helpers.ts';

const writer = newKey();
const reader = newKey();

describe('requests that are not clean HTTP/1.1', () => {
  let upstream: Upstream;
  let gw: GatewayProcess;

  before(async () => {
    // Answers only once the whole body has arrived, so that a body that fails midway fails the exchange.
    upstream = await startUpstream((req: IncomingMessage, res: ServerResponse) => {
      let length = 0;
      req.on('data', (chunk: Buffer) => (length += chunk.length));
      req.on('end', () => res.end(JSON.stringify({ length })));
      req.on('error', () => {});
      return true;
    });
    gw = await startGateway({
      tokenExchange: TOKEN_EXCHANGE,
      collections: [
        {
          name: 'items',
          basePath: '/items',
          upstream: upstream.url,
          project: 'p',
          environment: 'PROD',
          endpoints: [
            { method: 'GET', path: '/{id}', permission: 'items:read' },
            { method: 'POST', path: '/', permission: 'items:write' },
          ],
        },
      ],
      roles: [
        { name: 'writer', permissions: ['items:read', 'items:write'] },
        { name: 'reader', permissions: ['items:read'] },
      ],
      clients: [
        { id: 'writer', role: 'writer', environments: ['PROD'], projects: ['p'], keys: [{ hash: writer.hash }] },
        { id: 'reader', role: 'reader', environments: ['PROD'], projects: ['p'], keys: [{ hash: reader.hash }] },
      ],
    });
  });
  after(async () => {
    await gw?.stop();
    await upstream?.close();
  });

  const send = async (raw: string) => parseRaw(await rawRequest(gw.port, raw));
  const answers = (response: string) => response.match(/^HTTP\/1\.1 \d{3}/gm) ?? [];

  for (const [what, hostLines] of [
    ['sent twice', 'Host: a.example\r\nHost: b.example\r\n'],
    ['with a space and a slash', 'Host: a b/c\r\n'],
    ['empty', 'Host: \r\n'],
  ] as const) {
    it(`refuses a Host header ${what} with 400 GH_ERR_REQUEST_INVALID_HOST`, async () => {
      const before = upstream.requests.length;
      const res = await send(
        `GET /items/1 HTTP/1.1\r\n${hostLines}Authorization: Bearer ${reader.key}\r\nConnection: close\r\n\r\n`,
      );
      assert.equal(res.status, 400, res.body);
      assert.equal(res.json?.code, 'GH_ERR_REQUEST_INVALID_HOST');
      assert.equal(upstream.requests.length, before);
    });
  }

  it('still routes an ordinary Host with a port, and an IPv6 literal', async () => {
    for (const host of ['127.0.0.1:8080', 'api.example.com', '[::1]:443', 'svc_internal']) {
      const res = await send(
        `GET /items/1 HTTP/1.1\r\nHost: ${host}\r\nAuthorization: Bearer ${reader.key}\r\nConnection: close\r\n\r\n`,
      );
      assert.equal(res.status, 200, `${host}: ${res.body}`);
    }
  });

  it('refuses two Authorization headers as a malformed key instead of using the first', async () => {
    const res = await send(
      `GET /items/1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${reader.key}\r\nAuthorization: Bearer ${writer.key}\r\nConnection: close\r\n\r\n`,
    );
    assert.equal(res.status, 401);
    assert.equal(res.json?.code, 'GH_ERR_AUTH_MALFORMED_KEY');
  });

  it('refuses a transfer coding other than chunked with 501, without contacting the upstream', async () => {
    const before = upstream.requests.length;
    const response = await rawRequest(
      gw.port,
      `POST /items/ HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${writer.key}\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`,
    );
    const res = parseRaw(response);
    assert.equal(res.status, 501, res.body);
    assert.equal(res.json?.code, 'GH_ERR_REQUEST_UNSUPPORTED_TRANSFER_CODING');
    assert.match(res.headers, /^connection: close$/im);
    assert.equal(upstream.requests.length, before);
  });

  it('answers an unparseable request with a problem and closes the connection', async () => {
    const response = await rawRequest(gw.port, 'GARBAGE\r\n\r\n');
    const res = parseRaw(response);
    assert.equal(res.status, 400);
    assert.equal(res.json?.code, 'GH_ERR_REQUEST_MALFORMED');
    assert.match(String(res.json?.instance), /^urn:gatehouse:request:/);
    assert.match(res.headers, /^connection: close$/im);
  });

  it('answers headers over the size limit with 431 and a problem', async () => {
    const res = parseRaw(
      await rawRequest(gw.port, `GET /items/1 HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`),
    );
    assert.equal(res.status, 431);
    assert.equal(res.json?.code, 'GH_ERR_REQUEST_HEADERS_TOO_LARGE');
  });

  it("counts a body that breaks its framing after routing as the client's 400, not an upstream error", async () => {
    const upstreamErrors = await metricValue(
      gw.opsUrl,
      'gatehouse_upstream_errors_total{collection="items",code="GH_ERR_UPSTREAM_UNAVAILABLE"}',
    );
    const from = gw.output.length;
    const response = await rawRequest(
      gw.port,
      `POST /items/ HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${writer.key}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\nbroken\r\n`,
    );
    assert.ok(answers(response).length <= 1, `one answer at most on the connection:\n${response}`);
    if (answers(response).length === 1) assert.equal(parseRaw(response).status, 400);
    const line = JSON.parse(await waitForLine(gw, /"route":"\/".*"msg":"request"/, from)) as Record<string, unknown>;
    assert.equal(line.status, 400);
    assert.equal(line.code, 'GH_ERR_REQUEST_MALFORMED');
    assert.equal(
      await metricValue(
        gw.opsUrl,
        'gatehouse_upstream_errors_total{collection="items",code="GH_ERR_UPSTREAM_UNAVAILABLE"}',
      ),
      upstreamErrors,
    );
    assert.ok(
      (await metricValue(
        gw.opsUrl,
        'gatehouse_requests_total{collection="items",route="/",method="POST",status="400"}',
      )) >= 1,
    );
  });

  it('gives a refused request with a broken body exactly one answer', async () => {
    const response = await rawRequest(
      gw.port,
      `POST /items/ HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${reader.key}\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n`,
    );
    assert.deepEqual(answers(response), ['HTTP/1.1 403'], response);
  });

  it('still serves a well-formed chunked upload', async () => {
    const res = await send(
      `POST /items/ HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${writer.key}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n`,
    );
    assert.equal(res.status, 200, res.body);
    assert.ok(res.body.includes('"length":5'), res.body);
  });
});
