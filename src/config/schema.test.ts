import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, parseGatewayFile } from './load.ts';
import { formatPath, grantsPermission, SnapshotSchema } from './schema.ts';

const base = {
  tokenExchange: { issuer: 'https://gw', audience: 'api' },
  collections: [{ name: 'billing', basePath: '/billing', upstream: 'http://127.0.0.1:9000', project: 'p', environment: 'PROD', endpoints: [{ method: 'GET', path: '/orgs/{id}', permission: 'orgs:read' }] }],
  roles: [{ name: 'reader', permissions: ['orgs:read'] }],
  clients: [{ id: 'c1', role: 'reader', environments: ['PROD'], projects: ['p'], keys: [{ hash: `sha256:${'a'.repeat(64)}` }] }],
};

function errorOf(config: unknown, file = 'gw.json'): string {
  try {
    parseGatewayFile(JSON.stringify(config), file);
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    return error.message;
  }
  assert.fail('the config was accepted');
}

describe('the gateway config file', () => {
  it('accepts a minimal file and fills in defaults', () => {
    const config = parseGatewayFile(JSON.stringify(base), 'gw.json');
    assert.equal(config.server.listen.port, 8080);
    assert.equal(config.server.ops.host, '127.0.0.1');
    assert.equal(config.tokenExchange.ttl, 300_000);
    assert.equal(config.tokenExchange.algorithm, 'EdDSA');
    assert.equal(config.collections[0]!.upstream.headersTimeout, 30_000);
    assert.equal(config.clients[0]!.keys[0]!.hash, 'a'.repeat(64));
    assert.equal(config.clients[0]!.status, 'active');
  });

  it('binds the ops listener to loopback even when only its port is given', () => {
    const config = parseGatewayFile(JSON.stringify({ ...base, server: { ops: { port: 9999 } } }), 'gw.json');
    assert.equal(config.server.ops.host, '127.0.0.1');
  });

  it('names the file and the field path of an unknown role', () => {
    const message = errorOf({ ...base, clients: [{ ...base.clients[0], role: 'ghost' }] });
    assert.match(message, /^gw\.json: invalid configuration/);
    assert.match(message, /clients\[0\]\.role: unknown role "ghost"/);
  });

  it('refuses conflicting base paths, duplicate names and duplicate key hashes', () => {
    const c = base.collections[0]!;
    assert.match(errorOf({ ...base, collections: [c, { ...c, name: 'other' }] }), /collections\[1\]\.basePath: base path "\/billing" is already used by collection "billing"/);
    assert.match(errorOf({ ...base, roles: [base.roles[0], base.roles[0]] }), /roles\[1\]\.name: duplicate role name/);
    assert.match(errorOf({ ...base, clients: [base.clients[0], { ...base.clients[0], id: 'c2' }] }), /clients\[1\]\.keys\[0\]\.hash: this key hash is already used/);
  });

  it('refuses role grants of endpoints that do not exist', () => {
    const roles = [{ name: 'reader', endpoints: [{ collection: 'billing', method: 'POST', path: '/orgs/{id}' }] }];
    assert.match(errorOf({ ...base, roles }), /roles\[0\]\.endpoints\[0\]: collection "billing" has no endpoint POST \/orgs\/\{id\}/);
  });

  it('refuses bad values with a message saying what is expected', () => {
    const c = base.collections[0]!;
    assert.match(errorOf({ ...base, collections: [{ ...c, upstream: 'ftp://x' }] }), /collections\[0\]\.upstream\.url: must be an http:\/\/ or https:\/\/ URL/);
    assert.match(errorOf({ ...base, collections: [{ ...c, basePath: '/billing/' }] }), /collections\[0\]\.basePath/);
    assert.match(errorOf({ ...base, collections: [{ ...c, endpoints: [{ method: 'GET', path: '/a/../b', permission: 'x' }] }] }), /collections\[0\]\.endpoints\[0\]\.path: invalid segment/);
    assert.match(errorOf({ ...base, collections: [{ ...c, endpoints: [{ method: 'GET', path: '/a%3Bb', permission: 'x' }] }] }), /invalid segment/);
    assert.match(errorOf({ ...base, clients: [{ ...base.clients[0], allowedIps: ['10.0.0.0/33'] }] }), /clients\[0\]\.allowedIps\[0\]: must be a CIDR range/);
    assert.match(errorOf({ ...base, clients: [{ ...base.clients[0], keys: [{ hash: 'abc' }] }] }), /clients\[0\]\.keys\[0\]\.hash: must be a SHA-256 hash/);
    assert.match(errorOf({ ...base, tokenExchange: { ...base.tokenExchange, ttl: '500ms' } }), /tokenExchange\.ttl: must be at least 1s/);
    assert.match(errorOf({ ...base, rateLimits: { key: { limit: 10, window: '10 minutes' } } }), /rateLimits\.key\.window: invalid duration/);
    assert.match(errorOf({ ...base, surprise: true }), /Unrecognized key/);
  });

  it('accepts "*" for all environments or all projects of a client, and still checks the names beside it', () => {
    const config = parseGatewayFile(JSON.stringify({ ...base, clients: [{ ...base.clients[0], environments: ['*'], projects: ['*'] }] }), 'gw.json');
    assert.deepEqual(config.clients[0]!.environments, ['*']);
    assert.deepEqual(config.clients[0]!.projects, ['*']);
    assert.match(errorOf({ ...base, clients: [{ ...base.clients[0], environments: ['prod'] }] }), /clients\[0\]\.environments\[0\]: must be an upper-case environment name/);
    assert.match(errorOf({ ...base, clients: [{ ...base.clients[0], environments: ['*', 'prod'] }] }), /clients\[0\]\.environments\[1\]: must be an upper-case environment name/);
    assert.match(errorOf({ ...base, clients: [{ ...base.clients[0], projects: ['p*'] }] }), /clients\[0\]\.projects\[0\]/);
    assert.match(errorOf({ ...base, legacyClients: [{ ...base.clients[0], id: 'l1', keys: undefined, email: 'a@b.example', keyHash: 'b'.repeat(64), environments: ['**'] }] }), /legacyClients\[0\]\.environments\[0\]/);
  });

  it('reports a YAML syntax error with its line and column', () => {
    assert.throws(() => parseGatewayFile('collections:\n  - name: [unclosed\n', 'gw.yaml'), (error: Error) => error instanceof ConfigError && /gw\.yaml: invalid YAML at line \d+, column \d+/.test(error.message));
  });
});

describe('a role permission', () => {
  it('grants its own name, and "*" grants everything', () => {
    assert.equal(grantsPermission('invoices:read', 'invoices:read'), true);
    assert.equal(grantsPermission('invoices:read', 'invoices:write'), false);
    assert.equal(grantsPermission('*', 'admin:clients:write'), true);
  });

  it('ending in ":*" grants every permission that starts with what comes before the "*"', () => {
    assert.equal(grantsPermission('invoices:*', 'invoices:read'), true);
    assert.equal(grantsPermission('invoices:*', 'invoices:items:write'), true);
    assert.equal(grantsPermission('admin:*', 'admin:clients:write'), true);
    assert.equal(grantsPermission('invoices:*', 'invoices'), false);
    assert.equal(grantsPermission('invoices:*', 'invoicesx:read'), false);
    assert.equal(grantsPermission('invoices:*', 'billing:invoices:read'), false);
  });

  it('with a "*" anywhere else is an ordinary name', () => {
    assert.equal(grantsPermission('invoices*', 'invoices:read'), false);
    assert.equal(grantsPermission('*:read', 'invoices:read'), false);
    assert.equal(grantsPermission('invoices:*:read', 'invoices:x:read'), false);
    assert.equal(grantsPermission('invoices:*:read', 'invoices:*:read'), true);
  });
});

describe("a snapshot's signing keys", () => {
  const snapshot = { tokenExchange: { issuer: 'https://gw', audience: 'api' } };
  const ed = { kty: 'OKP', crv: 'Ed25519', x: 'eA', d: 'ZA' } as const;
  const ec = { kty: 'EC', crv: 'P-256', x: 'eA', y: 'eQ', d: 'ZA' } as const;
  const issues = (signingKeys: unknown, algorithm = 'EdDSA') => {
    const result = SnapshotSchema.safeParse({ ...snapshot, tokenExchange: { ...snapshot.tokenExchange, algorithm }, signingKeys });
    return result.success ? [] : result.error.issues.map((i) => `${formatPath(i.path)}: ${i.message}`);
  };

  it('are optional, and accepted when the active key is listed with the token algorithm', () => {
    assert.deepEqual(issues(undefined), []);
    assert.deepEqual(issues({ active: 'k1', keys: [{ kid: 'k1', alg: 'EdDSA', privateJwk: ed }] }), []);
    assert.deepEqual(issues({ active: 'k2', keys: [{ kid: 'k1', alg: 'EdDSA', privateJwk: ed }, { kid: 'k2', alg: 'ES256', privateJwk: ec }] }, 'ES256'), []);
  });

  it('must list the active key, with the algorithm of tokenExchange', () => {
    assert.deepEqual(issues({ active: 'k9', keys: [{ kid: 'k1', alg: 'EdDSA', privateJwk: ed }] }), ['signingKeys.active: names no key of signingKeys.keys ("k9")']);
    assert.deepEqual(issues({ active: 'k1', keys: [{ kid: 'k1', alg: 'EdDSA', privateJwk: ed }] }, 'ES256'), ['signingKeys.keys[0].alg: the active key is EdDSA, but tokenExchange.algorithm is ES256']);
  });

  it('refuses duplicate kids, keys that do not fit their algorithm, missing private parts and unknown members', () => {
    assert.deepEqual(issues({ active: 'k1', keys: [{ kid: 'k1', alg: 'EdDSA', privateJwk: ed }, { kid: 'k1', alg: 'EdDSA', privateJwk: ed }] }), ['signingKeys.keys[1].kid: duplicate kid "k1"']);
    assert.deepEqual(issues({ active: 'k1', keys: [{ kid: 'k1', alg: 'EdDSA', privateJwk: ec }] }), ['signingKeys.keys[0].privateJwk: is not an EdDSA key (expected kty OKP, crv Ed25519)']);
    const { d: _d, ...publicOnly } = ed;
    assert.equal(issues({ active: 'k1', keys: [{ kid: 'k1', alg: 'EdDSA', privateJwk: publicOnly }] })[0]?.startsWith('signingKeys.keys[0].privateJwk.d:'), true);
    assert.match(issues({ active: 'k1', keys: [{ kid: 'k1', alg: 'EdDSA', privateJwk: { ...ed, p: 'x' } }] }).join('\n'), /^signingKeys\.keys\[0\]\.privateJwk: .*"p"/);
    assert.match(issues({ active: 'k1', keys: [] }).join('\n'), /^signingKeys\.keys: /);
  });

  it('are not accepted in a gateway config file, which keeps its local key store', () => {
    assert.match(errorOf({ ...base, signingKeys: { active: 'k1', keys: [{ kid: 'k1', alg: 'EdDSA', privateJwk: ed }] } }), /signingKeys/);
  });
});
