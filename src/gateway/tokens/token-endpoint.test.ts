import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { generateKey } from '../../shared/api-key.ts';
import { blockList } from '../../shared/block-list.ts';
import { KeyEntry, type Principal } from '../snapshot/compiled.ts';
import { openSigningKeyStore } from './keystore.ts';
import { shareChain } from './derived.ts';
import { CredentialRevocations } from './revocations.ts';
import { DerivedVerifier, TokenEndpoint } from './token-endpoint.ts';

const NOW = 1_800_000_000_000;
const store = await openSigningKeyStore({ algorithm: 'EdDSA', tokenTtlMs: 300_000, now: () => NOW });
after(() => store.close());

function setup(principal: Partial<Principal>, keyExpiresAt = Infinity) {
  const { key, hash } = generateKey();
  const p = {
    kind: 'client',
    id: 'c-1',
    role: { name: 'r', permissions: ['invoices:*'], endpointIds: new Set<string>() },
    environments: new Set(['PROD']),
    projects: new Set(['p']),
    allowedIps: undefined,
    userId: undefined,
    orgId: undefined,
    metadata: undefined,
    limits: {},
    expiresAt: Infinity,
    disabled: false,
    email: undefined,
    ...principal,
  } as Principal;
  const keys = new Map([[hash, new KeyEntry(p, hash, keyExpiresAt, undefined)]]);
  const verifier = new DerivedVerifier(keys, store, () => NOW);
  const endpoint = new TokenEndpoint(keys, store, { maxTtlMs: 3_600_000, maxDepth: 2 }, verifier, () => NOW);
  const exchange = (subject: string, extra: Record<string, string> = {}, ip = '127.0.0.1') =>
    endpoint.exchange(
      new URLSearchParams({
        grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
        subject_token: subject,
        subject_token_type: 'urn:ietf:params:oauth:token-type:access_token',
        agent_id: 'a',
        ...extra,
      }),
      ip,
    );
  return { key, exchange, verifier, keys };
}

describe('token endpoint', () => {
  it("refuses a lifetime beyond the parent key's expiry and defaults to what is left of it", () => {
    const { key, exchange } = setup({}, NOW + 100_000);
    const refused = exchange(key, { expires_in: '200' });
    assert.equal(refused.status, 400);
    assert.match(String(refused.body.error_description), /outlives the parent credential, which expires in 100s/);
    assert.equal(exchange(key).body.expires_in, 100);
    // A client that expires sooner bounds it too.
    const sooner = setup({ expiresAt: NOW + 30_000 });
    assert.equal(sooner.exchange(sooner.key).body.expires_in, 30);
  });

  it("keeps IPv4 and IPv6 ranges within the parent's, and refuses a mint from outside them", () => {
    const { key, exchange } = setup({
      allowedIps: blockList(['10.0.0.0/8', '2001:db8::/32']),
      allowedIpRanges: ['10.0.0.0/8', '2001:db8::/32'],
    });
    assert.equal(exchange(key, { ip_ranges: '10.1.0.0/16 2001:db8:1::/48 10.2.3.4' }, '10.0.0.1').status, 200);
    for (const wider of ['10.0.0.0/7', '11.0.0.0/8', '2001:db8::/31', '::/0', '0.0.0.0/0'])
      assert.equal(exchange(key, { ip_ranges: wider }, '10.0.0.1').body.code, 'GH_ERR_DERIVED_WIDENING', wider);
    assert.equal(exchange(key, { ip_ranges: '10.0.0.0/33' }, '10.0.0.1').body.code, 'GH_ERR_DERIVED_REQUEST_INVALID');
    assert.equal(exchange(key, {}, '192.0.2.1').body.code, 'GH_ERR_AUTH_IP_NOT_ALLOWED');
  });

  it('narrows a delegated credential within its parent credential, not the key', () => {
    const { key, exchange, verifier } = setup({});
    const first = String(
      exchange(key, { scope: 'invoices:read', expires_in: '60', ip_ranges: '10.0.0.0/24' }).body.access_token,
    );
    const resolved = verifier.resolve(first);
    assert.ok(!('code' in resolved));
    assert.equal(exchange(first, { scope: 'invoices:write' }, '10.0.0.1').body.error, 'invalid_scope');
    assert.equal(exchange(first, { expires_in: '61' }, '10.0.0.1').body.code, 'GH_ERR_DERIVED_WIDENING');
    assert.equal(exchange(first, { ip_ranges: '10.0.0.0/16' }, '10.0.0.1').body.code, 'GH_ERR_DERIVED_WIDENING');
    assert.equal(exchange(first, {}, '10.0.1.1').body.code, 'GH_ERR_AUTH_IP_NOT_ALLOWED');
    const second = exchange(first, {}, '10.0.0.1');
    assert.equal(second.status, 200);
    assert.equal(second.body.scope, 'invoices:read');
    assert.equal(second.body.expires_in, 60);
    assert.equal(exchange(String(second.body.access_token), {}, '10.0.0.1').body.code, 'GH_ERR_DERIVED_DEPTH');
  });

  it("carries the ancestors' limit shares parallel to their ids, so that a delegate counts against each", () => {
    const { key, exchange, verifier } = setup({});
    const claimsOf = (token: unknown) => {
      const resolved = verifier.resolve(String(token));
      assert.ok(!('code' in resolved), String(token));
      return resolved.claims;
    };
    const parent = exchange(key, { limit_share: '0.5' }).body;
    assert.equal(claimsOf(parent.access_token).cl, undefined, 'minted from the API key: no ancestor');
    const child = exchange(String(parent.access_token), { limit_share: '0.5' }).body;
    const claims = claimsOf(child.access_token);
    assert.deepEqual([claims.c, claims.cl, claims.l], [[parent.credential_id], [0.5], 0.25]);
    assert.deepEqual(
      shareChain(claims).map((c) => [c.id, c.share, c.depth, c.own]),
      [
        [child.credential_id, 0.25, 2, true],
        [parent.credential_id, 0.5, 1, false],
      ],
    );
    // An ancestor without a share takes no place in the chain, and none at all leaves the claim out.
    const plain = exchange(key).body;
    const under = claimsOf(exchange(String(plain.access_token), { limit_share: '0.25' }).body.access_token);
    assert.deepEqual([under.cl, shareChain(under).map((c) => c.share)], [undefined, [0.25]]);
  });

  it('revokes one credential by id with those delegated from it, or an agent (session) minted before a moment', () => {
    const { key, exchange, keys } = setup({});
    const mint = (subject: string, extra: Record<string, string> = {}) => {
      const body = exchange(subject, extra).body;
      return { token: String(body.access_token), id: String(body.credential_id) };
    };
    const one = mint(key, { agent_id: 'planner', agent_session: 's-1' });
    const other = mint(key, { agent_id: 'planner', agent_session: 's-2' });
    const child = mint(one.token, { agent_id: 'renderer' });
    const at = (ms: number) => new Date(NOW + ms).toISOString();
    const later = at(3_600_000);
    const decide = (list: ConstructorParameters<typeof CredentialRevocations>[0], token: string) => {
      const resolved = new DerivedVerifier(keys, store, () => NOW, new CredentialRevocations(list, () => NOW)).resolve(
        token,
      );
      return 'code' in resolved ? resolved.code : 'ok';
    };
    const byId = [{ id: 'r1', client: 'c-1', credential: one.id, expiresAt: later }];
    assert.equal(decide(byId, one.token), 'GH_ERR_DERIVED_REVOKED');
    assert.equal(decide(byId, child.token), 'GH_ERR_DERIVED_REVOKED', 'delegated from a revoked credential');
    assert.equal(decide(byId, other.token), 'ok');
    // Another client's revocation, or one past its expiry, matches nothing.
    assert.equal(decide([{ ...byId[0]!, client: 'c-2' }], one.token), 'ok');
    assert.equal(decide([{ ...byId[0]!, expiresAt: at(0) }], one.token), 'ok');

    const session = [
      { id: 'r2', client: 'c-1', agent: 'planner', session: 's-2', issuedBefore: at(1), expiresAt: later },
    ];
    assert.equal(decide(session, other.token), 'GH_ERR_DERIVED_REVOKED');
    assert.equal(decide(session, one.token), 'ok', 'another session of the agent');
    const agent = [{ id: 'r3', client: 'c-1', agent: 'planner', issuedBefore: at(1), expiresAt: later }];
    for (const t of [one, other, child]) assert.equal(decide(agent, t.token), 'GH_ERR_DERIVED_REVOKED');
    // Minted at or after the moment: a new credential for the same agent works.
    assert.equal(decide([{ ...agent[0]!, issuedBefore: at(0) }], one.token), 'ok');
  });
});
