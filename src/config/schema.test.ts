import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, parseGatewayFile } from './load.ts';
import { grantsPermission } from '../shared/permissions.ts';
import { formatPath, SnapshotSchema } from './schema.ts';

const base = {
  tokenExchange: { issuer: 'https://gw', audience: 'api' },
  collections: [
    {
      name: 'billing',
      basePath: '/billing',
      upstream: 'http://127.0.0.1:9000',
      project: 'p',
      environment: 'PROD',
      endpoints: [{ method: 'GET', path: '/orgs/{id}', permission: 'orgs:read' }],
    },
  ],
  roles: [{ name: 'reader', permissions: ['orgs:read'] }],
  clients: [
    { id: 'c1', role: 'reader', environments: ['PROD'], projects: ['p'], keys: [{ hash: `sha256:${'a'.repeat(64)}` }] },
  ],
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
    assert.match(
      errorOf({ ...base, collections: [c, { ...c, name: 'other' }] }),
      /collections\[1\]\.basePath: base path "\/billing" is already used by collection "billing"/,
    );
    assert.match(errorOf({ ...base, roles: [base.roles[0], base.roles[0]] }), /roles\[1\]\.name: duplicate role name/);
    assert.match(
      errorOf({ ...base, clients: [base.clients[0], { ...base.clients[0], id: 'c2' }] }),
      /clients\[1\]\.keys\[0\]\.hash: this key hash is already used/,
    );
  });

  it('refuses role grants of endpoints that do not exist', () => {
    const roles = [{ name: 'reader', endpoints: [{ collection: 'billing', method: 'POST', path: '/orgs/{id}' }] }];
    assert.match(
      errorOf({ ...base, roles }),
      /roles\[0\]\.endpoints\[0\]: collection "billing" has no endpoint POST \/orgs\/\{id\}/,
    );
  });

  it('refuses bad values with a message saying what is expected', () => {
    const c = base.collections[0]!;
    assert.match(
      errorOf({ ...base, collections: [{ ...c, upstream: 'ftp://x' }] }),
      /collections\[0\]\.upstream\.url: must be an http:\/\/ or https:\/\/ URL/,
    );
    assert.match(errorOf({ ...base, collections: [{ ...c, basePath: '/billing/' }] }), /collections\[0\]\.basePath/);
    assert.match(
      errorOf({ ...base, collections: [{ ...c, endpoints: [{ method: 'GET', path: '/a/../b', permission: 'x' }] }] }),
      /collections\[0\]\.endpoints\[0\]\.path: invalid segment/,
    );
    assert.match(
      errorOf({ ...base, collections: [{ ...c, endpoints: [{ method: 'GET', path: '/a%3Bb', permission: 'x' }] }] }),
      /invalid segment/,
    );
    assert.match(
      errorOf({ ...base, clients: [{ ...base.clients[0], allowedIps: ['10.0.0.0/33'] }] }),
      /clients\[0\]\.allowedIps\[0\]: must be a CIDR range/,
    );
    assert.match(
      errorOf({ ...base, clients: [{ ...base.clients[0], keys: [{ hash: 'abc' }] }] }),
      /clients\[0\]\.keys\[0\]\.hash: must be a SHA-256 hash/,
    );
    assert.match(
      errorOf({ ...base, tokenExchange: { ...base.tokenExchange, ttl: '500ms' } }),
      /tokenExchange\.ttl: must be at least 1s/,
    );
    assert.match(
      errorOf({ ...base, rateLimits: { key: { limit: 10, window: '10 minutes' } } }),
      /rateLimits\.key\.window: invalid duration/,
    );
    assert.match(errorOf({ ...base, surprise: true }), /unknown field "surprise": remove it, or check its spelling/);
  });

  it('accepts "*" for all environments or all projects of a client, and still checks the names beside it', () => {
    const config = parseGatewayFile(
      JSON.stringify({ ...base, clients: [{ ...base.clients[0], environments: ['*'], projects: ['*'] }] }),
      'gw.json',
    );
    assert.deepEqual(config.clients[0]!.environments, ['*']);
    assert.deepEqual(config.clients[0]!.projects, ['*']);
    assert.match(
      errorOf({ ...base, clients: [{ ...base.clients[0], environments: ['prod'] }] }),
      /clients\[0\]\.environments\[0\]: must be an upper-case environment name/,
    );
    assert.match(
      errorOf({ ...base, clients: [{ ...base.clients[0], environments: ['*', 'prod'] }] }),
      /clients\[0\]\.environments\[1\]: must be an upper-case environment name/,
    );
    assert.match(
      errorOf({ ...base, clients: [{ ...base.clients[0], projects: ['p*'] }] }),
      /clients\[0\]\.projects\[0\]/,
    );
    assert.match(
      errorOf({
        ...base,
        legacyClients: [
          {
            ...base.clients[0],
            id: 'l1',
            keys: undefined,
            email: 'a@b.example',
            keyHash: 'b'.repeat(64),
            environments: ['**'],
          },
        ],
      }),
      /legacyClients\[0\]\.environments\[0\]/,
    );
  });

  it('never repeats an upstream URL that does not parse: it may hold a password', () => {
    const c = base.collections[0]!;
    for (const upstream of [
      'http://user:s3cretpw@127.0.0.1:99999/api',
      'http://s3cretpw@exa mple.com/',
      { url: 'http://u:s3cretpw@[::1/api' },
    ]) {
      const message = errorOf({ ...base, collections: [{ ...c, upstream }] });
      assert.match(message, /collections\[0\]\.upstream\.url: invalid URL/);
      assert.doesNotMatch(message, /s3cretpw/);
    }
  });

  it('bounds durations: safe integers of milliseconds, rate-limit windows up to 31d, token lifetimes up to 24h', () => {
    const window = (value: unknown) => errorOf({ ...base, rateLimits: { key: { limit: 100, window: value } } });
    assert.match(
      window('99999999999999999999999d'),
      /rateLimits\.key\.window: duration "99999999999999999999999d" is too long/,
    );
    assert.match(window(1e300), /rateLimits\.key\.window: duration 1e\+300 is too long/);
    assert.match(window('32d'), /rateLimits\.key\.window: must be at most 31d/);
    assert.match(window(31 * 86_400 + 1), /must be at most 31d/);
    const ok = parseGatewayFile(
      JSON.stringify({ ...base, rateLimits: { key: { limit: 100, window: '31d' }, org: { limit: 1, window: 0.001 } } }),
      'gw.json',
    );
    assert.equal(ok.rateLimits.key!.window, 31 * 86_400_000);
    assert.equal(ok.rateLimits.org!.window, 1);
    const c = base.collections[0]!;
    assert.match(
      errorOf({ ...base, collections: [{ ...c, rateLimits: { client: { limit: 1, window: '800000h' } } }] }),
      /collections\[0\]\.rateLimits\.client\.window: must be at most 31d/,
    );
    assert.match(
      errorOf({ ...base, clients: [{ ...base.clients[0], rateLimits: { key: { limit: 1, window: '1e3d' } } }] }),
      /clients\[0\]\.rateLimits\.key\.window: invalid duration/,
    );

    const ttl = (value: unknown) => errorOf({ ...base, tokenExchange: { ...base.tokenExchange, ttl: value } });
    assert.match(ttl('100000d'), /tokenExchange\.ttl: must be at most 24h/);
    assert.match(ttl('1441m'), /tokenExchange\.ttl: must be at most 24h/);
    assert.equal(
      parseGatewayFile(JSON.stringify({ ...base, tokenExchange: { ...base.tokenExchange, ttl: '24h' } }), 'gw.json')
        .tokenExchange.ttl,
      86_400_000,
    );
    assert.match(
      errorOf({
        ...base,
        collections: [{ ...c, upstream: { url: 'http://127.0.0.1:9000', headersTimeout: '9999999999999999d' } }],
      }),
      /collections\[0\]\.upstream\.headersTimeout: duration "9999999999999999d" is too long/,
    );
  });

  it('refuses a key label that is the key itself, without repeating it', () => {
    const key = 'ghk_OYD2bW6pY21HpMITxjvPCsGSwSb2qSlk17CIdB';
    const withId = (id: string) => ({
      ...base,
      clients: [{ ...base.clients[0], keys: [{ hash: 'a'.repeat(64), id }] }],
    });
    for (const id of [key, key.slice(0, 20), `prod ${key}`]) {
      const message = errorOf(withId(id));
      assert.match(message, /clients\[0\]\.keys\[0\]\.id: must not be the key itself/);
      assert.ok(!message.includes(id) && !message.includes(key.slice(0, 13)), message);
    }
    for (const id of [key.slice(0, 12) + '...', 'old key', 'ghk_OYD2', 'laptop-2027']) {
      assert.equal(parseGatewayFile(JSON.stringify(withId(id)), 'gw.json').clients[0]!.keys[0]!.id, id);
    }
  });

  it('refuses a CIDR range with host bits set, and names its network address', () => {
    const ips = (allowedIps: string[]) => errorOf({ ...base, clients: [{ ...base.clients[0], allowedIps }] });
    assert.match(
      ips(['10.1.2.3/8']),
      /clients\[0\]\.allowedIps\[0\]: has host bits set: did you mean 10\.0\.0\.0\/8\?/,
    );
    assert.match(
      ips(['10.0.0.0/8', '192.168.1.77/24']),
      /allowedIps\[1\]: has host bits set: did you mean 192\.168\.1\.0\/24\?/,
    );
    assert.match(ips(['1.2.3.4/0']), /did you mean 0\.0\.0\.0\/0\?/);
    assert.match(ips(['2001:db8::1/32']), /did you mean 2001:db8::\/32\?/);
    assert.match(ips(['2001:DB8:1:2:3:4:5:6/64']), /did you mean 2001:db8:1:2::\/64\?/);
    assert.match(ips(['fe80::1:3/127']), /did you mean fe80::1:2\/127\?/);
    assert.match(ips(['::ffff:10.1.2.3/104']), /did you mean ::ffff:a00:0\/104\?/);
    assert.match(
      errorOf({ ...base, server: { trustedProxies: ['172.16.5.4/12'] } }),
      /server\.trustedProxies\[0\]: has host bits set: did you mean 172\.16\.0\.0\/12\?/,
    );
    const valid = [
      '10.0.0.0/8',
      '1.2.3.4/32',
      '0.0.0.0/0',
      '::/0',
      '::1/128',
      '2001:db8::/32',
      '2001:DB8::/32',
      'fe80::1:2/128',
      '::ffff:10.1.2.0/120',
    ];
    assert.deepEqual(
      parseGatewayFile(JSON.stringify({ ...base, clients: [{ ...base.clients[0], allowedIps: valid }] }), 'gw.json')
        .clients[0]!.allowedIps,
      valid,
    );
  });

  it('refuses legacy headers that are the same, or that HTTP or the gateway already uses', () => {
    const legacy = (legacyAuth: unknown) => errorOf({ ...base, legacyAuth });
    assert.match(
      legacy({ keyHeader: 'x-legacy', emailHeader: 'x-legacy' }),
      /legacyAuth\.emailHeader: must differ from keyHeader/,
    );
    assert.match(legacy({ emailHeader: 'x-api-key' }), /legacyAuth\.emailHeader: must not be x-api-key/);
    for (const header of [
      'authorization',
      'host',
      'proxy-authorization',
      'x-forwarded-for',
      'x-request-id',
      'x-gatehouse-client-id',
      'transfer-encoding',
      'cookie',
    ]) {
      assert.match(
        legacy({ keyHeader: header }),
        /legacyAuth\.keyHeader: is a header HTTP or the gateway itself uses/,
        header,
      );
      assert.match(
        legacy({ emailHeader: header }),
        /legacyAuth\.emailHeader: is a header HTTP or the gateway itself uses/,
        header,
      );
    }
    assert.deepEqual(parseGatewayFile(JSON.stringify(base), 'gw.json').legacyAuth, {
      keyHeader: 'x-api-key',
      emailHeader: 'x-api-email',
    });
    assert.deepEqual(
      parseGatewayFile(
        JSON.stringify({ ...base, legacyAuth: { keyHeader: 'x-legacy-key', emailHeader: 'x-legacy-email' } }),
        'gw.json',
      ).legacyAuth,
      { keyHeader: 'x-legacy-key', emailHeader: 'x-legacy-email' },
    );
  });

  it('reports a YAML syntax error with its line and column', () => {
    assert.throws(
      () => parseGatewayFile('collections:\n  - name: [unclosed\n', 'gw.yaml'),
      (error: Error) =>
        error instanceof ConfigError && /gw\.yaml: invalid YAML at line \d+, column \d+/.test(error.message),
    );
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
    const result = SnapshotSchema.safeParse({
      ...snapshot,
      tokenExchange: { ...snapshot.tokenExchange, algorithm },
      signingKeys,
    });
    return result.success ? [] : result.error.issues.map((i) => `${formatPath(i.path)}: ${i.message}`);
  };

  it('are optional, and accepted when the active key is listed with the token algorithm', () => {
    assert.deepEqual(issues(undefined), []);
    assert.deepEqual(issues({ active: 'k1', keys: [{ kid: 'k1', alg: 'EdDSA', privateJwk: ed }] }), []);
    assert.deepEqual(
      issues(
        {
          active: 'k2',
          keys: [
            { kid: 'k1', alg: 'EdDSA', privateJwk: ed },
            { kid: 'k2', alg: 'ES256', privateJwk: ec },
          ],
        },
        'ES256',
      ),
      [],
    );
  });

  it('must list the active key, with the algorithm of tokenExchange', () => {
    assert.deepEqual(issues({ active: 'k9', keys: [{ kid: 'k1', alg: 'EdDSA', privateJwk: ed }] }), [
      'signingKeys.active: names no key of signingKeys.keys ("k9")',
    ]);
    assert.deepEqual(issues({ active: 'k1', keys: [{ kid: 'k1', alg: 'EdDSA', privateJwk: ed }] }, 'ES256'), [
      'signingKeys.keys[0].alg: the active key is EdDSA, but tokenExchange.algorithm is ES256',
    ]);
  });

  it('refuses duplicate kids, keys that do not fit their algorithm, missing private parts and unknown members', () => {
    assert.deepEqual(
      issues({
        active: 'k1',
        keys: [
          { kid: 'k1', alg: 'EdDSA', privateJwk: ed },
          { kid: 'k1', alg: 'EdDSA', privateJwk: ed },
        ],
      }),
      ['signingKeys.keys[1].kid: duplicate kid "k1"'],
    );
    assert.deepEqual(issues({ active: 'k1', keys: [{ kid: 'k1', alg: 'EdDSA', privateJwk: ec }] }), [
      'signingKeys.keys[0].privateJwk: is not an EdDSA key (expected kty OKP, crv Ed25519)',
    ]);
    const { d: _d, ...publicOnly } = ed;
    assert.equal(
      issues({ active: 'k1', keys: [{ kid: 'k1', alg: 'EdDSA', privateJwk: publicOnly }] })[0]?.startsWith(
        'signingKeys.keys[0].privateJwk.d:',
      ),
      true,
    );
    assert.match(
      issues({ active: 'k1', keys: [{ kid: 'k1', alg: 'EdDSA', privateJwk: { ...ed, p: 'x' } }] }).join('\n'),
      /^signingKeys\.keys\[0\]\.privateJwk: .*"p"/,
    );
    assert.match(issues({ active: 'k1', keys: [] }).join('\n'), /^signingKeys\.keys: /);
  });

  it('are not accepted in a gateway config file, which keeps its local key store', () => {
    assert.match(
      errorOf({ ...base, signingKeys: { active: 'k1', keys: [{ kid: 'k1', alg: 'EdDSA', privateJwk: ed }] } }),
      /signingKeys/,
    );
  });
});
