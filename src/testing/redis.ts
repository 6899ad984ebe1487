/**
 * The Redis the tests use (`GATEHOUSE_TEST_REDIS_URL`, by default the local server) and a probe that says why it
 * cannot be reached (undefined when it answers PING), retrying with back-off first (see probe.ts). An absent Redis
 * always fails its suites, with `REDIS_HOW_TO`.
 */
import { Redis } from 'ioredis';
import { probeService, type ProbeOptions } from './probe.ts';

export const TEST_REDIS_URL = process.env.GATEHOUSE_TEST_REDIS_URL || 'redis://127.0.0.1:6379';

/** What to do when no Redis answers. */
export const REDIS_HOW_TO = 'start one (redis-server) or set GATEHOUSE_TEST_REDIS_URL; .ci/run starts a local one when it can';

export function probeRedis(url: string = TEST_REDIS_URL, options?: ProbeOptions): Promise<string | undefined> {
  return probeService(
    'Redis',
    async (timeoutMs) => {
      const client = new Redis(url, { lazyConnect: true, connectTimeout: timeoutMs, commandTimeout: timeoutMs, maxRetriesPerRequest: 0, retryStrategy: () => null });
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
 * connection of its own). Tests wait on these instead of sleeping: a sync run after another's increment has read
 * it, and since a store runs one sync at a time, its next sync starts only once that answer is applied.
 */
export async function recordSyncs(prefix: string, url: string = TEST_REDIS_URL): Promise<{ readonly syncs: RedisSync[]; close(): void }> {
  const base = new Redis(url, { lazyConnect: true });
  base.on('error', () => {});
  const monitor = await base.monitor();
  base.disconnect();
  monitor.on('error', () => {});
  const syncs: RedisSync[] = [];
  monitor.on('monitor', (_time: string, args: string[], source: string) => {
    // EVALSHA/EVAL script numkeys current previous hits ttl
    const command = args[0]?.toLowerCase();
    if ((command === 'evalsha' || command === 'eval') && args[2] === '2' && args[3]?.startsWith(prefix)) {
      syncs.push({ source, key: args[3], hits: Number(args[5]) });
    }
  });
  return { syncs, close: () => monitor.disconnect() };
}
