/**
 * The contract every `Store` keeps, as one `node:test` suite that runs against each implementation
 * (`store.test.ts`: SQLite and PostgreSQL). `open` must return a fresh, empty, migrated store for every test.
 */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  StoreConflictError,
  type ClientRecord,
  type CollectionRecord,
  type CollectionVersionRecord,
  type KeyRecord,
  type RoleRecord,
  type SessionRecord,
  type SnapshotRecord,
  type Store,
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
        await rejectsWithConflict(store.insertCollection(collection({ id: 'col_otherxxxxxxxxxxxxxxx' })), 'collection.name');
        await store.insertCollection(collection({ id: 'col_prodxxxxxxxxxxxxxxxx', environment: 'PROD' }));
        await store.insertCollection(collection({ id: 'col_ws2xxxxxxxxxxxxxxxxx', workspaceId: WS2 }));
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
        assert.equal(await store.updateCollection(collection({ id: 'col_missingxxxxxxxxxxxx' })), false);
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
        await store.insertCollection(collection({ id: 'col_ordersdevxxxxxxxxxx', name: 'orders' }));
        await store.insertCollection(collection({ name: 'billing', environment: 'PROD', id: 'col_billingprodxxxxxxxx' }));
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
