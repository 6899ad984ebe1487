/**
 * The contract every `Store` keeps, as one `node:test` suite that runs against each implementation
 * (`store.test.ts`: SQLite and PostgreSQL). `open` must return a fresh, empty, migrated store for every test.
 */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  StoreConflictError,
  type AlertRecord,
  type ClientRecord,
  type CollectionRecord,
  type CollectionVersionRecord,
  type GatewayCertificateRecord,
  type GatewayInstanceRecord,
  type GatewayRecord,
  type KeyRecord,
  type RegistrationTokenRecord,
  type RoleRecord,
  type SecurityEventRecord,
  type SessionRecord,
  type SnapshotRecord,
  type Store,
  type TelemetryRecord,
  type UserRecord,
  type WorkspaceRecord,
} from './store.ts';
import type { CollectionSpec } from '../../config/resources.ts';

// ── fixtures ────────────────────────────────────────────────────────────────────────────────────────────────────

const T0 = '2025-01-01T00:00:00.000Z';
const T1 = '2025-01-02T00:00:00.000Z';
const T2 = '2025-01-03T00:00:00.000Z';

function workspace(over: Partial<WorkspaceRecord> = {}): WorkspaceRecord {
  return { id: 'wsp_aaaaaaaaaaaaaaaaaaaa', name: 'acme', environments: ['DEV', 'TEST', 'PROD'], devEnvironment: 'DEV', createdAt: T0, ...over };
}
const WS = 'wsp_aaaaaaaaaaaaaaaaaaaa';
const WS2 = 'wsp_bbbbbbbbbbbbbbbbbbbb';

function spec(name: string, over: Partial<CollectionSpec> = {}): CollectionSpec {
  return {
    name,
    basePath: `/${name}/v1`,
    upstream: { url: 'http://127.0.0.1:9000', connectTimeout: 5000, headersTimeout: 30000, bodyTimeout: 30000, connections: 128 },
    project: 'default',
    stripBasePath: true,
    websocket: false,
    authRequired: true,
    endpoints: [{ method: 'GET', path: '/invoices/{id}', permission: 'invoices:read' }],
    target: { type: 'cloud' },
    ...over,
  };
}

function collection(over: Partial<CollectionRecord> = {}): CollectionRecord {
  const name = over.name ?? 'billing';
  return {
    id: `col_${name.padEnd(20, 'x')}`,
    workspaceId: WS,
    environment: 'DEV',
    name,
    project: 'default',
    target: { type: 'cloud' },
    spec: spec(name),
    revision: 1,
    createdAt: T0,
    updatedAt: T0,
    ...over,
  };
}

function role(over: Partial<RoleRecord> = {}): RoleRecord {
  return {
    id: 'rol_aaaaaaaaaaaaaaaaaaaa',
    workspaceId: WS,
    name: 'reader',
    permissions: ['invoices:read'],
    endpoints: [{ collection: 'billing', method: 'GET', path: '/invoices/{id}' }],
    createdAt: T0,
    updatedAt: T0,
    ...over,
  };
}

function client(over: Partial<ClientRecord> = {}): ClientRecord {
  return {
    id: 'cli_aaaaaaaaaaaaaaaaaaaa',
    workspaceId: WS,
    kind: 'standard',
    name: 'Billing service',
    roleId: 'rol_aaaaaaaaaaaaaaaaaaaa',
    environments: ['DEV'],
    projects: ['default'],
    status: 'active',
    operator: false,
    createdAt: T0,
    updatedAt: T0,
    ...over,
  };
}

/** A client with every optional field set. */
function fullClient(over: Partial<ClientRecord> = {}): ClientRecord {
  return client({
    id: 'cli_legacyaaaaaaaaaaaaa',
    kind: 'legacy',
    allowedIps: ['10.0.0.0/8', '2001:db8::/32'],
    userId: 'user-17',
    orgId: 'org-4',
    metadata: { plan: 'gold', seats: 12, trial: false },
    rateLimits: { key: { limit: 100, window: 60_000 }, client: { limit: 1000, window: 60_000 } },
    expiresAt: T2,
    status: 'disabled',
    operator: true,
    email: 'ops@example.com',
    ...over,
  });
}

function key(over: Partial<KeyRecord> = {}): KeyRecord {
  return { id: 'gh_live_abcd', clientId: 'cli_aaaaaaaaaaaaaaaaaaaa', hash: 'a'.repeat(64), createdAt: T0, ...over };
}

function user(over: Partial<UserRecord> = {}): UserRecord {
  return {
    id: 'usr_aaaaaaaaaaaaaaaaaaaa',
    workspaceId: WS,
    email: 'ada@example.com',
    role: 'admin',
    passwordHash: 'scrypt$16384$8$1$c2FsdA$aGFzaA',
    createdAt: T0,
    ...over,
  };
}

function session(over: Partial<SessionRecord> = {}): SessionRecord {
  return { hash: 'c'.repeat(64), userId: 'usr_aaaaaaaaaaaaaaaaaaaa', workspaceId: WS, createdAt: T0, expiresAt: T1, ...over };
}

function snapshot(version: number, scope = `${WS}/PROD/cloud`): SnapshotRecord {
  const body = JSON.stringify({ version, collections: [] });
  return { scope, version, hash: version.toString(16).padStart(64, '0'), body, createdAt: T0 };
}

const GW = 'gtw_aaaaaaaaaaaaaaaaaaaa';

function gateway(over: Partial<GatewayRecord> = {}): GatewayRecord {
  return { id: GW, workspaceId: WS, environment: 'PROD', name: 'eu-1', installMethod: 'docker', createdAt: T0, updatedAt: T0, ...over };
}

function registrationToken(over: Partial<RegistrationTokenRecord> = {}): RegistrationTokenRecord {
  return { hash: 'd'.repeat(64), gatewayId: GW, createdAt: T0, expiresAt: T1, ...over };
}

function certificate(over: Partial<GatewayCertificateRecord> = {}): GatewayCertificateRecord {
  return { serial: '01ab', gatewayId: GW, notBefore: T0, notAfter: T2, ...over };
}

function instance(over: Partial<GatewayInstanceRecord> = {}): GatewayInstanceRecord {
  return {
    gatewayId: GW,
    instanceId: 'ins-1',
    softwareVersion: '0.1.0',
    appliedVersion: 0,
    connected: true,
    firstSeenAt: T0,
    lastSeenAt: T0,
    ...over,
  };
}

function telemetry(over: Partial<TelemetryRecord> = {}): TelemetryRecord {
  return {
    workspaceId: WS,
    gatewayId: GW,
    minute: '2025-01-01T00:00:00.000Z',
    collection: 'billing',
    endpoint: 'GET /invoices/{id}',
    clientId: 'cli_aaaaaaaaaaaaaaaaaaaa',
    status: 200,
    count: 3,
    durationMsSum: 30.5,
    durationMsMax: 20.25,
    ...over,
  };
}

function securityEvent(over: Partial<SecurityEventRecord> = {}): SecurityEventRecord {
  return { id: 'sev_aaaaaaaaaaaaaaaaaaaa', workspaceId: WS, gatewayId: GW, at: T0, kind: 'auth_failure', reason: 'GH_ERR_AUTH_INVALID_KEY', ...over };
}

function alert(over: Partial<AlertRecord> = {}): AlertRecord {
  return {
    id: 'alr_aaaaaaaaaaaaaaaaaaaa',
    workspaceId: WS,
    kind: 'auth_failure_spike',
    key: 'auth_failure_spike',
    message: '120 authentication failures in 5 minutes',
    raisedAt: T0,
    deliveryAttempts: 0,
    ...over,
  };
}

async function rejectsWithConflict(promise: Promise<unknown>, constraint: string): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof StoreConflictError, `expected a StoreConflictError, got ${String(error)}`);
    assert.equal(error.constraint, constraint);
    return true;
  });
}

// ── the suite ───────────────────────────────────────────────────────────────────────────────────────────────────

/** Registers the contract suite for one store implementation. */
export function storeContract(name: string, open: () => Promise<Store>): void {
  describe(`${name} store`, () => {
    let store: Store;

    beforeEach(async () => {
      store = await open();
    });
    afterEach(async () => {
      await store.close();
    });

    /** A store with the workspace `acme` (WS) and `globex` (WS2). */
    async function withWorkspaces(): Promise<void> {
      await store.insertWorkspace(workspace());
      await store.insertWorkspace(workspace({ id: WS2, name: 'globex' }));
    }

    describe('settings', () => {
      it('returns nothing for a setting never set, and the last value set', async () => {
        assert.equal(await store.getSetting('installation.id'), undefined);
        await store.setSetting('installation.id', 'one');
        await store.setSetting('installation.id', 'two');
        assert.equal(await store.getSetting('installation.id'), 'two');
      });
    });

    describe('workspaces and projects', () => {
      it('round-trips a workspace and finds it by id and by name', async () => {
        await store.insertWorkspace(workspace());
        assert.deepEqual(await store.getWorkspace({ id: WS }), workspace());
        assert.deepEqual(await store.getWorkspace({ name: 'acme' }), workspace());
        assert.equal(await store.getWorkspace({ name: 'nope' }), undefined);
      });

      it('refuses a second workspace with the same name', async () => {
        await store.insertWorkspace(workspace());
        await rejectsWithConflict(store.insertWorkspace(workspace({ id: WS2 })), 'workspace.name');
      });

      it('updates a workspace and refuses a rename onto a name already taken', async () => {
        await withWorkspaces();
        const renamed = workspace({ name: 'acme-corp', environments: ['DEV', 'PROD'] });
        await store.updateWorkspace(renamed);
        assert.deepEqual(await store.getWorkspace({ id: WS }), renamed);
        await rejectsWithConflict(store.updateWorkspace(workspace({ name: 'globex' })), 'workspace.name');
      });

      it('lists workspaces by name, upper case before lower case on both databases', async () => {
        await store.insertWorkspace(workspace({ id: 'wsp_cccccccccccccccccccc', name: 'zeta' }));
        await store.insertWorkspace(workspace({ id: 'wsp_dddddddddddddddddddd', name: 'Zeta' }));
        await store.insertWorkspace(workspace({ id: 'wsp_eeeeeeeeeeeeeeeeeeee', name: 'alpha' }));
        assert.deepEqual((await store.listWorkspaces()).map((w) => w.name), ['Zeta', 'alpha', 'zeta']);
      });

      it('round-trips projects with and without a description, sorted by name', async () => {
        await withWorkspaces();
        await store.insertProject({ workspaceId: WS, name: 'payments', description: 'Money in, money out', createdAt: T1 });
        await store.insertProject({ workspaceId: WS, name: 'default', createdAt: T0 });
        await store.insertProject({ workspaceId: WS2, name: 'other', createdAt: T0 });
        assert.deepEqual(await store.listProjects(WS), [
          { workspaceId: WS, name: 'default', createdAt: T0 },
          { workspaceId: WS, name: 'payments', description: 'Money in, money out', createdAt: T1 },
        ]);
      });

      it('refuses a second project with the same name in one workspace but not in another', async () => {
        await withWorkspaces();
        await store.insertProject({ workspaceId: WS, name: 'default', createdAt: T0 });
        await rejectsWithConflict(store.insertProject({ workspaceId: WS, name: 'default', createdAt: T1 }), 'project.name');
        await store.insertProject({ workspaceId: WS2, name: 'default', createdAt: T0 });
      });

      it('deletes a project and says whether there was one', async () => {
        await withWorkspaces();
        await store.insertProject({ workspaceId: WS, name: 'default', createdAt: T0 });
        assert.equal(await store.deleteProject(WS, 'default'), true);
        assert.equal(await store.deleteProject(WS, 'default'), false);
        assert.deepEqual(await store.listProjects(WS), []);
      });

      it('refuses records of a workspace that does not exist', async () => {
        await assert.rejects(store.insertProject({ workspaceId: WS, name: 'default', createdAt: T0 }), (error) => !(error instanceof StoreConflictError));
      });
    });

    describe('collections', () => {
      it('round-trips a draft collection with publishedVersion absent, and a published one', async () => {
        await withWorkspaces();
        const draft = collection();
        const published = collection({
          name: 'orders',
          environment: 'PROD',
          target: { type: 'edge', gateway: 'eu-1' },
          spec: spec('orders', { host: 'api.example.com', description: 'Orders', rateLimits: { org: { limit: 5, window: 1000 } } }),
          revision: 7,
          publishedVersion: 3,
          updatedAt: T1,
        });
        await store.insertCollection(draft);
        await store.insertCollection(published);
        const got = await store.getCollection({ id: draft.id });
        assert.deepEqual(got, draft);
        assert.equal(Object.hasOwn(got!, 'publishedVersion'), false);
        assert.deepEqual(await store.getCollection({ id: published.id }), published);
      });

      it('finds a collection by workspace, environment and name', async () => {
        await withWorkspaces();
        await store.insertCollection(collection());
        assert.deepEqual(await store.getCollection({ workspaceId: WS, environment: 'DEV', name: 'billing' }), collection());
        assert.equal(await store.getCollection({ workspaceId: WS, environment: 'PROD', name: 'billing' }), undefined);
        assert.equal(await store.getCollection({ workspaceId: WS2, environment: 'DEV', name: 'billing' }), undefined);
      });

      it('refuses a second collection with the same name in one environment but not in another', async () => {
        await withWorkspaces();
        await store.insertCollection(collection());
        await rejectsWithConflict(store.insertCollection(collection({ id: 'col_other' })), 'collection.name');
        await store.insertCollection(collection({ id: 'col_prod', environment: 'PROD' }));
        await store.insertCollection(collection({ id: 'col_ws2', workspaceId: WS2 }));
      });

      it('updates a collection only while its revision is the expected one', async () => {
        await withWorkspaces();
        await store.insertCollection(collection());
        const second = collection({ revision: 2, spec: spec('billing', { websocket: true }), publishedVersion: 1, updatedAt: T1 });
        assert.equal(await store.updateCollection(second, 1), true);
        assert.deepEqual(await store.getCollection({ id: second.id }), second);

        const stale = collection({ revision: 2, spec: spec('billing', { authRequired: false }), updatedAt: T2 });
        assert.equal(await store.updateCollection(stale, 1), false, 'a writer holding revision 1 lost the race');
        assert.deepEqual(await store.getCollection({ id: second.id }), second);

        const unpublished = collection({ revision: 3, updatedAt: T2 });
        assert.equal(await store.updateCollection(unpublished), true, 'without an expected revision it always writes');
        assert.deepEqual(await store.getCollection({ id: second.id }), unpublished, 'publishedVersion removed again');
        assert.equal(await store.updateCollection(collection({ id: 'col_missing' })), false);
      });

      it('refuses renaming a collection onto a name taken in its environment', async () => {
        await withWorkspaces();
        await store.insertCollection(collection());
        await store.insertCollection(collection({ name: 'orders' }));
        await rejectsWithConflict(store.updateCollection(collection({ id: collection().id, name: 'orders' })), 'collection.name');
      });

      it('lists collections by environment, then name, optionally of one environment', async () => {
        await withWorkspaces();
        await store.insertCollection(collection({ name: 'orders', environment: 'PROD' }));
        await store.insertCollection(collection({ id: 'col_ordersdev', name: 'orders' }));
        await store.insertCollection(collection({ name: 'billing', environment: 'PROD', id: 'col_billingprod' }));
        await store.insertCollection(collection({ name: 'audit' }));
        await store.insertCollection(collection({ name: 'elsewhere', workspaceId: WS2 }));
        const all = await store.listCollections(WS);
        assert.deepEqual(all.map((c) => `${c.environment}/${c.name}`), ['DEV/audit', 'DEV/orders', 'PROD/billing', 'PROD/orders']);
        const prod = await store.listCollections(WS, { environment: 'PROD' });
        assert.deepEqual(prod.map((c) => c.name), ['billing', 'orders']);
        assert.deepEqual(prod[1], collection({ name: 'orders', environment: 'PROD' }));
      });

      it('lists versions newest first and round-trips their optional fields', async () => {
        await withWorkspaces();
        const c = collection();
        await store.insertCollection(c);
        const v1: CollectionVersionRecord = { collectionId: c.id, version: 1, spec: spec('billing'), publishedAt: T0 };
        const v2: CollectionVersionRecord = { collectionId: c.id, version: 2, spec: spec('billing', { websocket: true }), publishedAt: T1, publishedBy: 'usr_aaaaaaaaaaaaaaaaaaaa' };
        const v3: CollectionVersionRecord = { collectionId: c.id, version: 3, spec: spec('billing'), publishedAt: T2, publishedBy: 'cli_aaaaaaaaaaaaaaaaaaaa', restoredFrom: 1 };
        await store.insertCollectionVersion(v1);
        await store.insertCollectionVersion(v3);
        await store.insertCollectionVersion(v2);
        assert.deepEqual(await store.listCollectionVersions(c.id), [v3, v2, v1]);
        assert.deepEqual(await store.getCollectionVersion(c.id, 1), v1);
        assert.equal(await store.getCollectionVersion(c.id, 4), undefined);
      });

      it('refuses a second version with the same number', async () => {
        await withWorkspaces();
        await store.insertCollection(collection());
        const v1: CollectionVersionRecord = { collectionId: collection().id, version: 1, spec: spec('billing'), publishedAt: T0 };
        await store.insertCollectionVersion(v1);
        await rejectsWithConflict(store.insertCollectionVersion({ ...v1, publishedAt: T1 }), 'collectionVersion.version');
      });

      it('deletes a collection with its versions', async () => {
        await withWorkspaces();
        const c = collection();
        await store.insertCollection(c);
        await store.insertCollectionVersion({ collectionId: c.id, version: 1, spec: c.spec, publishedAt: T0 });
        assert.equal(await store.deleteCollection(c.id), true);
        assert.equal(await store.getCollection({ id: c.id }), undefined);
        assert.deepEqual(await store.listCollectionVersions(c.id), []);
        assert.equal(await store.deleteCollection(c.id), false);
        // The name is free again, and the new collection starts without the old one's versions.
        await store.insertCollection(c);
        assert.deepEqual(await store.listCollectionVersions(c.id), []);
      });
    });

    describe('client roles', () => {
      it('round-trips a role with and without a description', async () => {
        await withWorkspaces();
        const plain = role();
        const described = role({ id: 'rol_bbbbbbbbbbbbbbbbbbbb', name: 'writer', description: 'Can write', permissions: ['*'], endpoints: [] });
        await store.insertRole(plain);
        await store.insertRole(described);
        assert.deepEqual(await store.getRole({ id: plain.id }), plain);
        assert.deepEqual(await store.getRole({ workspaceId: WS, name: 'writer' }), described);
        assert.deepEqual(await store.listRoles(WS), [plain, described]);
      });

      it('refuses a second role with the same name in one workspace', async () => {
        await withWorkspaces();
        await store.insertRole(role());
        await rejectsWithConflict(store.insertRole(role({ id: 'rol_bbbbbbbbbbbbbbbbbbbb' })), 'role.name');
        await store.insertRole(role({ id: 'rol_cccccccccccccccccccc', workspaceId: WS2 }));
        assert.equal((await store.listRoles(WS2)).length, 1);
      });

      it('updates a role, removes a description it no longer has, and refuses a taken name', async () => {
        await withWorkspaces();
        await store.insertRole(role({ description: 'old' }));
        await store.insertRole(role({ id: 'rol_bbbbbbbbbbbbbbbbbbbb', name: 'writer' }));
        const updated = role({ permissions: [], endpoints: [], updatedAt: T1 });
        assert.equal(await store.updateRole(updated), true);
        assert.deepEqual(await store.getRole({ id: updated.id }), updated);
        await rejectsWithConflict(store.updateRole(role({ name: 'writer' })), 'role.name');
        assert.equal(await store.updateRole(role({ id: 'rol_missingmissingmiss' })), false);
      });

      it('deletes a role and leaves its clients holding the dangling role id', async () => {
        await withWorkspaces();
        await store.insertRole(role());
        await store.insertClient(client());
        assert.equal(await store.deleteRole(role().id), true);
        assert.equal(await store.deleteRole(role().id), false);
        assert.equal(await store.getRole({ id: role().id }), undefined);
        assert.deepEqual(await store.getClient(client().id), client());
      });
    });

    describe('API clients and keys', () => {
      it('round-trips a client with every optional field absent', async () => {
        await withWorkspaces();
        await store.insertClient(client());
        const got = await store.getClient(client().id);
        assert.deepEqual(got, client());
        for (const field of ['allowedIps', 'userId', 'orgId', 'metadata', 'rateLimits', 'expiresAt', 'email']) {
          assert.equal(Object.hasOwn(got!, field), false, `${field} is absent, not undefined or null`);
        }
      });

      it('round-trips a legacy operator client with every optional field present', async () => {
        await withWorkspaces();
        await store.insertClient(fullClient());
        assert.deepEqual(await store.getClient(fullClient().id), fullClient());
      });

      it('lists the clients of one workspace by creation time, then id', async () => {
        await withWorkspaces();
        await store.insertClient(client({ id: 'cli_cccccccccccccccccccc', createdAt: T1 }));
        await store.insertClient(client({ id: 'cli_bbbbbbbbbbbbbbbbbbbb', createdAt: T1 }));
        await store.insertClient(client({ id: 'cli_zzzzzzzzzzzzzzzzzzzz', createdAt: T0 }));
        await store.insertClient(client({ id: 'cli_wwwwwwwwwwwwwwwwwwww', workspaceId: WS2 }));
        assert.deepEqual((await store.listClients(WS)).map((c) => c.id), ['cli_zzzzzzzzzzzzzzzzzzzz', 'cli_bbbbbbbbbbbbbbbbbbbb', 'cli_cccccccccccccccccccc']);
      });

      it('updates a client, dropping optional fields it no longer has', async () => {
        await withWorkspaces();
        await store.insertClient(fullClient());
        const trimmed = client({ id: fullClient().id, kind: 'legacy', name: 'Renamed', updatedAt: T1 });
        assert.equal(await store.updateClient(trimmed), true);
        assert.deepEqual(await store.getClient(trimmed.id), trimmed);
        assert.equal(await store.updateClient(client({ id: 'cli_missingmissingmiss' })), false);
      });

      it('refuses a second client with the same id', async () => {
        await withWorkspaces();
        await store.insertClient(client());
        await rejectsWithConflict(store.insertClient(client({ name: 'copy' })), 'client.id');
      });

      it('finds a key by hash together with its client', async () => {
        await withWorkspaces();
        await store.insertClient(fullClient());
        const k = key({ clientId: fullClient().id, expiresAt: T2 });
        await store.insertKey(k);
        assert.deepEqual(await store.findKey(k.hash), { key: k, client: fullClient() });
        assert.equal(await store.findKey('b'.repeat(64)), undefined);
      });

      it('refuses a key hash that is already in use, even by another client', async () => {
        await withWorkspaces();
        await store.insertClient(client());
        await store.insertClient(client({ id: 'cli_bbbbbbbbbbbbbbbbbbbb', workspaceId: WS2 }));
        await store.insertKey(key());
        await rejectsWithConflict(store.insertKey(key({ id: 'gh_live_other', clientId: 'cli_bbbbbbbbbbbbbbbbbbbb' })), 'key.hash');
      });

      it('refuses a second key with the same id for one client', async () => {
        await withWorkspaces();
        await store.insertClient(client());
        await store.insertKey(key());
        await rejectsWithConflict(store.insertKey(key({ hash: 'b'.repeat(64) })), 'key.id');
      });

      it('lists a client\'s keys oldest first, sets and clears a key\'s expiry, and deletes one key', async () => {
        await withWorkspaces();
        await store.insertClient(client());
        const older = key({ id: 'gh_live_old', hash: '1'.repeat(64), createdAt: T0 });
        const newer = key({ id: 'gh_live_new', hash: '2'.repeat(64), createdAt: T1 });
        await store.insertKey(newer);
        await store.insertKey(older);
        assert.deepEqual(await store.listKeys(client().id), [older, newer]);

        assert.equal(await store.updateKeyExpiry(client().id, older.id, T2), true);
        assert.deepEqual((await store.listKeys(client().id))[0], { ...older, expiresAt: T2 });
        assert.equal(await store.updateKeyExpiry(client().id, older.id, undefined), true);
        assert.deepEqual((await store.listKeys(client().id))[0], older);
        assert.equal(await store.updateKeyExpiry(client().id, 'gh_live_none', T2), false);

        assert.equal(await store.deleteKey(client().id, older.id), true);
        assert.equal(await store.deleteKey(client().id, older.id), false);
        assert.deepEqual(await store.listKeys(client().id), [newer]);
        assert.equal(await store.findKey(older.hash), undefined);
      });

      it('lists every key of a workspace and none of another workspace', async () => {
        await withWorkspaces();
        await store.insertClient(client());
        await store.insertClient(client({ id: 'cli_bbbbbbbbbbbbbbbbbbbb' }));
        await store.insertClient(client({ id: 'cli_wwwwwwwwwwwwwwwwwwww', workspaceId: WS2 }));
        const a = key({ hash: '1'.repeat(64) });
        const b = key({ clientId: 'cli_bbbbbbbbbbbbbbbbbbbb', hash: '2'.repeat(64) });
        const other = key({ clientId: 'cli_wwwwwwwwwwwwwwwwwwww', hash: '3'.repeat(64) });
        await store.insertKey(b);
        await store.insertKey(other);
        await store.insertKey(a);
        assert.deepEqual(await store.listWorkspaceKeys(WS), [a, b]);
        assert.deepEqual(await store.listWorkspaceKeys(WS2), [other]);
      });

      it("deletes a client's keys with the client", async () => {
        await withWorkspaces();
        await store.insertClient(client());
        await store.insertKey(key());
        await store.insertKey(key({ id: 'gh_live_second', hash: 'b'.repeat(64) }));
        assert.equal(await store.deleteClient(client().id), true);
        assert.equal(await store.deleteClient(client().id), false);
        assert.equal(await store.getClient(client().id), undefined);
        assert.deepEqual(await store.listKeys(client().id), []);
        assert.equal(await store.findKey(key().hash), undefined);
        // The hash is free again.
        await store.insertClient(client({ id: 'cli_bbbbbbbbbbbbbbbbbbbb' }));
        await store.insertKey(key({ clientId: 'cli_bbbbbbbbbbbbbbbbbbbb' }));
      });
    });

    describe('users and sessions', () => {
      it('round-trips user roles sorted by name, refuses a duplicate name, and deletes one', async () => {
        await withWorkspaces();
        await store.insertUserRole({ workspaceId: WS, name: 'viewer', privileges: [], builtIn: false });
        await store.insertUserRole({ workspaceId: WS, name: 'admin', privileges: ['clients', 'roles', 'collections', 'deploy', 'collaborators', 'gateways'], builtIn: true });
        await store.insertUserRole({ workspaceId: WS2, name: 'viewer', privileges: ['gateways'], builtIn: false });
        assert.deepEqual(await store.listUserRoles(WS), [
          { workspaceId: WS, name: 'admin', privileges: ['clients', 'roles', 'collections', 'deploy', 'collaborators', 'gateways'], builtIn: true },
          { workspaceId: WS, name: 'viewer', privileges: [], builtIn: false },
        ]);
        await rejectsWithConflict(store.insertUserRole({ workspaceId: WS, name: 'viewer', privileges: [], builtIn: false }), 'userRole.name');
        assert.equal(await store.deleteUserRole(WS, 'viewer'), true);
        assert.equal(await store.deleteUserRole(WS, 'viewer'), false);
        assert.deepEqual((await store.listUserRoles(WS2)).map((r) => r.name), ['viewer']);
      });

      it('round-trips a user with and without a name and finds one by id and by email', async () => {
        await withWorkspaces();
        const nameless = user();
        const named = user({ id: 'usr_bbbbbbbbbbbbbbbbbbbb', email: 'grace@example.com', name: 'Grace Hopper', role: 'viewer' });
        await store.insertUser(named);
        await store.insertUser(nameless);
        assert.deepEqual(await store.getUser({ id: nameless.id }), nameless);
        assert.equal(Object.hasOwn((await store.getUser({ id: nameless.id }))!, 'name'), false);
        assert.deepEqual(await store.getUser({ workspaceId: WS, email: 'grace@example.com' }), named);
        assert.equal(await store.getUser({ workspaceId: WS2, email: 'grace@example.com' }), undefined);
        assert.deepEqual(await store.listUsers(WS), [nameless, named]);
      });

      it('refuses a second user with the same email in one workspace but not in another', async () => {
        await withWorkspaces();
        await store.insertUser(user());
        await rejectsWithConflict(store.insertUser(user({ id: 'usr_bbbbbbbbbbbbbbbbbbbb' })), 'user.email');
        await store.insertUser(user({ id: 'usr_cccccccccccccccccccc', workspaceId: WS2 }));
      });

      it('updates a user', async () => {
        await withWorkspaces();
        await store.insertUser(user({ name: 'Ada' }));
        const changed = user({ email: 'ada@lovelace.example', role: 'viewer', passwordHash: 'scrypt$16384$8$1$bmV3$bmV3' });
        assert.equal(await store.updateUser(changed), true);
        assert.deepEqual(await store.getUser({ id: changed.id }), changed);
        assert.equal(await store.updateUser(user({ id: 'usr_missingmissingmiss' })), false);
      });

      it('round-trips a session and deletes it', async () => {
        await withWorkspaces();
        await store.insertUser(user());
        await store.insertSession(session());
        assert.deepEqual(await store.getSession(session().hash), session());
        await rejectsWithConflict(store.insertSession(session()), 'session.hash');
        assert.equal(await store.deleteSession(session().hash), true);
        assert.equal(await store.deleteSession(session().hash), false);
        assert.equal(await store.getSession(session().hash), undefined);
      });

      it('deletes the sessions that expired by a given time, and only those', async () => {
        await withWorkspaces();
        await store.insertUser(user());
        await store.insertSession(session({ hash: '1'.repeat(64), expiresAt: T0 }));
        await store.insertSession(session({ hash: '2'.repeat(64), expiresAt: T1 }));
        await store.insertSession(session({ hash: '3'.repeat(64), expiresAt: T2 }));
        assert.equal(await store.deleteExpiredSessions(T1), 2);
        assert.equal(await store.getSession('2'.repeat(64)), undefined);
        assert.deepEqual(await store.getSession('3'.repeat(64)), session({ hash: '3'.repeat(64), expiresAt: T2 }));
        assert.equal(await store.deleteExpiredSessions(T1), 0);
      });

      it('deletes a user with its sessions', async () => {
        await withWorkspaces();
        await store.insertUser(user());
        await store.insertSession(session());
        assert.equal(await store.deleteUser(user().id), true);
        assert.equal(await store.deleteUser(user().id), false);
        assert.equal(await store.getSession(session().hash), undefined);
      });
    });

    describe('snapshots', () => {
      it('returns the newest snapshot of a scope, and any one by version', async () => {
        assert.equal(await store.getLatestSnapshot(`${WS}/PROD/cloud`), undefined);
        await store.insertSnapshot(snapshot(1));
        await store.insertSnapshot(snapshot(10));
        await store.insertSnapshot(snapshot(2));
        await store.insertSnapshot(snapshot(99, `${WS}/PROD/edge:eu-1`));
        assert.deepEqual(await store.getLatestSnapshot(`${WS}/PROD/cloud`), snapshot(10), 'by number, not as text');
        assert.deepEqual(await store.getSnapshot(`${WS}/PROD/cloud`, 2), snapshot(2));
        assert.equal(await store.getSnapshot(`${WS}/PROD/cloud`, 3), undefined);
      });

      it('refuses a second snapshot with the same scope and version', async () => {
        await store.insertSnapshot(snapshot(1));
        await rejectsWithConflict(store.insertSnapshot(snapshot(1)), 'snapshot.version');
      });

      it('keeps snapshots ordered and prunes the oldest', async () => {
        const scope = `${WS}/PROD/cloud`;
        const other = `${WS}/TEST/cloud`;
        for (const v of [3, 1, 5, 2, 4]) await store.insertSnapshot(snapshot(v));
        await store.insertSnapshot(snapshot(1, other));
        assert.equal(await store.pruneSnapshots(scope, 2), 3);
        assert.deepEqual(await store.getSnapshot(scope, 3), undefined);
        assert.deepEqual(await store.getSnapshot(scope, 4), snapshot(4));
        assert.deepEqual(await store.getLatestSnapshot(scope), snapshot(5));
        assert.equal(await store.pruneSnapshots(scope, 2), 0);
        assert.deepEqual(await store.getSnapshot(other, 1), snapshot(1, other), 'other scopes are left alone');
        assert.equal(await store.pruneSnapshots(scope, 0), 2);
        assert.equal(await store.getLatestSnapshot(scope), undefined);
      });

      it('round-trips a large snapshot body byte for byte', async () => {
        const body = JSON.stringify({ collections: Array.from({ length: 2000 }, (_, i) => ({ name: `c${i}`, note: 'ünïcødé ✓ \u2028' })) });
        const s = { ...snapshot(1), body };
        await store.insertSnapshot(s);
        assert.equal((await store.getLatestSnapshot(s.scope))!.body, body);
      });
    });

    describe('edge gateways', () => {
      it('round-trips a gateway and finds it by id, by name and by environment', async () => {
        await withWorkspaces();
        await store.insertGateway(gateway());
        assert.deepEqual(await store.getGateway({ id: GW }), gateway());
        assert.deepEqual(await store.getGateway({ workspaceId: WS, name: 'eu-1' }), gateway());
        assert.deepEqual(await store.getGateway({ workspaceId: WS, environment: 'PROD' }), gateway());
        assert.equal(await store.getGateway({ workspaceId: WS2, name: 'eu-1' }), undefined);
        assert.equal(await store.getGateway({ workspaceId: WS, environment: 'DEV' }), undefined);
        assert.equal(await store.getGateway({ id: 'gtw_missingmissingmiss' }), undefined);
      });

      it('refuses a second gateway with the same name in one workspace but not in another', async () => {
        await withWorkspaces();
        await store.insertGateway(gateway());
        await rejectsWithConflict(store.insertGateway(gateway({ id: 'gtw_bbbbbbbbbbbbbbbbbbbb', environment: 'TEST' })), 'gateway.name');
        await store.insertGateway(gateway({ id: 'gtw_cccccccccccccccccccc', workspaceId: WS2 }));
      });

      it('refuses a second gateway in the same environment', async () => {
        await withWorkspaces();
        await store.insertGateway(gateway());
        await rejectsWithConflict(store.insertGateway(gateway({ id: 'gtw_bbbbbbbbbbbbbbbbbbbb', name: 'eu-2' })), 'gateway.environment');
        await rejectsWithConflict(store.insertGateway(gateway({ name: 'eu-3', environment: 'TEST' })), 'gateway.id');
      });

      it('updates a gateway and lists gateways by environment, then name', async () => {
        await withWorkspaces();
        await store.insertGateway(gateway());
        await store.insertGateway(gateway({ id: 'gtw_bbbbbbbbbbbbbbbbbbbb', environment: 'DEV', name: 'zz-dev' }));
        await store.insertGateway(gateway({ id: 'gtw_cccccccccccccccccccc', environment: 'TEST', name: 'aa-test' }));
        await store.insertGateway(gateway({ id: 'gtw_dddddddddddddddddddd', workspaceId: WS2 }));
        const renamed = gateway({ name: 'eu-central', installMethod: 'helm', updatedAt: T1 });
        assert.equal(await store.updateGateway(renamed), true);
        assert.equal(await store.updateGateway(gateway({ id: 'gtw_missingmissingmiss' })), false);
        const list = await store.listGateways(WS);
        assert.deepEqual(list.map((g) => `${g.environment}/${g.name}`), ['DEV/zz-dev', 'PROD/eu-central', 'TEST/aa-test']);
        assert.deepEqual(list[1], renamed);
        await rejectsWithConflict(store.updateGateway({ ...renamed, name: 'zz-dev' }), 'gateway.name');
      });

      it('round-trips registration tokens with and without usedAt, and refuses a duplicate hash', async () => {
        await withWorkspaces();
        await store.insertGateway(gateway());
        const unused = registrationToken();
        const used = registrationToken({ hash: 'e'.repeat(64), usedAt: T0 });
        await store.insertRegistrationToken(unused);
        await store.insertRegistrationToken(used);
        const got = await store.getRegistrationToken(unused.hash);
        assert.deepEqual(got, unused);
        assert.equal(Object.hasOwn(got!, 'usedAt'), false);
        assert.deepEqual(await store.getRegistrationToken(used.hash), used);
        assert.equal(await store.getRegistrationToken('f'.repeat(64)), undefined);
        await rejectsWithConflict(store.insertRegistrationToken(unused), 'registrationToken.hash');
      });

      it('consumes a registration token once', async () => {
        await withWorkspaces();
        await store.insertGateway(gateway());
        await store.insertRegistrationToken(registrationToken());
        assert.equal(await store.consumeRegistrationToken(registrationToken().hash, T0), true);
        assert.deepEqual(await store.getRegistrationToken(registrationToken().hash), registrationToken({ usedAt: T0 }));
        assert.equal(await store.consumeRegistrationToken(registrationToken().hash, T0), false, 'a used token is refused');
        assert.equal(await store.consumeRegistrationToken('f'.repeat(64), T0), false, 'an unknown token is refused');
      });

      it('refuses an expired registration token', async () => {
        await withWorkspaces();
        await store.insertGateway(gateway());
        await store.insertRegistrationToken(registrationToken({ expiresAt: T1 }));
        assert.equal(await store.consumeRegistrationToken(registrationToken().hash, T1), false, 'expired at its expiry time');
        assert.equal(await store.consumeRegistrationToken(registrationToken().hash, T2), false);
        assert.equal(Object.hasOwn((await store.getRegistrationToken(registrationToken().hash))!, 'usedAt'), false);
      });

      it('lets exactly one of two concurrent callers consume a registration token', async () => {
        await withWorkspaces();
        await store.insertGateway(gateway());
        for (const n of [1, 2, 3, 4, 5]) {
          const hash = String(n).repeat(64);
          await store.insertRegistrationToken(registrationToken({ hash }));
          const results = await Promise.all([store.consumeRegistrationToken(hash, T0), store.consumeRegistrationToken(hash, T0)]);
          assert.deepEqual(results.toSorted(), [false, true], `token ${n}: ${results.join(', ')}`);
        }
      });

      it("deletes a gateway's unused registration tokens and keeps the used ones", async () => {
        await withWorkspaces();
        await store.insertGateway(gateway());
        await store.insertGateway(gateway({ id: 'gtw_bbbbbbbbbbbbbbbbbbbb', environment: 'TEST', name: 'eu-2' }));
        await store.insertRegistrationToken(registrationToken({ hash: '1'.repeat(64) }));
        await store.insertRegistrationToken(registrationToken({ hash: '2'.repeat(64) }));
        await store.insertRegistrationToken(registrationToken({ hash: '3'.repeat(64), usedAt: T0 }));
        await store.insertRegistrationToken(registrationToken({ hash: '4'.repeat(64), gatewayId: 'gtw_bbbbbbbbbbbbbbbbbbbb' }));
        assert.equal(await store.deleteRegistrationTokens(GW), 2);
        assert.equal(await store.getRegistrationToken('1'.repeat(64)), undefined);
        assert.ok(await store.getRegistrationToken('3'.repeat(64)));
        assert.ok(await store.getRegistrationToken('4'.repeat(64)), "another gateway's token is left alone");
        assert.equal(await store.deleteRegistrationTokens(GW), 0);
      });

      it('round-trips certificates with and without revokedAt, and refuses a duplicate serial', async () => {
        await withWorkspaces();
        await store.insertGateway(gateway());
        const valid = certificate();
        const revoked = certificate({ serial: '02cd', revokedAt: T1 });
        await store.insertGatewayCertificate(valid);
        await store.insertGatewayCertificate(revoked);
        const got = await store.getGatewayCertificate(valid.serial);
        assert.deepEqual(got, valid);
        assert.equal(Object.hasOwn(got!, 'revokedAt'), false);
        assert.deepEqual(await store.getGatewayCertificate(revoked.serial), revoked);
        assert.equal(await store.getGatewayCertificate('ffff'), undefined);
        await rejectsWithConflict(store.insertGatewayCertificate(valid), 'certificate.serial');
      });

      it("marks a deleted gateway's certificates revoked", async () => {
        await withWorkspaces();
        await store.insertGateway(gateway());
        await store.insertGateway(gateway({ id: 'gtw_bbbbbbbbbbbbbbbbbbbb', environment: 'TEST', name: 'eu-2' }));
        await store.insertGatewayCertificate(certificate());
        await store.insertGatewayCertificate(certificate({ serial: '02cd', revokedAt: T0 }));
        await store.insertGatewayCertificate(certificate({ serial: '03ef', gatewayId: 'gtw_bbbbbbbbbbbbbbbbbbbb' }));
        assert.equal(await store.deleteGateway(GW, T2), true);
        assert.deepEqual(await store.getGatewayCertificate('01ab'), certificate({ revokedAt: T2 }));
        assert.deepEqual(await store.getGatewayCertificate('02cd'), certificate({ serial: '02cd', revokedAt: T0 }), 'an earlier revocation stands');
        assert.deepEqual(
          await store.getGatewayCertificate('03ef'),
          certificate({ serial: '03ef', gatewayId: 'gtw_bbbbbbbbbbbbbbbbbbbb' }),
          "another gateway's certificate stays valid",
        );
        assert.equal(await store.deleteGateway(GW, T2), false);
      });

      it('deletes a gateway with its registration tokens and instances, freeing its name and environment', async () => {
        await withWorkspaces();
        await store.insertGateway(gateway());
        await store.insertRegistrationToken(registrationToken());
        await store.upsertGatewayInstance(instance());
        assert.equal(await store.deleteGateway(GW, T1), true);
        assert.equal(await store.getGateway({ id: GW }), undefined);
        assert.equal(await store.getRegistrationToken(registrationToken().hash), undefined);
        assert.deepEqual(await store.listGatewayInstances(GW), []);
        await store.insertGateway(gateway({ id: 'gtw_bbbbbbbbbbbbbbbbbbbb' }));
        await store.insertRegistrationToken(registrationToken({ gatewayId: 'gtw_bbbbbbbbbbbbbbbbbbbb' }));
      });

      it('round-trips an instance with every optional field and with none, listed by instance id', async () => {
        await withWorkspaces();
        await store.insertGateway(gateway());
        const bare = instance({ instanceId: 'ins-b', connected: false });
        const full = instance({
          instanceId: 'ins-a',
          hostname: 'gw-0.example.internal',
          appliedVersion: 7,
          appliedHash: 'a'.repeat(64),
          nackedVersion: 8,
          lastError: 'upstream url not allowed',
          lastSeenAt: T1,
          lastSyncedAt: T1,
        });
        await store.upsertGatewayInstance(bare);
        await store.upsertGatewayInstance(full);
        const list = await store.listGatewayInstances(GW);
        assert.deepEqual(list, [full, bare]);
        for (const field of ['hostname', 'appliedHash', 'nackedVersion', 'lastError', 'lastSyncedAt']) {
          assert.equal(Object.hasOwn(list[1]!, field), false, field);
        }
      });

      it('replaces an instance on upsert, clearing fields no longer set', async () => {
        await withWorkspaces();
        await store.insertGateway(gateway());
        await store.upsertGatewayInstance(instance({ hostname: 'gw-0', appliedVersion: 3, nackedVersion: 4, lastError: 'bad snapshot' }));
        const replaced = instance({ softwareVersion: '0.2.0', appliedVersion: 4, appliedHash: 'b'.repeat(64), connected: false, lastSeenAt: T1, lastSyncedAt: T1 });
        await store.upsertGatewayInstance(replaced);
        assert.deepEqual(await store.listGatewayInstances(GW), [replaced]);
      });

      it('prunes the instances that are disconnected and not seen since a given time, and only those', async () => {
        await withWorkspaces();
        await store.insertGateway(gateway());
        await store.upsertGatewayInstance(instance({ instanceId: 'old-gone', connected: false, lastSeenAt: T0 }));
        await store.upsertGatewayInstance(instance({ instanceId: 'old-connected', connected: true, lastSeenAt: T0 }));
        await store.upsertGatewayInstance(instance({ instanceId: 'recent-gone', connected: false, lastSeenAt: T1 }));
        assert.equal(await store.pruneGatewayInstances(T1), 1);
        assert.deepEqual((await store.listGatewayInstances(GW)).map((i) => i.instanceId), ['old-connected', 'recent-gone']);
        assert.equal(await store.pruneGatewayInstances(T1), 0);
      });
    });

    describe('telemetry, security events and alerts', () => {
      const M0 = '2025-01-01T00:00:00.000Z';
      const M1 = '2025-01-01T00:01:00.000Z';
      const M2 = '2025-01-01T00:02:00.000Z';

      it('round-trips telemetry rows, fractional durations included', async () => {
        await withWorkspaces();
        await store.addTelemetry([telemetry()]);
        assert.deepEqual(await store.listTelemetry(WS, { since: M0 }), [telemetry()]);
        await store.addTelemetry([]);
      });

      it('adds telemetry counts for the same minute and key', async () => {
        await withWorkspaces();
        await store.addTelemetry([telemetry({ count: 3, durationMsSum: 30, durationMsMax: 20 })]);
        await store.addTelemetry([
          telemetry({ count: 2, durationMsSum: 12.5, durationMsMax: 8 }),
          telemetry({ count: 1, durationMsSum: 40, durationMsMax: 40 }),
          telemetry({ status: 401, clientId: '-', count: 1, durationMsSum: 1, durationMsMax: 1 }),
        ]);
        await store.addTelemetry([telemetry({ count: 1, durationMsSum: 5, durationMsMax: 5 })]);
        assert.deepEqual(await store.listTelemetry(WS, { since: M0 }), [
          telemetry({ status: 401, clientId: '-', count: 1, durationMsSum: 1, durationMsMax: 1 }),
          telemetry({ count: 7, durationMsSum: 87.5, durationMsMax: 40 }),
        ]);
      });

      it('adds a large batch of telemetry in one call', async () => {
        await withWorkspaces();
        const rows = Array.from({ length: 1200 }, (_, i) => telemetry({ endpoint: `GET /e${String(i % 600).padStart(3, '0')}`, count: 1, durationMsSum: 2, durationMsMax: i }));
        await store.addTelemetry(rows);
        const listed = await store.listTelemetry(WS, { since: M0 });
        assert.equal(listed.length, 600);
        assert.deepEqual(listed[0], telemetry({ endpoint: 'GET /e000', count: 2, durationMsSum: 4, durationMsMax: 600 }));
      });

      it('lists telemetry from a minute on, by minute then key, optionally of one gateway, and prunes the oldest', async () => {
        await withWorkspaces();
        const a = telemetry({ minute: M1, gatewayId: 'cloud' });
        const b = telemetry({ minute: M1, collection: 'aaa' });
        const c = telemetry({ minute: M2 });
        const old = telemetry({ minute: M0 });
        const other = telemetry({ minute: M1, workspaceId: WS2 });
        await store.addTelemetry([c, old, b, a, other]);
        assert.deepEqual(await store.listTelemetry(WS, { since: M1 }), [a, b, c]);
        assert.deepEqual(await store.listTelemetry(WS, { since: M1, gatewayId: GW }), [b, c]);
        assert.deepEqual(await store.listTelemetry(WS2, { since: M0 }), [other]);
        assert.equal(await store.pruneTelemetry(M1), 1);
        assert.deepEqual(await store.listTelemetry(WS, { since: M0 }), [a, b, c]);
      });

      it('round-trips security events with and without optional fields, newest first, filtered and limited', async () => {
        await withWorkspaces();
        const bare = securityEvent();
        const full = securityEvent({ id: 'sev_bbbbbbbbbbbbbbbbbbbb', at: T1, collection: 'billing', clientId: 'cli_aaaaaaaaaaaaaaaaaaaa', keyLabel: 'gh_live_abcd', ip: '203.0.113.9' });
        const cloud = securityEvent({ id: 'sev_cccccccccccccccccccc', gatewayId: 'cloud', at: T2, kind: 'forbidden', reason: 'GH_ERR_AUTH_FORBIDDEN' });
        const other = securityEvent({ id: 'sev_dddddddddddddddddddd', workspaceId: WS2 });
        await store.insertSecurityEvents([bare, full, cloud, other]);
        await store.insertSecurityEvents([]);
        assert.deepEqual(await store.listSecurityEvents(WS, { since: T0 }), [cloud, full, bare]);
        assert.equal(Object.hasOwn((await store.listSecurityEvents(WS, { since: T0 }))[2]!, 'keyLabel'), false);
        assert.deepEqual(await store.listSecurityEvents(WS, { since: T1 }), [cloud, full]);
        assert.deepEqual(await store.listSecurityEvents(WS, { since: T0, gatewayId: GW }), [full, bare]);
        assert.deepEqual(await store.listSecurityEvents(WS, { since: T0, limit: 1 }), [cloud]);
        await rejectsWithConflict(store.insertSecurityEvents([bare]), 'securityEvent.id');
      });

      it('counts security events from a time on, by gateway and kind', async () => {
        await withWorkspaces();
        await store.insertSecurityEvents([
          securityEvent({ id: 'sev_1', at: T0 }),
          securityEvent({ id: 'sev_2', at: T1 }),
          securityEvent({ id: 'sev_3', at: T1, gatewayId: 'cloud' }),
          securityEvent({ id: 'sev_4', at: T2, kind: 'forbidden' }),
          securityEvent({ id: 'sev_5', at: T2, workspaceId: WS2 }),
        ]);
        assert.equal(await store.countSecurityEvents(WS, { since: T0 }), 4);
        assert.equal(await store.countSecurityEvents(WS, { since: T1 }), 3);
        assert.equal(await store.countSecurityEvents(WS, { since: T1, gatewayId: GW }), 2);
        assert.equal(await store.countSecurityEvents(WS, { since: T0, gatewayId: GW, kind: 'auth_failure' }), 2);
        assert.equal(await store.countSecurityEvents(WS2, { since: T2, kind: 'forbidden' }), 0);
      });

      it('prunes the security events of every workspace that happened before a time, and only those', async () => {
        await withWorkspaces();
        const old = securityEvent({ id: 'sev_1', at: T0 });
        const oldElsewhere = securityEvent({ id: 'sev_2', at: T0, workspaceId: WS2, gatewayId: 'cloud' });
        const atCutoff = securityEvent({ id: 'sev_3', at: T1 });
        const recent = securityEvent({ id: 'sev_4', at: T2 });
        await store.insertSecurityEvents([old, oldElsewhere, atCutoff, recent]);
        assert.equal(await store.pruneSecurityEvents(T1), 2);
        assert.deepEqual(await store.listSecurityEvents(WS, { since: T0 }), [recent, atCutoff]);
        assert.deepEqual(await store.listSecurityEvents(WS2, { since: T0 }), []);
        assert.equal(await store.pruneSecurityEvents(T1), 0);
      });

      it('round-trips an alert with and without optional fields, and refuses a duplicate id', async () => {
        await withWorkspaces();
        const bare = alert();
        const full = alert({
          id: 'alr_bbbbbbbbbbbbbbbbbbbb',
          gatewayId: GW,
          kind: 'version_mismatch',
          key: `version_mismatch:${GW}`,
          details: { instances: [{ id: 'ins-1', version: 3 }], expected: 4, note: 'ünïcødé' },
          resolvedAt: T1,
          deliveredAt: T1,
          deliveryAttempts: 2,
        });
        await store.insertAlert(bare);
        await store.insertAlert(full);
        const listed = await store.listAlerts(WS);
        assert.deepEqual(listed, [full, bare], 'raised at the same time: by id, descending');
        for (const field of ['gatewayId', 'details', 'resolvedAt', 'deliveredAt']) assert.equal(Object.hasOwn(listed.find((a) => a.id === bare.id)!, field), false, field);
        await rejectsWithConflict(store.insertAlert(alert({ key: 'other' })), 'alert.id');
      });

      it('keeps one open alert per key', async () => {
        await withWorkspaces();
        const first = alert();
        await store.insertAlert(first);
        assert.deepEqual(await store.getOpenAlert(WS, first.key), first);
        assert.equal(await store.getOpenAlert(WS2, first.key), undefined);
        await rejectsWithConflict(store.insertAlert(alert({ id: 'alr_bbbbbbbbbbbbbbbbbbbb', raisedAt: T1 })), 'alert.key');

        const resolved = { ...first, resolvedAt: T1 };
        assert.equal(await store.updateAlert(resolved), true);
        assert.equal(await store.getOpenAlert(WS, first.key), undefined);
        const second = alert({ id: 'alr_bbbbbbbbbbbbbbbbbbbb', raisedAt: T2 });
        await store.insertAlert(second);
        assert.deepEqual(await store.getOpenAlert(WS, first.key), second, 'a resolved alert does not block a new one');
        await store.insertAlert(alert({ id: 'alr_cccccccccccccccccccc', workspaceId: WS2 }));
        assert.equal(await store.updateAlert(alert({ id: 'alr_missingmissingmiss' })), false);
      });

      it('lists alerts newest first, open or resolved, limited', async () => {
        await withWorkspaces();
        const a = alert({ id: 'alr_1', key: 'a', raisedAt: T0, resolvedAt: T1 });
        const b = alert({ id: 'alr_2', key: 'b', raisedAt: T1 });
        const c = alert({ id: 'alr_3', key: 'c', raisedAt: T2 });
        await store.insertAlert(b);
        await store.insertAlert(a);
        await store.insertAlert(c);
        await store.insertAlert(alert({ id: 'alr_4', workspaceId: WS2 }));
        assert.deepEqual(await store.listAlerts(WS), [c, b, a]);
        assert.deepEqual(await store.listAlerts(WS, { open: true }), [c, b]);
        assert.deepEqual(await store.listAlerts(WS, { open: false }), [a]);
        assert.deepEqual(await store.listAlerts(WS, { limit: 2 }), [c, b]);
      });

      it('lists undelivered alerts oldest first', async () => {
        await withWorkspaces();
        const newest = alert({ id: 'alr_1', key: 'a', raisedAt: T2 });
        const delivered = alert({ id: 'alr_2', key: 'b', raisedAt: T0, deliveredAt: T0, deliveryAttempts: 1 });
        const oldest = alert({ id: 'alr_3', key: 'c', raisedAt: T0, deliveryAttempts: 3 });
        const otherWorkspace = alert({ id: 'alr_4', workspaceId: WS2, raisedAt: T1 });
        for (const a of [newest, delivered, oldest, otherWorkspace]) await store.insertAlert(a);
        assert.deepEqual(await store.listUndeliveredAlerts(10), [oldest, otherWorkspace, newest]);
        assert.deepEqual(await store.listUndeliveredAlerts(2), [oldest, otherWorkspace]);
        assert.equal(await store.updateAlert({ ...oldest, deliveredAt: T2, deliveryAttempts: 4 }), true);
        assert.deepEqual(await store.listUndeliveredAlerts(10), [otherWorkspace, newest]);
      });

      it('refuses telemetry, security events and alerts of a workspace that does not exist', async () => {
        await assert.rejects(store.addTelemetry([telemetry()]), (error) => !(error instanceof StoreConflictError));
        await assert.rejects(store.insertSecurityEvents([securityEvent()]), (error) => !(error instanceof StoreConflictError));
        await assert.rejects(store.insertAlert(alert()), (error) => !(error instanceof StoreConflictError));
      });
    });

    describe('transactions', () => {
      it('commits every write of a transaction and returns its value', async () => {
        const result = await store.transaction(async (tx) => {
          await tx.insertWorkspace(workspace());
          await tx.insertRole(role());
          assert.deepEqual(await tx.getRole({ id: role().id }), role(), 'reads its own writes');
          return 42;
        });
        assert.equal(result, 42);
        assert.deepEqual(await store.getWorkspace({ id: WS }), workspace());
        assert.deepEqual(await store.getRole({ id: role().id }), role());
      });

      it('rolls back every write of a failed transaction', async () => {
        await store.insertWorkspace(workspace());
        await assert.rejects(
          store.transaction(async (tx) => {
            await tx.insertRole(role());
            await tx.insertClient(client());
            await tx.setSetting('x', 'y');
            throw new Error('changed my mind');
          }),
          /changed my mind/,
        );
        assert.equal(await store.getRole({ id: role().id }), undefined);
        assert.equal(await store.getClient(client().id), undefined);
        assert.equal(await store.getSetting('x'), undefined);
      });

      it('rolls back a transaction whose write conflicted, reporting the conflict', async () => {
        await store.insertWorkspace(workspace());
        await store.insertRole(role());
        await rejectsWithConflict(
          store.transaction(async (tx) => {
            await tx.insertClient(client());
            await tx.insertRole(role({ id: 'rol_bbbbbbbbbbbbbbbbbbbb' }));
          }),
          'role.name',
        );
        assert.equal(await store.getClient(client().id), undefined);
      });

      it('runs nothing more in a transaction after a statement failed, even if the error was caught', async () => {
        await store.insertWorkspace(workspace());
        await store.insertRole(role());
        await assert.rejects(
          store.transaction(async (tx) => {
            await tx.insertRole(role({ id: 'rol_bbbbbbbbbbbbbbbbbbbb' })).catch(() => {});
            await tx.insertClient(client());
          }),
          /nothing more can run/,
        );
        assert.equal(await store.getClient(client().id), undefined);
      });

      it('rolls back a transaction whose failed statement the callback caught, rather than commit half of it', async () => {
        await store.insertWorkspace(workspace());
        await store.insertRole(role());
        await rejectsWithConflict(
          store.transaction(async (tx) => {
            await tx.insertClient(client());
            await tx.insertRole(role({ id: 'rol_bbbbbbbbbbbbbbbbbbbb' })).catch(() => {});
            return 'done';
          }),
          'role.name',
        );
        assert.equal(await store.getClient(client().id), undefined);
      });

      it('concurrent transactions do not interleave', async () => {
        const log: string[] = [];
        await store.setSetting('counter', '0');
        await Promise.all(
          Array.from({ length: 5 }, (_, i) =>
            store.transaction(async (tx) => {
              log.push(`begin ${i}`);
              const n = Number(await tx.getSetting('counter'));
              // Widens the window between read and write (the scenario, not a wait): correct serialization passes
              // whatever the timing.
              await sleep(5);
              await tx.setSetting('counter', String(n + 1));
              log.push(`end ${i}`);
            }),
          ),
        );
        assert.equal(await store.getSetting('counter'), '5', 'no lost update');
        for (let i = 0; i < log.length; i += 2) {
          assert.match(log[i]!, /^begin /);
          assert.equal(log[i + 1], log[i]!.replace('begin', 'end'), `each transaction ran alone: ${log.join(', ')}`);
        }
      });

      it('refuses the store itself inside a transaction callback, which would hang or miss the writes', async () => {
        await assert.rejects(
          store.transaction(async () => {
            await store.getSetting('x');
          }),
          /use the tx argument/,
        );
        assert.equal(await store.getSetting('x'), undefined, 'usable again afterwards');
      });

      it('refuses a nested transaction', async () => {
        await assert.rejects(
          store.transaction(async () => store.transaction(async () => 1)),
          /do not nest/,
        );
      });

      it('refuses a transaction handle used after its transaction ended', async () => {
        let escaped: Parameters<Parameters<Store['transaction']>[0]>[0] | undefined;
        await store.transaction(async (tx) => {
          escaped = tx;
        });
        await assert.rejects(escaped!.setSetting('x', 'y'), /has ended/);
        assert.equal(await store.getSetting('x'), undefined);
      });
    });
  });
}
