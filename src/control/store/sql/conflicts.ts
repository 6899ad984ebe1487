/**
 * Unique violations as `StoreConflictError`, named the same on both databases: SQLite names the columns, PostgreSQL
 * the constraint; both become one readable name (`role.name`, `key.hash`, …) that services turn into a 409.
 */
import { StoreConflictError, type Store } from '../store.ts';

/** [table, columns (as SQLite names them), PostgreSQL constraint name (migrations.ts), readable name] */
const CONSTRAINTS: ReadonlyArray<readonly [string, string, string, string]> = [
  ['workspaces', 'id', 'workspaces_pkey', 'workspace.id'],
  ['workspaces', 'name', 'workspaces_name_key', 'workspace.name'],
  ['projects', 'workspace_id,name', 'projects_pkey', 'project.name'],
  ['collections', 'id', 'collections_pkey', 'collection.id'],
  ['collections', 'workspace_id,environment,name', 'collections_workspace_id_environment_name_key', 'collection.name'],
  ['collection_versions', 'collection_id,version', 'collection_versions_pkey', 'collectionVersion.version'],
  ['roles', 'id', 'roles_pkey', 'role.id'],
  ['roles', 'workspace_id,name', 'roles_workspace_id_name_key', 'role.name'],
  ['clients', 'id', 'clients_pkey', 'client.id'],
  ['client_keys', 'client_id,id', 'client_keys_pkey', 'key.id'],
  ['client_keys', 'hash', 'client_keys_hash_key', 'key.hash'],
  ['user_roles', 'workspace_id,name', 'user_roles_pkey', 'userRole.name'],
  ['users', 'id', 'users_pkey', 'user.id'],
  ['users', 'workspace_id,email', 'users_workspace_id_email_key', 'user.email'],
  ['sessions', 'hash', 'sessions_pkey', 'session.hash'],
  ['snapshots', 'scope,version', 'snapshots_pkey', 'snapshot.version'],
  ['gateways', 'id', 'gateways_pkey', 'gateway.id'],
  ['gateways', 'workspace_id,name', 'gateways_workspace_id_name_key', 'gateway.name'],
  ['gateways', 'workspace_id,environment', 'gateways_workspace_id_environment_key', 'gateway.environment'],
  ['registration_tokens', 'hash', 'registration_tokens_pkey', 'registrationToken.hash'],
  ['gateway_certificates', 'serial', 'gateway_certificates_pkey', 'certificate.serial'],
  ['gateway_instances', 'gateway_id,instance_id', 'gateway_instances_pkey', 'gatewayInstance.id'],
  ['security_events', 'id', 'security_events_pkey', 'securityEvent.id'],
  ['alerts', 'id', 'alerts_pkey', 'alert.id'],
  ['alerts', 'workspace_id,key', 'alerts_workspace_id_key_open_key', 'alert.key'],
  ['alert_rules', 'workspace_id,name', 'alert_rules_workspace_id_name_key', 'alertRule.name'],
  ['alert_destinations', 'workspace_id,name', 'alert_destinations_workspace_id_name_key', 'alertDestination.name'],
];
const BY_SQLITE_COLUMNS = new Map(CONSTRAINTS.map(([table, columns, , name]) => [`${table}(${columns})`, name]));
const BY_PG_CONSTRAINT = new Map(CONSTRAINTS.map(([, , pg, name]) => [pg, name]));

const SQLITE_CONSTRAINT_UNIQUE = 2067;
const SQLITE_CONSTRAINT_PRIMARYKEY = 1555;
const PG_UNIQUE_VIOLATION = '23505';

/** A unique violation as `StoreConflictError`; anything else unchanged. */
export function toStoreError(error: unknown, kind: Store['kind']): unknown {
  if (typeof error !== 'object' || error === null) return error;
  const e = error as { errcode?: unknown; code?: unknown; constraint?: unknown; message?: unknown };
  if (kind === 'sqlite' && (e.errcode === SQLITE_CONSTRAINT_UNIQUE || e.errcode === SQLITE_CONSTRAINT_PRIMARYKEY)) {
    // "UNIQUE constraint failed: roles.workspace_id, roles.name"
    const columns = String(e.message)
      .replace(/^.*constraint failed: /, '')
      .split(', ');
    const table = columns[0]?.split('.')[0] ?? '';
    const key = `${table}(${columns.map((c) => c.slice(table.length + 1)).join(',')})`;
    const name = BY_SQLITE_COLUMNS.get(key) ?? key;
    return new StoreConflictError(name, `${name} is already taken`);
  }
  if (kind === 'postgres' && e.code === PG_UNIQUE_VIOLATION) {
    const constraint = String(e.constraint ?? 'unknown');
    const name = BY_PG_CONSTRAINT.get(constraint) ?? constraint;
    return new StoreConflictError(name, `${name} is already taken`);
  }
  return error;
}
