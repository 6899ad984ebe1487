/** Relationship data of resource policies (entities per collection) in SQL, and the mapping of its rows. */
import type { Selectable } from 'kysely';
import type { EntityOps, EntityRecord } from '../store.ts';
import type { PolicyEntitiesTable } from '../tables.ts';
import type { Run } from './statement-runner.ts';

/** Rows per INSERT: 6 parameters each stays far below both databases' parameter limits. */
const CHUNK = 500;

export function entityQueries(run: Run): EntityOps {
  return {
    async upsertEntities(entities: readonly EntityRecord[]): Promise<void> {
      for (let i = 0; i < entities.length; i += CHUNK) {
        const rows = entities.slice(i, i + CHUNK).map(entityRow);
        await run((db) =>
          db
            .insertInto('policy_entities')
            .values(rows)
            .onConflict((oc) =>
              oc.columns(['collection_id', 'entity_type', 'entity_id']).doUpdateSet((eb) => ({
                attrs: eb.ref('excluded.attrs'),
                parents: eb.ref('excluded.parents'),
                updated_at: eb.ref('excluded.updated_at'),
              })),
            )
            .execute(),
        );
      }
    },

    async deleteEntities(collectionId, uids): Promise<number> {
      let deleted = 0;
      for (const uid of uids) {
        const result = await run((db) =>
          db
            .deleteFrom('policy_entities')
            .where('collection_id', '=', collectionId)
            .where('entity_type', '=', uid.type)
            .where('entity_id', '=', uid.id)
            .executeTakeFirst(),
        );
        deleted += Number(result.numDeletedRows);
      }
      return deleted;
    },

    async listEntities(collectionId, page): Promise<EntityRecord[]> {
      const rows = await run((db) => {
        let q = db
          .selectFrom('policy_entities')
          .selectAll()
          .where('collection_id', '=', collectionId)
          .orderBy('entity_type')
          .orderBy('entity_id');
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
          .executeTakeFirst(),
      );
      return row && toEntity(row);
    },

    async countEntities(collectionId): Promise<number> {
      const row = await run((db) =>
        db
          .selectFrom('policy_entities')
          .select((eb) => eb.fn.countAll().as('n'))
          .where('collection_id', '=', collectionId)
          .executeTakeFirstOrThrow(),
      );
      return Number(row.n);
    },
  };
}

function entityRow(e: EntityRecord): PolicyEntitiesTable {
  return {
    collection_id: e.collectionId,
    entity_type: e.type,
    entity_id: e.id,
    attrs: JSON.stringify(e.attrs),
    parents: JSON.stringify(e.parents),
    updated_at: e.updatedAt,
  };
}

function toEntity(r: Selectable<PolicyEntitiesTable>): EntityRecord {
  return {
    collectionId: r.collection_id,
    type: r.entity_type,
    id: r.entity_id,
    attrs: JSON.parse(r.attrs) as EntityRecord['attrs'],
    parents: JSON.parse(r.parents) as EntityRecord['parents'],
    updatedAt: r.updated_at,
  };
}
