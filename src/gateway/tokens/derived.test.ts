import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import {
  ancestorShares,
  derivationSecret,
  encodeDerived,
  hmacSha256,
  shareChain,
  verifyDerived,
  type DerivedClaims,
} from './derived.ts';

const claims = { k: 'kid-1', p: 'a'.repeat(64), e: 2_000_000_000, s: ['invoices:read'], d: 1, a: { sub: 'agent' } };

describe('derived credentials', () => {
  it('hmacSha256 equals node:crypto createHmac', () => {
    for (const length of [0, 1, 63, 64, 65, 300]) {
      const secret = randomBytes(32);
      const message = randomBytes(length).toString('base64url');
      assert.deepEqual(hmacSha256(secret, message), createHmac('sha256', secret).update(message).digest());
    }
  });

  it('verifies what it encodes, and nothing altered, re-keyed or from another key', () => {
    const secret = derivationSecret(randomBytes(32).toString('base64url'), 'kid-1');
    const minted = encodeDerived(claims, secret);
    assert.match(minted.token, /^ghd_[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}$/);
    assert.deepEqual(verifyDerived(minted.token, 'kid-1', secret)?.s, ['invoices:read']);
    assert.equal(verifyDerived(minted.token, 'kid-2', secret), undefined, 'another kid');
    assert.equal(verifyDerived(minted.token, 'kid-1', randomBytes(32)), undefined, 'another secret');
    const [payload, mac] = minted.token.slice(4).split('.') as [string, string];
    const wider = Buffer.from(
      JSON.stringify({ ...JSON.parse(Buffer.from(payload, 'base64url').toString()), s: ['*'] }),
    );
    assert.equal(verifyDerived(`ghd_${wider.toString('base64url')}.${mac}`, 'kid-1', secret), undefined, 'altered');
    assert.equal(verifyDerived(`ghd_${payload}`, 'kid-1', secret), undefined, 'no MAC');
    assert.equal(verifyDerived(`ghd_${payload}.${mac.slice(1)}`, 'kid-1', secret), undefined, 'short MAC');
    // The secret depends on the signing key and its kid.
    assert.notDeepEqual(derivationSecret('AAAA', 'a'), derivationSecret('AAAA', 'b'));
  });

  it("lists a credential's own share and its ancestors' narrowest first; one minted without cl has its own only", () => {
    const base: DerivedClaims = { v: 1, j: 'own', ...claims, d: 3, c: ['a1', 'a2'] };
    assert.deepEqual(
      shareChain({ ...base, l: 0.125, cl: [0.5, 0.25] }).map((c) => [c.id, c.depth, c.own]),
      [
        ['own', 3, true],
        ['a2', 2, false],
        ['a1', 1, false],
      ],
    );
    assert.deepEqual(
      shareChain({ ...base, l: 0.25, cl: [null, 0.5] }).map((c) => c.id),
      ['own', 'a2'],
    );
    assert.deepEqual(
      shareChain({ ...base, l: 0.25 }).map((c) => c.id),
      ['own'],
      'minted before cl',
    );
    assert.deepEqual(shareChain(base), []);
    // A child's cl: the parent's own, after its ancestors' (unknown ones null for a parent minted before cl).
    assert.deepEqual(ancestorShares({ ...base, l: 0.125, cl: [0.5, 0.25] }), [0.5, 0.25, 0.125]);
    assert.deepEqual(ancestorShares({ ...base, l: 0.125 }), [null, null, 0.125]);
    assert.equal(ancestorShares(base), undefined);
  });
});
