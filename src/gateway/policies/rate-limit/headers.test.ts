import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type AppliedLimit, rateLimitHeaders } from './headers.ts';

function applied(
  name: AppliedLimit['name'],
  limit: number,
  windowMs: number,
  remaining: number,
  resetMs: number,
  retryAfterMs = 0,
): AppliedLimit {
  return { name, limit, windowMs, decision: { allowed: retryAfterMs === 0, limit, remaining, retryAfterMs, resetMs } };
}

describe('rate-limit headers', () => {
  it('lists every policy and reports the one with the least remaining', () => {
    const headers = rateLimitHeaders(
      [applied('key', 100, 60_000, 42, 16_200), applied('client', 1000, 3_600_000, 900, 3_000_000)],
      undefined,
    );
    assert.deepEqual(headers, {
      'ratelimit-policy': '"key";q=100;w=60, "client";q=1000;w=3600',
      ratelimit: '"key";r=42;t=17',
    });
  });

  it('reports the policy that resets last when two have the same remaining', () => {
    const headers = rateLimitHeaders(
      [
        applied('key', 10, 60_000, 3, 30_000),
        applied('org', 10_000, 86_400_000, 3, 50_000_000),
        applied('client', 50, 60_000, 3, 1_000),
      ],
      undefined,
    );
    assert.equal(headers.ratelimit, '"org";r=3;t=50000');
  });

  it('adds retry-after in whole seconds, rounded up, on a refusal', () => {
    const key = applied('key', 5, 60_000, 0, 90_000, 12_001);
    const headers = rateLimitHeaders([key, applied('client', 100, 60_000, 80, 100_000)], key);
    assert.deepEqual(headers, {
      'ratelimit-policy': '"key";q=5;w=60, "client";q=100;w=60',
      ratelimit: '"key";r=0;t=90',
      'retry-after': '13',
    });
  });

  it('never advises retrying after less than one second', () => {
    const key = applied('key', 5, 1_000, 0, 1, 1);
    assert.equal(rateLimitHeaders([key], key)['retry-after'], '1');
  });

  it('leaves retry-after out when nothing refused', () => {
    assert.equal('retry-after' in rateLimitHeaders([applied('key', 5, 1_000, 0, 500)], undefined), false);
  });

  it('includes a refusing limit that was not listed as applied', () => {
    const org = applied('org', 1000, 3_600_000, 0, 4_000_000, 10_000);
    const headers = rateLimitHeaders([applied('key', 100, 60_000, 50, 70_000)], org);
    assert.equal(headers['ratelimit-policy'], '"key";q=100;w=60, "org";q=1000;w=3600');
    assert.equal(headers.ratelimit, '"org";r=0;t=4000');
    assert.equal(headers['retry-after'], '10');
  });

  it('rounds windows that are not whole seconds up', () => {
    assert.equal(
      rateLimitHeaders([applied('key', 10, 1_500, 9, 2_000)], undefined)['ratelimit-policy'],
      '"key";q=10;w=2',
    );
    assert.equal(rateLimitHeaders([applied('key', 10, 250, 9, 400)], undefined)['ratelimit-policy'], '"key";q=10;w=1');
  });

  it('reports a reset of zero seconds as t=0', () => {
    assert.equal(rateLimitHeaders([applied('key', 10, 1_000, 10, 0)], undefined).ratelimit, '"key";r=10;t=0');
  });

  it('returns no headers when no limit applied', () => {
    assert.deepEqual(rateLimitHeaders([], undefined), {});
  });

  it('uses lower-case header names only', () => {
    const key = applied('key', 1, 1_000, 0, 1_500, 900);
    for (const name of Object.keys(rateLimitHeaders([key], key))) assert.equal(name, name.toLowerCase());
  });
});
