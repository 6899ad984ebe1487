/**
 * The Redis the tests use (`GATEHOUSE_TEST_REDIS_URL`, by default the local server) and a probe that says why it
 * cannot be reached (undefined when it answers PING).
 */
import { Redis } from 'ioredis';

export const TEST_REDIS_URL = process.env.GATEHOUSE_TEST_REDIS_URL || 'redis://127.0.0.1:6379';

export async function probeRedis(url: string = TEST_REDIS_URL): Promise<string | undefined> {
  const client = new Redis(url, { lazyConnect: true, connectTimeout: 2_000, maxRetriesPerRequest: 0, retryStrategy: () => null });
  client.on('error', () => {});
  try {
    await client.connect();
    await client.ping();
    return undefined;
  } catch (error) {
    return (error as Error).message;
  } finally {
    client.disconnect();
  }
}
