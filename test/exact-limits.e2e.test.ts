/**
 * Exact limits across three gateway processes on one real Redis (`server.rateLimitStore: { type: redis }`, mode
 * `lease`): a rate limit of 100 per minute on one key admits 100 — never more than 1.02× — under a burst of 600 and
 * under paced loads of 300 and 60 requests per second spread over the three gateways.
 * When no Redis answers, the run fails with a message saying how to provide one.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { redactUrl } from '../src/config/redact-url.ts';
import { probeRedis, REDIS_HOW_TO, TEST_REDIS_URL } from '../src/testing/redis.ts';
import {
  newKey,
  startGateway,
  startUpstream,
  TOKEN_EXCHANGE,
  waitForLine,
  type GatewayProcess,
  type Upstream,
} from './helpers.ts';
import { burst, closeLoad, paced } from './limits-load.ts';

const unreachable = await probeRedis();
const keys = { burst: newKey(), fast: newKey(), slow: newKey() };

function config(upstream: Upstream, prefix: string) {
  return {
    server: { rateLimitStore: { type: 'redis', url: TEST_REDIS_URL, prefix } },
    tokenExchange: TOKEN_EXCHANGE,
    collections: [
      {
        name: 'exact',
        basePath: '/exact',
        upstream: upstream.url,
        project: 'p',
        environment: 'PROD',
        rateLimits: { key: { limit: 100, window: '1m' } },
        endpoints: [{ method: 'GET', path: '/things', permission: 'things:read' }],
      },
    ],
    roles: [{ name: 'reader', permissions: ['things:read'] }],
    clients: Object.entries(keys).map(([id, k]) => ({
      id,
      role: 'reader',
      environments: ['PROD'],
      projects: ['p'],
      keys: [{ hash: k.hash }],
    })),
  };
}

if (unreachable === undefined) {
  describe('a rate limit shared by three gateways through leases', () => {
    const prefix = `gatehouse-e2e-exact:${process.pid}:${randomBytes(4).toString('hex')}:`;
    const admin = new Redis(TEST_REDIS_URL);
    let upstream: Upstream;
    let gateways: GatewayProcess[] = [];
    const urls = () => gateways.map((g) => `${g.url}/exact/things`);
    const auth = (k: { key: string }) => ({ authorization: `Bearer ${k.key}` });

    before(async () => {
      upstream = await startUpstream();
      gateways = await Promise.all([0, 1, 2].map(() => startGateway(config(upstream, prefix))));
      await Promise.all(gateways.map((g) => waitForLine(g, /rate-limit store connected/, 0)));
    });
    after(async () => {
      await closeLoad();
      await Promise.all(gateways.map((g) => g.stop()));
      await upstream?.close();
      const found = await admin.keys(`${prefix}*`);
      if (found.length > 0) await admin.del(...found);
      await admin.quit();
    });

    it('admits 100 of a burst of 600 and refuses the rest with 429', async () => {
      const count = await burst(urls(), 600, auth(keys.burst));
      assert.ok(count.admitted >= 100 && count.admitted <= 102, `admitted ${count.admitted}`);
      assert.equal(count.statuses.get(429), 600 - count.admitted);
    });

    it('admits 100 of 600 requests paced at 300 per second', async () => {
      const count = await paced(urls(), 300, 600, auth(keys.fast));
      assert.ok(count.admitted >= 100 && count.admitted <= 102, `admitted ${count.admitted}`);
    });

    it('admits 100 of 180 requests paced at 60 per second', async () => {
      const count = await paced(urls(), 60, 180, auth(keys.slow));
      assert.ok(count.admitted >= 100 && count.admitted <= 102, `admitted ${count.admitted}`);
    });
  });
} else {
  it('runs the exact-limits suite on Redis', () => {
    assert.fail(`Redis not reachable at ${redactUrl(TEST_REDIS_URL)} (${unreachable}): ${REDIS_HOW_TO}`);
  });
}
