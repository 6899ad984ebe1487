/** The quota policy's answers: which quota the RateLimit fields name, and what a refusal carries. */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import type { QuotaPolicies } from '../../../config/schema.ts';
import type { Refusal } from '../../../shared/errors.ts';
import type { Principal } from '../../snapshot/compiled.ts';
import type { RequestContext } from '../policy.ts';
import { createMemoryQuotas } from './memory-quotas.ts';
import { quota } from './policy.ts';

const store = createMemoryQuotas();
after(() => store.close());

function principal(id: string, orgId?: string, quota?: Principal['quota']): Principal {
  return {
    kind: 'client',
    id,
    orgId,
    quota,
    userId: undefined,
    metadata: undefined,
    limits: {},
    expiresAt: Infinity,
    disabled: false,
    email: undefined,
  } as unknown as Principal;
}

function policyOf(quotas: QuotaPolicies, route: string) {
  return quota({ store, quotas, collection: route, route });
}

/** Runs the policy once; `responseHeaders` stands for a rate limit's fields set before it. */
function run(
  policy: ReturnType<typeof quota>,
  who: Principal,
  cost = 1,
  responseHeaders?: string[],
): { ctx: RequestContext; refusal: Refusal | undefined } {
  const ctx = {
    principal: who,
    endpoint: { cost },
    responseHeaders,
  } as unknown as RequestContext;
  const result = policy(ctx);
  assert.ok(!(result instanceof Promise), 'the memory store decides synchronously');
  return { ctx, refusal: result ?? undefined };
}

const field = (ctx: RequestContext, name: string) => {
  const h = ctx.responseHeaders ?? [];
  return h[h.indexOf(name) + 1];
};

describe('quota policy answers', () => {
  it('names the quota with the fewest units left, in RateLimit and RateLimit-Policy', () => {
    const policy = policyOf({ client: { daily: 3, monthly: 100 }, org: { daily: 50 } }, 'tightest');
    const who = principal('c1', 'o1');
    const first = run(policy, who);
    assert.equal(first.refusal, undefined);
    assert.equal(field(first.ctx, 'ratelimit-policy'), '"client-daily";q=3;w=86400');
    assert.match(field(first.ctx, 'ratelimit')!, /^"client-daily";r=2;t=\d+$/);
    // A neighbour in the same org (with a client quota of its own) spends 48 of the org's 50: the org's daily quota
    // (0 left after this request) is now tighter than the client's (1 left).
    assert.equal(run(policy, principal('c2', 'o1', { daily: 1000 }), 48).refusal, undefined);
    const next = run(policy, who);
    assert.equal(field(next.ctx, 'ratelimit-policy'), '"org-daily";q=50;w=86400');
    assert.match(field(next.ctx, 'ratelimit')!, /^"org-daily";r=0;t=\d+$/);
  });

  it('names the quota whose period ends last when two have as few units left', () => {
    const policy = policyOf({ client: { daily: 5, monthly: 5 } }, 'tie');
    const { ctx } = run(policy, principal('c1'));
    assert.match(field(ctx, 'ratelimit')!, /^"client-monthly";r=4;t=\d+$/);
  });

  it("appends to a rate limit's fields, reusing the joined RateLimit-Policy value while the rate limit's is the same", () => {
    const policy = policyOf({ client: { daily: 10 } }, 'joined');
    const rateLimitPolicy = '"key";q=100;w=60';
    const a = run(policy, principal('c1'), 1, ['ratelimit-policy', rateLimitPolicy, 'ratelimit', '"key";r=99;t=60']);
    const b = run(policy, principal('c1'), 1, ['ratelimit-policy', rateLimitPolicy, 'ratelimit', '"key";r=98;t=60']);
    assert.equal(field(a.ctx, 'ratelimit-policy'), '"key";q=100;w=60, "client-daily";q=10;w=86400');
    assert.equal(field(b.ctx, 'ratelimit-policy'), field(a.ctx, 'ratelimit-policy'));
    assert.match(field(b.ctx, 'ratelimit')!, /^"key";r=98;t=60, "client-daily";r=8;t=\d+$/);
    const other = run(policy, principal('c1'), 1, [
      'ratelimit-policy',
      '"client";q=5;w=1',
      'ratelimit',
      '"client";r=4;t=1',
    ]);
    assert.equal(field(other.ctx, 'ratelimit-policy'), '"client";q=5;w=1, "client-daily";q=10;w=86400');
    assert.equal(other.ctx.quotaDebit?.units, 1);
  });

  it('refuses with every quota in the RateLimit fields, spending nothing', () => {
    const policy = policyOf({ client: { daily: 2, monthly: 10 } }, 'refused');
    const who = principal('c1');
    run(policy, who, 2);
    const { refusal, ctx } = run(policy, who, 1);
    assert.equal(refusal?.code, 'GH_ERR_QUOTA_EXHAUSTED');
    assert.equal(ctx.quotaDebit, undefined);
    assert.match(refusal.headers!.ratelimit!, /^"client-daily";r=0;t=\d+, "client-monthly";r=8;t=\d+$/);
    assert.match(refusal.headers!['ratelimit-policy']!, /^"client-daily";q=2;w=86400, "client-monthly";q=10;w=\d+$/);
    assert.equal(refusal.extensions?.quota, 'client-daily');
  });
});
