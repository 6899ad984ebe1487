/** Relationship data of resource policies (entities per collection) in SQL, and the mapping of its rows. */
import { type Insertable, type Kysely, type Selectable, sql } from 'kysely';
import type { EntityChange, EntityOps, EntityRecord } from '../store.ts';
import type { Database, PolicyEntitiesTable } from '../tables.ts';
import type { Run } from './statement-runner.ts';

/** Rows per INSERT: 8 parameters each stays far below both databases' parameter limits. */
const CHUNK = 500;
/**
 * Tombstones are kept for this many versions of a collection's relationship data: a gateway further behind gets
 * the full set. Pruned every `PRUNE_EVERY` versions (the prune reads the collection's old rows).
 */
export const KEEP_VERSIONS = 10_000;
const PRUNE_EVERY = 1000;

export function entityQueries(run: Run): EntityOps {
  return {
    async upsertEntities(entities: readonly EntityRecord[]): Promise<void> {
      const versions = new Map<string, number>();
      for (let i = 0; i < entities.length; i += CHUNK) {
        const chunk = entities.slice(i, i + CHUNK);
        // The last of the same entity written twice in one call wins (one row may be written once per statement).
        const byCollection = new Map<string, Map<string, EntityRecord>>();
        for (const e of chunk) {
          let same = byCollection.get(e.collectionId);
          if (!same) byCollection.set(e.collectionId, (same = new Map()));
          same.set(`${e.type}::${e.id}`, e);
        }
        for (const [collectionId, latest] of byCollection) {
          const records = [...latest.values()];
          let version = versions.get(collectionId);
          if (version === undefined) versions.set(collectionId, (version = await nextVersion(run, collectionId)));
          const added = records.length - (await countPresent(run, collectionId, records));
          const rows = records.map((e) => entityRow(e, version));
          await run((db) =>
            db
              .insertInto('policy_entities')
              .values(rows)
              .onConflict((oc) =>
                oc.columns(['collection_id', 'entity_type', 'entity_id']).doUpdateSet((eb) => ({
                  attrs: eb.ref('excluded.attrs'),
                  parents: eb.ref('excluded.parents'),
                  updated_at: eb.ref('excluded.updated_at'),
                  seq: eb.ref('excluded.seq'),
                  deleted: eb.ref('excluded.deleted'),
                })),
              )
              .execute(),
          );
          if (added !== 0) await addCount(run, collectionId, added);
        }
      }
    },

    async deleteEntities(collectionId, uids): Promise<number> {
      if (uids.length === 0) return 0;
      const version = await nextVersion(run, collectionId);
      let deleted = 0;
      for (const uid of uids) {
        const result = await run((db) =>
          db
            .updateTable('policy_entities')
            .set({ deleted: true, seq: version, attrs: '{}', parents: '[]' })
            .where('collection_id', '=', collectionId)
            .where('entity_type', '=', uid.type)
            .where('entity_id', '=', uid.id)
            .where('deleted', '=', false)
            .executeTakeFirst(),
        );
        deleted += Number(result.numUpdatedRows);
      }
      if (deleted !== 0) await addCount(run, collectionId, -deleted);
      return deleted;
    },

    async listEntitiesJson(collectionId, page) {
      const rows = await run((db) => {
        let q = db
          .selectFrom('policy_entities')
          .select(['entity_type', 'entity_id', 'attrs', 'parents'])
          .where('collection_id', '=', collectionId)
          .where('deleted', '=', false)
          .orderBy('entity_type')
          .orderBy('entity_id')
          .limit(page.limit);
        const after = page.after;
        // A row-value comparison: both databases walk the primary key from there.
        if (after !== undefined) q = q.where(sql<boolean>`(entity_type, entity_id) > (${after.type}, ${after.id})`);
        return q.execute();
      });
      return rows.map((r) => ({
        type: r.entity_type,
        id: r.entity_id,
        json: `{"uid":${JSON.stringify({ type: r.entity_type, id: r.entity_id })},"attrs":${r.attrs},"parents":${r.parents}}`,
      }));
    },

    async entitySetVersion(collectionId) {
      const row = await run((db) =>
        db
          .selectFrom('policy_entity_sets')
          .select(['version', 'floor'])
          .where('collection_id', '=', collectionId)
          .executeTakeFirst(),
      );
      return { version: Number(row?.version ?? 0), floor: Number(row?.floor ?? 0) };
    },

    async entityChangesSince(collectionId, since, limit): Promise<EntityChange[]> {
      const page = await run((db) => changeRows(db, collectionId, '>', since).limit(limit).execute());
      if (page.length < limit || page.length === 0) return page.map(toChange);
      // The page may end inside a version: complete that version (a batch is at most 1000 entities).
      const last = page[page.length - 1]!.seq;
      const rest = await run((db) => changeRows(db, collectionId, '=', last).execute());
      return [...page.filter((r) => r.seq !== last), ...rest].map(toChange);
    },

    async listEntities(collectionId, page): Promise<EntityRecord[]> {
      const rows = await run((db) => {
        let q = db
          .selectFrom('policy_entities')
          .selectAll()
          .where('collection_id', '=', collectionId)
          .where('deleted', '=', false)
          .orderBy('entity_type')
          .orderBy('entity_id');
        const after = page?.after;
        if (after !== undefined) q = q.where(sql<boolean>`(entity_type, entity_id) > (${after.type}, ${after.id})`);
        if (page?.limit !== undefined) q = q.limit(page.limit);
        if (page?.offset) q = q.offset(page.offset);
        return q.execute();
      });
      return rows.map(toEntity);
    },

    async getEntity(collectionId, uid): Promise<EntityRecord | undefined> {
      const row = await run((db) =>
        db
          .selectFrom('policy_entities')
          .selectAll()
          .where('collection_id', '=', collectionId)
          .where('entity_type', '=', uid.type)
          .where('entity_id', '=', uid.id)
          .where('deleted', '=', false)
          .executeTakeFirst(),
      );
      return row && toEntity(row);
    },

    async countEntities(collectionId): Promise<number> {
      const row = await run((db) =>
        db
          .selectFrom('policy_entity_sets')
          .select('count')
          .where('collection_id', '=', collectionId)
          .executeTakeFirst(),
      );
      return Number(row?.count ?? 0);
    },
  };
}

/**
 * Takes the collection's next entity version. Transactions are serialized (store.ts), so versions commit in order:
 * a reader never sees version N+1 without N. Every `PRUNE_EVERY` versions, tombstones older than `KEEP_VERSIONS`
 * are pruned and the floor raised.
 */
async function nextVersion(run: Run, collectionId: string): Promise<number> {
  const row = await run((db) =>
    db
      .insertInto('policy_entity_sets')
      .values({ collection_id: collectionId, version: 1, floor: 0, count: 0 })
      .onConflict((oc) =>
        oc.column('collection_id').doUpdateSet((eb) => ({ version: eb('policy_entity_sets.version', '+', 1) })),
      )
      .returning('version')
      .executeTakeFirstOrThrow(),
  );
  const version = Number(row.version);
  if (version > KEEP_VERSIONS && version % PRUNE_EVERY === 0) {
    const floor = version - KEEP_VERSIONS;
    await run((db) =>
      db
        .deleteFrom('policy_entities')
        .where('collection_id', '=', collectionId)
        .where('deleted', '=', true)
        .where('seq', '<=', floor)
        .execute(),
    );
    await run((db) =>
      db.updateTable('policy_entity_sets').set({ floor }).where('collection_id', '=', collectionId).execute(),
    );
  }
  return version;
}

/** How many of `records` (all of one collection, each once) are held now (not deleted): indexed reads, one per type. */
async function countPresent(run: Run, collectionId: string, records: readonly EntityRecord[]): Promise<number> {
  const byType = new Map<string, string[]>();
  for (const r of records) {
    const ids = byType.get(r.type);
    if (ids) ids.push(r.id);
    else byType.set(r.type, [r.id]);
  }
  let present = 0;
  for (const [type, ids] of byType) {
    const row = await run((db) =>
      db
        .selectFrom('policy_entities')
        .select((eb) => eb.fn.countAll().as('n'))
        .where('collection_id', '=', collectionId)
        .where('entity_type', '=', type)
        .where('entity_id', 'in', ids)
        .where('deleted', '=', false)
        .executeTakeFirstOrThrow(),
    );
    present += Number(row.n);
  }
  return present;
}

async function addCount(run: Run, collectionId: string, delta: number): Promise<void> {
  await run((db) =>
    db
      .updateTable('policy_entity_sets')
      .set((eb) => ({ count: eb('count', '+', delta) }))
      .where('collection_id', '=', collectionId)
      .execute(),
  );
}

function entityRow(e: EntityRecord, seq: number): Insertable<PolicyEntitiesTable> {
  return {
    seq,
    deleted: false,
    collection_id: e.collectionId,
    entity_type: e.type,
    entity_id: e.id,
    attrs: JSON.stringify(e.attrs),
    parents: JSON.stringify(e.parents),
    updated_at: e.updatedAt,
  };
}

/** A collection's entity rows whose `seq` is `op` `seq`, in change order (version, then type and id). */
function changeRows(db: Kysely<Database>, collectionId: string, op: '>' | '=', seq: number) {
  return db
    .selectFrom('policy_entities')
    .selectAll()
    .where('collection_id', '=', collectionId)
    .where('seq', op, seq)
    .orderBy('seq')
    .orderBy('entity_type')
    .orderBy('entity_id');
}

/** A row's JSON columns, parsed (the inverse of `entityRow`'s). */
function entityContent(r: Selectable<PolicyEntitiesTable>): Pick<EntityRecord, 'attrs' | 'parents'> {
  return {
    attrs: JSON.parse(r.attrs) as EntityRecord['attrs'],
    parents: JSON.parse(r.parents) as EntityRecord['parents'],
  };
}

function toChange(r: Selectable<PolicyEntitiesTable>): EntityChange {
  return {
    type: r.entity_type,
    id: r.entity_id,
    version: Number(r.seq),
    deleted: Boolean(r.deleted),
    ...entityContent(r),
  };
}

function toEntity(r: Selectable<PolicyEntitiesTable>): EntityRecord {
  return {
    collectionId: r.collection_id,
    type: r.entity_type,
    id: r.entity_id,
    ...entityContent(r),
    updatedAt: r.updated_at,
  };
}
