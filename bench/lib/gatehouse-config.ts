/**
 * The Gatehouse config used by the proxy benchmark: the full chain on one collection. One client whose key the
 * load generator sends as `Authorization: Bearer`, a role granting the endpoint, rate limits per key, client and
 * org set far above what any run can reach (so they are evaluated on every request and never refuse), EdDSA token
 * exchange with the default claims (client, user, org, permissions, environment: the list), access logs at
 * level "info".
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateKey } from '../../src/shared/api-key.ts';

/** The path every proxy is loaded on. Gatehouse matches it to `GET /v1/items/{id}` under base path `/api`. */
export const LOAD_PATH = '/api/v1/items/42';

export interface GatehouseBenchConfig {
  file: string;
  key: string;
}

export function writeGatehouseConfig(
  dir: string,
  upstreamUrl: string,
  logLevel = 'info',
  variant = process.env.BENCH_GH_VARIANT ?? 'full',
): GatehouseBenchConfig {
  const { key, hash, id } = generateKey();
  const never = { limit: 1_000_000_000, window: '1m' };
  const config = {
    server: {
      listen: { host: '127.0.0.1', port: 8080 },
      ops: { host: '127.0.0.1', port: 9090 },
      signingKeysFile: join(dir, 'signing-keys.json'),
      log: { level: logLevel },
      watch: false,
    },
    tokenExchange: {
      issuer: 'https://gatehouse.bench.local',
      audience: 'bench-api',
      ttl: '5m',
      algorithm: 'EdDSA',
    },
    rateLimits: { key: never, client: never, org: never },
    collections: [
      {
        name: 'bench',
        basePath: '/api',
        upstream: upstreamUrl,
        project: 'bench',
        environment: 'PROD',
        endpoints: [
          { method: 'GET', path: '/v1/items/{id}', permission: 'items:read' },
          { method: 'POST', path: '/v1/items', permission: 'items:write' },
        ],
      },
    ],
    roles: [{ name: 'bench-reader', permissions: ['items:read'] }],
    clients: [
      {
        id: 'bench-client',
        role: 'bench-reader',
        environments: ['PROD'],
        projects: ['bench'],
        userId: 'u-1',
        orgId: 'bench-org',
        rateLimits: { key: never, client: never },
        keys: [{ hash, id }],
      },
    ],
  };
  // Diagnosis only (BENCH_GH_VARIANT): what parts of the chain cost. Not the configuration the targets are defined for.
  if (variant === 'no-ratelimit' || variant === 'public') {
    delete (config as Partial<typeof config>).rateLimits;
    delete (config.clients[0] as Partial<(typeof config.clients)[0]>).rateLimits;
  }
  if (variant === 'public') (config.collections[0] as Record<string, unknown>).authRequired = false;
  // Issue 19's exact limits on top of the full chain: concurrency caps per key, client and org, then also daily and
  // monthly quotas per client and org (never reached: every request is counted and answered with the quota fields).
  if (variant === 'caps' || variant === 'caps-quotas')
    (config.collections[0] as Record<string, unknown>).concurrency = {
      key: { max: 10_000 },
      client: { max: 10_000 },
      org: { max: 10_000 },
    };
  if (variant === 'caps-quotas')
    (config.collections[0] as Record<string, unknown>).quotas = {
      client: { daily: 1e12, monthly: 1e13 },
      org: { daily: 1e12, monthly: 1e13 },
    };
  // Diagnosis (BENCH_GH_RATE_LIMIT_STORE=redis): the same limits in the shared store on a local Redis, to see what
  // the shared store costs a request (BENCH_GH_REDIS_SYNC sets its syncInterval; the sync's cost is per interval,
  // not per request). Counters go under a prefix of their own, expiring after two windows.
  if (process.env.BENCH_GH_RATE_LIMIT_STORE === 'redis') {
    (config.server as Record<string, unknown>).rateLimitStore = {
      type: 'redis',
      url: process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379',
      prefix: `gatehouse-bench:${process.pid}:`,
      syncInterval: process.env.BENCH_GH_REDIS_SYNC ?? '100ms',
    };
  }
  const file = join(dir, 'gatehouse-bench.json');
  writeFileSync(file, JSON.stringify(config, null, 2));
  return { file, key };
}
