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
