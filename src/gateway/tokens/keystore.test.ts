import assert from 'node:assert/strict';
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createLocalJWKSet, jwtVerify, SignJWT, type JSONWebKeySet } from 'jose';
import { eventually } from '../../testing/eventually.ts';
import { openSigningKeyStore, VERIFY_SKEW_MS, type SigningKeyStore } from './keystore.ts';

const MINUTE = 60_000;
const TTL = 5 * MINUTE;

function clock(start = Date.parse('2030-01-01T00:00:00Z')) {
  const c = { t: start, now: () => c.t };
  return c;
}

function kids(store: SigningKeyStore): string[] {
  return (JSON.parse(store.jwks()) as JSONWebKeySet).keys.map((k) => k.kid!);
}

async function sign(store: SigningKeyStore, now: number): Promise<string> {
  const key = store.current();
  const iat = Math.floor(now / 1000);
  return new SignJWT({ sub: 'c1' })
    .setProtectedHeader({ alg: key.alg, kid: key.kid })
    .setIssuedAt(iat)
    .setExpirationTime(iat + TTL / 1000)
    .sign(key.privateKey);
}

async function until(condition: () => boolean | Promise<boolean>): Promise<void> {
  await eventually(condition, 10_000, 'condition', 5);
}

async function verifies(store: SigningKeyStore, token: string, now: number): Promise<boolean> {
  try {
    await jwtVerify(token, createLocalJWKSet(JSON.parse(store.jwks()) as JSONWebKeySet), {
      currentDate: new Date(now),
    });
    return true;
  } catch {
    return false;
  }
}

describe('signing key store', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'gatehouse-keys-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  for (const algorithm of ['EdDSA', 'ES256'] as const) {
    it(`publishes the ${algorithm} current key as a public JWK with kid, alg and use`, async () => {
      const store = await openSigningKeyStore({ algorithm, tokenTtlMs: TTL });
      const { keys } = JSON.parse(store.jwks()) as JSONWebKeySet;
      assert.equal(keys.length, 1);
      const [jwk] = keys;
      assert.equal(jwk!.kid, store.current().kid);
      assert.equal(jwk!.alg, algorithm);
      assert.equal(jwk!.use, 'sig');
      assert.equal(jwk!.kty, algorithm === 'EdDSA' ? 'OKP' : 'EC');
      assert.equal(jwk!.d, undefined);
      assert.match(store.current().kid, /^[A-Za-z0-9_-]{43}$/);
      store.close();
    });
  }

  it('returns the same JWKS string until the key set changes', async () => {
    const store = await openSigningKeyStore({ algorithm: 'EdDSA', tokenTtlMs: TTL });
    const first = store.jwks();
    assert.equal(store.jwks(), first);
    await store.rotate();
    assert.notEqual(store.jwks(), first);
    store.close();
  });

  it('keeps a retired key published until its last token has expired, and a token signed before rotation still verifies', async () => {
    const c = clock();
    const store = await openSigningKeyStore({ algorithm: 'EdDSA', tokenTtlMs: TTL, now: c.now });
    const old = store.current().kid;
    const token = await sign(store, c.t);

    c.t += 1_000;
    const retiredAt = c.t;
    await store.rotate();
    assert.notEqual(store.current().kid, old);
    assert.ok(kids(store).includes(old));
    assert.ok(await verifies(store, token, c.t));

    c.t = retiredAt + TTL + VERIFY_SKEW_MS - 1;
    assert.ok(kids(store).includes(old));
    c.t = retiredAt + TTL + VERIFY_SKEW_MS;
    assert.ok(!kids(store).includes(old));
    assert.deepEqual(kids(store), [store.current().kid]);
    store.close();
  });

  it('rotates automatically in current() once the key is older than rotateEveryMs, to a key published in advance', async () => {
    const c = clock();
    const store = await openSigningKeyStore({
      algorithm: 'ES256',
      tokenTtlMs: TTL,
      rotateEveryMs: 60 * MINUTE,
      now: c.now,
    });
    const first = store.current().kid;
    const published = kids(store);
    assert.equal(published.length, 2, 'current and next key');
    const next = published.find((k) => k !== first)!;

    c.t += 60 * MINUTE - 1;
    assert.equal(store.current().kid, first);
    c.t += 1;
    assert.equal(store.current().kid, next, 'the swap is synchronous');
    assert.ok(kids(store).includes(first), 'the old key stays published');
    await until(() => kids(store).length === 3);
    assert.equal(kids(store)[0], next);
    assert.ok(!published.includes(kids(store)[1]!), 'a new next key is published in the background');
    store.close();
  });

  it('writes the file after an automatic rotation, and reports a failed write without losing the rotation', async () => {
    const c = clock();
    const sub = join(dir, 'auto');
    const file = join(sub, 'keys.json');
    const errors: Error[] = [];
    const options = {
      algorithm: 'EdDSA',
      tokenTtlMs: TTL,
      rotateEveryMs: 60 * MINUTE,
      file,
      now: c.now,
      onError: (e: Error) => errors.push(e),
    } as const;
    const store = await openSigningKeyStore(options);
    c.t += 60 * MINUTE;
    const rotated = store.current().kid;
    await until(
      async () => (JSON.parse(await readFile(file, 'utf8')) as { keys: { kid: string }[] }).keys[0]!.kid === rotated,
    );

    // Make the directory unwritable in a way that also holds for root: replace it with a plain file.
    await rm(sub, { recursive: true });
    await writeFile(sub, '');
    c.t += 60 * MINUTE;
    const again = store.current().kid;
    assert.notEqual(again, rotated);
    await until(() => errors.length === 1);
    assert.match(errors[0]!.message, /cannot write signing keys file .*auto\/keys\.json/);
    assert.equal(store.current().kid, again);
    store.close();
    await rm(sub);
  });

  it('publishes no next key when rotation is off', async () => {
    const store = await openSigningKeyStore({ algorithm: 'EdDSA', tokenTtlMs: TTL });
    assert.equal(kids(store).length, 1);
    store.close();
  });

  it('reopens a keys file with the same current key', async () => {
    const file = join(dir, 'reopen', 'keys.json');
    const first = await openSigningKeyStore({
      algorithm: 'EdDSA',
      tokenTtlMs: TTL,
      rotateEveryMs: 24 * 60 * MINUTE,
      file,
    });
    const token = await sign(first, Date.now());
    const jwks = first.jwks();
    first.close();

    const second = await openSigningKeyStore({
      algorithm: 'EdDSA',
      tokenTtlMs: TTL,
      rotateEveryMs: 24 * 60 * MINUTE,
      file,
    });
    assert.equal(second.current().kid, JSON.parse(jwks).keys[0].kid);
    assert.equal(second.jwks(), jwks);
    assert.ok(await verifies(second, token, Date.now()));
    assert.deepEqual(second.warnings, []);
    second.close();
  });

  it('keeps the rotation state across a restart', async () => {
    const c = clock();
    const file = join(dir, 'restart.json');
    const first = await openSigningKeyStore({ algorithm: 'EdDSA', tokenTtlMs: TTL, file, now: c.now });
    const old = first.current().kid;
    await first.rotate();
    const current = first.current().kid;
    first.close();

    const second = await openSigningKeyStore({ algorithm: 'EdDSA', tokenTtlMs: TTL, file, now: c.now });
    assert.equal(second.current().kid, current);
    assert.deepEqual(kids(second), [current, old]);
    second.close();

    c.t += TTL + VERIFY_SKEW_MS;
    const third = await openSigningKeyStore({ algorithm: 'EdDSA', tokenTtlMs: TTL, file, now: c.now });
    assert.deepEqual(kids(third), [current]);
    third.close();
  });

  it('writes the keys file with mode 0600 and no private part for retired keys', async () => {
    const file = join(dir, 'mode.json');
    const store = await openSigningKeyStore({ algorithm: 'ES256', tokenTtlMs: TTL, file });
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    await store.rotate();
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    const saved = JSON.parse(await readFile(file, 'utf8')) as { keys: { state: string; jwk: { d?: string } }[] };
    assert.deepEqual(
      saved.keys.map((k) => [k.state, k.jwk.d !== undefined]),
      [
        ['current', true],
        ['retired', false],
      ],
    );
    store.close();
  });

  it('tightens a keys file readable by group or others to 0600 and reports it as a warning', async () => {
    const file = join(dir, 'loose.json');
    (await openSigningKeyStore({ algorithm: 'EdDSA', tokenTtlMs: TTL, file })).close();
    await chmod(file, 0o644);
    const store = await openSigningKeyStore({ algorithm: 'EdDSA', tokenTtlMs: TTL, file });
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    assert.equal(store.warnings.length, 1);
    assert.match(store.warnings[0]!, /loose\.json.*0644.*0600/);
    store.close();
  });

  it('refuses a corrupt keys file with an error that names the file and shows no key material', async () => {
    const file = join(dir, 'corrupt.json');
    (await openSigningKeyStore({ algorithm: 'EdDSA', tokenTtlMs: TTL, file })).close();
    const good = await readFile(file, 'utf8');
    const d = (JSON.parse(good) as { keys: { jwk: { d: string } }[] }).keys[0]!.jwk.d;

    const cases: [string, RegExp][] = [
      [good.slice(0, good.length / 2), /not valid JSON/],
      [good.replace(/"x": "[^"]+"/, '"x": "AAAA"'), /keys\[0\]: kid does not match/],
      [good.replace('"current"', '"retired"'), /keys\[0\]/],
      [JSON.stringify({ version: 1, keys: [] }), /keys/],
      ['', /not valid JSON/],
    ];
    for (const [text, reason] of cases) {
      await writeFile(file, text, { mode: 0o600 });
      await assert.rejects(openSigningKeyStore({ algorithm: 'EdDSA', tokenTtlMs: TTL, file }), (error: Error) => {
        assert.ok(error.message.includes(file), error.message);
        assert.match(error.message, /corrupt/);
        assert.match(error.message, reason);
        assert.ok(!error.message.includes(d), 'no key material');
        return true;
      });
    }
  });

  it('refuses a keys file whose private part does not pair with its public part', async () => {
    const file = join(dir, 'mismatch.json');
    (await openSigningKeyStore({ algorithm: 'EdDSA', tokenTtlMs: TTL, file })).close();
    const other = JSON.parse(await readFile(file, 'utf8')) as { keys: { jwk: { d: string } }[] };
    const file2 = join(dir, 'mismatch2.json');
    (await openSigningKeyStore({ algorithm: 'EdDSA', tokenTtlMs: TTL, file: file2 })).close();
    const saved = JSON.parse(await readFile(file2, 'utf8')) as { keys: { jwk: { d: string } }[] };
    saved.keys[0]!.jwk.d = other.keys[0]!.jwk.d;
    await writeFile(file2, JSON.stringify(saved));
    await assert.rejects(
      openSigningKeyStore({ algorithm: 'EdDSA', tokenTtlMs: TTL, file: file2 }),
      /does not match the public part/,
    );
  });

  it('rotates to a key of the new algorithm on reconfigure and persists it', async () => {
    const c = clock();
    const file = join(dir, 'reconfigure.json');
    const store = await openSigningKeyStore({
      algorithm: 'EdDSA',
      tokenTtlMs: TTL,
      rotateEveryMs: 60 * MINUTE,
      file,
      now: c.now,
    });
    const old = store.current().kid;
    const token = await sign(store, c.t);

    await store.reconfigure({ algorithm: 'ES256', tokenTtlMs: TTL, rotateEveryMs: 60 * MINUTE });
    assert.equal(store.current().alg, 'ES256');
    assert.notEqual(store.current().kid, old);
    const { keys } = JSON.parse(store.jwks()) as JSONWebKeySet;
    assert.deepEqual(
      keys.map((k) => k.alg),
      ['ES256', 'ES256', 'EdDSA'],
      'current, next, and the retired EdDSA key; the unused EdDSA next key is gone',
    );
    assert.ok(await verifies(store, token, c.t));
    assert.ok(await verifies(store, await sign(store, c.t), c.t));
    const kid = store.current().kid;
    store.close();

    const reopened = await openSigningKeyStore({
      algorithm: 'ES256',
      tokenTtlMs: TTL,
      rotateEveryMs: 60 * MINUTE,
      file,
      now: c.now,
    });
    assert.equal(reopened.current().kid, kid);
    reopened.close();
  });

  it('rotates on open when the file holds a key of another algorithm', async () => {
    const file = join(dir, 'switch.json');
    const first = await openSigningKeyStore({ algorithm: 'EdDSA', tokenTtlMs: TTL, file });
    const old = first.current().kid;
    first.close();
    const second = await openSigningKeyStore({ algorithm: 'ES256', tokenTtlMs: TTL, file });
    assert.equal(second.current().alg, 'ES256');
    assert.deepEqual(kids(second), [second.current().kid, old]);
    second.close();
  });

  it('keeps a retired key published for the longest token lifetime it signed under', async () => {
    const c = clock();
    const store = await openSigningKeyStore({ algorithm: 'EdDSA', tokenTtlMs: 60 * MINUTE, now: c.now });
    const old = store.current().kid;
    await store.reconfigure({ algorithm: 'EdDSA', tokenTtlMs: TTL });
    await store.rotate();
    c.t += TTL + VERIFY_SKEW_MS;
    assert.ok(kids(store).includes(old));
    c.t += 60 * MINUTE - TTL;
    assert.ok(!kids(store).includes(old));
    store.close();
  });

  it('refuses invalid options', async () => {
    await assert.rejects(openSigningKeyStore({ algorithm: 'RS256' as 'EdDSA', tokenTtlMs: TTL }), /EdDSA or ES256/);
    await assert.rejects(openSigningKeyStore({ algorithm: 'EdDSA', tokenTtlMs: 0 }), /tokenTtlMs/);
    await assert.rejects(
      openSigningKeyStore({ algorithm: 'EdDSA', tokenTtlMs: TTL, rotateEveryMs: -1 }),
      /rotateEveryMs/,
    );
  });
});
