/**
 * Relationship data at scale (issue #18): N entities of one collection, through each step a relationship update
 * takes today, timed in one process:
 *   1. control plane: validate the compiled snapshot (zod), hash it, serialise it for the store;
 *   2. control plane: the delta from the previous version (one entity changed);
 *   3. gateway: apply the delta (re-validates the whole snapshot), then compile the collection's entity store;
 * and the gateway's memory for the entities (heap before/after building the entity store, after GC).
 * Steps 1–3 are what one update costs end to end besides the network; a full sync at connect costs 1 and 3.
 *
 * Usage: scripts/node --expose-gc bench/relationships.ts [--entities 100000] [--json]
 */
import { parseArgs } from 'node:util';
import { type Snapshot, SnapshotSchema } from '../src/config/schema.ts';
import { applyDelta, diffSnapshots } from '../src/config/snapshot-delta.ts';
import { canonicalJson, encodeSnapshot, snapshotHash } from '../src/config/snapshot-encoding.ts';
import { entityStore } from '../src/gateway/policies/resource-policy/entities.ts';
import type { EntityJson } from '../src/shared/cedar.ts';

const { values } = parseArgs({
  options: { entities: { type: 'string', default: '100000' }, json: { type: 'boolean', default: false } },
});
const N = Number(values.entities);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc');

const entity = (i: number, owner = i % 5000) => ({
  collection: 'docs',
  uid: { type: 'Document', id: String(i) },
  attrs: { owner: { __entity: { type: 'User', id: `u${owner}` } } },
  parents: [{ type: 'Org', id: `o${i % 1000}` }],
});
const base = {
  tokenExchange: { issuer: 'https://bench', audience: 'bench', ttl: '5m' },
  collections: [
    {
      name: 'docs',
      basePath: '/docs',
      upstream: 'http://127.0.0.1:1',
      project: 'p',
      environment: 'PROD',
      endpoints: [
        { method: 'GET', path: '/docs/{id}', permission: 'docs:read', resource: { type: 'Document', param: 'id' } },
      ],
      policies: {
        cedar:
          'permit (principal, action, resource) when { resource has owner && principal has user && resource.owner == principal.user };',
      },
    },
  ],
};
const time = <T>(fn: () => T): [T, number] => {
  const t = performance.now();
  const out = fn();
  return [out, performance.now() - t];
};

const input = { ...base, version: 1, entities: Array.from({ length: N }, (_, i) => entity(i)) };
const [prev, validateMs] = time(() => SnapshotSchema.parse(input));
const [, hashMs] = time(() => snapshotHash(prev));
const [body, serialiseMs] = time(() => canonicalJson(encodeSnapshot(prev)));
const next: Snapshot = { ...prev, version: 2, entities: prev.entities!.map((e, i) => (i === 7 ? entity(7, 4999) : e)) };
const [delta, diffMs] = time(() => diffSnapshots(prev, next));
const [applied, applyMs] = time(() => applyDelta(prev, delta));

gc();
const before = process.memoryUsage().heapUsed;
const json = applied.entities!.map((e) => ({ uid: e.uid, attrs: e.attrs, parents: e.parents }) as EntityJson);
const [store, storeMs] = time(() => entityStore(json));
json.length = 0;
gc();
const after = process.memoryUsage().heapUsed;
if (store.size !== N) throw new Error(`store holds ${store.size}`);

const result = {
  entities: N,
  controlPlane: { validateMs, hashMs, serialiseMs, bodyMB: body.length / 1e6, diffMs },
  gateway: {
    applyDeltaMs: applyMs,
    buildStoreMs: storeMs,
    storeMB: (after - before) / 1e6,
    bytesPerEntity: (after - before) / N,
  },
  updateMs: validateMs + hashMs + serialiseMs + diffMs + applyMs + storeMs,
};
if (values.json) console.log(JSON.stringify(result, null, 2));
else {
  const f = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
  console.log(`${N} entities`);
  console.log(
    `control plane: validate ${f(validateMs)}, hash ${f(hashMs)}, serialise ${f(serialiseMs)} (${result.controlPlane.bodyMB.toFixed(1)} MB), delta ${f(diffMs)}`,
  );
  console.log(
    `gateway: apply delta ${f(applyMs)}, build entity store ${f(storeMs)}, entity store ${result.gateway.storeMB.toFixed(1)} MB (${Math.round(result.gateway.bytesPerEntity)} B/entity)`,
  );
  console.log(`one relationship update, compute only: ${f(result.updateMs)}`);
}
