/**
 * Token-signing keys are the control plane's, per workspace environment: a real `gatehouse control start`, one edge
 * gateway bootstrapped once and run as two `gatehouse gateway run` processes (each with its own copy of the
 * directory, as replicas behind one Service). Both replicas sign with the same key and serve the same JWKS, which
 * the cloud gateway also serves at `${iss}/.well-known/jwks.json`; the admin API never shows a private key.
 */
import assert from 'node:assert/strict';
import { cp as copyDir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { startDemoUpstream } from '../src/demo/upstream.ts';
import { type AdminApi, type ControlProcess, startControlPlane } from './control-helpers.ts';
import { createAndBootstrap, deployOrders, type EdgeProcess, startEdge } from './edge-helpers.ts';
import { startUpstream, type Upstream } from './helpers.ts';
import { eventually } from '../src/testing/eventually.ts';

const WS = '/workspaces/default';
const PROD = `${WS}/environments/PROD`;
const AUDIENCE = 'urn:gatehouse:default:prod';

describe('edge gateways: signing keys shared by every replica and the cloud gateway', () => {
  let upstream: Upstream;
  let dataDir: string;
  let work: string;
  let cp: ControlProcess;
  let admin: AdminApi;
  let token: string;
  const edges: EdgeProcess[] = [];

  /** The JWT the upstream received for a request through `gw`. */
  const jwtThrough = async (gw: EdgeProcess): Promise<string> => {
    const res = await fetch(`${gw.url}/orders/items`, { headers: { authorization: `Bearer ${token}` } });
    const body = await res.text();
    assert.equal(res.status, 200, body);
    return (JSON.parse(body) as { headers: { authorization: string } }).headers.authorization.replace(/^Bearer /, '');
  };

  before(async () => {
    upstream = await startUpstream();
    dataDir = await mkdtemp(join(tmpdir(), 'gatehouse-cp-keys-'));
    work = await mkdtemp(join(tmpdir(), 'gatehouse-edge-keys-'));
    cp = await startControlPlane({ dataDir, extraArgs: ['--bootstrap-port', '0', '--sync-port', '0'] });
    admin = cp.api();
    await createAndBootstrap(admin, 'eu-1', join(work, 'gw'));
    ({ token } = await deployOrders(admin, upstream.url, 'eu-1'));

    // Bootstrapped once, run twice: each replica gets its own copy of the directory.
    for (const i of [1, 2]) await copyDir(join(work, 'gw'), join(work, `gw-${i}`), { recursive: true });
    for (const i of [1, 2]) edges.push(await startEdge(join(work, `gw-${i}`)));
    for (const edge of edges) await edge.waitFor(/"config applied from the control plane"/);
  });
  after(async () => {
    for (const edge of edges) await edge.stop();
    await cp?.stop();
    await upstream?.close();
    await rm(work, { recursive: true, force: true });
    await rm(dataDir, { recursive: true, force: true });
  });

  it('both replicas serve the same JWKS, also served by the cloud gateway at ${iss}/.well-known/jwks.json', async () => {
    const [one, two] = await Promise.all(
      edges.map(async (e) => (await fetch(`${e.url}/.well-known/jwks.json`)).text()),
    );
    assert.equal(one, two);
    const keys = (JSON.parse(one!) as { keys: { kid: string; d?: string }[] }).keys;
    assert.equal(keys.length, 1);
    assert.equal(keys[0]!.d, undefined, 'no private part in a JWKS');
    const issuer = `${cp.gatewayUrl}/default/prod`;
    const tenant = (await (await fetch(`${issuer}/.well-known/jwks.json`)).json()) as { keys: { kid: string }[] };
    assert.deepEqual(
      tenant.keys.map((k) => k.kid),
      [keys[0]!.kid],
    );
    const all = (await (await fetch(`${cp.gatewayUrl}/.well-known/jwks.json`)).json()) as { keys: { kid: string }[] };
    assert.ok(
      all.keys.some((k) => k.kid === keys[0]!.kid),
      'the cloud gateway JWKS holds every tenant key',
    );
    assert.equal((await fetch(`${cp.gatewayUrl}/nobody/prod/.well-known/jwks.json`)).status, 404);
  });

  it("a token minted by one replica verifies against the other's JWKS and the cloud gateway's, and vice versa", async () => {
    const issuer = `${cp.gatewayUrl}/default/prod`;
    const jwksOf = (url: string) => createRemoteJWKSet(new URL(`${url}/.well-known/jwks.json`));
    const [jwt1, jwt2] = [await jwtThrough(edges[0]!), await jwtThrough(edges[1]!)];
    assert.equal(decodeProtectedHeader(jwt1).kid, decodeProtectedHeader(jwt2).kid);
    for (const [jwt, other] of [
      [jwt1, edges[1]!],
      [jwt2, edges[0]!],
    ] as const) {
      for (const jwks of [jwksOf(other.url), jwksOf(issuer), jwksOf(cp.gatewayUrl)]) {
        const { payload } = await jwtVerify(jwt, jwks, { issuer, audience: AUDIENCE });
        assert.equal(payload.iss, issuer);
      }
    }
    // The demo upstream verifying against the cloud gateway's JWKS accepts a token minted at the edge.
    const backend = await startDemoUpstream({
      host: '127.0.0.1',
      port: 0,
      jwksUrl: `${cp.gatewayUrl}/.well-known/jwks.json`,
      issuer,
      audience: AUDIENCE,
    });
    try {
      const res = await fetch(`http://127.0.0.1:${backend.address.port}/orders/items`, {
        headers: { authorization: `Bearer ${jwt1}` },
      });
      await res.arrayBuffer();
      assert.equal(res.status, 200);
    } finally {
      await new Promise<void>((r) => backend.server.close(() => r()));
    }
  });

  it('a derived credential minted at the cloud gateway or one replica is verified in-process by every gateway of the environment', async () => {
    const mint = async (url: string, subject: string, agent: string) => {
      const res = await fetch(`${url}/oauth2/token`, {
        method: 'POST',
        body: new URLSearchParams({
          grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
          subject_token: subject,
          subject_token_type: 'urn:ietf:params:oauth:token-type:access_token',
          agent_id: agent,
          scope: 'orders:read',
        }),
      });
      const body = (await res.json()) as Record<string, unknown>;
      assert.equal(res.status, 200, JSON.stringify(body));
      return String(body.access_token);
    };
    const issuer = `${cp.gatewayUrl}/default/prod`;
    const atCloud = await mint(issuer, token, 'cloud-agent');
    // The cloud gateway answers only under a tenant's prefix.
    assert.equal((await fetch(`${cp.gatewayUrl}/nobody/prod/oauth2/token`, { method: 'POST' })).status, 404);
    const atEdge = await mint(edges[0]!.url, token, 'edge-agent');
    for (const [credential, agent] of [
      [atCloud, 'cloud-agent'],
      [atEdge, 'edge-agent'],
    ] as const) {
      for (const edge of edges) {
        const res = await fetch(`${edge.url}/orders/items`, { headers: { authorization: `Bearer ${credential}` } });
        const body = await res.text();
        assert.equal(res.status, 200, body);
        const jwt = (JSON.parse(body) as { headers: { authorization: string } }).headers.authorization.slice(7);
        const { payload } = await jwtVerify(jwt, createRemoteJWKSet(new URL(`${issuer}/.well-known/jwks.json`)), {
          issuer,
          audience: AUDIENCE,
        });
        assert.deepEqual(payload.act, { sub: agent });
      }
    }
  });

  it('the admin snapshot endpoint shows the public keys only', async () => {
    for (const target of ['cloud', 'edge:eu-1']) {
      const res = await admin.get(`${PROD}/snapshot?target=${target}`);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      const text = JSON.stringify(res.body);
      assert.doesNotMatch(text, /"d":/, `no private JWK member in the ${target} snapshot`);
      assert.doesNotMatch(text, /privateJwk/);
      const keys = res.body.snapshot.signingKeys as {
        active: string;
        keys: { kid: string; publicJwk: { x: string } }[];
      };
      assert.equal(keys.keys[0]!.kid, keys.active);
      assert.ok(keys.keys[0]!.publicJwk.x);
    }
  });

  it('revoking one derived credential through the admin API ends it at every replica within 1 s; its sibling works', async () => {
    const mint = async (agent: string) => {
      const res = await fetch(`${edges[0]!.url}/oauth2/token`, {
        method: 'POST',
        body: new URLSearchParams({
          grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
          subject_token: token,
          subject_token_type: 'urn:ietf:params:oauth:token-type:access_token',
          agent_id: agent,
        }),
      });
      return (await res.json()) as { access_token: string; credential_id: string };
    };
    const [doomed, sibling] = [await mint('leaky-agent'), await mint('careful-agent')];
    const codeAt = async (edge: EdgeProcess, credential: string) => {
      const r = await fetch(`${edge.url}/orders/items`, { headers: { authorization: `Bearer ${credential}` } });
      return `${r.status} ${((await r.json()) as { code?: string }).code ?? ''}`.trim();
    };
    for (const edge of edges) assert.equal(await codeAt(edge, doomed.access_token), '200');
    const clients = (await admin.get(`${WS}/clients`)).body.items as { id: string; name: string }[];
    const clientId = clients.find((c) => c.name === 'shop')!.id;
    const started = performance.now();
    const revoked = await admin.post(`${WS}/clients/${clientId}/derived-credential-revocations`, {
      credential: doomed.credential_id,
    });
    assert.equal(revoked.status, 201, JSON.stringify(revoked.body));
    await eventually(
      async () =>
        (await Promise.all(edges.map((e) => codeAt(e, doomed.access_token)))).every(
          (c) => c === '401 GH_ERR_DERIVED_REVOKED',
        ),
      10_000,
      'the revoked credential refused at both replicas',
      5,
    );
    const ms = performance.now() - started;
    assert.ok(ms < 1000, `refused at every replica ${Math.round(ms)} ms after the revocation was asked for`);
    for (const edge of edges) assert.equal(await codeAt(edge, sibling.access_token), '200');
  });

  it('regenerating the parent key through the admin API ends its derived credentials at every replica', async () => {
    const res = await fetch(`${edges[0]!.url}/oauth2/token`, {
      method: 'POST',
      body: new URLSearchParams({
        grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
        subject_token: token,
        subject_token_type: 'urn:ietf:params:oauth:token-type:access_token',
        agent_id: 'doomed-agent',
      }),
    });
    const credential = String(((await res.json()) as { access_token: string }).access_token);
    const codeAt = async (edge: EdgeProcess) => {
      const r = await fetch(`${edge.url}/orders/items`, { headers: { authorization: `Bearer ${credential}` } });
      return `${r.status} ${((await r.json()) as { code?: string }).code ?? ''}`.trim();
    };
    for (const edge of edges) assert.equal(await codeAt(edge), '200');
    const clients = (await admin.get(`${WS}/clients`)).body.items as { id: string; name: string }[];
    const clientId = clients.find((c) => c.name === 'shop')!.id;
    const regenerated = await admin.post(`${WS}/clients/${clientId}/regenerate`);
    assert.equal(regenerated.status, 200, JSON.stringify(regenerated.body));
    const ms = await eventually(
      async () => (await Promise.all(edges.map(codeAt))).every((c) => c === '401 GH_ERR_DERIVED_PARENT_REVOKED'),
      10_000,
      'the derived credential refused at both replicas',
    );
    assert.ok(ms < 10_000);
  });
});
