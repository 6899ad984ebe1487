/**
 * WebSocket upgrades through a running gateway: passed through (bytes both ways, the key exchanged for a JWT) for
 * a collection that allows them, refused with a problem otherwise.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { request, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import {
  metricValue,
  newKey,
  startGateway,
  startUpstream,
  TOKEN_EXCHANGE,
  waitForLine,
  type GatewayProcess,
  type Upstream,
} from './helpers.ts';

const caller = newKey();
const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const acceptFor = (key: string) =>
  createHash('sha1')
    .update(key + GUID)
    .digest('base64');

/**
 * Server side of RFC 6455 framing, just enough to echo: unmasks client frames, echoes text and binary frames,
 * answers ping with pong and close with close.
 */
function echoFrames(socket: Duplex, head: Buffer): void {
  let buffer = head;
  const onData = (data: Buffer) => {
    buffer = buffer.length ? Buffer.concat([buffer, data]) : data;
    for (;;) {
      if (buffer.length < 2) return;
      const opcode = buffer[0]! & 0x0f;
      let length = buffer[1]! & 0x7f;
      let offset = 2;
      if (length === 126) {
        if (buffer.length < 4) return;
        length = buffer.readUInt16BE(2);
        offset = 4;
      } else if (length === 127) {
        if (buffer.length < 10) return;
        length = Number(buffer.readBigUInt64BE(2));
        offset = 10;
      }
      const masked = (buffer[1]! & 0x80) !== 0;
      if (buffer.length < offset + (masked ? 4 : 0) + length) return;
      const mask = masked ? buffer.subarray(offset, offset + 4) : undefined;
      if (masked) offset += 4;
      const payload = Buffer.from(buffer.subarray(offset, offset + length));
      if (mask) for (let i = 0; i < payload.length; i++) payload[i]! ^= mask[i % 4]!;
      buffer = buffer.subarray(offset + length);
      if (opcode === 0x8) {
        socket.end(frame(0x8, payload.subarray(0, 2)));
        return;
      }
      socket.write(frame(opcode === 0x9 ? 0xa : opcode, payload));
    }
  };
  socket.on('data', onData);
  if (head.length > 0) onData(Buffer.alloc(0));
}

/** One unmasked, final frame (server to client). */
function frame(opcode: number, payload: Buffer): Buffer {
  const header =
    payload.length < 126
      ? Buffer.from([0x80 | opcode, payload.length])
      : Buffer.from([0x80 | opcode, 126, payload.length >> 8, payload.length & 0xff]);
  return Buffer.concat([header, payload]);
}

interface Upgraded {
  res: IncomingMessage;
  socket: Duplex;
  head: Buffer;
}

describe('WebSocket upgrades through a running gateway', () => {
  let upstream: Upstream;
  let gw: GatewayProcess;
  const upgrades: { url: string; headers: IncomingHttpHeaders }[] = [];
  const upstreamSockets = new Set<Duplex>();

  before(async () => {
    upstream = await startUpstream();
    upstream.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      upgrades.push({ url: req.url!, headers: req.headers });
      upstreamSockets.add(socket);
      socket.on('close', () => upstreamSockets.delete(socket));
      socket.on('error', () => socket.destroy());
      if (req.url === '/live/refuse') {
        socket.end(
          'HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 7\r\nconnection: close\r\n\r\nno ws\r\n',
        );
        return;
      }
      const key = String(req.headers['sec-websocket-key']);
      socket.write(
        `HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: ${acceptFor(key)}\r\nx-upstream: yes\r\nx-request-id: chosen-by-the-upstream\r\n\r\n`,
      );
      if (req.url === '/live/frames') return echoFrames(socket, head);
      // Raw echo: whatever bytes arrive go straight back.
      if (head.length > 0) socket.write(head);
      socket.pipe(socket);
    });
    const collection = (name: string, websocket: boolean) => ({
      name,
      basePath: `/${name}`,
      upstream: `${upstream.url}/${name}`,
      project: 'realtime',
      environment: 'PROD',
      websocket,
      endpoints: [
        { method: 'GET', path: '/raw', permission: 'ws:connect' },
        { method: 'GET', path: '/frames', permission: 'ws:connect' },
        { method: 'GET', path: '/refuse', permission: 'ws:connect' },
      ],
    });
    gw = await startGateway({
      tokenExchange: TOKEN_EXCHANGE,
      collections: [collection('live', true), collection('plain', false)],
      roles: [{ name: 'connector', permissions: ['ws:connect'] }],
      clients: [
        {
          id: 'ws-client',
          role: 'connector',
          environments: ['PROD'],
          projects: ['realtime'],
          keys: [{ hash: caller.hash }],
        },
      ],
    });
  });

  after(async () => {
    for (const socket of upstreamSockets) socket.destroy();
    await upstream?.close();
    await gw?.stop();
  });

  /** Sends an upgrade request; resolves with the upgraded socket, or with the ordinary response when refused. */
  function upgrade(
    path: string,
    headers: Record<string, string> = { authorization: `Bearer ${caller.key}` },
  ): Promise<{ upgraded: Upgraded } | { refused: IncomingMessage }> {
    const req = request({
      host: '127.0.0.1',
      port: gw.port,
      path,
      agent: false,
      headers: {
        connection: 'Upgrade',
        upgrade: 'websocket',
        'sec-websocket-version': '13',
        'sec-websocket-key': randomBytes(16).toString('base64'),
        ...headers,
      },
    });
    req.setTimeout(10_000, () => req.destroy(new Error(`no answer to the upgrade of ${path}`)));
    req.end();
    return new Promise((resolve, reject) => {
      req.on('upgrade', (res: IncomingMessage, socket: Duplex, head: Buffer) =>
        resolve({ upgraded: { res, socket, head } }),
      );
      req.on('response', (res: IncomingMessage) => resolve({ refused: res }));
      req.on('error', reject);
    });
  }

  /** Asserts an RFC 9457 problem answer with the given status and code. */
  async function problem(res: IncomingMessage, status: number, code: string): Promise<void> {
    let text = '';
    res.setEncoding('utf8');
    for await (const chunk of res) text += chunk;
    assert.equal(res.statusCode, status, text);
    assert.equal(res.headers['content-type'], 'application/problem+json');
    const body = JSON.parse(text) as Record<string, unknown>;
    assert.equal(body.code, code);
    assert.equal(body.status, status);
    assert.equal(res.headers['x-request-id'], String(body.instance).split(':').pop());
  }

  /** Reads from `socket` until `expected.length` bytes have arrived. */
  async function readBytes(socket: Duplex, expected: number, first: Buffer = Buffer.alloc(0)): Promise<Buffer> {
    const chunks = [first];
    let length = first.length;
    while (length < expected) {
      const [chunk] = (await once(socket, 'data')) as [Buffer];
      chunks.push(chunk);
      length += chunk.length;
    }
    return Buffer.concat(chunks);
  }

  it(
    "passes an upgrade through: 101 with the upstream's Sec-WebSocket-Accept, then bytes echoed both ways",
    { timeout: 10_000 },
    async () => {
      const key = randomBytes(16).toString('base64');
      const result = await upgrade('/live/raw', { authorization: `Bearer ${caller.key}`, 'sec-websocket-key': key });
      assert.ok('upgraded' in result, `expected 101, got ${'refused' in result ? result.refused.statusCode : ''}`);
      const { res, socket, head } = result.upgraded;
      assert.equal(res.statusCode, 101);
      assert.equal(res.headers['sec-websocket-accept'], acceptFor(key));
      assert.equal(res.headers.upgrade, 'websocket');
      assert.equal(res.headers['x-upstream'], 'yes');
      assert.match(
        String(res.headers['x-request-id']),
        /^[0-9a-f]{12}[0-9a-z]{8}$/,
        "the gateway's request id only, not the upstream's",
      );

      const upstreamClosed = new Promise<void>((resolve) => {
        const check = () => (upstreamSockets.size === 0 ? resolve() : setTimeout(check, 10));
        check();
      });
      socket.write('hello through the gateway');
      assert.equal((await readBytes(socket, 25, head)).toString(), 'hello through the gateway');
      const big = randomBytes(256 * 1024);
      socket.write(big);
      assert.ok((await readBytes(socket, big.length)).equals(big));

      // Closing the client side tears down the upstream side too.
      socket.destroy();
      await upstreamClosed;
    },
  );

  it("sends the upstream the gateway's JWT instead of the API key on an upgrade", async () => {
    const result = await upgrade('/live/raw', { 'x-api-key': caller.key });
    assert.ok('upgraded' in result);
    result.upgraded.socket.destroy();
    const seen = upgrades.at(-1)!;
    assert.equal(seen.url, '/live/raw');
    assert.equal(seen.headers['x-api-key'], undefined);
    assert.equal(seen.headers.upgrade, 'websocket');
    assert.match(String(seen.headers.connection), /upgrade/i);
    const authorization = String(seen.headers.authorization);
    assert.match(authorization, /^Bearer ey/);
    assert.ok(!authorization.includes(caller.key));
    assert.ok(!JSON.stringify(seen.headers).includes(caller.key), 'the API key reached the upstream');
    const jwks = createRemoteJWKSet(new URL(`${gw.url}/.well-known/jwks.json`));
    const { payload } = await jwtVerify(authorization.slice(7), jwks, {
      issuer: TOKEN_EXCHANGE.issuer,
      audience: TOKEN_EXCHANGE.audience,
    });
    assert.equal(payload.client_id, 'ws-client');
    assert.ok(seen.headers['sec-websocket-key']);
    assert.equal(seen.headers['x-forwarded-for'], '127.0.0.1');
  });

  it(
    "works with Node's built-in WebSocket client against an upstream that speaks WebSocket framing",
    { timeout: 10_000 },
    async () => {
      const ws = new WebSocket(`ws://127.0.0.1:${gw.port}/live/frames`, {
        headers: { authorization: `Bearer ${caller.key}` },
      } as unknown as string[]);
      const messages: string[] = [];
      const closed = new Promise<CloseEvent>((resolve) => ws.addEventListener('close', resolve));
      await new Promise<void>((resolve, reject) => {
        ws.addEventListener('open', () => resolve());
        ws.addEventListener('error', () => reject(new Error('the WebSocket did not open')));
      });
      const got = (n: number) =>
        new Promise<void>((resolve) => {
          const check = () => (messages.length >= n ? resolve() : setTimeout(check, 5));
          check();
        });
      ws.addEventListener('message', (e: MessageEvent) => messages.push(String(e.data)));
      ws.send('first');
      ws.send('x'.repeat(1000));
      await got(2);
      assert.deepEqual(messages, ['first', 'x'.repeat(1000)]);
      ws.close(1000, 'done');
      const event = await closed;
      assert.equal(event.code, 1000);
    },
  );

  it('refuses an upgrade with 400 GH_ERR_WEBSOCKET_NOT_ALLOWED on a collection without websocket', async () => {
    const before = upgrades.length;
    const result = await upgrade('/plain/raw');
    assert.ok('refused' in result);
    await problem(result.refused, 400, 'GH_ERR_WEBSOCKET_NOT_ALLOWED');
    assert.equal(upgrades.length, before, 'the upstream saw a refused upgrade');
  });

  it('refuses an upgrade without a key with 401 GH_ERR_AUTH_MISSING_KEY', async () => {
    const before = upgrades.length;
    const result = await upgrade('/live/raw', {});
    assert.ok('refused' in result);
    await problem(result.refused, 401, 'GH_ERR_AUTH_MISSING_KEY');
    assert.equal(upgrades.length, before, 'the upstream saw an unauthenticated upgrade');
  });

  it('refuses an upgrade with a key no client has with 401', async () => {
    const result = await upgrade('/live/raw', { authorization: `Bearer ${newKey().key}` });
    assert.ok('refused' in result);
    await problem(result.refused, 401, 'GH_ERR_AUTH_INVALID_KEY');
  });

  it('answers 502 GH_ERR_UPSTREAM_WEBSOCKET_REFUSED when the upstream answers 200 instead of 101', async () => {
    const result = await upgrade('/live/refuse');
    assert.ok('refused' in result);
    await problem(result.refused, 502, 'GH_ERR_UPSTREAM_WEBSOCKET_REFUSED');
    assert.equal(upgrades.at(-1)!.url, '/live/refuse');
  });

  it('counts refused upgrades in the request metrics and logs them with the route, client and address', async () => {
    const from = gw.output.length;
    const sample = (collection: string, status: number) =>
      `gatehouse_requests_total{collection="${collection}",route="/raw",method="GET",status="${status}"}`;
    const notAllowed = await metricValue(gw.opsUrl, sample('plain', 400));
    const missingKey = await metricValue(gw.opsUrl, sample('live', 401));
    const unrouted = await metricValue(
      gw.opsUrl,
      'gatehouse_requests_total{collection="",route="",method="GET",status="404"}',
    );
    for (const [path, headers] of [
      ['/plain/raw', undefined],
      ['/live/raw', {}],
      ['/nowhere/raw', undefined],
    ] as const) {
      const result = await upgrade(path, headers);
      assert.ok('refused' in result);
      result.refused.resume();
    }
    assert.equal(await metricValue(gw.opsUrl, sample('plain', 400)), notAllowed + 1);
    assert.equal(await metricValue(gw.opsUrl, sample('live', 401)), missingKey + 1);
    assert.equal(
      await metricValue(gw.opsUrl, 'gatehouse_requests_total{collection="",route="",method="GET",status="404"}'),
      unrouted + 1,
    );

    const line = JSON.parse(
      await waitForLine(gw, /"code":"GH_ERR_AUTH_MISSING_KEY".*"msg":"upgrade refused"/, from),
    ) as Record<string, unknown>;
    assert.equal(line.collection, 'live');
    assert.equal(line.route, '/raw');
    assert.equal(line.status, 401);
    assert.equal(line.ip, '127.0.0.1');
    const unauthorized = await upgrade('/live/raw', { authorization: `Bearer ${newKey().key}` });
    assert.ok('refused' in unauthorized);
    unauthorized.refused.resume();
    const invalid = JSON.parse(
      await waitForLine(gw, /"code":"GH_ERR_AUTH_INVALID_KEY".*"msg":"upgrade refused"/, from),
    ) as Record<string, unknown>;
    assert.equal(invalid.collection, 'live');
    assert.ok(!JSON.stringify(gw.output.slice(from)).includes('ghk_'), 'no key in the log');
  });

  it(
    'closes open WebSocket tunnels when the gateway shuts down instead of waiting for them forever',
    { timeout: 20_000 },
    async () => {
      const own = await startGateway({
        tokenExchange: TOKEN_EXCHANGE,
        collections: [
          {
            name: 'live',
            basePath: '/live',
            upstream: `${upstream.url}/live`,
            project: 'realtime',
            environment: 'PROD',
            websocket: true,
            endpoints: [{ method: 'GET', path: '/raw', permission: 'ws:connect' }],
          },
        ],
        roles: [{ name: 'connector', permissions: ['ws:connect'] }],
        clients: [
          {
            id: 'ws-client',
            role: 'connector',
            environments: ['PROD'],
            projects: ['realtime'],
            keys: [{ hash: caller.hash }],
          },
        ],
      });
      let socket: Duplex | undefined;
      try {
        const req = request({
          host: '127.0.0.1',
          port: own.port,
          path: '/live/raw',
          agent: false,
          headers: {
            connection: 'Upgrade',
            upgrade: 'websocket',
            'sec-websocket-version': '13',
            'sec-websocket-key': randomBytes(16).toString('base64'),
            authorization: `Bearer ${caller.key}`,
          },
        });
        req.end();
        const [res, upgraded] = (await once(req, 'upgrade')) as [IncomingMessage, Duplex];
        socket = upgraded;
        assert.equal(res.statusCode, 101);
        const clientClosed = once(socket, 'close');
        const exited = once(own.child, 'exit');
        own.child.kill('SIGTERM');
        const outcome = await Promise.race([
          exited.then(() => 'exited'),
          new Promise((r) => setTimeout(r, 5_000, 'still running').unref()),
        ]);
        assert.equal(outcome, 'exited', 'the gateway did not exit within 5 s of SIGTERM while a WebSocket was open');
        await clientClosed;
      } finally {
        socket?.destroy();
        await own.stop();
      }
    },
  );
});
