/**
 * Admin API: the relationship data of a collection's resource policies (docs/policies.md): entities such as
 * `Document::"9"` with their attributes and parents. Writes are idempotent (an entity is upserted whole, a delete
 * of an absent entity is no error); each takes the collection's next entity version and reaches every gateway
 * serving the collection on the entity stream (entity-feed.ts) — the cloud gateway before the call returns; a
 * collection holds at most `MAX_ENTITIES_PER_COLLECTION`.
 */
import { z } from 'zod';
import {
  EntityBatchSchema,
  EntityDeleteBatchSchema,
  EntityInputSchema,
  type EntityInput,
  EntitySchemaOut,
  MAX_ENTITIES_PER_COLLECTION,
} from '../../config/resource-policies.ts';
import { nowIso } from '../ids.ts';
import type { CollectionRecord, EntityRecord, StoreOps } from '../store/store.ts';
import { AdminError, notFound } from './errors.ts';
import { visibleCollection } from './lookup.ts';
import { operation, type Operation } from './operation.ts';
import { queryInt } from './query.ts';

const C = '/api/v1/workspaces/{workspace}/environments/{environment}/collections/{collection}';
const READ = 'admin:entities:read';
const WRITE = 'admin:entities:write';

function toOut(e: EntityRecord) {
  return { uid: { type: e.type, id: e.id }, attrs: e.attrs, parents: e.parents, updatedAt: e.updatedAt };
}

/** Upserts in the caller's transaction and refuses (rolling back) past the collection's bound. */
async function upsert(tx: StoreOps, c: CollectionRecord, entities: readonly EntityInput[], now: number) {
  const at = nowIso(now);
  await tx.upsertEntities(
    entities.map((e) => ({
      collectionId: c.id,
      type: e.uid.type,
      id: e.uid.id,
      attrs: e.attrs,
      parents: e.parents,
      updatedAt: at,
    })),
  );
  const total = await tx.countEntities(c.id);
  if (total > MAX_ENTITIES_PER_COLLECTION)
    throw new AdminError(
      'GH_ERR_ADMIN_ENTITY_LIMIT',
      `collection "${c.name}" would hold ${total} entities, more than the ${MAX_ENTITIES_PER_COLLECTION} a collection may hold; nothing was written. Delete entities first, or split the data across collections`,
    );
  return total;
}

/** Gateways serve a collection's entities only when its published version has policies. */
async function servedWithPolicies(tx: StoreOps, c: CollectionRecord): Promise<boolean> {
  if (!c.publishedVersion) return false;
  return (await tx.getCollectionVersion(c.id, c.publishedVersion))?.spec.policies !== undefined;
}

export const entityOperations: Operation[] = [
  operation({
    id: 'listEntities',
    method: 'GET',
    path: `${C}/entities`,
    summary: "List a collection's relationship data (entities), by type and id; `offset` and `limit` (≤ 10000) page",
    tag: 'Resource policies',
    permission: READ,
    query: z.object({
      limit: queryInt(10_000, 'At most this many (default 1000)'),
      offset: queryInt(Number.MAX_SAFE_INTEGER, 'Skip this many (default 0)', 0),
    }),
    response: z.object({ items: z.array(EntitySchemaOut), total: z.int() }),
    async handler({ caller, workspace, environment, params, query, plane }) {
      const c = await visibleCollection(plane.store, caller, workspace, environment, params.collection!);
      const limit = Math.min(10_000, Math.max(1, Number(query.get('limit') ?? 1000) || 1000));
      const offset = Math.max(0, Number(query.get('offset') ?? 0) || 0);
      const items = await plane.store.listEntities(c.id, { offset, limit });
      return { items: items.map(toOut), total: await plane.store.countEntities(c.id) };
    },
  }),
  operation({
    id: 'upsertEntities',
    method: 'PUT',
    path: `${C}/entities`,
    summary: 'Write up to 1000 entities at once, each replaced whole (idempotent); gateways serve them on return',
    tag: 'Resource policies',
    permission: WRITE,
    body: EntityBatchSchema,
    response: z.object({ upserted: z.int(), total: z.int() }),
    async handler({ caller, workspace, environment, params, body, plane }) {
      const { total, served, id } = await plane.store.transaction(async (tx) => {
        const c = await visibleCollection(tx, caller, workspace, environment, params.collection!);
        const total = await upsert(tx, c, body.entities, plane.now());
        return { total, served: await servedWithPolicies(tx, c), id: c.id };
      });
      if (served) await plane.entitiesChanged(id);
      return { upserted: body.entities.length, total };
    },
  }),
  operation({
    id: 'deleteEntities',
    method: 'POST',
    path: `${C}/entities/delete`,
    summary: 'Delete up to 1000 entities at once (absent ones are no error)',
    tag: 'Resource policies',
    permission: WRITE,
    body: EntityDeleteBatchSchema,
    response: z.object({ deleted: z.int(), total: z.int() }),
    async handler({ caller, workspace, environment, params, body, plane }) {
      const { deleted, total, served, id } = await plane.store.transaction(async (tx) => {
        const c = await visibleCollection(tx, caller, workspace, environment, params.collection!);
        const deleted = await tx.deleteEntities(c.id, body.uids);
        return { deleted, total: await tx.countEntities(c.id), served: await servedWithPolicies(tx, c), id: c.id };
      });
      if (served && deleted > 0) await plane.entitiesChanged(id);
      return { deleted, total };
    },
  }),
  operation({
    id: 'getEntity',
    method: 'GET',
    path: `${C}/entities/{type}/{id}`,
    summary: 'Get one entity of the relationship data',
    tag: 'Resource policies',
    permission: READ,
    response: EntitySchemaOut,
    async handler({ caller, workspace, environment, params, plane }) {
      const c = await visibleCollection(plane.store, caller, workspace, environment, params.collection!);
      const e = await plane.store.getEntity(c.id, { type: params.type!, id: params.id! });
      if (!e) throw notFound(`entity ${params.type}::${JSON.stringify(params.id)} of collection "${c.name}"`);
      return toOut(e);
    },
  }),
  operation({
    id: 'putEntity',
    method: 'PUT',
    path: `${C}/entities/{type}/{id}`,
    summary: 'Write one entity (its attributes and parents), replacing what was there (idempotent)',
    tag: 'Resource policies',
    permission: WRITE,
    body: EntityInputSchema.omit({ uid: true }),
    response: EntitySchemaOut,
    async handler({ caller, workspace, environment, params, body, plane }) {
      const uid = EntityInputSchema.shape.uid.parse({ type: params.type, id: params.id });
      const { entity, served, id } = await plane.store.transaction(async (tx) => {
        const c = await visibleCollection(tx, caller, workspace, environment, params.collection!);
        await upsert(tx, c, [{ uid, ...body }], plane.now());
        return { entity: (await tx.getEntity(c.id, uid))!, served: await servedWithPolicies(tx, c), id: c.id };
      });
      if (served) await plane.entitiesChanged(id);
      return toOut(entity);
    },
  }),
  operation({
    id: 'deleteEntity',
    method: 'DELETE',
    path: `${C}/entities/{type}/{id}`,
    summary: 'Delete one entity (an absent one is no error: 204 either way)',
    tag: 'Resource policies',
    permission: WRITE,
    status: 204,
    async handler({ caller, workspace, environment, params, plane }) {
      const { deleted, served, id } = await plane.store.transaction(async (tx) => {
        const c = await visibleCollection(tx, caller, workspace, environment, params.collection!);
        const deleted = await tx.deleteEntities(c.id, [{ type: params.type!, id: params.id! }]);
        return { deleted, served: await servedWithPolicies(tx, c), id: c.id };
      });
      if (served && deleted > 0) await plane.entitiesChanged(id);
      return undefined;
    },
  }),
];
