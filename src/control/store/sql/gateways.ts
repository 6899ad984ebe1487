/**
 * Edge gateways in SQL: the gateways, their registration tokens, certificates and running instances, and the
 * mapping between their rows and records.
 */
import type { Insertable, Selectable } from 'kysely';
import type {
  GatewayCertificateRecord,
  GatewayInstanceRecord,
  GatewayOps,
  GatewayRecord,
  RegistrationTokenRecord,
} from '../store.ts';
import type { GatewayInstancesTable, GatewaysTable } from '../tables.ts';
import { withOptional } from './rows.ts';
import type { Run } from './statement-runner.ts';

export function gatewayQueries(run: Run): GatewayOps {
  return {
    async insertGateway(g: GatewayRecord): Promise<void> {
      await run((db) => db.insertInto('gateways').values(gatewayRow(g)).execute());
    },

    async updateGateway(g: GatewayRecord): Promise<boolean> {
      const { id: _id, ...row } = gatewayRow(g);
      const result = await run((db) => db.updateTable('gateways').set(row).where('id', '=', g.id).executeTakeFirst());
      return result.numUpdatedRows > 0n;
    },

    async getGateway(
      by: { id: string } | { workspaceId: string; name: string } | { workspaceId: string; environment: string },
    ): Promise<GatewayRecord | undefined> {
      const row = await run((db) => {
        const q = db.selectFrom('gateways').selectAll();
        if ('id' in by) return q.where('id', '=', by.id).executeTakeFirst();
        const inWorkspace = q.where('workspace_id', '=', by.workspaceId);
        return (
          'name' in by ? inWorkspace.where('name', '=', by.name) : inWorkspace.where('environment', '=', by.environment)
        ).executeTakeFirst();
      });
      return row && toGateway(row);
    },

    async listGateways(workspaceId: string): Promise<GatewayRecord[]> {
      const rows = await run((db) =>
        db
          .selectFrom('gateways')
          .selectAll()
          .where('workspace_id', '=', workspaceId)
          .orderBy('environment')
          .orderBy('name')
          .execute(),
      );
      return rows.map(toGateway);
    },

    async deleteGateway(id: string, revokedAt: string): Promise<boolean> {
      // Revoke first: should the delete not happen, a certificate revoked too early is safer than one left valid.
      await run((db) =>
        db
          .updateTable('gateway_certificates')
          .set({ revoked_at: revokedAt })
          .where('gateway_id', '=', id)
          .where('revoked_at', 'is', null)
          .execute(),
      );
      // Its registration tokens and instances go with it (ON DELETE CASCADE).
      const result = await run((db) => db.deleteFrom('gateways').where('id', '=', id).executeTakeFirst());
      return result.numDeletedRows > 0n;
    },

    async insertRegistrationToken(t: RegistrationTokenRecord): Promise<void> {
      await run((db) =>
        db
          .insertInto('registration_tokens')
          .values({
            hash: t.hash,
            gateway_id: t.gatewayId,
            created_at: t.createdAt,
            expires_at: t.expiresAt,
            used_at: t.usedAt ?? null,
          })
          .execute(),
      );
    },

    async getRegistrationToken(hash: string): Promise<RegistrationTokenRecord | undefined> {
      const r = await run((db) =>
        db.selectFrom('registration_tokens').selectAll().where('hash', '=', hash).executeTakeFirst(),
      );
      return (
        r &&
        withOptional(
          { hash: r.hash, gatewayId: r.gateway_id, createdAt: r.created_at, expiresAt: r.expires_at },
          { usedAt: r.used_at },
        )
      );
    },

    async consumeRegistrationToken(hash: string, now: string): Promise<boolean> {
      // One conditional UPDATE: of two concurrent callers, the database lets exactly one change the row.
      const result = await run((db) =>
        db
          .updateTable('registration_tokens')
          .set({ used_at: now })
          .where('hash', '=', hash)
          .where('used_at', 'is', null)
          .where('expires_at', '>', now)
          .executeTakeFirst(),
      );
      return result.numUpdatedRows > 0n;
    },

    async deleteRegistrationTokens(gatewayId: string): Promise<number> {
      const result = await run((db) =>
        db
          .deleteFrom('registration_tokens')
          .where('gateway_id', '=', gatewayId)
          .where('used_at', 'is', null)
          .executeTakeFirst(),
      );
      return Number(result.numDeletedRows);
    },

    async insertGatewayCertificate(c: GatewayCertificateRecord): Promise<void> {
      await run((db) =>
        db
          .insertInto('gateway_certificates')
          .values({
            serial: c.serial,
            gateway_id: c.gatewayId,
            not_before: c.notBefore,
            not_after: c.notAfter,
            revoked_at: c.revokedAt ?? null,
          })
          .execute(),
      );
    },

    async listGatewayCertificates(gatewayId: string): Promise<GatewayCertificateRecord[]> {
      const rows = await run((db) =>
        db
          .selectFrom('gateway_certificates')
          .selectAll()
          .where('gateway_id', '=', gatewayId)
          .orderBy('not_after', 'desc')
          .orderBy('serial')
          .execute(),
      );
      return rows.map((r) =>
        withOptional(
          { serial: r.serial, gatewayId: r.gateway_id, notBefore: r.not_before, notAfter: r.not_after },
          { revokedAt: r.revoked_at },
        ),
      );
    },

    async getGatewayCertificate(serial: string): Promise<GatewayCertificateRecord | undefined> {
      const r = await run((db) =>
        db.selectFrom('gateway_certificates').selectAll().where('serial', '=', serial).executeTakeFirst(),
      );
      return (
        r &&
        withOptional(
          { serial: r.serial, gatewayId: r.gateway_id, notBefore: r.not_before, notAfter: r.not_after },
          { revokedAt: r.revoked_at },
        )
      );
    },

    async upsertGatewayInstance(i: GatewayInstanceRecord): Promise<void> {
      const row = gatewayInstanceRow(i);
      const { gateway_id: _gatewayId, instance_id: _instanceId, ...rest } = row;
      await run((db) =>
        db
          .insertInto('gateway_instances')
          .values(row)
          .onConflict((oc) => oc.columns(['gateway_id', 'instance_id']).doUpdateSet(rest))
          .execute(),
      );
    },

    async listWorkspaceGatewayInstances(workspaceId: string): Promise<GatewayInstanceRecord[]> {
      const rows = await run((db) =>
        db
          .selectFrom('gateway_instances')
          .selectAll('gateway_instances')
          .innerJoin('gateways', 'gateways.id', 'gateway_instances.gateway_id')
          .where('gateways.workspace_id', '=', workspaceId)
          .orderBy('gateway_instances.gateway_id')
          .orderBy('gateway_instances.instance_id')
          .execute(),
      );
      return rows.map(toGatewayInstance);
    },

    async listWorkspaceGatewayCertificates(workspaceId: string): Promise<GatewayCertificateRecord[]> {
      const rows = await run((db) =>
        db
          .selectFrom('gateway_certificates')
          .selectAll('gateway_certificates')
          .innerJoin('gateways', 'gateways.id', 'gateway_certificates.gateway_id')
          .where('gateways.workspace_id', '=', workspaceId)
          .orderBy('gateway_certificates.not_after', 'desc')
          .orderBy('gateway_certificates.serial')
          .execute(),
      );
      return rows.map((r) =>
        withOptional(
          { serial: r.serial, gatewayId: r.gateway_id, notBefore: r.not_before, notAfter: r.not_after },
          { revokedAt: r.revoked_at },
        ),
      );
    },

    async listGatewayInstances(gatewayId: string): Promise<GatewayInstanceRecord[]> {
      const rows = await run((db) =>
        db
          .selectFrom('gateway_instances')
          .selectAll()
          .where('gateway_id', '=', gatewayId)
          .orderBy('instance_id')
          .execute(),
      );
      return rows.map(toGatewayInstance);
    },

    async pruneGatewayInstances(before: string): Promise<number> {
      const result = await run((db) =>
        db
          .deleteFrom('gateway_instances')
          .where('last_seen_at', '<', before)
          .where('connected', '=', false)
          .executeTakeFirst(),
      );
      return Number(result.numDeletedRows);
    },
  };
}

function gatewayRow(g: GatewayRecord): GatewaysTable {
  return {
    id: g.id,
    workspace_id: g.workspaceId,
    environment: g.environment,
    name: g.name,
    install_method: g.installMethod,
    created_at: g.createdAt,
    updated_at: g.updatedAt,
  };
}

function toGateway(r: Selectable<GatewaysTable>): GatewayRecord {
  return {
    id: r.id,
    workspaceId: r.workspace_id,
    environment: r.environment,
    name: r.name,
    installMethod: r.install_method as GatewayRecord['installMethod'],
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

function gatewayInstanceRow(i: GatewayInstanceRecord): Insertable<GatewayInstancesTable> {
  return {
    gateway_id: i.gatewayId,
    instance_id: i.instanceId,
    hostname: i.hostname ?? null,
    software_version: i.softwareVersion,
    applied_version: i.appliedVersion,
    applied_hash: i.appliedHash ?? null,
    nacked_version: i.nackedVersion ?? null,
    last_error: i.lastError ?? null,
    connected: i.connected,
    first_seen_at: i.firstSeenAt,
    last_seen_at: i.lastSeenAt,
    last_synced_at: i.lastSyncedAt ?? null,
  };
}

function toGatewayInstance(r: Selectable<GatewayInstancesTable>): GatewayInstanceRecord {
  return withOptional(
    {
      gatewayId: r.gateway_id,
      instanceId: r.instance_id,
      softwareVersion: r.software_version,
      appliedVersion: r.applied_version,
      connected: Boolean(r.connected),
      firstSeenAt: r.first_seen_at,
      lastSeenAt: r.last_seen_at,
    },
    {
      hostname: r.hostname,
      appliedHash: r.applied_hash,
      nackedVersion: r.nacked_version,
      lastError: r.last_error,
      lastSyncedAt: r.last_synced_at,
    },
  );
}
