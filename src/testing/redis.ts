/**
 * The Redis the tests use (`GATEHOUSE_TEST_REDIS_URL`, by default the local server) and a probe that says why it
 * cannot be reached (undefined when it answers PING), retrying with back-off first (see probe.ts). An absent Redis
 * always fails its suites, with `REDIS_HOW_TO`.
 */
import { randomBytes } from 'node:crypto';
import { createConnection } from 'node:net';
import { Redis } from 'ioredis';
import { redactUrl } from '../config/redact-url.ts';
import { probeService, type ProbeOptions } from './probe.ts';

export const TEST_REDIS_URL = process.env.GATEHOUSE_TEST_REDIS_URL || 'redis://127.0.0.1:6379';

/** What to do when no Redis answers. */
export const REDIS_HOW_TO =
  'start one (redis-server) or set GATEHOUSE_TEST_REDIS_URL; .ci/run starts a local one when it can';

export function probeRedis(url: string = TEST_REDIS_URL, options?: ProbeOptions): Promise<string | undefined> {
  return probeService(
    'Redis',
    async (timeoutMs) => {
      const client = new Redis(url, {
        lazyConnect: true,
        connectTimeout: timeoutMs,
        commandTimeout: timeoutMs,
        maxRetriesPerRequest: 0,
        retryStrategy: () => null,
      });
      client.on('error', () => {});
      try {
        await client.connect();
        await client.ping();
      } finally {
        client.disconnect();
      }
    },
    options,
  );
}

/** One run of the shared rate-limit store's sync script, as Redis's MONITOR saw it. */
export interface RedisSync {
  /** The connection that ran it (`host:port` of the client): one per store, so one per gateway. */
  source: string;
  /** The current window's counter it synced (as MONITOR prints it: bytes outside ASCII escaped). */
  key: string;
  /** The hits it added (0: it only read the totals). */
  hits: number;
}

/**
 * Records, in the order Redis ran them, the shared store's syncs of counters under `prefix` (MONITOR, on a
 * connection of its own, which nothing reconnects: a failure rejects and leaves nothing open). Tests wait on these instead of sleeping: a sync run after another's increment has read
 * it, and since a store runs one sync at a time, its next sync starts only once that answer is applied.
 */
export async function recordSyncs(
  prefix: string,
  url: string = TEST_REDIS_URL,
): Promise<{ readonly syncs: RedisSync[]; close(): void }> {
  // A plain socket speaking RESP, not ioredis: its monitor mode starts only a tick after MONITOR's +OK, so on a
  // busy Redis the first monitored line can arrive before and fail with "Command queue state error".
  const target = new URL(url);
  if (target.protocol !== 'redis:') throw new Error(`recordSyncs needs a redis:// URL, not ${redactUrl(url)}`);
  const socket = createConnection({ host: target.hostname, port: Number(target.port || 6379) });
  socket.setEncoding('latin1');
  const syncs: RedisSync[] = [];
  const replies: ((line: string) => void)[] = [];
  let buffer = '';
  let monitoring = false;
  socket.on('data', (chunk: string) => {
    buffer += chunk;
    let end;
    while ((end = buffer.indexOf('\r\n')) !== -1) {
      const line = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      if (!monitoring) replies.shift()?.(line);
      else record(line);
    }
  });
  // +1796589730.574328 [0 127.0.0.1:43098] "evalsha" "<sha>" "2" "<current>" "<previous>" "<hits>" "<ttl>"
  const record = (line: string) => {
    const source = /^\+\S+ \[\d+ ([^\]]+)\]/.exec(line)?.[1];
    const args = [...line.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((m) => m[1]!);
    const command = args[0]?.toLowerCase();
    if (
      source !== undefined &&
      (command === 'evalsha' || command === 'eval') &&
      args[2] === '2' &&
      args[3]?.startsWith(prefix)
    ) {
      syncs.push({ source, key: args[3], hits: Number(args[5]) });
    }
  };
  const command = (...words: string[]) =>
    new Promise<string>((resolve) => {
      replies.push(resolve);
      socket.write(`*${words.length}\r\n${words.map((w) => `$${Buffer.byteLength(w)}\r\n${w}\r\n`).join('')}`);
    });
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    socket.on('error', () => {});
    const password = decodeURIComponent(target.password);
    if (password) {
      const auth = await command('AUTH', ...(target.username ? [decodeURIComponent(target.username)] : []), password);
      if (auth !== '+OK') throw new Error(`AUTH answered ${auth.slice(0, 40)}`);
    }
    const ok = await new Promise<string>((resolve) => {
      replies.push((line) => {
        // Every line after +OK is monitored output, even one that came in the same chunk.
        monitoring = true;
        resolve(line);
      });
      socket.write('*1\r\n$7\r\nMONITOR\r\n');
    });
    if (ok !== '+OK') throw new Error(`MONITOR answered ${ok.slice(0, 40)}`);
  } catch (error) {
    socket.destroy();
    throw new Error(`cannot MONITOR ${redactUrl(url)}: ${(error as Error).message}`, { cause: error });
  }
  return { syncs, close: () => socket.destroy() };
}

/**
 * Key prefixes for one test file's run — `<name>:<pid>:<random>:<n>:`, a fresh `n` per store, so that runs and
 * stores never share keys — and the removal of every key of the run (from `after`).
 */
export function testPrefixes(name: string): {
  fresh(): string;
  readonly run: string;
  cleanup(admin: Redis): Promise<void>;
} {
  const run = `${name}:${process.pid}:${randomBytes(4).toString('hex')}:`;
  let n = 0;
  return {
    run,
    fresh: () => `${run}${n++}:`,
    async cleanup(admin) {
      const keys = await admin.keys(`${run}*`);
      if (keys.length > 0) await admin.del(...keys);
    },
  };
}
