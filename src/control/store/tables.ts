/**
 * The tables as kysely sees them (rows as read and written). `migrations.ts` creates them; the modules of `sql/`
 * map rows to the records of `store.ts`. Columns are snake_case; JSON-shaped fields are JSON text; timestamps are
 * ISO 8601 text; optional fields are NULL when absent.
 */
import type { ColumnType } from 'kysely';

/** SQLite reads a boolean column back as 0/1, PostgreSQL as true/false; both take a boolean. */
type Bool = ColumnType<boolean | number, boolean, boolean>;

export interface Database {
  /** `key_id`: the encryption key a sealed value was sealed with (NULL for plaintext), for rotation. */
  settings: { key: string; value: string; key_id: ColumnType<string | null, string | null | undefined, string | null> };
  control_replicas: ControlReplicasTable;
  workspaces: WorkspacesTable;
  projects: ProjectsTable;
  collections: CollectionsTable;
  collection_versions: CollectionVersionsTable;
  roles: RolesTable;
  clients: ClientsTable;
  client_keys: ClientKeysTable;
  user_roles: UserRolesTable;
  users: UsersTable;
  sessions: SessionsTable;
  snapshots: SnapshotsTable;
  gateways: GatewaysTable;
  registration_tokens: RegistrationTokensTable;
  gateway_certificates: GatewayCertificatesTable;
  gateway_instances: GatewayInstancesTable;
  telemetry: TelemetryTable;
  security_events: SecurityEventsTable;
  alerts: AlertsTable;
  alert_rules: AlertRulesTable;
  alert_destinations: AlertDestinationsTable;
  alert_deliveries: AlertDeliveriesTable;
  audit_log: AuditLogTable;
  policy_entities: PolicyEntitiesTable;
  policy_entity_sets: PolicyEntitySetsTable;
  derived_revocations: DerivedRevocationsTable;
  client_usage: ClientUsageTable;
  quota_usage: QuotaUsageTable;
  telemetry_batches: TelemetryBatchesTable;
}

/**
 * Telemetry batches of edge gateway instances already stored, by (gateway, instance, sequence): a batch resent to
 * another control-plane replica is recognised there too (migration 0016-telemetry-batches). Kept for a day.
 */
export interface TelemetryBatchesTable {
  gateway_id: string;
  instance_id: string;
  sequence: ColumnType<number | string, number, number>;
  received_at: string;
}

/** Derived credentials revoked on their own (migration 0012-agents); a row is dropped once it expires. */
export interface DerivedRevocationsTable {
  id: string;
  workspace_id: string;
  client_id: string;
  credential: string | null;
  agent: string | null;
  session: string | null;
  issued_before: string | null;
  reason: string | null;
  revoked_at: string;
  expires_at: string;
}

/** When each API client last made a request a gateway reported (migration 0013-client-usage). */
export interface ClientUsageTable {
  client_id: string;
  /** The minute (ISO) of the client's latest reported request. */
  last_used_at: string;
}

/**
 * Quota units gateways admitted, per workspace, collection, scope (client or org), subject (the client or org id)
 * and calendar period: the authoritative usage (migration 0014-quota-usage). `units` is a bigint column: read back
 * as a number (PostgreSQL returns a string).
 */
export interface QuotaUsageTable {
  workspace_id: string;
  collection: string;
  scope: string;
  subject: string;
  period: string;
  period_id: string;
  units: ColumnType<number | string, number, number>;
  updated_at: string;
}

/** Relationship data of a collection's resource policies: one row per entity (migration 0007-policies). */
export interface PolicyEntitiesTable {
  collection_id: string;
  entity_type: string;
  entity_id: string;
  /** JSON object: the entity's attributes in Cedar's JSON form. */
  attrs: string;
  /** JSON array of `{ type, id }`. */
  parents: string;
  updated_at: string;
  /** The collection's entity version that last wrote the row (migration 0010-entity-stream). */
  seq: number;
  /** A tombstone: the entity was deleted at version `seq` (kept so that gateways behind hear of it). */
  deleted: Bool;
}

/** Per collection, its relationship data's version and the version up to which tombstones were pruned. */
export interface PolicyEntitySetsTable {
  collection_id: string;
  version: number;
  floor: number;
  /** Entities held (tombstones not counted), kept with every write so that the bound is checked in O(1). */
  count: number;
}

export interface WorkspacesTable {
  id: string;
  name: string;
  /** JSON array of environment names. */
  environments: string;
  dev_environment: string;
  created_at: string;
}

export interface ProjectsTable {
  workspace_id: string;
  name: string;
  description: string | null;
  created_at: string;
}

export interface CollectionsTable {
  id: string;
  workspace_id: string;
  environment: string;
  name: string;
  project: string;
  /** JSON DeploymentTarget. */
  target: string;
  /** JSON CollectionSpec. */
  spec: string;
  revision: number;
  published_version: number | null;
  created_at: string;
  updated_at: string;
}

export interface CollectionVersionsTable {
  collection_id: string;
  version: number;
  spec: string;
  published_at: string;
  published_by: string | null;
  restored_from: number | null;
}

export interface RolesTable {
  id: string;
  workspace_id: string;
  name: string;
  description: string | null;
  permissions: string;
  endpoints: string;
  created_at: string;
  updated_at: string;
}

export interface ClientsTable {
  id: string;
  workspace_id: string;
  kind: string;
  name: string;
  role_id: string;
  environments: string;
  projects: string;
  allowed_ips: string | null;
  user_id: string | null;
  org_id: string | null;
  metadata: string | null;
  rate_limits: string | null;
  /** JSON `{ client: { daily?, monthly?, onStoreFailure? } }` (migration 0014-quota-usage). */
  quotas: ColumnType<string | null, string | null | undefined, string | null>;
  expires_at: string | null;
  status: string;
  operator: Bool;
  email: string | null;
  created_at: string;
  updated_at: string;
}

export interface ClientKeysTable {
  client_id: string;
  id: string;
  hash: string;
  created_at: string;
  expires_at: string | null;
}

export interface UserRolesTable {
  workspace_id: string;
  name: string;
  privileges: string;
  built_in: Bool;
}

export interface UsersTable {
  id: string;
  workspace_id: string;
  email: string;
  name: string | null;
  role: string;
  password_hash: string;
  created_at: string;
}

export interface SessionsTable {
  hash: string;
  user_id: string;
  workspace_id: string;
  created_at: string;
  expires_at: string;
  /** NULL for sessions made before migration 0004-console: read as created_at. */
  last_seen_at: string | null;
}

export interface AuditLogTable {
  id: string;
  workspace_id: string;
  at: string;
  actor_kind: string;
  actor_id: string;
  actor_name: string | null;
  action: string;
  resource_type: string;
  resource_id: string | null;
  before: string | null;
  after: string | null;
  request_id: string;
  ip: string | null;
}

export interface SnapshotsTable {
  scope: string;
  version: number;
  hash: string;
  body: string;
  created_at: string;
}

export interface GatewaysTable {
  id: string;
  workspace_id: string;
  environment: string;
  name: string;
  install_method: string;
  created_at: string;
  updated_at: string;
}

export interface RegistrationTokensTable {
  hash: string;
  gateway_id: string;
  created_at: string;
  expires_at: string;
  used_at: string | null;
}

export interface GatewayCertificatesTable {
  serial: string;
  gateway_id: string;
  not_before: string;
  not_after: string;
  revoked_at: string | null;
}

export interface GatewayInstancesTable {
  gateway_id: string;
  instance_id: string;
  hostname: string | null;
  software_version: string;
  applied_version: number;
  applied_hash: string | null;
  nacked_version: number | null;
  last_error: string | null;
  connected: Bool;
  first_seen_at: string;
  last_seen_at: string;
  last_synced_at: string | null;
}

export interface TelemetryTable {
  workspace_id: string;
  gateway_id: string;
  minute: string;
  collection: string;
  endpoint: string;
  client_id: string;
  /** A derived credential's agent and session, `-` for none (migration 0012-agents). */
  agent: string;
  session: string;
  status: number;
  count: number;
  duration_ms_sum: number;
  duration_ms_max: number;
}

export interface SecurityEventsTable {
  id: string;
  workspace_id: string;
  gateway_id: string;
  at: string;
  kind: string;
  reason: string;
  collection: string | null;
  client_id: string | null;
  key_label: string | null;
  ip: string | null;
  agent: string | null;
  session: string | null;
}

export interface AlertsTable {
  id: string;
  workspace_id: string;
  gateway_id: string | null;
  kind: string;
  key: string;
  message: string;
  /** JSON object. */
  details: string | null;
  raised_at: string;
  resolved_at: string | null;
  delivered_at: string | null;
  delivery_attempts: number;
}

/** Alert rules (migration 0011-alert-rules). */
export interface AlertRulesTable {
  id: string;
  workspace_id: string;
  name: string;
  kind: string;
  gateway_id: string | null;
  threshold: number | null;
  /** JSON array of destination ids. */
  destination_ids: string;
  enabled: Bool;
  created_at: string;
  updated_at: string;
}

export interface AlertDestinationsTable {
  id: string;
  workspace_id: string;
  name: string;
  url: string;
  /** Sealed (gh-sealed:v1:…) when the store has a key ring. */
  secret: string;
  created_at: string;
  updated_at: string;
}

export interface AlertDeliveriesTable {
  id: string;
  workspace_id: string;
  alert_id: string;
  destination_id: string;
  state: string;
  payload: string;
  attempts: number;
  next_attempt_at: string;
  delivered_at: string | null;
  last_status: number | null;
  last_error: string | null;
  created_at: string;
}

export interface ControlReplicasTable {
  id: string;
  bootstrap: string;
  sync: string;
  telemetry: string;
  started_at: string;
  seen_at: string;
}
