import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, type JSONWebKeySet } from 'jose';
import { openSigningKeyStore, VERIFY_SKEW_MS, type SigningKeyStore } from './keystore.ts';
import { createMinter, type MinterOptions, type TokenSubject } from './minter.ts';

const MINUTE = 60_000;
const TTL = 5 * MINUTE;
const ALL_CLAIMS = ['client_id', 'user_id', 'org_id', 'permissions', 'environment', 'project', 'metadata'] as const;

const subject: TokenSubject = {
  clientId: 'billing-app',
  userId: 'u-42',
  orgId: 'acme',
  permissions: ['invoices:read', 'invoices:write'],
  environment: 'PROD',
  project: 'billing',
  metadata: { tier: 'gold', seats: 5, beta: true },
};

function clock(start = Date.parse('2030-01-01T00:00:00Z')) {
  const c = { t: start, now: () => c.t };
  return c;
}

async function setup(overrides: Partial<MinterOptions> & { algorithm?: 'EdDSA' | 'ES256' } = {}) {
  const c = clock();
  const keys = await openSigningKeyStore({ algorithm: overrides.algorithm ?? 'EdDSA', tokenTtlMs: TTL, now: c.now });
  const minter = createMinter({
    issuer: 'https://gw.example.com',
    audience: 'billing-api',
    ttlMs: TTL,
    claims: ALL_CLAIMS,
    keys,
    now: c.now,
    ...overrides,
  });
  return { c, keys, minter };
}

function verify(keys: SigningKeyStore, token: string, now: number, audience: string | string[] = 'billing-api') {
  return jwtVerify(token, createLocalJWKSet(JSON.parse(keys.jwks()) as JSONWebKeySet), {
    issuer: 'https://gw.example.com',
    audience,
    currentDate: new Date(now),
    typ: 'JWT',
  });
}

describe('token minter', () => {
  for (const algorithm of ['EdDSA', 'ES256'] as const) {
    it(`mints an ${algorithm} token that verifies against the store's JWKS with every configured claim`, async () => {
      const { c, keys, minter } = await setup({ algorithm });
      const token = await minter.token('key-1|PROD|billing', subject);
      const { payload, protectedHeader } = await verify(keys, token, c.t);

      assert.deepEqual(protectedHeader, { alg: algorithm, kid: keys.current().kid, typ: 'JWT' });
      const iat = Math.floor(c.t / 1000);
      assert.match(String(payload.jti), /^[A-Za-z0-9_-]{22}$/);
      assert.deepEqual(
        { ...payload, jti: undefined },
        {
          iss: 'https://gw.example.com',
          aud: 'billing-api',
          sub: 'billing-app',
          iat,
          exp: iat + TTL / 1000,
          jti: undefined,
          client_id: 'billing-app',
          user_id: 'u-42',
          org_id: 'acme',
          permissions: ['invoices:read', 'invoices:write'],
          environment: 'PROD',
          project: 'billing',
          metadata: { tier: 'gold', seats: 5, beta: true },
        },
      );
      keys.close();
    });
  }

  it('adds only the configured claims and leaves out absent optional values', async () => {
    const { c, keys, minter } = await setup({
      claims: ['client_id', 'user_id', 'org_id', 'permissions'],
      audience: ['a', 'b'],
    });
    const token = await minter.token('k', { clientId: 'c1', permissions: [], environment: 'DEV', project: 'p' });
    const { payload } = await verify(keys, token, c.t, 'b');
    assert.deepEqual(Object.keys(payload).sort(), [
      'aud',
      'client_id',
      'exp',
      'iat',
      'iss',
      'jti',
      'permissions',
      'sub',
    ]);
    assert.deepEqual(payload.aud, ['a', 'b']);
    assert.deepEqual(payload.permissions, []);
    keys.close();
  });

  it('gives each minted token its own jti', async () => {
    const { keys, minter } = await setup();
    const a = await minter.token('a', subject);
    const b = await minter.token('b', subject);
    const jti = (t: string) => JSON.parse(Buffer.from(t.split('.')[1]!, 'base64url').toString()).jti;
    assert.notEqual(jti(a), jti(b));
    keys.close();
  });

  it('returns the cached token synchronously while more than 20% of its lifetime is left', async () => {
    const { c, keys, minter } = await setup();
    assert.equal(minter.cached('k'), undefined);
    const token = await minter.token('k', subject);
    assert.equal(minter.size, 1);
    assert.equal(minter.cached('k'), token);
    c.t += TTL * 0.8 - 1;
    assert.equal(minter.token('k', subject), token, 'a plain string, not a promise');
    keys.close();
  });

  it('mints a new token when the cached one is near expiry', async () => {
    const { c, keys, minter } = await setup();
    const token = await minter.token('k', subject);
    c.t += TTL * 0.8;
    assert.equal(minter.cached('k'), undefined);
    const fresh = await minter.token('k', subject);
    assert.notEqual(fresh, token);
    assert.equal(minter.cached('k'), fresh);
    assert.equal(minter.size, 1);
    keys.close();
  });

  it('keeps at least 5 seconds of lifetime on a cached token even with a short ttl', async () => {
    const c = clock();
    const keys = await openSigningKeyStore({ algorithm: 'EdDSA', tokenTtlMs: 10_000, now: c.now });
    const minter = createMinter({ issuer: 'i', audience: 'a', ttlMs: 10_000, claims: [], keys, now: c.now });
    const token = await minter.token('k', subject);
    c.t += 4_999;
    assert.equal(minter.cached('k'), token);
    c.t += 1;
    assert.equal(minter.cached('k'), undefined);
    keys.close();
  });

  it('mints a new token after the signing key rotates, and the old token still verifies', async () => {
    const { c, keys, minter } = await setup();
    const token = await minter.token('k', subject);
    const oldKid = keys.current().kid;
    await keys.rotate();
    assert.equal(minter.cached('k'), undefined);
    const fresh = await minter.token('k', subject);
    assert.equal(decodeProtectedHeader(fresh).kid, keys.current().kid);
    assert.notEqual(keys.current().kid, oldKid);
    await verify(keys, token, c.t);
    await verify(keys, fresh, c.t);
    c.t += TTL + VERIFY_SKEW_MS;
    await assert.rejects(verify(keys, token, c.t - VERIFY_SKEW_MS - 1), { code: 'ERR_JWKS_NO_MATCHING_KEY' });
    keys.close();
  });

  it('mints a new token after an automatic rotation in the store', async () => {
    const c = clock();
    const keys = await openSigningKeyStore({
      algorithm: 'ES256',
      tokenTtlMs: TTL,
      rotateEveryMs: 60 * MINUTE,
      now: c.now,
    });
    const minter = createMinter({
      issuer: 'https://gw.example.com',
      audience: 'billing-api',
      ttlMs: TTL,
      claims: ALL_CLAIMS,
      keys,
      now: c.now,
    });
    const token = await minter.token('k', subject);
    c.t += 60 * MINUTE;
    // The token expired anyway by now; refresh it just before rotation to see the kid check at work.
    c.t -= 1;
    const before = await minter.token('k', subject);
    assert.notEqual(before, token);
    c.t += 1;
    const after = await minter.token('k', subject);
    assert.notEqual(after, before);
    assert.notEqual(decodeProtectedHeader(after).kid, decodeProtectedHeader(before).kid);
    await verify(keys, before, c.t);
    await verify(keys, after, c.t);
    keys.close();
  });

  it('shares one mint between concurrent calls for the same key', async () => {
    const { keys, minter } = await setup();
    const a = minter.token('k', subject);
    const b = minter.token('k', subject);
    assert.ok(a instanceof Promise);
    assert.equal(a, b);
    const c = minter.token('other', subject);
    assert.notEqual(a, c);
    assert.equal(await a, await b);
    assert.notEqual(await a, await c);
    keys.close();
  });

  it('drops cached tokens on clear, and a mint in flight during clear does not refill the cache', async () => {
    const { keys, minter } = await setup();
    await minter.token('k', subject);
    minter.clear();
    assert.equal(minter.size, 0);
    assert.equal(minter.cached('k'), undefined);

    const stale = minter.token('k', subject);
    minter.clear();
    const fresh = minter.token('k', { ...subject, permissions: ['invoices:read'] });
    assert.notEqual(stale, fresh, 'calls after clear do not join a mint started before it');
    await stale;
    const token = await fresh;
    assert.equal(minter.cached('k'), token);
    keys.close();
  });

  it('keeps the cache within maxEntries, dropping the oldest tokens first', async () => {
    const { keys, minter } = await setup({ maxEntries: 3 });
    for (const k of ['a', 'b', 'c', 'd']) await minter.token(k, subject);
    assert.equal(minter.size, 3);
    assert.equal(minter.cached('a'), undefined);
    assert.notEqual(minter.cached('d'), undefined);
    keys.close();
  });

  it('drops expired tokens from the cache as new ones arrive', async () => {
    const { c, keys, minter } = await setup();
    await minter.token('a', subject);
    await minter.token('b', subject);
    c.t += TTL;
    await minter.token('c', subject);
    assert.equal(minter.size, 1);
    keys.close();
  });

  it('does not cache a failed mint, and the next call tries again', async () => {
    const { keys } = await setup();
    // An EdDSA key announced as ES256: jose refuses to sign with it. The minter only calls current().
    const broken = { current: () => ({ ...keys.current(), alg: 'ES256' }) } as unknown as SigningKeyStore;
    const minter = createMinter({ issuer: 'i', audience: 'a', ttlMs: TTL, claims: [], keys: broken });
    const first = minter.token('k', subject);
    await assert.rejects(Promise.resolve(first));
    const second = minter.token('k', subject);
    assert.notEqual(second, first);
    await assert.rejects(Promise.resolve(second));
    assert.equal(minter.size, 0);
    keys.close();
  });

  it('refuses invalid options', async () => {
    const { keys } = await setup();
    assert.throws(() => createMinter({ issuer: '', audience: 'a', ttlMs: TTL, claims: [], keys }), /issuer/);
    assert.throws(() => createMinter({ issuer: 'i', audience: [], ttlMs: TTL, claims: [], keys }), /audience/);
    assert.throws(() => createMinter({ issuer: 'i', audience: 'a', ttlMs: 10, claims: [], keys }), /ttlMs/);
    keys.close();
  });
});
