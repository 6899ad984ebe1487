/**
 * Quotas end to end on real sockets: a client's daily quota spent by operations of different costs, the IETF
 * RateLimit fields with the quota policy (beside a rate limit's), the 429 GH_ERR_QUOTA_EXHAUSTED refusal that says
 * when the quota resets, an org's monthly quota in a configured time zone; then, on a real Redis, three gateway
 * processes that together admit exactly the quota under a burst (0 over), and a count that survives a gateway
 * restart.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { redactUrl } from '../src/config/redact-url.ts';
import { eventually } from '../src/testing/eventually.ts';
import { periodOf } from '../src/gateway/policies/quota/periods.ts';
import { encodeDerived, type DerivedClaims } from '../src/gateway/tokens/derived.ts';
import { openSigningKeyStore } from '../src/gateway/tokens/keystore.ts';
import { probeRedis, REDIS_HOW_TO, TEST_REDIS_URL } from '../src/testing/redis.ts';
import {
  expectProblem,
  metricValue,
  newKey,
  startGateway,
  startUpstream,
  TOKEN_EXCHANGE,
  waitForLine,
  type GatewayProcess,
  type Upstream,
} from './helpers.ts';
import { burst, closeLoad, paced } from './limits-load.ts';

const alice = newKey();
const small = newKey();
const acmeOne = newKey();
const acmeTwo = newKey();
const burster = newKey();
const pacer = newKey();
const restarter = newKey();

const clients = (entries: [string, { hash: string }, Record<string, unknown>?][]) =>
  entries.map(([id, k, extra]) => ({
    id,
    role: 'reader',
    environments: ['PROD'],
    projects: ['p'],
    keys: [{ hash: k.hash }],
    ...extra,
  }));

const auth = (k: { key: string }) => ({ authorization: `Bearer ${k.key}` });

/** Parses `"name";r=1;t=2, …` into name → { r, t }. */
function live(header: string | null): Map<string, { r: number; t: number }> {
  const out = new Map<string, { r: number; t: number }>();
  for (const item of (header ?? '').split(', ')) {
    const m = /^"([a-z0-9-]+)";r=(\d+);t=(\d+)$/.exec(item);
    assert.ok(m, `ratelimit item ${JSON.stringify(item)} in ${header}`);
    out.set(m[1]!, { r: Number(m[2]), t: Number(m[3]) });
  }
  return out;
}

describe('quotas on a running gateway (memory store)', () => {
  let upstream: Upstream;
  let gw: GatewayProcess;

  before(async () => {
    upstream = await startUpstream();
    gw = await startGateway({
      tokenExchange: TOKEN_EXCHANGE,
      collections: [
        {
          name: 'metered',
          basePath: '/metered',
          upstream: upstream.url,
          project: 'p',
          environment: 'PROD',
          quotas: { client: { daily: 10 } },
          endpoints: [
            { method: 'GET', path: '/things', permission: 'things:read' },
            { method: 'POST', path: '/search', permission: 'things:read', cost: 4 },
          ],
        },
        {
          name: 'org-metered',
          basePath: '/org-metered',
          upstream: upstream.url,
          project: 'p',
          environment: 'PROD',
          rateLimits: { key: { limit: 100, window: '1m' } },
          quotas: { org: { monthly: 5 }, timeZone: 'Pacific/Auckland' },
          endpoints: [{ method: 'GET', path: '/things', permission: 'things:read' }],
        },
      ],
      roles: [{ name: 'reader', permissions: ['things:read'] }],
      clients: clients([
        ['alice', alice],
        ['small', small, { quotas: { client: { daily: 1 } } }],
        ['acme-one', acmeOne, { orgId: 'acme' }],
        ['acme-two', acmeTwo, { orgId: 'acme' }],
      ]),
    });
  });
  after(async () => {
    await gw?.stop();
    await upstream?.close();
  });

  const search = () => fetch(`${gw.url}/metered/search`, { method: 'POST', headers: auth(alice), body: '{}' });
  const read = (path: string, key: { key: string }) => fetch(`${gw.url}${path}`, { headers: auth(key) });

  it("spends each operation's cost of a daily quota and shows what remains in the RateLimit fields", async () => {
    const day = periodOf('daily', Date.now());
    const first = await read('/metered/things', alice);
    assert.equal(first.status, 200, await first.text());
    assert.equal(first.headers.get('ratelimit-policy'), '"client-daily";q=10;w=86400');
    const state = live(first.headers.get('ratelimit')).get('client-daily')!;
    assert.equal(state.r, 9);
    const untilMidnight = Math.ceil((day.end - Date.now()) / 1000);
    assert.ok(Math.abs(state.t - untilMidnight) <= 2, `t=${state.t}, midnight UTC in ${untilMidnight}s`);
    for (const remaining of [5, 1]) {
      const res = await search();
      assert.equal(res.status, 200);
      assert.equal(live(res.headers.get('ratelimit')).get('client-daily')!.r, remaining);
      await res.arrayBuffer();
    }
  });

  it('refuses a request whose cost exceeds what remains with 429, saying when the quota resets', async () => {
    const refused = await search();
    const day = periodOf('daily', Date.now());
    const body = await expectProblem(refused, 429, 'GH_ERR_QUOTA_EXHAUSTED');
    assert.equal(refused.headers.get('x-upstream'), null, 'a refusal must come from the gateway');
    assert.equal(body.resetsAt, new Date(day.end).toISOString());
    assert.equal(body.quota, 'client-daily');
    assert.equal(body.used, 9);
    assert.equal(
      body.detail,
      `The client's daily quota of 10 units is used up (9 used in ${day.id}, UTC); it resets at ${new Date(day.end).toISOString()}. This operation costs 4 units.`,
    );
    const retryAfter = Number(refused.headers.get('retry-after'));
    assert.ok(Math.abs(retryAfter - Math.ceil((day.end - Date.now()) / 1000)) <= 2, `retry-after ${retryAfter}`);
    assert.equal(live(refused.headers.get('ratelimit')).get('client-daily')!.r, 1);
    // The refused search spent nothing: one cheap read still fits, then nothing does.
    const last = await read('/metered/things', alice);
    assert.equal(last.status, 200);
    assert.equal(live(last.headers.get('ratelimit')).get('client-daily')!.r, 0);
    await expectProblem(await read('/metered/things', alice), 429, 'GH_ERR_QUOTA_EXHAUSTED');
    assert.equal(upstream.requests.filter((r) => r.url === '/search').length, 2);
  });

  it("counts an org's monthly quota across its clients, in the configured time zone, beside a rate limit", async () => {
    const month = periodOf('monthly', Date.now(), 'Pacific/Auckland');
    const w = Math.ceil((month.end - month.start) / 1000);
    for (const [key, remaining] of [
      [acmeOne, 4],
      [acmeTwo, 3],
      [acmeOne, 2],
      [acmeTwo, 1],
      [acmeOne, 0],
    ] as const) {
      const res = await read('/org-metered/things', key);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('ratelimit-policy'), `"key";q=100;w=60, "org-monthly";q=5;w=${w}`);
      const fields = live(res.headers.get('ratelimit'));
      assert.equal(fields.get('org-monthly')!.r, remaining);
      assert.ok(fields.has('key'), 'the rate limit keeps its own item');
      await res.arrayBuffer();
    }
    const refused = await read('/org-metered/things', acmeTwo);
    const body = await expectProblem(refused, 429, 'GH_ERR_QUOTA_EXHAUSTED');
    assert.equal(body.resetsAt, new Date(month.end).toISOString());
    assert.equal(body.period, month.id);
    assert.match(String(body.detail), /^The org's monthly quota of 5 units is used up .*Pacific\/Auckland/);
  });

  it("applies a client's own quota instead of the collection's", async () => {
    const first = await read('/metered/things', small);
    assert.equal(first.status, 200);
    assert.equal(first.headers.get('ratelimit-policy'), '"client-daily";q=1;w=86400');
    await first.arrayBuffer();
    const body = await expectProblem(await read('/metered/things', small), 429, 'GH_ERR_QUOTA_EXHAUSTED');
    assert.equal(body.limit, 1);
  });

  it('counts refusals by scope and period in /metrics', async () => {
    assert.equal(
      await metricValue(
        gw.opsUrl,
        'gatehouse_quota_exhausted_total{scope="client",period="daily",collection="metered"}',
      ),
      3,
    );
    assert.equal(
      await metricValue(
        gw.opsUrl,
        'gatehouse_quota_exhausted_total{scope="org",period="monthly",collection="org-metered"}',
      ),
      1,
    );
  });
});

const owner = newKey();

describe("a derived credential's share of its parent's rate limit and quota", () => {
  let upstream: Upstream;
  let gw: GatewayProcess;
  const GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
  const ACCESS = 'urn:ietf:params:oauth:token-type:access_token';

  /** Requests to /capped/hold wait at the upstream until `letGo`. */
  const held: ServerResponse[] = [];
  const letGo = () => {
    for (const res of held.splice(0)) if (!res.destroyed) res.end('{}');
  };

  before(async () => {
    upstream = await startUpstream((req: IncomingMessage, res: ServerResponse) => {
      if (!req.url!.endsWith('/hold')) return false;
      held.push(res);
      return true;
    });
    const collection = (name: string, extra: Record<string, unknown>) => ({
      name,
      basePath: `/${name}`,
      upstream: upstream.url,
      project: 'p',
      environment: 'PROD',
      endpoints: [{ method: 'GET', path: '/things', permission: 'things:read' }],
      ...extra,
    });
    gw = await startGateway({
      tokenExchange: { ...TOKEN_EXCHANGE, derived: { maxTtl: '1h', maxDepth: 3 } },
      collections: [
        collection('limited', { rateLimits: { key: { limit: 10, window: '1m' } } }),
        collection('quota', { quotas: { client: { daily: 10 } } }),
        {
          ...collection('capped', { concurrency: { key: { max: 4 } } }),
          endpoints: [{ method: 'GET', path: '/hold', permission: 'things:read' }],
        },
      ],
      roles: [{ name: 'reader', permissions: ['things:read'] }],
      clients: clients([['owner', owner]]),
    });
  });
  after(async () => {
    letGo();
    await gw?.stop();
    await upstream?.close();
  });

  async function exchange(subject: string, extra: Record<string, string> = {}) {
    const form = new URLSearchParams({
      grant_type: GRANT,
      subject_token: subject,
      subject_token_type: ACCESS,
      agent_id: 'agent-7',
      ...extra,
    });
    const res = await fetch(`${gw.url}/oauth2/token`, { method: 'POST', body: form });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  }
  const call = (credential: string, path: string) =>
    fetch(`${gw.url}${path}`, { headers: { authorization: `Bearer ${credential}` } });

  it('refuses a share wider than the parent, and multiplies shares along a delegation chain', async () => {
    for (const wide of ['1.5', '2']) {
      const r = await exchange(owner.key, { limit_share: wide });
      assert.equal(r.status, 400);
      assert.deepEqual([r.body.error, r.body.code], ['invalid_request', 'GH_ERR_DERIVED_WIDENING']);
    }
    for (const bad of ['0', '-1', 'half', '']) {
      const r = await exchange(owner.key, { limit_share: bad });
      assert.equal(r.status, 400);
      assert.equal(r.body.code, 'GH_ERR_DERIVED_REQUEST_INVALID');
    }
    const parent = await exchange(owner.key, { limit_share: '0.5' });
    assert.equal(parent.body.limit_share, 0.5);
    const child = await exchange(String(parent.body.access_token), { limit_share: '0.5' });
    assert.equal(child.body.limit_share, 0.25);
    const inherited = await exchange(String(parent.body.access_token));
    assert.equal(inherited.body.limit_share, 0.5, 'a delegated credential keeps its parent share by default');
  });

  it("limits an agent to its share of the key's rate limit, and counts its calls against the key", async () => {
    const minted = await exchange(owner.key, { limit_share: '0.3' });
    const agent = String(minted.body.access_token);
    for (let i = 0; i < 3; i++) {
      const res = await call(agent, '/limited/things');
      assert.equal(res.status, 200);
      assert.match(res.headers.get('ratelimit-policy') ?? '', /^"agent";q=3;w=60, "key";q=10;w=60$/);
      assert.equal(live(res.headers.get('ratelimit')).get('agent')!.r, 2 - i);
      await res.arrayBuffer();
    }
    const refused = await call(agent, '/limited/things');
    const body = await expectProblem(refused, 429, 'GH_ERR_RATE_LIMITED');
    assert.match(String(body.detail), /agent's share of the rate limit, 3 requests per 60s/);
    // The key itself spent 3 of its 10 through the agent.
    const own = await call(owner.key, '/limited/things');
    assert.equal(own.status, 200);
    assert.equal(live(own.headers.get('ratelimit')).get('key')!.r, 6);
    await own.arrayBuffer();
  });

  it("limits an agent to its share of the key's concurrency cap, its slots counting against the key's", async () => {
    const agent = String((await exchange(owner.key, { limit_share: '0.5' })).body.access_token);
    const agentCalls = [0, 1, 2].map(() => call(agent, '/capped/hold'));
    const first = await Promise.race(agentCalls);
    const refused = await expectProblem(first, 429, 'GH_ERR_CONCURRENCY_LIMITED');
    assert.match(String(refused.detail), /agent's share of the concurrency cap, 2 requests in flight/);
    await eventually(() => held.length === 2, 10_000, 'two agent requests at the upstream');
    // The key's cap of 4 has 2 slots left: the agent's two count against it.
    const ownCalls = [0, 1, 2].map(() => call(owner.key, '/capped/hold'));
    await expectProblem(await Promise.race(ownCalls), 429, 'GH_ERR_CONCURRENCY_LIMITED');
    await eventually(() => held.length === 4, 10_000, 'two more requests of the key at the upstream');
    letGo();
    const statuses = (await Promise.all([...agentCalls, ...ownCalls])).map((r) => r.status).sort();
    assert.deepEqual(statuses, [200, 200, 200, 200, 429, 429]);
  });

  it("limits an agent to its share of the client's daily quota, debited with the client's", async () => {
    const minted = await exchange(owner.key, { limit_share: '0.5' });
    const agent = String(minted.body.access_token);
    for (let i = 0; i < 5; i++) {
      const res = await call(agent, '/quota/things');
      assert.equal(res.status, 200);
      // RateLimit names the quota closest to running out: the agent's share (4 - i left), not the client's (9 - i).
      const fields = live(res.headers.get('ratelimit'));
      assert.equal(fields.get('agent-daily')!.r, 4 - i);
      assert.equal(fields.has('client-daily'), false);
      assert.match(res.headers.get('ratelimit-policy')!, /"agent-daily";q=5;w=86400$/);
      await res.arrayBuffer();
    }
    const body = await expectProblem(await call(agent, '/quota/things'), 429, 'GH_ERR_QUOTA_EXHAUSTED');
    assert.equal(body.quota, 'agent-daily');
    const own = await call(owner.key, '/quota/things');
    assert.equal(own.status, 200);
    assert.equal(live(own.headers.get('ratelimit')).get('client-daily')!.r, 4);
    await own.arrayBuffer();
  });
});

const delegator = newKey();

describe('credentials delegated from one stay within its share together', () => {
  let upstream: Upstream;
  let gw: GatewayProcess;
  let dir: string;
  /** The gateway's signing key (a keys file written here first): mints a credential as an older gateway did. */
  let signing: { kid: string; secret: Buffer };
  const held: ServerResponse[] = [];
  const letGo = () => {
    for (const res of held.splice(0)) if (!res.destroyed) res.end('{}');
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'gatehouse-chain-'));
    const keysFile = join(dir, 'signing-keys.json');
    const store = await openSigningKeyStore({ algorithm: 'EdDSA', tokenTtlMs: 300_000, file: keysFile });
    const current = store.current();
    signing = { kid: current.kid, secret: current.secret! };
    store.close();
    upstream = await startUpstream((req: IncomingMessage, res: ServerResponse) => {
      if (!req.url!.endsWith('/hold')) return false;
      held.push(res);
      return true;
    });
    const collection = (name: string, extra: Record<string, unknown>, path = '/things') => ({
      name,
      basePath: `/${name}`,
      upstream: upstream.url,
      project: 'p',
      environment: 'PROD',
      endpoints: [{ method: 'GET', path, permission: 'things:read' }],
      ...extra,
    });
    gw = await startGateway({
      server: { signingKeysFile: keysFile },
      tokenExchange: { ...TOKEN_EXCHANGE, derived: { maxTtl: '1h', maxDepth: 3 } },
      collections: [
        collection('limited', { rateLimits: { key: { limit: 20, window: '1m' } } }),
        collection('quota', { quotas: { client: { daily: 20 } } }),
        collection('capped', { concurrency: { key: { max: 8 } } }, '/hold'),
        collection('older', { rateLimits: { key: { limit: 20, window: '1m' } } }),
      ],
      roles: [{ name: 'reader', permissions: ['things:read'] }],
      clients: clients([['delegator', delegator]]),
    });
  });
  after(async () => {
    letGo();
    await gw?.stop();
    await upstream?.close();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  async function exchange(subject: string, limitShare: string) {
    const form = new URLSearchParams({
      grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
      subject_token: subject,
      subject_token_type: 'urn:ietf:params:oauth:token-type:access_token',
      agent_id: 'planner',
      limit_share: limitShare,
    });
    const res = await fetch(`${gw.url}/oauth2/token`, { method: 'POST', body: form });
    const body = (await res.json()) as Record<string, unknown>;
    assert.equal(res.status, 200, JSON.stringify(body));
    return { token: String(body.access_token), id: String(body.credential_id), share: Number(body.limit_share) };
  }
  /** A with half the key's limits, and two credentials delegated from A with all of A's share each (0.5 of the root). */
  async function family() {
    const a = await exchange(delegator.key, '0.5');
    const b1 = await exchange(a.token, '1');
    const b2 = await exchange(a.token, '1');
    assert.deepEqual([a.share, b1.share, b2.share], [0.5, 0.5, 0.5]);
    return { a, b1, b2 };
  }
  const call = (credential: string, path: string) =>
    fetch(`${gw.url}${path}`, { headers: { authorization: `Bearer ${credential}` } });
  const namesAncestor = (detail: unknown, id: string) =>
    assert.ok(
      String(detail).includes(`share of the credential it was delegated from (${id}, at delegation depth 1)`),
      String(detail),
    );

  it("admits no more of the rate limit through two delegates together than their parent's share", async () => {
    const { a, b1, b2 } = await family();
    // The key allows 20 a minute, A's share 10, and each delegate's own share 10: A's share binds them together.
    for (let i = 0; i < 10; i++) {
      const res = await call(i % 2 === 0 ? b1.token : b2.token, '/limited/things');
      assert.equal(res.status, 200, `request ${i}`);
      if (i > 0) {
        // A's share, counted by both, has fewer left than the delegate's own: the answer names it.
        assert.match(res.headers.get('ratelimit-policy')!, /^"agent-d1";q=10;w=60, "key";q=20;w=60$/);
        assert.equal(live(res.headers.get('ratelimit')).get('agent-d1')!.r, 9 - i);
      }
      await res.arrayBuffer();
    }
    for (const delegate of [b1, b2]) {
      const body = await expectProblem(await call(delegate.token, '/limited/things'), 429, 'GH_ERR_RATE_LIMITED');
      namesAncestor(body.detail, a.id);
    }
    // A credential delegated from a delegate (0.25 of the root: 5 of its own, none used) is refused by A's share.
    const grandchild = await exchange(b2.token, '0.5');
    assert.equal(grandchild.share, 0.25);
    const refused = await call(grandchild.token, '/limited/things');
    namesAncestor((await expectProblem(refused, 429, 'GH_ERR_RATE_LIMITED')).detail, a.id);
    assert.match(refused.headers.get('ratelimit')!, /^"agent-d1";r=0;t=\d+$/);
    // A itself has used up its share through its delegates; the key has 10 of its 20 left.
    const own = await expectProblem(await call(a.token, '/limited/things'), 429, 'GH_ERR_RATE_LIMITED');
    assert.match(String(own.detail), /agent's share of the rate limit, 10 requests per 60s/);
    const key = await call(delegator.key, '/limited/things');
    assert.equal(key.status, 200);
    assert.equal(live(key.headers.get('ratelimit')).get('key')!.r, 9);
    await key.arrayBuffer();
  });

  it("admits no more of the daily quota through two delegates together than their parent's share, all or nothing", async () => {
    const { a, b1, b2 } = await family();
    for (let i = 0; i < 10; i++) {
      const res = await call(i % 2 === 0 ? b1.token : b2.token, '/quota/things');
      assert.equal(res.status, 200, `request ${i}`);
      // From the second on, A's share (counted by both) has the fewest units left: the answer names it.
      const name = i === 0 ? 'agent-daily' : 'agent-d1-daily';
      assert.deepEqual(
        [...live(res.headers.get('ratelimit')).entries()].map(([n, v]) => [n, v.r]),
        [[name, 9 - i]],
      );
      await res.arrayBuffer();
    }
    const body = await expectProblem(await call(b1.token, '/quota/things'), 429, 'GH_ERR_QUOTA_EXHAUSTED');
    assert.deepEqual([body.quota, body.limit, body.used], ['agent-d1-daily', 10, 10]);
    namesAncestor(body.detail, a.id);
    const grandchild = await exchange(b1.token, '0.5');
    const refused = await expectProblem(await call(grandchild.token, '/quota/things'), 429, 'GH_ERR_QUOTA_EXHAUSTED');
    namesAncestor(refused.detail, a.id);
    // The refused requests took nothing from the client's quota: 10 of its 20 were used, by the delegates.
    const key = await call(delegator.key, '/quota/things');
    assert.equal(key.status, 200);
    assert.equal(live(key.headers.get('ratelimit')).get('client-daily')!.r, 9);
    await key.arrayBuffer();
  });

  it("holds no more requests in flight through two delegates together than their parent's share of the cap", async () => {
    const { a, b1, b2 } = await family();
    // The key's cap is 8, A's share 4, each delegate's own 4: six calls, four reach the upstream.
    const answered: Response[] = [];
    const calls = [b1, b1, b1, b2, b2, b2].map((d) =>
      call(d.token, '/capped/hold').then((res) => (answered.push(res), res)),
    );
    await eventually(
      () => held.length === 4 && answered.length === 2,
      10_000,
      'four delegated requests at the upstream, two refused',
    );
    for (const res of answered)
      namesAncestor((await expectProblem(res, 429, 'GH_ERR_CONCURRENCY_LIMITED')).detail, a.id);
    letGo();
    assert.deepEqual((await Promise.all(calls)).map((r) => r.status).sort(), [200, 200, 200, 200, 429, 429]);
    // Their slots, A's included, are given back (with the key's, in the same step): four more fit again.
    await eventually(
      async () => (await metricValue(gw.opsUrl, 'gatehouse_concurrency_in_flight{client="delegator"}')) === 0,
      10_000,
      'every slot given back',
    );
    const again = [b1, b2, b2, b1].map((d) => call(d.token, '/capped/hold'));
    await eventually(() => held.length === 4, 10_000, 'four delegated requests at the upstream again');
    letGo();
    assert.deepEqual(
      (await Promise.all(again)).map((r) => r.status),
      [200, 200, 200, 200],
    );
  });

  it('keeps a delegated credential minted before ancestor shares existed working, limited by its own share', async () => {
    const a = await exchange(delegator.key, '0.5');
    const claims = JSON.parse(
      Buffer.from(a.token.slice(4, a.token.indexOf('.')), 'base64url').toString(),
    ) as DerivedClaims;
    // As an older gateway minted it: its ancestors' ids (`c`) and its own share, no `cl`.
    const { token } = encodeDerived(
      {
        k: signing.kid,
        p: claims.p,
        e: claims.e,
        s: claims.s,
        d: 2,
        a: { sub: 'renderer', act: claims.a },
        i: Date.now(),
        c: [claims.j],
        l: 0.25,
      },
      signing.secret,
    );
    for (let i = 0; i < 5; i++) {
      const res = await call(token, '/older/things');
      assert.equal(res.status, 200, `request ${i}`);
      assert.match(res.headers.get('ratelimit-policy')!, /^"agent";q=5;w=60, "key";q=20;w=60$/);
      await res.arrayBuffer();
    }
    const body = await expectProblem(await call(token, '/older/things'), 429, 'GH_ERR_RATE_LIMITED');
    assert.match(String(body.detail), /agent's share of the rate limit, 5 requests per 60s/);
  });
});

const stranded = newKey();

describe('quotas while the shared store cannot be reached', () => {
  let upstream: Upstream;
  let gw: GatewayProcess;

  before(async () => {
    upstream = await startUpstream();
    // A port nothing listens on: Redis never answers.
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const { port } = closed.address() as { port: number };
    await new Promise<void>((r) => closed.close(() => r()));
    const collection = (name: string, onStoreFailure: 'open' | 'closed') => ({
      name,
      basePath: `/${name}`,
      upstream: upstream.url,
      project: 'p',
      environment: 'PROD',
      quotas: { client: { daily: 2, onStoreFailure } },
      endpoints: [{ method: 'GET', path: '/things', permission: 'things:read' }],
    });
    gw = await startGateway({
      server: {
        rateLimitStore: {
          type: 'redis',
          url: `redis://127.0.0.1:${port}`,
          connectTimeout: '200ms',
          commandTimeout: '200ms',
        },
      },
      tokenExchange: TOKEN_EXCHANGE,
      collections: [collection('failing-open', 'open'), collection('failing-closed', 'closed')],
      roles: [{ name: 'reader', permissions: ['things:read'] }],
      clients: clients([['stranded', stranded]]),
    });
  });
  after(async () => {
    await gw?.stop();
    await upstream?.close();
  });

  it('refuses a closed quota with 503 and counts an open one on the instance alone', async () => {
    const get = (path: string) => fetch(`${gw.url}${path}`, { headers: auth(stranded) });
    const refused = await get('/failing-closed/things');
    await expectProblem(refused, 503, 'GH_ERR_QUOTA_STORE_UNAVAILABLE');
    assert.equal(refused.headers.get('retry-after'), '1');
    for (let i = 0; i < 2; i++) {
      const res = await get('/failing-open/things');
      assert.equal(res.status, 200);
      await res.arrayBuffer();
    }
    await expectProblem(await get('/failing-open/things'), 429, 'GH_ERR_QUOTA_EXHAUSTED');
  });
});

const unreachable = await probeRedis();

function redisConfig(upstream: Upstream, prefix: string) {
  return {
    server: { rateLimitStore: { type: 'redis', url: TEST_REDIS_URL, prefix } },
    tokenExchange: TOKEN_EXCHANGE,
    collections: [
      {
        name: 'shared',
        basePath: '/shared',
        upstream: upstream.url,
        project: 'p',
        environment: 'PROD',
        quotas: { client: { daily: 100 } },
        endpoints: [
          { method: 'GET', path: '/things', permission: 'things:read' },
          { method: 'GET', path: '/costly', permission: 'things:read', cost: 3 },
        ],
      },
    ],
    roles: [{ name: 'reader', permissions: ['things:read'] }],
    clients: clients([
      ['burster', burster],
      ['pacer', pacer],
      ['restarter', restarter],
    ]),
  };
}

if (unreachable === undefined) {
  describe('a quota shared by three gateways through Redis', () => {
    const prefix = `gatehouse-e2e-quota:${process.pid}:${randomBytes(4).toString('hex')}:`;
    const admin = new Redis(TEST_REDIS_URL);
    let upstream: Upstream;
    let gateways: GatewayProcess[] = [];

    before(async () => {
      upstream = await startUpstream();
      gateways = await Promise.all([0, 1, 2].map(() => startGateway(redisConfig(upstream, prefix))));
      await Promise.all(gateways.map((g) => waitForLine(g, /quota store connected/, 0)));
    });
    after(async () => {
      await closeLoad();
      await Promise.all(gateways.map((g) => g.stop()));
      await upstream?.close();
      const found = await admin.keys(`${prefix}*`);
      if (found.length > 0) await admin.del(...found);
      await admin.quit();
    });

    it('admits exactly 100 of a burst of 600 spread over the three gateways (0 over)', async () => {
      const count = await burst(
        gateways.map((g) => `${g.url}/shared/things`),
        600,
        auth(burster),
      );
      assert.equal(count.admitted, 100);
      assert.equal(count.statuses.get(429), 500);
    });

    it('admits exactly the quota of costly and cheap requests paced at 300 per second', async () => {
      const urls = gateways.flatMap((g) => [`${g.url}/shared/costly`, `${g.url}/shared/things`]);
      const seenBefore = upstream.requests.length;
      const count = await paced(urls, 300, 180, auth(pacer));
      const reached = upstream.requests.slice(seenBefore);
      const costly = reached.filter((r) => r.url === '/costly').length;
      const cheap = reached.filter((r) => r.url === '/things').length;
      assert.equal(costly + cheap, count.admitted);
      // Costs alternate 3 and 1: once the quota runs short, cheap requests still take the last units.
      assert.equal(3 * costly + cheap, 100, `${costly} costly and ${cheap} cheap requests admitted`);
      // The period's count (beside it, a hash of each gateway's lease holding, ending in NUL h).
      const [counter] = (await admin.keys(`${prefix}q:*pacer*daily*`)).filter((k) => !k.endsWith('\u0000h'));
      assert.equal(Number(await admin.get(counter!)), 100, 'Redis counted every unit (leased and spent), none more');
    });

    it('keeps counting across a gateway restart', async () => {
      const url = (g: GatewayProcess) => `${g.url}/shared/costly`;
      for (let i = 0; i < 30; i++) {
        const res = await fetch(url(gateways[0]!), { headers: auth(restarter) });
        assert.equal(res.status, 200);
        await res.arrayBuffer();
      }
      // 90 of 100 used. Every gateway stops; one starts again on the same Redis.
      await Promise.all(gateways.map((g) => g.stop()));
      gateways = [await startGateway(redisConfig(upstream, prefix))];
      await waitForLine(gateways[0]!, /quota store connected/, 0);
      const statuses: number[] = [];
      for (let i = 0; i < 5; i++) {
        const res = await fetch(url(gateways[0]!), { headers: auth(restarter) });
        statuses.push(res.status);
        if (res.status === 200)
          assert.equal(live(res.headers.get('ratelimit')).get('client-daily')!.r, 100 - 93 - 3 * (statuses.length - 1));
        await res.arrayBuffer();
      }
      assert.deepEqual(statuses, [200, 200, 200, 429, 429]);
    });
  });
} else {
  it('runs the shared quota suite on Redis', () => {
    assert.fail(`Redis not reachable at ${redactUrl(TEST_REDIS_URL)} (${unreachable}): ${REDIS_HOW_TO}`);
  });
}
