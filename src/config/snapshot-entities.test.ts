import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type Snapshot, SnapshotSchema } from './schema.ts';
import { applyDelta, diffSnapshots, encodeDelta, isEmptyDelta, SnapshotDeltaSchema } from './snapshot-delta.ts';
import { snapshotHash } from './snapshot-encoding.ts';

const base = {
  tokenExchange: { issuer: 'https://gatehouse.test', audience: 'test', ttl: '5m' },
  collections: [
    {
      name: 'docs',
      basePath: '/docs',
      upstream: 'http://127.0.0.1:1',
      project: 'p',
      environment: 'PROD',
      endpoints: [
        { method: 'GET', path: '/docs/{id}', permission: 'docs:read', resource: { type: 'Doc', param: 'id' } },
      ],
      policies: { cedar: 'permit (principal, action, resource);' },
    },
  ],
};
const doc = (id: string, owner: string) => ({
  collection: 'docs',
  uid: { type: 'Doc', id },
  attrs: { owner: { __entity: { type: 'User', id: owner } } },
  parents: [{ type: 'Org', id: 'acme' }],
});
const snapshot = (version: number, entities?: unknown[]): Snapshot =>
  SnapshotSchema.parse({ ...base, version, ...(entities && { entities }) });

describe('relationship data in snapshots and deltas', () => {
  it('sends only the entities that changed, and removes the ones that are gone', () => {
    const prev = snapshot(1, [doc('1', 'u1'), doc('2', 'u2'), doc('3', 'u3')]);
    const next = snapshot(2, [doc('1', 'u1'), doc('2', 'u9'), doc('4', 'u4')]);
    const delta = SnapshotDeltaSchema.parse(encodeDelta(diffSnapshots(prev, next)));
    assert.deepEqual(
      delta.entities?.upsert.map((e) => e.uid.id),
      ['2', '4'],
    );
    assert.deepEqual(delta.entities?.remove, [{ collection: 'docs', uid: { type: 'Doc', id: '3' } }]);
    assert.equal(snapshotHash(applyDelta(prev, delta)), snapshotHash(next));
  });

  it('leaves entities out of a delta that does not change them, and out of snapshots that have none', () => {
    const prev = snapshot(1, [doc('1', 'u1')]);
    const delta = diffSnapshots(prev, snapshot(2, [doc('1', 'u1')]));
    assert.equal(delta.entities, undefined);
    assert.ok(isEmptyDelta(delta));
    assert.deepEqual(applyDelta(prev, delta).entities, prev.entities);
    const emptied = diffSnapshots(prev, snapshot(2));
    assert.equal(Object.hasOwn(applyDelta(prev, emptied), 'entities'), false);
    assert.equal(Object.hasOwn(snapshot(3), 'entities'), false); // the content hash of snapshots without policies stays
  });

  it('refuses an entity of an unknown collection, or twice the same entity', () => {
    assert.throws(() => snapshot(1, [{ ...doc('1', 'u1'), collection: 'nope' }]), /unknown collection/);
    assert.throws(() => snapshot(1, [doc('1', 'u1'), doc('1', 'u2')]), /duplicate entity docs Doc::/);
    assert.throws(
      () => snapshot(1, [{ ...doc('1', 'u1'), attrs: { at: { __extn: { fn: 'ip', arg: '1.2.3.4' } } } }]),
      /extension values are not accepted|Invalid/,
    );
  });
});
