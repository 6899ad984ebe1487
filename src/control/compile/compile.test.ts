import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { type CollectionSpec, CollectionInputSchema, type DeploymentTarget } from '../../config/resources.ts';
import { type Snapshot, TokenExchangeSchema } from '../../config/schema.ts';
import { canonicalJson, snapshotHash } from '../../config/snapshot-encoding.ts';
import type { ClientRecord, CollectionRecord, CollectionVersionRecord, KeyRecord, RoleRecord } from '../store/store.ts';
import {
  cloudBasePath,
  type CompileOptions,
  compileWorkspace,
  snapshotScope,
  tenantIssuer,
  type WorkspaceState,
} from './compile.ts';

const WS = 'wsp_acme0000000000000001';
const T0 = '2026-01-01T00:00:00.000Z';
const NOW = Date.parse('2026-06-01T00:00:00.000Z');
const options: CompileOptions = {
  tokenExchange: TokenExchangeSchema.omit({ issuer: true }).parse({ audience: 'api' }),
  issuerBase: 'https://gatehouse',
  now: NOW,
};
const cloud: DeploymentTarget = { type: 'cloud' };

function spec(name: string, more: Record<string, unknown> = {}): CollectionSpec {
  return CollectionInputSchema.parse({
    name,
    basePath: `/${name}`,
    upstream: 'http://127.0.0.1:9000',
    project: 'shop',
    endpoints: [
      { method: 'GET', path: '/items/{id}', permission: 'items:read' },
      { method: 'POST', path: '/items', permission: 'items:write' },
    ],
    ...more,
  });
}

function hash(seed: string): string {
  return createHash('sha256').update(seed).digest('hex');
}

/** A workspace with DEV and PROD, built up by the helpers below. */
function workspace(): WorkspaceState {
  return {
    workspace: { id: WS, name: 'acme', environments: ['DEV', 'PROD'], devEnvironment: 'DEV', createdAt: T0 },
    collections: [],
    published: new Map(),
    roles: [],
    clients: [],
    keys: [],
  };
}

function addCollection(
  state: WorkspaceState,
  id: string,
  environment: string,
  draft: CollectionSpec,
  published?: CollectionSpec,
): void {
  const record: CollectionRecord = {
    id,
    workspaceId: WS,
    environment,
    name: draft.name,
    project: draft.project,
    target: draft.target,
    spec: draft,
    revision: 1,
    createdAt: T0,
    updatedAt: T0,
    ...(published && { publishedVersion: 1 }),
  };
  state.collections.push(record);
  if (published) {
    const version: CollectionVersionRecord = { collectionId: id, version: 1, spec: published, publishedAt: T0 };
    state.published.set(id, version);
  }
}

function addRole(state: WorkspaceState, id: string, name: string, more: Partial<RoleRecord> = {}): void {
  state.roles.push({
    id,
    workspaceId: WS,
    name,
    permissions: ['items:read'],
    endpoints: [],
    createdAt: T0,
    updatedAt: T0,
    ...more,
  });
}

function addClient(
  state: WorkspaceState,
  id: string,
  roleId: string,
  more: Partial<ClientRecord> = {},
  keys: Partial<KeyRecord>[] = [{}],
): void {
  state.clients.push({
    id,
    workspaceId: WS,
    kind: 'standard',
    name: `client ${id}`,
    roleId,
    environments: ['PROD'],
    projects: ['shop'],
    status: 'active',
    operator: false,
    createdAt: T0,
    updatedAt: T0,
    ...more,
  });
  keys.forEach((k, i) =>
    state.keys.push({ id: `gh_${id}_${i}`, clientId: id, hash: hash(`${id}/${i}`), createdAt: T0, ...k }),
  );
}

function only(snapshots: Map<string, Snapshot>, environment: string, target: DeploymentTarget = cloud): Snapshot {
  const snapshot = snapshots.get(snapshotScope(WS, environment, target));
  assert.ok(
    snapshot,
    `no snapshot for ${environment} ${JSON.stringify(target)}; scopes: ${[...snapshots.keys()].join(', ')}`,
  );
  return snapshot;
}

/** A workspace with something of everything, for the determinism tests. */
function busyWorkspace(): WorkspaceState {
  const state = workspace();
  addCollection(state, 'col_billing000000000001', 'PROD', spec('billing'), spec('billing'));
  addCollection(
    state,
    'col_orders0000000000001',
    'PROD',
    spec('orders'),
    spec('orders', { rateLimits: { key: { limit: 5, window: '1m' } } }),
  );
  addCollection(
    state,
    'col_edge00000000000000001',
    'PROD',
    spec('local'),
    spec('local', { target: { type: 'edge', gateway: 'eu-1' } }),
  );
  addCollection(state, 'col_dev000000000000000001', 'DEV', spec('billing'), spec('billing'));
  addRole(state, 'rol_reader00000000000001', 'reader', {
    endpoints: [{ collection: 'orders', method: 'GET', path: '/items/{id}' }],
  });
  addRole(state, 'rol_writer00000000000001', 'writer', { permissions: ['items:*'] });
  addClient(
    state,
    'cli_zeta000000000000001',
    'rol_reader00000000000001',
    { metadata: { plan: 'pro', seats: 3, '10': 'x', '9': 'y' } },
    [{ id: 'gh_b' }, { id: 'gh_a' }],
  );
  addClient(state, 'cli_alpha00000000000001', 'rol_writer00000000000001', { environments: ['DEV', 'PROD'] });
  addClient(state, 'cli_legacy0000000000001', 'rol_reader00000000000001', { kind: 'legacy', email: 'ops@example.com' });
  return state;
}

describe('compiling a workspace into snapshots', () => {
  it("puts the revocations in force of an environment's clients into its snapshots, and leaves out expired ones", () => {
    const state = workspace();
    addCollection(state, 'col_billing000000000001', 'PROD', spec('billing'), spec('billing'));
    addRole(state, 'rol_1', 'reader');
    addClient(state, 'cli_prod', 'rol_1');
    addClient(state, 'cli_test', 'rol_1', { environments: ['TEST'] });
    const revocation = (id: string, clientId: string, expiresAt: string) => ({
      id,
      workspaceId: WS,
      clientId,
      credential: 'AAAAAAAAAAAAAAAAAAAAAA',
      revokedAt: T0,
      expiresAt,
    });
    state.revocations = [
      revocation('drv_live', 'cli_prod', '2026-06-01T01:00:00.000Z'),
      revocation('drv_expired', 'cli_prod', '2026-06-01T00:00:00.000Z'),
      revocation('drv_other_env', 'cli_test', '2026-06-01T01:00:00.000Z'),
    ];
    const snapshots = compileWorkspace(state, options);
    assert.deepEqual(only(snapshots, 'PROD').revokedCredentials, [
      {
        id: 'drv_live',
        client: 'cli_prod',
        credential: 'AAAAAAAAAAAAAAAAAAAAAA',
        expiresAt: '2026-06-01T01:00:00.000Z',
      },
    ]);
    state.revocations = [];
    assert.equal(only(compileWorkspace(state, options), 'PROD').revokedCredentials, undefined);
  });

  it('serves the published version of a collection, never its draft', () => {
    const state = workspace();
    const published = spec('billing', { upstream: 'http://published.internal:8080' });
    const draft = spec('billing', {
      upstream: 'http://draft.internal:8080',
      endpoints: [{ method: 'DELETE', path: '/everything', permission: 'x' }],
    });
    addCollection(state, 'col_billing000000000001', 'PROD', draft, published);
    const [collection] = only(compileWorkspace(state, options), 'PROD').collections;
    assert.equal(collection!.upstream.url, 'http://published.internal:8080');
    assert.deepEqual(
      collection!.endpoints.map((e) => `${e.method} ${e.path}`),
      ['GET /items/{id}', 'POST /items'],
    );
    assert.equal(collection!.environment, 'PROD');
  });

  it('leaves out a collection that was never published', () => {
    const state = workspace();
    addCollection(state, 'col_billing000000000001', 'PROD', spec('billing'));
    assert.deepEqual(only(compileWorkspace(state, options), 'PROD').collections, []);
  });

  it('gives every environment a cloud scope, even one without collections', () => {
    const scopes = [...compileWorkspace(workspace(), options).keys()];
    assert.deepEqual(scopes, [`${WS}/DEV/cloud`, `${WS}/PROD/cloud`]);
  });

  it('puts cloud collections under /<workspace>/<environment>, and a "/" base path at the prefix itself', () => {
    const state = workspace();
    addCollection(
      state,
      'col_billing000000000001',
      'PROD',
      spec('billing'),
      spec('billing', { basePath: '/billing/v1' }),
    );
    addCollection(state, 'col_root00000000000000001', 'PROD', spec('root'), spec('root', { basePath: '/' }));
    const paths = only(compileWorkspace(state, options), 'PROD').collections.map((c) => [c.name, c.basePath]);
    assert.deepEqual(paths, [
      ['billing', '/acme/prod/billing/v1'],
      ['root', '/acme/prod'],
    ]);
    assert.equal(cloudBasePath('acme', 'TEST_2', '/'), '/acme/test_2');
  });

  it("serves an edge collection only in its gateway's scope, with its base path unchanged", () => {
    const state = workspace();
    addCollection(state, 'col_billing000000000001', 'PROD', spec('billing'), spec('billing'));
    addCollection(
      state,
      'col_local00000000000001',
      'PROD',
      spec('local'),
      spec('local', { target: { type: 'edge', gateway: 'eu-1' } }),
    );
    const snapshots = compileWorkspace(state, options);
    assert.deepEqual(
      only(snapshots, 'PROD').collections.map((c) => c.name),
      ['billing'],
    );
    const edge = only(snapshots, 'PROD', { type: 'edge', gateway: 'eu-1' });
    assert.deepEqual(
      edge.collections.map((c) => [c.name, c.basePath]),
      [['local', '/local']],
    );
    assert.equal(snapshots.has(snapshotScope(WS, 'DEV', { type: 'edge', gateway: 'eu-1' })), false);
  });

  it("follows the published target, not the draft's", () => {
    const state = workspace();
    addCollection(
      state,
      'col_local00000000000001',
      'PROD',
      spec('local', { target: { type: 'edge', gateway: 'eu-1' } }),
      spec('local'),
    );
    const snapshots = compileWorkspace(state, options);
    assert.deepEqual(
      only(snapshots, 'PROD').collections.map((c) => c.name),
      ['local'],
    );
    assert.equal(snapshots.has(snapshotScope(WS, 'PROD', { type: 'edge', gateway: 'eu-1' })), false);
  });

  it('gives each workspace environment its own token issuer, the same on its cloud and edge scopes', () => {
    const state = workspace();
    addCollection(
      state,
      'col_local00000000000001',
      'PROD',
      spec('local'),
      spec('local', { target: { type: 'edge', gateway: 'eu-1' } }),
    );
    const snapshots = compileWorkspace(state, { ...options, issuerBase: 'https://gatehouse/' });
    assert.equal(only(snapshots, 'PROD').tokenExchange.issuer, 'https://gatehouse/acme/prod');
    assert.equal(
      only(snapshots, 'PROD', { type: 'edge', gateway: 'eu-1' }).tokenExchange.issuer,
      'https://gatehouse/acme/prod',
    );
    assert.equal(only(snapshots, 'DEV').tokenExchange.issuer, 'https://gatehouse/acme/dev');
    assert.equal(tenantIssuer('http://127.0.0.1:8080', 'default', 'DEV'), 'http://127.0.0.1:8080/default/dev');
  });

  it('gives a registered edge gateway a scope before any collection targets it, with the clients of its environment', () => {
    const state = workspace();
    addRole(state, 'rol_reader00000000000001', 'reader');
    addClient(state, 'cli_one0000000000000001', 'rol_reader00000000000001');
    const snapshots = compileWorkspace(state, { ...options, edgeGateways: { PROD: ['eu-2'], GONE: ['x'] } });
    const edge = only(snapshots, 'PROD', { type: 'edge', gateway: 'eu-2' });
    assert.deepEqual(edge.collections, []);
    assert.deepEqual(
      edge.clients.map((c) => c.id),
      ['cli_one0000000000000001'],
    );
    assert.equal(snapshots.size, 3, 'an environment the workspace does not have gets no scope');
  });

  it('keeps every role but drops its grants of endpoints this scope does not serve', () => {
    const state = workspace();
    addCollection(state, 'col_billing000000000001', 'PROD', spec('billing'), spec('billing'));
    addCollection(
      state,
      'col_local00000000000001',
      'PROD',
      spec('local'),
      spec('local', { target: { type: 'edge', gateway: 'eu-1' } }),
    );
    addRole(state, 'rol_reader00000000000001', 'reader', {
      description: 'reads',
      endpoints: [
        { collection: 'billing', method: 'GET', path: '/items/{itemId}' },
        { collection: 'local', method: 'POST', path: '/items' },
        { collection: 'billing', method: 'DELETE', path: '/items' }, // no longer in the published version
      ],
    });
    const snapshots = compileWorkspace(state, options);
    const roleIn = (s: Snapshot) => s.roles.find((r) => r.name === 'reader')!;
    assert.deepEqual(roleIn(only(snapshots, 'PROD')).endpoints, [
      { collection: 'billing', method: 'GET', path: '/items/{itemId}' },
    ]);
    assert.equal(roleIn(only(snapshots, 'PROD')).description, 'reads');
    assert.deepEqual(roleIn(only(snapshots, 'PROD', { type: 'edge', gateway: 'eu-1' })).endpoints, [
      { collection: 'local', method: 'POST', path: '/items' },
    ]);
    assert.deepEqual(roleIn(only(snapshots, 'DEV')).endpoints, []);
  });

  it("copies a client with its role's name and its keys, and leaves out one whose role was deleted", () => {
    const state = workspace();
    addRole(state, 'rol_reader00000000000001', 'reader');
    addClient(state, 'cli_one0000000000000001', 'rol_reader00000000000001', {
      name: 'Acme billing',
      allowedIps: ['10.0.0.0/8'],
      userId: 'u1',
      orgId: 'o1',
      metadata: { plan: 'pro' },
      rateLimits: { key: { limit: 10, window: 60_000 } },
      expiresAt: '2027-01-01T00:00:00.000Z',
      status: 'disabled',
    });
    addClient(state, 'cli_orphan000000000001', 'rol_deleted0000000000001');
    const [client, ...rest] = only(compileWorkspace(state, options), 'PROD').clients;
    assert.deepEqual(rest, [], 'the client whose role was deleted is left out');
    assert.deepEqual(client, {
      id: 'cli_one0000000000000001',
      name: 'Acme billing',
      role: 'reader',
      environments: ['PROD'],
      projects: ['shop'],
      allowedIps: ['10.0.0.0/8'],
      userId: 'u1',
      orgId: 'o1',
      metadata: { plan: 'pro' },
      rateLimits: { key: { limit: 10, window: 60_000 } },
      expiresAt: '2027-01-01T00:00:00.000Z',
      status: 'disabled',
      keys: [{ hash: hash('cli_one0000000000000001/0'), id: 'gh_cli_one0000000000000001_0' }],
    });
  });

  it('writes allowed IP ranges stored with host bits set as their network addresses, so the snapshot stays valid', () => {
    const state = workspace();
    addRole(state, 'rol_reader00000000000001', 'reader');
    addClient(state, 'cli_old0000000000000001', 'rol_reader00000000000001', {
      allowedIps: ['10.1.2.3/8', '2001:db8::1/32', '192.168.0.0/16'],
    });
    const [client] = only(compileWorkspace(state, options), 'PROD').clients;
    assert.deepEqual(client!.allowedIps, ['10.0.0.0/8', '2001:db8::/32', '192.168.0.0/16']);
  });

  it('puts a client only in the snapshots of its environments', () => {
    const state = workspace();
    addRole(state, 'rol_reader00000000000001', 'reader');
    addClient(state, 'cli_dev0000000000000001', 'rol_reader00000000000001', { environments: ['DEV'] });
    addClient(state, 'cli_prod000000000000001', 'rol_reader00000000000001', { environments: ['PROD'] });
    const snapshots = compileWorkspace(state, options);
    assert.deepEqual(
      only(snapshots, 'DEV').clients.map((c) => c.id),
      ['cli_dev0000000000000001'],
    );
    assert.deepEqual(
      only(snapshots, 'PROD').clients.map((c) => c.id),
      ['cli_prod000000000000001'],
    );
  });

  it('puts a client of every environment ("*") in every snapshot, keeping "*" as it is', () => {
    const state = workspace();
    addRole(state, 'rol_admin000000000000001', 'admin', { permissions: ['admin:*'] });
    addClient(state, 'cli_all0000000000000001', 'rol_admin000000000000001', { environments: ['*'], projects: ['*'] });
    const snapshots = compileWorkspace(state, options);
    for (const environment of ['DEV', 'PROD']) {
      const [client] = only(snapshots, environment).clients;
      assert.deepEqual([client?.environments, client?.projects], [['*'], ['*']]);
    }
  });

  it('compiles a legacy client with its one key hash and email', () => {
    const state = workspace();
    addRole(state, 'rol_reader00000000000001', 'reader');
    addClient(state, 'cli_legacy0000000000001', 'rol_reader00000000000001', {
      kind: 'legacy',
      email: 'ops@example.com',
    });
    const snapshot = only(compileWorkspace(state, options), 'PROD');
    assert.deepEqual(snapshot.clients, []);
    assert.deepEqual(snapshot.legacyClients, [
      {
        id: 'cli_legacy0000000000001',
        name: 'client cli_legacy0000000000001',
        role: 'reader',
        environments: ['PROD'],
        projects: ['shop'],
        status: 'active',
        email: 'ops@example.com',
        keyHash: hash('cli_legacy0000000000001/0'),
      },
    ]);
  });

  it('carries the expiry of a key in its grace period and leaves out keys whose grace period is over', () => {
    const state = workspace();
    addRole(state, 'rol_reader00000000000001', 'reader');
    addClient(state, 'cli_one0000000000000001', 'rol_reader00000000000001', {}, [
      { id: 'gh_new', createdAt: '2026-05-31T00:00:00.000Z' },
      { id: 'gh_grace', expiresAt: '2026-06-01T01:00:00.000Z' },
      { id: 'gh_over', expiresAt: '2026-06-01T00:00:00.000Z' },
    ]);
    addClient(state, 'cli_expired00000000001', 'rol_reader00000000000001', {}, [
      { expiresAt: '2026-05-01T00:00:00.000Z' },
    ]);
    const { clients } = only(compileWorkspace(state, options), 'PROD');
    assert.deepEqual(
      clients.map((c) => c.id),
      ['cli_one0000000000000001'],
      'a client without a working key is left out',
    );
    assert.deepEqual(
      clients[0]!.keys.map((k) => [k.id, k.expiresAt]),
      [
        ['gh_grace', '2026-06-01T01:00:00.000Z'],
        ['gh_new', undefined],
      ],
    );
  });

  it('keeps durations in milliseconds (a parsed 10s is not re-read as 10,000 seconds)', () => {
    const state = workspace();
    const published = spec('billing', {
      upstream: { url: 'http://127.0.0.1:9000', headersTimeout: '10s' },
      rateLimits: { client: { limit: 5, window: '1m' } },
    });
    addCollection(state, 'col_billing000000000001', 'PROD', published, published);
    const snapshot = only(
      compileWorkspace(state, { ...options, rateLimits: { org: { limit: 100, window: 3_600_000 } } }),
      'PROD',
    );
    assert.equal(snapshot.collections[0]!.upstream.headersTimeout, 10_000);
    assert.equal(snapshot.collections[0]!.upstream.connectTimeout, 5_000);
    assert.equal(snapshot.collections[0]!.rateLimits?.client?.window, 60_000);
    assert.equal(snapshot.tokenExchange.ttl, 300_000);
    assert.equal(snapshot.rateLimits.org?.window, 3_600_000);
  });

  it('names the scope and the problem when the records are inconsistent', () => {
    const state = workspace();
    addCollection(state, 'col_one0000000000000001', 'PROD', spec('one'), spec('one', { basePath: '/same' }));
    addCollection(state, 'col_two0000000000000001', 'PROD', spec('two'), spec('two', { basePath: '/same' }));
    assert.throws(
      () => compileWorkspace(state, options),
      (error: Error) => {
        assert.match(error.message, new RegExp(`^the compiled snapshot of ${WS}/PROD/cloud is invalid`));
        assert.match(
          error.message,
          /collections\[1\]\.basePath: base path "\/acme\/prod\/same" is already used by collection "one"/,
        );
        return true;
      },
    );
  });

  it('gives byte-identical snapshots for the same state, whatever order the records come in', () => {
    const first = compileWorkspace(busyWorkspace(), options);
    const again = compileWorkspace(busyWorkspace(), options);
    const shuffled = busyWorkspace();
    for (const list of [shuffled.collections, shuffled.roles, shuffled.clients, shuffled.keys]) list.reverse();
    shuffled.workspace.environments.reverse();
    shuffled.published = new Map([...shuffled.published].reverse());
    const reordered = compileWorkspace(shuffled, options);
    assert.deepEqual([...reordered.keys()], [...first.keys()]);
    assert.equal(first.size, 3);
    for (const [scope, snapshot] of first) {
      assert.equal(snapshotHash(again.get(scope)!), snapshotHash(snapshot), scope);
      assert.equal(snapshotHash(reordered.get(scope)!), snapshotHash(snapshot), scope);
      assert.equal(JSON.stringify(reordered.get(scope)), JSON.stringify(snapshot), scope);
    }
    const prod = only(first, 'PROD');
    assert.deepEqual(
      prod.clients.map((c) => c.id),
      ['cli_alpha00000000000001', 'cli_zeta000000000000001'],
    );
    assert.deepEqual(
      prod.clients[1]!.keys.map((k) => k.id),
      ['gh_a', 'gh_b'],
    );
  });

  it('hashes the content, not the version', () => {
    const snapshot = only(compileWorkspace(busyWorkspace(), options), 'PROD');
    const hash = snapshotHash(snapshot);
    assert.match(hash, /^[0-9a-f]{64}$/);
    assert.equal(snapshotHash({ ...snapshot, version: 7 }), hash);
    assert.equal(snapshotHash({ ...snapshot, version: 'v8' }), hash);
    assert.notEqual(snapshotHash({ ...snapshot, roles: snapshot.roles.slice(1) }), hash);
  });

  it('notices a change of a single key', () => {
    const state = busyWorkspace();
    const before = snapshotHash(only(compileWorkspace(state, options), 'PROD'));
    state.keys[0]!.expiresAt = '2026-07-01T00:00:00.000Z';
    assert.notEqual(snapshotHash(only(compileWorkspace(state, options), 'PROD')), before);
  });
});

describe('canonical JSON', () => {
  it('sorts keys at every depth, integer-like keys included, and leaves arrays in order', () => {
    assert.equal(
      canonicalJson({ b: 1, a: { '9': true, '10': null, z: [3, 1, { y: 1, x: 2 }] } }),
      '{"a":{"10":null,"9":true,"z":[3,1,{"x":2,"y":1}]},"b":1}',
    );
  });

  it('leaves out undefined members and writes other values as JSON.stringify does', () => {
    assert.equal(
      canonicalJson({ a: undefined, b: [undefined, Number.NaN], c: 'é"\n', d: new Date(0) }),
      '{"b":[null,null],"c":"é\\"\\n","d":"1970-01-01T00:00:00.000Z"}',
    );
    assert.equal(canonicalJson(undefined), 'null');
  });
});
