/** The control-plane replicas sharing the database, in SQL. */
import type { ReplicaOps, ReplicaRecord } from '../store.ts';
import type { ControlReplicasTable } from '../tables.ts';
import type { Run } from './statement-runner.ts';

export function replicaQueries(run: Run): ReplicaOps {
  return {
    async upsertReplica(r: ReplicaRecord): Promise<void> {
      const row: ControlReplicasTable = {
        id: r.id,
        bootstrap: r.bootstrap,
        sync: r.sync,
        telemetry: r.telemetry,
        started_at: r.startedAt,
        seen_at: r.seenAt,
      };
      const { id: _id, ...update } = row;
      await run((db) =>
        db
          .insertInto('control_replicas')
          .values(row)
          .onConflict((oc) => oc.column('id').doUpdateSet(update))
          .execute(),
      );
    },

    async listReplicas(seenSince: string): Promise<ReplicaRecord[]> {
      const rows = await run((db) =>
        db
          .selectFrom('control_replicas')
          .selectAll()
          .where('seen_at', '>=', seenSince)
          .orderBy('started_at')
          .orderBy('id')
          .execute(),
      );
      return rows.map((row) => ({
        id: row.id,
        bootstrap: row.bootstrap,
        sync: row.sync,
        telemetry: row.telemetry,
        startedAt: row.started_at,
        seenAt: row.seen_at,
      }));
    },

    async deleteReplica(id: string): Promise<void> {
      await run((db) => db.deleteFrom('control_replicas').where('id', '=', id).execute());
    },
  };
}
