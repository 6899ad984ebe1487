import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import {
  type Client,
  ClientSchema,
  type Collection,
  CollectionSchema,
  type LegacyClient,
  LegacyClientSchema,
  RateLimitPoliciesSchema,
  type Role,
  RoleSchema,
  type Snapshot,
  SnapshotSchema,
  TokenExchangeSchema,
} from './schema.ts';
import {
  applyDelta,
  diffSnapshots,
  encodeDelta,
  isEmptyDelta,
  type SnapshotDelta,
  SnapshotDeltaError,
  SnapshotDeltaSchema,
} from './snapshot-delta.ts';
import { encodeSnapshot, inCanonicalOrder } from './snapshot-encoding.ts';
import { prng } from '../testing/prng.ts';

/**
 * The content of a snapshot as a model that random edits keep valid: every role grant names an endpoint that
 * exists, every client a role that exists, every key hash is unique.
 */
class Model {
  collections = new Map<string, Collection>();
  roles = new Map<string, Role>();
  clients = new Map<string, Client>();
  legacyClients = new Map<string, LegacyClient>();
  tokenExchange = TokenExchangeSchema.parse({ issuer: 'https://gatehouse', audience: 'api' });
  rateLimits = RateLimitPoliciesSchema.parse({});
  private serial = 0;
  private readonly random: () => number;

  constructor(seed: number) {
    this.random = prng(seed);
  }

  snapshot(version: number): Snapshot {
    return inCanonicalOrder({
      version,
      collections: [...this.collections.values()],
      roles: [...this.roles.values()],
      clients: [...this.clients.values()],
      legacyClients: [...this.legacyClients.values()],
      legacyAuth: { keyHeader: 'x-api-key', emailHeader: 'x-api-email' },
      tokenExchange: this.tokenExchange,
      rateLimits: this.rateLimits,
    });
  }

  /** One random addition, change or removal of a collection, role, client, legacy client or setting. */
  edit(): void {
    const roll = this.random();
    if (roll < 0.25) this.editCollection();
    else if (roll < 0.45) this.editRole();
    else if (roll < 0.8) this.editClient();
    else if (roll < 0.9) this.editLegacyClient();
    else if (roll < 0.95)
      this.tokenExchange = TokenExchangeSchema.parse({
        issuer: 'https://gatehouse',
        audience: this.pick(['api', 'other']),
        ttl: this.pick(['5m', 60, '1h']),
      });
    else
      this.rateLimits = RateLimitPoliciesSchema.parse(
        this.pick([
          {},
          { key: { limit: 10, window: '1m' } },
          { org: { limit: 1000, window: '1h' }, client: { limit: 5, window: 2.5 } },
        ]),
      );
  }

  private editCollection(): void {
    const name = this.existingOr(this.collections, 'col');
    if (this.collections.has(name) && this.random() < 0.3) {
      this.collections.delete(name);
      for (const role of this.roles.values()) role.endpoints = role.endpoints.filter((e) => e.collection !== name);
      return;
    }
    this.collections.set(
      name,
      CollectionSchema.parse({
        name,
        basePath: `/${name}`,
        upstream: this.pick([
          'http://127.0.0.1:9000',
          { url: 'http://api.internal', headersTimeout: '10s', bodyTimeout: 1.5 },
        ]),
        project: this.pick(['shop', 'billing']),
        environment: 'PROD',
        authRequired: this.random() < 0.9,
        ...(this.random() < 0.3 && {
          rateLimits: { key: { limit: 1 + Math.floor(this.random() * 50), window: '30s' } },
        }),
        endpoints: this.pick([
          [{ method: 'GET', path: '/items/{id}', permission: 'items:read' }],
          [
            { method: 'GET', path: '/items/{id}', permission: 'items:read' },
            { method: 'POST', path: '/items', permission: 'items:write' },
          ],
        ]),
      }),
    );
    for (const role of this.roles.values())
      role.endpoints = role.endpoints.filter((e) => e.collection !== name || e.method === 'GET');
  }

  private editRole(): void {
    const name = this.existingOr(this.roles, 'role');
    if (this.roles.has(name) && this.random() < 0.3) {
      this.roles.delete(name);
      for (const list of [this.clients, this.legacyClients])
        for (const [id, c] of list) if (c.role === name) list.delete(id);
      return;
    }
    const grants = [...this.collections.keys()]
      .filter(() => this.random() < 0.5)
      .map((collection) => ({ collection, method: 'GET', path: '/items/{itemId}' }));
    this.roles.set(
      name,
      RoleSchema.parse({
        name,
        permissions: this.pick([[], ['items:read'], ['items:*', 'admin:clients:read'], ['*']]),
        endpoints: grants,
        ...(this.random() < 0.3 && { description: `role ${this.serial}` }),
      }),
    );
  }

  private editClient(): void {
    const id = this.existingOr(this.clients, 'cli');
    if ((this.clients.has(id) && this.random() < 0.3) || this.roles.size === 0) {
      this.clients.delete(id);
      return;
    }
    const keys = Array.from({ length: 1 + Math.floor(this.random() * 3) }, (_, i) => ({
      hash: this.hash(),
      ...(i === 0 && this.random() < 0.5 && { id: `gh_${this.serial}` }),
      ...(i > 0 && { expiresAt: '2027-01-01T00:00:00Z' }),
    }));
    this.clients.set(id, ClientSchema.parse({ ...this.clientFields(id), keys }));
  }

  private editLegacyClient(): void {
    const id = this.existingOr(this.legacyClients, 'leg');
    if ((this.legacyClients.has(id) && this.random() < 0.3) || this.roles.size === 0) {
      this.legacyClients.delete(id);
      return;
    }
    this.legacyClients.set(
      id,
      LegacyClientSchema.parse({ ...this.clientFields(id), email: `${id}@example.com`, keyHash: this.hash() }),
    );
  }

  private clientFields(id: string) {
    return {
      id,
      role: this.pick([...this.roles.keys()]),
      environments: this.pick([['PROD'], ['DEV', 'PROD']]),
      projects: this.pick([['shop'], ['shop', 'billing']]),
      status: this.pick(['active', 'disabled']),
      ...(this.random() < 0.3 && {
        metadata: { plan: this.pick(['free', 'pro']), seats: Math.floor(this.random() * 10), '10': true, '9': 'x' },
      }),
      ...(this.random() < 0.3 && { rateLimits: { client: { limit: 100, window: this.pick(['1m', 90, '250ms']) } } }),
      ...(this.random() < 0.2 && {
        allowedIps: ['10.0.0.0/8', '2001:db8::/32'],
        orgId: 'org-1',
        userId: `user-${this.serial}`,
      }),
      ...(this.random() < 0.1 && { expiresAt: '2027-06-30T00:00:00.000Z' }),
    };
  }

  /** An existing name of `map` (so the edit changes or removes it), or now and then a new one. */
  private existingOr(map: Map<string, unknown>, prefix: string): string {
    this.serial++;
    return map.size > 0 && this.random() < 0.7 ? this.pick([...map.keys()]) : `${prefix}-${this.serial}`;
  }

  private hash(): string {
    return createHash('sha256').update(String(++this.serial)).digest('hex');
  }

  private pick<T>(values: readonly T[]): T {
    return values[Math.floor(this.random() * values.length)]!;
  }
}

/** Each section's names, for readable failures. */
function summary(delta: SnapshotDelta) {
  const names = <T>(s: { upsert: T[]; remove: string[] }, key: (e: T) => string) => ({
    upsert: s.upsert.map(key),
    remove: s.remove,
  });
  return {
    collections: names(delta.collections, (c) => c.name),
    roles: names(delta.roles, (r) => r.name),
    clients: names(delta.clients, (c) => c.id),
    legacyClients: names(delta.legacyClients, (c) => c.id),
    settings: [
      delta.tokenExchange && 'tokenExchange',
      delta.legacyAuth && 'legacyAuth',
      delta.rateLimits && 'rateLimits',
    ].filter(Boolean),
  };
}

describe('snapshot deltas', () => {
  it('turn one snapshot into the next, over 200 rounds of random additions, changes and removals', () => {
    const model = new Model(7);
    for (let i = 0; i < 5; i++) model.edit();
    let prev = SnapshotSchema.parse(encodeSnapshot(model.snapshot(1)));
    let changed = 0;
    const seen = new Set<string>();
    for (let round = 2; round <= 201; round++) {
      const edits = 1 + Math.floor(round % 4);
      for (let i = 0; i < edits; i++) model.edit();
      const next = SnapshotSchema.parse(encodeSnapshot(model.snapshot(round)));
      const delta = diffSnapshots(prev, next);
      assert.deepEqual(applyDelta(prev, delta), next, `round ${round}: ${JSON.stringify(summary(delta))}`);
      // What goes over the wire reads back as the same delta, durations included.
      assert.deepEqual(
        SnapshotDeltaSchema.parse(JSON.parse(JSON.stringify(encodeDelta(delta)))),
        delta,
        `round ${round}`,
      );
      if (!isEmptyDelta(delta)) changed++;
      for (const [section, names] of Object.entries(summary(delta))) {
        if (Array.isArray(names)) names.forEach((n) => seen.add(`${n}`));
        else for (const [what, list] of Object.entries(names)) if (list.length > 0) seen.add(`${what} ${section}`);
      }
      prev = next;
    }
    assert.ok(changed > 150, `only ${changed} rounds changed anything: the generator is too timid`);
    const kinds = ['collections', 'roles', 'clients', 'legacyClients'].flatMap((s) => [`upsert ${s}`, `remove ${s}`]);
    assert.deepEqual(
      kinds.filter((k) => !seen.has(k)),
      [],
      'some kind of change never happened',
    );
    assert.ok(seen.has('tokenExchange') && seen.has('rateLimits'), 'the settings never changed');
    assert.ok(
      prev.collections.length > 0 && prev.roles.length > 0 && prev.clients.length > 0,
      'the model stayed empty',
    );
  });

  it('carry only what changed: the upserted entries, the removed names and the changed settings', () => {
    const model = new Model(11);
    for (let i = 0; i < 40; i++) model.edit();
    const a = SnapshotSchema.parse(encodeSnapshot(model.snapshot(1)));
    const [first, second] = a.clients;
    assert.ok(first && second, 'the generator made fewer than two clients');
    const b = SnapshotSchema.parse(
      encodeSnapshot({
        ...a,
        version: 2,
        clients: [{ ...first, status: first.status === 'active' ? 'disabled' : 'active' }, ...a.clients.slice(2)],
        tokenExchange: { ...a.tokenExchange, ttl: 60_000 },
      }),
    );
    const delta = diffSnapshots(a, b);
    assert.deepEqual(summary(delta), {
      collections: { upsert: [], remove: [] },
      roles: { upsert: [], remove: [] },
      clients: { upsert: [first.id], remove: [second.id] },
      legacyClients: { upsert: [], remove: [] },
      settings: ['tokenExchange'],
    });
    assert.equal(delta.tokenExchange?.ttl, 60_000);
    assert.deepEqual([delta.fromVersion, delta.toVersion], [1, 2]);
  });

  it('are empty when nothing but the version changed', () => {
    const model = new Model(3);
    for (let i = 0; i < 30; i++) model.edit();
    const a = SnapshotSchema.parse(encodeSnapshot(model.snapshot(4)));
    const delta = diffSnapshots(a, { ...structuredClone(a), version: 'v5' });
    assert.ok(isEmptyDelta(delta), JSON.stringify(summary(delta)));
    assert.deepEqual(applyDelta(a, delta), { ...a, version: 'v5' });
    assert.deepEqual(encodeDelta(delta), {
      fromVersion: 4,
      toVersion: 'v5',
      collections: { upsert: [], remove: [] },
      roles: { upsert: [], remove: [] },
      clients: { upsert: [], remove: [] },
      legacyClients: { upsert: [], remove: [] },
    });
  });

  it('carry revocations of derived credentials only when they changed, and drop the list when none is left', () => {
    const model = new Model(5);
    for (let i = 0; i < 10; i++) model.edit();
    const a = SnapshotSchema.parse(encodeSnapshot(model.snapshot(1)));
    const client = a.clients[0]?.id ?? 'c-1';
    const expiresAt = '2030-01-01T00:00:00.000Z';
    const one = { id: 'r1', client, credential: 'AAAAAAAAAAAAAAAAAAAAAA', expiresAt };
    const two = { id: 'r2', client, agent: 'planner', session: 's-1', issuedBefore: '2029-12-31T23:00:00Z', expiresAt };
    const b = SnapshotSchema.parse(encodeSnapshot({ ...a, version: 2, revokedCredentials: [one, two] }));
    const added = diffSnapshots(a, b);
    assert.deepEqual(added.revokedCredentials, { upsert: [one, two], remove: [] });
    assert.ok(!isEmptyDelta(added));
    const received = SnapshotDeltaSchema.parse(JSON.parse(JSON.stringify(encodeDelta(added))));
    assert.deepEqual(applyDelta(a, received), b);
    const c = SnapshotSchema.parse(encodeSnapshot({ ...b, version: 3, revokedCredentials: [two] }));
    assert.deepEqual(diffSnapshots(b, c).revokedCredentials, { upsert: [], remove: ['r1'] });
    const { revokedCredentials: _gone, ...d } = { ...c, version: 4 };
    const emptied = applyDelta(c, diffSnapshots(c, d));
    assert.equal('revokedCredentials' in emptied, false, 'no empty list: other snapshots keep their hash');
    // Unchanged revocations travel no more; a malformed one is refused.
    assert.equal(diffSnapshots(b, { ...b, version: 5 }).revokedCredentials, undefined);
    assert.equal(
      SnapshotSchema.safeParse(encodeSnapshot({ ...a, revokedCredentials: [{ ...one, agent: 'x' }] })).success,
      false,
    );
  });

  it('refuse a snapshot at another version than the one they start from', () => {
    const model = new Model(5);
    for (let i = 0; i < 10; i++) model.edit();
    const a = SnapshotSchema.parse(encodeSnapshot(model.snapshot(1)));
    const b = SnapshotSchema.parse(encodeSnapshot(model.snapshot(2)));
    const delta = diffSnapshots(a, b);
    for (const at of [
      { ...a, version: 3 },
      { ...a, version: '1' },
      { ...a, version: undefined },
    ]) {
      assert.throws(
        () => applyDelta(at, delta),
        (error: unknown) => {
          assert.ok(error instanceof SnapshotDeltaError);
          assert.equal(error.reason, 'version-mismatch');
          assert.match(error.message, /^cannot apply the delta from version 1 to 2: the snapshot is at version/);
          return true;
        },
      );
    }
  });

  it('refuse to produce an invalid snapshot, naming the problem', () => {
    const model = new Model(9);
    for (let i = 0; i < 30; i++) model.edit();
    const a = SnapshotSchema.parse(encodeSnapshot(model.snapshot(1)));
    const used = a.clients[0]?.role;
    assert.ok(used, 'the generator made no client');
    const delta: SnapshotDelta = { ...diffSnapshots(a, { ...a, version: 2 }), roles: { upsert: [], remove: [used] } };
    assert.throws(
      () => applyDelta(a, delta),
      (error: unknown) => {
        assert.ok(error instanceof SnapshotDeltaError);
        assert.equal(error.reason, 'invalid-result');
        assert.match(error.message, new RegExp(`clients\\[\\d+\\]\\.role: unknown role "${used}"`));
        return true;
      },
    );
  });

  it('refuse a delta that names an entry twice', () => {
    const result = SnapshotDeltaSchema.safeParse({
      fromVersion: 1,
      toVersion: 2,
      roles: { upsert: [{ name: 'r' }], remove: ['r'] },
    });
    assert.equal(result.success, false);
    assert.match(result.error!.issues[0]!.message, /"r" appears twice in this delta/);
    assert.deepEqual(result.error!.issues[0]!.path, ['roles', 'remove', 0]);
  });

  it('need versioned snapshots to be computed', () => {
    const a = SnapshotSchema.parse(encodeSnapshot(new Model(1).snapshot(1)));
    assert.throws(() => diffSnapshots({ ...a, version: undefined }, a), /needs two versioned snapshots/);
  });
});

describe('the snapshot encoding', () => {
  it('parses back to the same snapshot, durations included', () => {
    const model = new Model(13);
    for (let i = 0; i < 200; i++) model.edit();
    const snapshot = SnapshotSchema.parse(encodeSnapshot(model.snapshot(1)));
    assert.ok(
      snapshot.collections.some((c) => c.upstream.headersTimeout === 10_000),
      'no collection with a 10s timeout was generated',
    );
    assert.deepEqual(SnapshotSchema.parse(JSON.parse(JSON.stringify(encodeSnapshot(snapshot)))), snapshot);
  });
});
