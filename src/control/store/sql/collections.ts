/** API collections (drafts) and their published versions in SQL, and the mapping between their rows and records. */
import type { Selectable } from 'kysely';
import type { CollectionOps, CollectionRecord, CollectionVersionRecord } from '../store.ts';
import type { CollectionsTable, CollectionVersionsTable } from '../tables.ts';
import { json, withOptional } from './rows.ts';
import type { Run } from './statement-runner.ts';

export function collectionQueries(run: Run): CollectionOps {
  return {
    async insertCollection(c: CollectionRecord): Promise<void> {
      await run((db) => db.insertInto('collections').values(collectionRow(c)).execute());
    },

    async updateCollection(c: CollectionRecord, expectedRevision?: number): Promise<boolean> {
      const { id: _id, ...row } = collectionRow(c);
      const result = await run((db) => {
        let q = db.updateTable('collections').set(row).where('id', '=', c.id);
        if (expectedRevision !== undefined) q = q.where('revision', '=', expectedRevision);
        return q.executeTakeFirst();
      });
      return result.numUpdatedRows > 0n;
    },

    async getCollection(
      by: { id: string } | { workspaceId: string; environment: string; name: string },
    ): Promise<CollectionRecord | undefined> {
      const row = await run((db) => {
        const q = db.selectFrom('collections').selectAll();
        return (
          'id' in by
            ? q.where('id', '=', by.id)
            : q
                .where('workspace_id', '=', by.workspaceId)
                .where('environment', '=', by.environment)
                .where('name', '=', by.name)
        ).executeTakeFirst();
      });
      return row && toCollection(row);
    },

    async listCollections(workspaceId: string, filter?: { environment?: string }): Promise<CollectionRecord[]> {
      const rows = await run((db) => {
        let q = db.selectFrom('collections').selectAll().where('workspace_id', '=', workspaceId);
        if (filter?.environment !== undefined) q = q.where('environment', '=', filter.environment);
        return q.orderBy('environment').orderBy('name').execute();
      });
      return rows.map(toCollection);
    },

    async deleteCollection(id: string): Promise<boolean> {
      // Its versions go with it (ON DELETE CASCADE).
      const result = await run((db) => db.deleteFrom('collections').where('id', '=', id).executeTakeFirst());
      return result.numDeletedRows > 0n;
    },

    async insertCollectionVersion(v: CollectionVersionRecord): Promise<void> {
      await run((db) =>
        db
          .insertInto('collection_versions')
          .values({
            collection_id: v.collectionId,
            version: v.version,
            spec: JSON.stringify(v.spec),
            published_at: v.publishedAt,
            published_by: v.publishedBy ?? null,
            restored_from: v.restoredFrom ?? null,
          })
          .execute(),
      );
    },

    async listCollectionVersions(collectionId: string): Promise<CollectionVersionRecord[]> {
      const rows = await run((db) =>
        db
          .selectFrom('collection_versions')
          .selectAll()
          .where('collection_id', '=', collectionId)
          .orderBy('version', 'desc')
          .execute(),
      );
      return rows.map(toCollectionVersion);
    },

    async getCollectionVersion(collectionId: string, version: number): Promise<CollectionVersionRecord | undefined> {
      const row = await run((db) =>
        db
          .selectFrom('collection_versions')
          .selectAll()
          .where('collection_id', '=', collectionId)
          .where('version', '=', version)
          .executeTakeFirst(),
      );
      return row && toCollectionVersion(row);
    },
  };
}

function collectionRow(c: CollectionRecord): CollectionsTable {
  return {
    id: c.id,
    workspace_id: c.workspaceId,
    environment: c.environment,
    name: c.name,
    project: c.project,
    target: json(c.target),
    spec: json(c.spec),
    revision: c.revision,
    published_version: c.publishedVersion ?? null,
    created_at: c.createdAt,
    updated_at: c.updatedAt,
  };
}

function toCollection(r: Selectable<CollectionsTable>): CollectionRecord {
  return withOptional(
    {
      id: r.id,
      workspaceId: r.workspace_id,
      environment: r.environment,
      name: r.name,
      project: r.project,
      target: JSON.parse(r.target) as CollectionRecord['target'],
      spec: JSON.parse(r.spec) as CollectionRecord['spec'],
      revision: r.revision,
      createdAt: r.created_at,
      updatedAt: r.updated_at,
    },
    { publishedVersion: r.published_version },
  );
}

function toCollectionVersion(r: Selectable<CollectionVersionsTable>): CollectionVersionRecord {
  return withOptional(
    { collectionId: r.collection_id, version: r.version, spec: JSON.parse(r.spec), publishedAt: r.published_at },
    { publishedBy: r.published_by, restoredFrom: r.restored_from },
  );
}
