/**
 * Bodies stream through a running gateway in both directions, never buffered whole: measured on real sockets,
 * with the gateway's resident memory read from /proc while a gigabyte passes through it.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { request, type IncomingMessage, type RequestOptions, type ServerResponse } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { Readable } from 'node:stream';
import {
  newKey,
  rssBytes,
  startGateway,
  startUpstream,
  TOKEN_EXCHANGE,
  type GatewayProcess,
  type Upstream,
} from './helpers.ts';

const caller = newKey();
const CHUNK = Buffer.alloc(64 * 1024, 'gatehouse streaming test ');
const GIB = 1024 ** 3;
const MIB = 1024 ** 2;

/** A readable of `total` bytes that repeats one 64 KiB buffer: nothing but that buffer is ever held. */
function repeated(total: number): Readable {
  let sent = 0;
  return new Readable({
    highWaterMark: CHUNK.length,
    read() {
      if (sent >= total) return void this.push(null);
      const n = Math.min(CHUNK.length, total - sent);
      sent += n;
      this.push(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n));
    },
  });
}

/** Samples the gateway's RSS every 100 ms until stopped; resolves with the largest value seen. */
function sampleRss(pid: number): { stop(): Promise<number> } {
  let max = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      max = Math.max(max, await rssBytes(pid));
      await new Promise((r) => setTimeout(r, 100));
    }
    return max;
  })();
  return {
    stop: () => {
      running = false;
      return loop;
    },
  };
}

/** A settled baseline: the largest of a few RSS readings after the gateway has proxied some traffic. */
async function baselineRss(pid: number): Promise<number> {
  let max = 0;
  for (let i = 0; i < 5; i++) {
    max = Math.max(max, await rssBytes(pid));
    await new Promise((r) => setTimeout(r, 50));
  }
  return max;
}

const mb = (bytes: number) => Math.round((bytes / MIB) * 10) / 10;

describe('streaming through a running gateway', () => {
  let upstream: Upstream;
  let gw: GatewayProcess;
  /** Per-request hooks the upstream consults by path. */
  const handlers = new Map<string, (req: IncomingMessage, res: ServerResponse) => void>();

  before(async () => {
    // Counts the bytes of an upload and discards them.
    handlers.set('/upload', (req, res) => {
      let bytes = 0;
      req.on('data', (chunk: Buffer) => (bytes += chunk.length));
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ bytes }));
      });
    });
    upstream = await startUpstream((req, res) => {
      const path = (req.url ?? '').split('?')[0]!;
      const handler = handlers.get(path);
      if (!handler) return false;
      handler(req, res);
      return true;
    });
    gw = await startGateway({
      tokenExchange: TOKEN_EXCHANGE,
      collections: [
        {
          name: 'files',
          basePath: '/files',
          upstream: { url: upstream.url, bodyTimeout: '60s' },
          project: 'storage',
          environment: 'PROD',
          endpoints: [
            { method: 'POST', path: '/upload', permission: 'files:write' },
            { method: 'POST', path: '/trickle', permission: 'files:write' },
            { method: 'GET', path: '/hold', permission: 'files:read' },
            { method: 'GET', path: '/big', permission: 'files:read' },
          ],
        },
      ],
      roles: [{ name: 'rw', permissions: ['files:read', 'files:write'] }],
      clients: [
        { id: 'streamer', role: 'rw', environments: ['PROD'], projects: ['storage'], keys: [{ hash: caller.hash }] },
      ],
    });
  });

  after(async () => {
    // Upstream first: a response it still holds (a failed test) would keep the gateway's shutdown waiting.
    await upstream?.close();
    await gw?.stop();
  });

  const options = (method: string, path: string, headers: Record<string, string | number> = {}): RequestOptions => ({
    host: '127.0.0.1',
    port: gw.port,
    method,
    path,
    headers: { authorization: `Bearer ${caller.key}`, ...headers },
    agent: false,
  });

  /** Reads a whole (small) response body. */
  async function text(res: IncomingMessage): Promise<string> {
    let body = '';
    res.setEncoding('utf8');
    for await (const chunk of res) body += chunk;
    return body;
  }

  /** Upload `total` bytes to /files/upload; resolves with the byte count the upstream reports. */
  async function upload(total: number): Promise<{ status: number | undefined; body: string }> {
    const req = request(
      options('POST', '/files/upload', { 'content-length': total, 'content-type': 'application/octet-stream' }),
    );
    repeated(total).pipe(req);
    const [res] = (await once(req, 'response')) as [IncomingMessage];
    return { status: res.statusCode, body: await text(res) };
  }

  /**
   * Brings the gateway to its steady state under streaming traffic, once. V8 grows its young generation by some
   * tens of MB under any sustained allocation (the bare Node http + undici proxy in bench/ grows the same way),
   * and that growth does not depend on body sizes; buffering would. `streamingPeak` is the RSS plateau while
   * 256 MiB stream through.
   */
  let warmed: Promise<{ idle: number; streamingPeak: number }> | undefined;
  const warmUp = () =>
    (warmed ??= (async () => {
      const pid = gw.child.pid!;
      const idle = await baselineRss(pid);
      const sampler = sampleRss(pid);
      const { status, body } = await upload(256 * MIB);
      const streamingPeak = await sampler.stop();
      assert.equal(status, 200, body);
      assert.deepEqual(JSON.parse(body), { bytes: 256 * MIB });
      return { idle, streamingPeak };
    })());

  it(
    'passes a 1 GiB upload through to the upstream without the gateway buffering it',
    { timeout: 120_000 },
    async () => {
      const { idle, streamingPeak } = await warmUp();
      const pid = gw.child.pid!;
      const sampler = sampleRss(pid);
      const started = performance.now();
      const { status, body } = await upload(GIB);
      const seconds = (performance.now() - started) / 1000;
      const peak = Math.max(await sampler.stop(), await rssBytes(pid));

      assert.equal(status, 200, body);
      assert.deepEqual(JSON.parse(body), { bytes: GIB });
      const growth = peak - streamingPeak;
      console.log(
        `1 GiB upload: ${seconds.toFixed(1)} s (${(1024 / seconds).toFixed(0)} MiB/s); gateway RSS ${mb(idle)} MiB idle, ` +
          `${mb(streamingPeak)} MiB peak while 256 MiB streamed, ${mb(peak)} MiB peak while 1 GiB streamed: ` +
          `${mb(growth)} MiB above the 256 MiB plateau, ${mb(peak - idle)} MiB above idle`,
      );
      assert.ok(
        growth < 50 * MIB,
        `gateway RSS peaked ${mb(growth)} MiB higher for 1 GiB than for 256 MiB (${mb(streamingPeak)} → ${mb(peak)} MiB): memory grows with the body`,
      );
      // From idle, V8's young generation adds some 80 MiB under any streaming load (the bare proxy: about the same).
      assert.ok(
        peak - idle < 128 * MIB,
        `gateway RSS grew by ${mb(peak - idle)} MiB from idle while streaming 1 GiB (${mb(idle)} → ${mb(peak)} MiB)`,
      );
    },
  );

  it(
    'forwards the first chunk of a request body to the upstream before the client has finished sending',
    { timeout: 10_000 },
    async () => {
      let firstChunkSeen!: () => void;
      const seenFirst = new Promise<void>((r) => (firstChunkSeen = r));
      handlers.set('/trickle', (req, res) => {
        const chunks: string[] = [];
        req.setEncoding('utf8');
        req.on('data', (chunk: string) => {
          chunks.push(chunk);
          if (chunks.length === 1) firstChunkSeen();
        });
        req.on('end', () => {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ body: chunks.join('') }));
        });
      });
      const req = request(
        options('POST', '/files/trickle', { 'transfer-encoding': 'chunked', 'content-type': 'text/plain' }),
      );
      let responded = false;
      const response = once(req, 'response').then(([r]) => ((responded = true), r as IncomingMessage));
      req.write('first-chunk;');
      await withTimeout(seenFirst, 5_000, 'the upstream never saw the first chunk while the request was still open');
      assert.equal(req.writableEnded, false);
      assert.equal(responded, false);
      req.end('second-chunk');
      const res = await response;
      assert.equal(res.statusCode, 200);
      assert.deepEqual(JSON.parse(await text(res)), { body: 'first-chunk;second-chunk' });
    },
  );

  it(
    'delivers the first chunk of a response while the upstream is still holding the response open',
    { timeout: 10_000 },
    async () => {
      let release!: () => void;
      const released = new Promise<void>((r) => (release = r));
      let upstreamEnded = false;
      handlers.set('/hold', (req, res) => {
        req.resume();
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write('early;');
        void released.then(() => {
          upstreamEnded = true;
          res.end('late');
        });
      });
      const req = request(options('GET', '/files/hold'));
      req.end();
      const [res] = (await withTimeout(
        once(req, 'response'),
        5_000,
        'no response headers while the upstream held the body open',
      )) as [IncomingMessage];
      assert.equal(res.statusCode, 200);
      res.setEncoding('utf8');
      const [first] = (await withTimeout(
        once(res, 'data'),
        5_000,
        'the first chunk did not arrive while the upstream held the response open',
      )) as [string];
      assert.equal(first, 'early;');
      assert.equal(upstreamEnded, false);
      release();
      let rest = '';
      for await (const chunk of res) rest += chunk;
      assert.equal(rest, 'late');
    },
  );

  it(
    "applies backpressure: a 200 MB response read slowly neither runs ahead of the client nor grows the gateway's memory",
    { timeout: 60_000 },
    async () => {
      const TOTAL = 200 * MIB;
      let written = 0;
      let upstreamDone = false;
      handlers.set('/big', (req, res) => {
        req.resume();
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': TOTAL });
        const source = repeated(TOTAL);
        source.on('data', (chunk: Buffer) => (written += chunk.length));
        source.on('end', () => (upstreamDone = true));
        source.pipe(res);
      });
      await warmUp();
      const pid = gw.child.pid!;
      const before = await baselineRss(pid);
      const sampler = sampleRss(pid);

      const req = request(options('GET', '/files/big'));
      req.end();
      const [res] = (await once(req, 'response')) as [IncomingMessage];
      assert.equal(res.statusCode, 200);
      let received = 0;
      // A slow reader: what is buffered (at most a high-water mark) every 10 ms for two seconds, then a pause of one second…
      res.pause();
      const readSlowly = async (ms: number) => {
        const until = Date.now() + ms;
        while (Date.now() < until) {
          const chunk = res.read() as Buffer | null;
          if (chunk) received += chunk.length;
          await new Promise((r) => setTimeout(r, 10));
        }
      };
      await readSlowly(2_000);
      await new Promise((r) => setTimeout(r, 1_000));
      const aheadWhileSlow = written - received;
      assert.equal(
        upstreamDone,
        false,
        'the upstream wrote the whole 200 MB while the client had read a few MB: nothing held it back',
      );
      assert.ok(aheadWhileSlow < 64 * MIB, `the upstream ran ${mb(aheadWhileSlow)} MiB ahead of a slow client`);
      // …then the rest at full speed.
      res.on('data', (chunk: Buffer) => (received += chunk.length));
      res.resume();
      await once(res, 'end');
      const peak = Math.max(await sampler.stop(), await rssBytes(pid));
      assert.equal(received, TOTAL);
      const growth = peak - before;
      console.log(
        `200 MiB slow download: upstream ran at most ${mb(aheadWhileSlow)} MiB ahead of the reader; gateway RSS ${mb(before)} MiB before, ${mb(peak)} MiB peak, growth ${mb(growth)} MiB`,
      );
      assert.ok(
        growth < 50 * MIB,
        `gateway RSS grew by ${mb(growth)} MiB while a slow client read 200 MB (from ${mb(before)} to ${mb(peak)} MiB)`,
      );
    },
  );
});

function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(message)), ms))),
  ]);
}
