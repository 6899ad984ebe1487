/**
 * The one store interface of the control plane. Two implementations share it and one set of migrations: SQLite
 * through Node's built-in `node:sqlite` (the embedded default) and PostgreSQL (`DATABASE_URL=postgres://…`), both
 * through kysely. A contract test suite (`store-contract.ts`) runs against both.
 *
 * The store only persists: validation, scoping, token generation and snapshot compilation live in the services
 * above it. Records are plain objects; JSON-shaped fields (arrays, specs, metadata) are stored as JSON text.
 * Timestamps are ISO 8601 UTC text as `Date.prototype.toISOString()` writes it: sorting and `deleteExpiredSessions`
 * compare them as text. A record read back deep-equals the one written (optional fields absent, never `null`).
 *
 * Over 400 lines on purpose: this is the whole contract, the records and one interface per resource (`StoreOps`
 * joins them), read as one by the services and by the implementation in `sql/`; it holds declarations only.
 */
import type { CollectionSpec, DeploymentTarget, Privilege } from '../../config/resources.ts';
import type { EntityAttributeValue, EntityUid } from '../../config/resource-policies.ts';
import type { EndpointRef, QuotaPolicies, RateLimitPolicies } from '../../config/schema.ts';
import type { SecurityEventRecord, TelemetryRow } from '../../config/telemetry.ts';

export interface WorkspaceRecord {
  id: string;
  name: string;
  environments: string[];
  devEnvironment: string;
  createdAt: string;
}

export interface ProjectRecord {
  workspaceId: string;
  name: string;
  description?: string;
  createdAt: string;
}

export interface CollectionRecord {
  id: string;
  workspaceId: string;
  environment: string;
  /** Copied out of `spec` for uniqueness and lookups. */
  name: string;
  project: string;
  target: DeploymentTarget;
  /** The draft, as edited. */
  spec: CollectionSpec;
  /** Increments on every draft edit (optimistic concurrency). */
  revision: number;
  /** The version gateways serve; undefined until first published. */
  publishedVersion?: number;
  createdAt: string;
  updatedAt: string;
}

export interface CollectionVersionRecord {
  collectionId: string;
  version: number;
  spec: CollectionSpec;
  publishedAt: string;
  publishedBy?: string;
  restoredFrom?: number;
}

export interface RoleRecord {
  id: string;
  workspaceId: string;
  name: string;
  description?: string;
  permissions: string[];
  endpoints: EndpointRef[];
  createdAt: string;
  updatedAt: string;
}

export interface ClientRecord {
  id: string;
  workspaceId: string;
  kind: 'standard' | 'legacy';
  name: string;
  /** The role's id; a client whose role was deleted keeps a dangling id and is refused everywhere. */
  roleId: string;
  environments: string[];
  projects: string[];
  allowedIps?: string[];
  userId?: string;
  orgId?: string;
  metadata?: Record<string, string | number | boolean>;
  rateLimits?: Omit<RateLimitPolicies, 'org'>;
  /** The client's own quota (overrides the collections' `quotas.client`). */
  quotas?: Pick<QuotaPolicies, 'client'>;
  expiresAt?: string;
  status: 'active' | 'disabled';
  operator: boolean;
  /** Legacy clients only. */
  email?: string;
  createdAt: string;
  updatedAt: string;
}

export interface KeyRecord {
  /** A printable label (key prefix and first characters), never the key. Unique per client. */
  id: string;
  clientId: string;
  /** SHA-256 hex of the key; unique across the installation. */
  hash: string;
  createdAt: string;
  /** A regenerated key's predecessor stops working at this time (grace period). */
  expiresAt?: string;
}

export interface UserRoleRecord {
  workspaceId: string;
  name: string;
  privileges: Privilege[];
  builtIn: boolean;
}

export interface UserRecord {
  id: string;
  workspaceId: string;
  email: string;
  name?: string;
  role: string;
  /** scrypt, as `scrypt$N$r$p$salt$hash` (base64url). */
  passwordHash: string;
  createdAt: string;
}

export interface SessionRecord {
  /** SHA-256 hex of the session cookie's value. */
  hash: string;
  userId: string;
  workspaceId: string;
  createdAt: string;
  /** The absolute expiry: the session ends then however active it is. */
  expiresAt: string;
  /** The last request made with it (the idle expiry counts from here). */
  lastSeenAt: string;
}

/** One change made through the admin API: who, what, to which resource, before and after (secrets removed). */
export interface AuditEntryRecord {
  id: string;
  workspaceId: string;
  at: string;
  actor: { kind: 'client' | 'user'; id: string; name?: string };
  /** The admin API operation id, e.g. `createClient`. */
  action: string;
  resourceType: string;
  resourceId?: string;
  before?: unknown;
  after?: unknown;
  requestId: string;
  ip?: string;
}

/** Filters of `listAuditLog`; `before` is the cursor: entries strictly older than (at, id). */
export interface AuditLogFilter {
  actorId?: string;
  action?: string;
  resourceType?: string;
  resourceId?: string;
  /** Inclusive. */
  since?: string;
  /** Exclusive. */
  until?: string;
  before?: { at: string; id: string };
  limit: number;
}

/** A compiled snapshot of one (workspace, environment, target) scope, kept for deltas and edge sync. */
export interface SnapshotRecord {
  /** e.g. `wsp_…/PROD/cloud` or `wsp_…/PROD/edge:eu-1`. */
  scope: string;
  version: number;
  /** SHA-256 hex of the canonical JSON body. */
  hash: string;
  /** The snapshot as canonical JSON text. */
  body: string;
  createdAt: string;
}

// ── Edge gateways (hybrid deployment) ───────────────────────────────────────────────────────────────────────────

/** An edge gateway: one per workspace environment; any number of instances (processes) share its identity. */
export interface GatewayRecord {
  id: string;
  workspaceId: string;
  environment: string;
  /** Unique per workspace. */
  name: string;
  installMethod: 'docker' | 'helm';
  createdAt: string;
  updatedAt: string;
}

/** A one-time registration token (stored as SHA-256), valid 5 minutes, for `gatehouse gateway bootstrap`. */
export interface RegistrationTokenRecord {
  hash: string;
  gatewayId: string;
  createdAt: string;
  expiresAt: string;
  /** Set when the token was used; a used token is refused. */
  usedAt?: string;
}

/** A certificate the control plane's CA issued to a gateway. */
export interface GatewayCertificateRecord {
  /** Hex serial number; unique. */
  serial: string;
  gatewayId: string;
  notBefore: string;
  notAfter: string;
  /** Set when the gateway was deleted (or the certificate otherwise revoked). */
  revokedAt?: string;
}

/** One running gateway process as last reported over the sync channel. */
export interface GatewayInstanceRecord {
  gatewayId: string;
  instanceId: string;
  hostname?: string;
  softwareVersion: string;
  /** Snapshot version the instance serves (0: none yet). */
  appliedVersion: number;
  appliedHash?: string;
  /** The last NACK's version and error, if the newest version was refused. */
  nackedVersion?: number;
  lastError?: string;
  connected: boolean;
  firstSeenAt: string;
  lastSeenAt: string;
  /** When the instance last applied a snapshot. */
  lastSyncedAt?: string;
}

/** Request counts of one minute for one (gateway, collection, endpoint, client, status): the config's telemetry row. */
export type TelemetryRecord = TelemetryRow;

/** A security event reported by a gateway: an authentication failure and its reason, never the secret. */
export type { SecurityEventRecord } from '../../config/telemetry.ts';

export interface AlertRecord {
  id: string;
  workspaceId: string;
  gatewayId?: string;
  /** `auth_failure_spike`, `version_mismatch`, `connectivity_lost`, `rate_limit_store_degraded`. */
  kind: string;
  /** Deduplication key: one open alert per key. */
  key: string;
  message: string;
  details?: Record<string, unknown>;
  raisedAt: string;
  resolvedAt?: string;
  /** When the webhook accepted it; undefined while undelivered (or no webhook is configured). */
  deliveredAt?: string;
  deliveryAttempts: number;
}

/** What an alert rule matches: an alert kind, optionally of one gateway, and where its alerts are sent. */
export interface AlertRuleRecord {
  id: string;
  workspaceId: string;
  /** Unique per workspace. */
  name: string;
  /** The alert kind it matches (`auth_failure_spike`, …). */
  kind: string;
  /** Only the alerts of this gateway (an id, or `cloud`); absent: every gateway. */
  gatewayId?: string;
  /** `auth_failure_spike` only: failures per minute that raise it (the lowest enabled rule's sets the workspace's). */
  threshold?: number;
  /** Alert destinations (ids) its alerts are POSTed to when raised and when resolved. */
  destinationIds: string[];
  enabled: boolean;
  createdAt: string;
  updatedAt: string;
}

/** A webhook alerts are POSTed to, each body signed with the destination's secret (HMAC-SHA256). */
export interface AlertDestinationRecord {
  id: string;
  workspaceId: string;
  /** Unique per workspace. */
  name: string;
  url: string;
  /** The signing secret (sealed at rest when the store has a key ring). */
  secret: string;
  createdAt: string;
  updatedAt: string;
}

/** One alert state (raised or resolved) to deliver to one destination: the durable queue of webhook deliveries. */
export interface AlertDeliveryRecord {
  id: string;
  workspaceId: string;
  alertId: string;
  destinationId: string;
  state: 'raised' | 'resolved';
  /** The JSON body to POST (the alert as it was in that state). */
  payload: string;
  attempts: number;
  /** Not attempted before this time. */
  nextAttemptAt: string;
  deliveredAt?: string;
  /** The last attempt's HTTP status, and its error when it failed. */
  lastStatus?: number;
  lastError?: string;
  createdAt: string;
}

/** A unique constraint was violated (e.g. a name already taken). Services turn it into a 409. */
export class StoreConflictError extends Error {
  override readonly name = 'StoreConflictError';
  /** Which uniqueness rule: 'workspace.name', 'project.name', 'collection.name', 'role.name', 'key.hash', 'user.email', … */
  readonly constraint: string;
  constructor(constraint: string, message?: string) {
    super(message ?? `conflict on ${constraint}`);
    this.constraint = constraint;
  }
}

/**
 * Installation settings: small key/value pairs, e.g. the installation id. Secret settings (`isSecretSetting`: the
 * CA key, token-signing keys) are sealed with the store's encryption key ring when it has one (AES-256-GCM,
 * secrets/key-ring.ts) and opened on read; callers see plaintext either way.
 */
export interface SettingOps {
  getSetting(key: string): Promise<string | undefined>;
  setSetting(key: string, value: string): Promise<void>;
}

/** A control-plane replica as the others see it: where edge gateways reach it, and when it was last alive. */
export interface ReplicaRecord {
  id: string;
  /** HTTPS base URL of its bootstrap endpoint. */
  bootstrap: string;
  /** `host:port` of its config sync (gRPC). */
  sync: string;
  /** `host:port` of its telemetry (gRPC). */
  telemetry: string;
  startedAt: string;
  seenAt: string;
}

/** The control-plane replicas sharing the database (PostgreSQL): each records itself and refreshes `seenAt`. */
export interface ReplicaOps {
  /** Inserts the replica or updates its endpoints and `seenAt`. */
  upsertReplica(r: ReplicaRecord): Promise<void>;
  /** Replicas seen at or after `seenSince` (ISO), oldest start first. */
  listReplicas(seenSince: string): Promise<ReplicaRecord[]>;
  deleteReplica(id: string): Promise<void>;
}

/** Workspaces and their projects. */
export interface WorkspaceOps {
  insertWorkspace(w: WorkspaceRecord): Promise<void>;
  updateWorkspace(w: WorkspaceRecord): Promise<void>;
  getWorkspace(by: { id: string } | { name: string }): Promise<WorkspaceRecord | undefined>;
  /** Sorted by name. */
  listWorkspaces(): Promise<WorkspaceRecord[]>;

  insertProject(p: ProjectRecord): Promise<void>;
  /** Sorted by name. */
  listProjects(workspaceId: string): Promise<ProjectRecord[]>;
  deleteProject(workspaceId: string, name: string): Promise<boolean>;
}

/** API collections (drafts) and their published versions. */
export interface CollectionOps {
  insertCollection(c: CollectionRecord): Promise<void>;
  /** Writes the whole record; when `expectedRevision` is given, only if the stored revision equals it. Returns whether a row changed. */
  updateCollection(c: CollectionRecord, expectedRevision?: number): Promise<boolean>;
  getCollection(
    by: { id: string } | { workspaceId: string; environment: string; name: string },
  ): Promise<CollectionRecord | undefined>;
  /** Sorted by environment, then name. */
  listCollections(workspaceId: string, filter?: { environment?: string }): Promise<CollectionRecord[]>;
  /** Deletes the collection and its versions. */
  deleteCollection(id: string): Promise<boolean>;

  insertCollectionVersion(v: CollectionVersionRecord): Promise<void>;
  /** Newest first. */
  listCollectionVersions(collectionId: string): Promise<CollectionVersionRecord[]>;
  getCollectionVersion(collectionId: string, version: number): Promise<CollectionVersionRecord | undefined>;
}

/** Client roles. */
export interface RoleOps {
  insertRole(r: RoleRecord): Promise<void>;
  updateRole(r: RoleRecord): Promise<boolean>;
  getRole(by: { id: string } | { workspaceId: string; name: string }): Promise<RoleRecord | undefined>;
  /** Sorted by name. */
  listRoles(workspaceId: string): Promise<RoleRecord[]>;
  deleteRole(id: string): Promise<boolean>;
}

/** API clients and their keys. */
export interface ClientOps {
  insertClient(c: ClientRecord): Promise<void>;
  updateClient(c: ClientRecord): Promise<boolean>;
  getClient(id: string): Promise<ClientRecord | undefined>;
  /** Sorted by creation time, then id. */
  listClients(workspaceId: string): Promise<ClientRecord[]>;
  /** Deletes the client and all its keys. */
  deleteClient(id: string): Promise<boolean>;
  /**
   * Records that clients made requests (at the minute given, from telemetry): each existing client's last use moves
   * forward, never back; ids of clients that do not exist (any more) are ignored.
   */
  recordClientUse(uses: readonly { clientId: string; at: string }[]): Promise<void>;
  /** When each client of the workspace that was ever used last was (client id → ISO minute). */
  listClientUsage(workspaceId: string): Promise<Map<string, string>>;

  insertKey(k: KeyRecord): Promise<void>;
  /** Sorted by creation time, then id. */
  listKeys(clientId: string): Promise<KeyRecord[]>;
  /** Every key of every client of a workspace (for snapshot compilation), sorted by client id, creation time, id. */
  listWorkspaceKeys(workspaceId: string): Promise<KeyRecord[]>;
  updateKeyExpiry(clientId: string, keyId: string, expiresAt: string | undefined): Promise<boolean>;
  deleteKey(clientId: string, keyId: string): Promise<boolean>;
  /** The key with this hash and its client (admin API authentication). */
  findKey(hash: string): Promise<{ key: KeyRecord; client: ClientRecord } | undefined>;
}

/** Console users: their roles, accounts and sessions. */
export interface UserOps {
  insertUserRole(r: UserRoleRecord): Promise<void>;
  /** Sorted by name. */
  listUserRoles(workspaceId: string): Promise<UserRoleRecord[]>;
  deleteUserRole(workspaceId: string, name: string): Promise<boolean>;

  insertUser(u: UserRecord): Promise<void>;
  updateUser(u: UserRecord): Promise<boolean>;
  getUser(by: { id: string } | { workspaceId: string; email: string }): Promise<UserRecord | undefined>;
  /** Sorted by email. */
  listUsers(workspaceId: string): Promise<UserRecord[]>;
  /** Deletes the user and its sessions. */
  deleteUser(id: string): Promise<boolean>;

  insertSession(s: SessionRecord): Promise<void>;
  getSession(hash: string): Promise<SessionRecord | undefined>;
  deleteSession(hash: string): Promise<boolean>;
  /** Sets the session's `lastSeenAt`; false when there is no such session. */
  touchSession(hash: string, lastSeenAt: string): Promise<boolean>;
  /** Deletes the sessions whose `expiresAt` is at or before `now`; returns how many. */
  deleteExpiredSessions(now: string): Promise<number>;
}

/** Edge gateways: registration tokens, certificates and running instances. */
export interface GatewayOps {
  insertGateway(g: GatewayRecord): Promise<void>;
  updateGateway(g: GatewayRecord): Promise<boolean>;
  getGateway(
    by: { id: string } | { workspaceId: string; name: string } | { workspaceId: string; environment: string },
  ): Promise<GatewayRecord | undefined>;
  /** Sorted by environment, then name. */
  listGateways(workspaceId: string): Promise<GatewayRecord[]>;
  /** Deletes the gateway, its registration tokens and instances; its certificates are marked revoked (not deleted). */
  deleteGateway(id: string, revokedAt: string): Promise<boolean>;

  insertRegistrationToken(t: RegistrationTokenRecord): Promise<void>;
  getRegistrationToken(hash: string): Promise<RegistrationTokenRecord | undefined>;
  /** Marks the token used if it is unused and unexpired at `now`; returns whether it did (exactly one caller wins). */
  consumeRegistrationToken(hash: string, now: string): Promise<boolean>;
  /** Deletes the gateway's unused tokens (regenerate the install command). */
  deleteRegistrationTokens(gatewayId: string): Promise<number>;

  insertGatewayCertificate(c: GatewayCertificateRecord): Promise<void>;
  getGatewayCertificate(serial: string): Promise<GatewayCertificateRecord | undefined>;
  /** The gateway's certificates, latest expiry first. */
  listGatewayCertificates(gatewayId: string): Promise<GatewayCertificateRecord[]>;

  /** Inserts or replaces the instance (gateway id + instance id). */
  upsertGatewayInstance(i: GatewayInstanceRecord): Promise<void>;
  /** Sorted by instance id. */
  listGatewayInstances(gatewayId: string): Promise<GatewayInstanceRecord[]>;
  /** Removes instances not seen since `before` and not connected. */
  pruneGatewayInstances(before: string): Promise<number>;
  /** The instances of every gateway of the workspace in one read, sorted by gateway id, then instance id. */
  listWorkspaceGatewayInstances(workspaceId: string): Promise<GatewayInstanceRecord[]>;
  /** The certificates of every gateway of the workspace in one read, latest expiry first. */
  listWorkspaceGatewayCertificates(workspaceId: string): Promise<GatewayCertificateRecord[]>;
}

/** What gateways report: request counts per minute and security events. */
/** Quota units admitted in one calendar period (see `QuotaUsageTable`). */
export interface QuotaUsageRecord {
  workspaceId: string;
  collection: string;
  scope: 'client' | 'org';
  /** The client id or org id. */
  subject: string;
  period: 'daily' | 'monthly';
  /** `2026-12-07` or `2026-12` in the quotas' time zone. */
  periodId: string;
  units: number;
  /** When units were last added (ISO). */
  updatedAt: string;
}

export interface QuotaUsageOps {
  /** Adds the units to existing rows with the same key (workspace, scope, subject, period, period id, collection). */
  addQuotaUsage(rows: readonly QuotaUsageRecord[]): Promise<void>;
  /** Usage of one client or org, newest period first, then by collection; `period` narrows to daily or monthly. */
  listQuotaUsage(
    workspaceId: string,
    filter: { scope: 'client' | 'org'; subject: string; period?: 'daily' | 'monthly'; limit?: number },
  ): Promise<QuotaUsageRecord[]>;
}

export interface TelemetryOps {
  /** Adds the counts to existing rows with the same key (workspace, gateway, minute, collection, endpoint, client, status). */
  addTelemetry(rows: readonly TelemetryRecord[]): Promise<void>;
  /** Rows of a workspace from `since` (inclusive), optionally of one gateway; sorted by minute, then the other keys. */
  listTelemetry(workspaceId: string, filter: { since: string; gatewayId?: string }): Promise<TelemetryRecord[]>;
  pruneTelemetry(before: string): Promise<number>;
  /**
   * Records an edge gateway instance's telemetry batch as stored; false when it was recorded before (a resend whose
   * acknowledgement was lost), on this replica or another sharing the database. Call it in the transaction that
   * stores the batch, so that the batch and its record are written together or not at all.
   */
  claimTelemetryBatch(batch: { gatewayId: string; instanceId: string; sequence: number; at: string }): Promise<boolean>;
  /** Forgets the batches recorded before `before` (ISO); returns how many. */
  pruneTelemetryBatches(before: string): Promise<number>;

  insertSecurityEvents(events: readonly SecurityEventRecord[]): Promise<void>;
  /** From `since` (inclusive), newest first. */
  listSecurityEvents(
    workspaceId: string,
    filter: { since: string; gatewayId?: string; limit?: number },
  ): Promise<SecurityEventRecord[]>;
  countSecurityEvents(
    workspaceId: string,
    filter: { since: string; gatewayId?: string; kind?: string },
  ): Promise<number>;
  /** Deletes the security events (of every workspace) that happened before `before`; returns how many. */
  pruneSecurityEvents(before: string): Promise<number>;
}

/** Alerts raised by the alert rules, and their webhook delivery. */
export interface AlertOps {
  insertAlert(a: AlertRecord): Promise<void>;
  updateAlert(a: AlertRecord): Promise<boolean>;
  /** The open (unresolved) alert with this key, if any. */
  getOpenAlert(workspaceId: string, key: string): Promise<AlertRecord | undefined>;
  /** Newest first; `open: true` only unresolved alerts, `open: false` only resolved ones. */
  listAlerts(
    workspaceId: string,
    filter?: { open?: boolean; limit?: number; before?: { at: string; id: string } },
  ): Promise<AlertRecord[]>;
  /** Alerts of every workspace not yet delivered, oldest first (webhook delivery). */
  listUndeliveredAlerts(limit: number): Promise<AlertRecord[]>;
  /** Deletes the alerts (of every workspace) resolved before `before`, their deliveries with them; returns how many. */
  pruneResolvedAlerts(before: string): Promise<number>;
  /** Sorted by name. */
  listAlertRules(workspaceId: string): Promise<AlertRuleRecord[]>;
  getAlertRule(workspaceId: string, ref: { id?: string; name?: string }): Promise<AlertRuleRecord | undefined>;
  insertAlertRule(r: AlertRuleRecord): Promise<void>;
  updateAlertRule(r: AlertRuleRecord): Promise<boolean>;
  deleteAlertRule(workspaceId: string, id: string): Promise<boolean>;
  /** Sorted by name. */
  listAlertDestinations(workspaceId: string): Promise<AlertDestinationRecord[]>;
  getAlertDestination(
    workspaceId: string,
    ref: { id?: string; name?: string },
  ): Promise<AlertDestinationRecord | undefined>;
  insertAlertDestination(d: AlertDestinationRecord): Promise<void>;
  updateAlertDestination(d: AlertDestinationRecord): Promise<boolean>;
  /** Its pending deliveries go with it. */
  deleteAlertDestination(workspaceId: string, id: string): Promise<boolean>;
  insertAlertDelivery(d: AlertDeliveryRecord): Promise<void>;
  updateAlertDelivery(d: AlertDeliveryRecord): Promise<boolean>;
  /** Undelivered, with fewer than `maxAttempts` attempts and due at `now`, of every workspace, oldest first. */
  listDueAlertDeliveries(now: string, maxAttempts: number, limit: number): Promise<AlertDeliveryRecord[]>;
  /** The deliveries of these alerts, oldest first. */
  listAlertDeliveries(workspaceId: string, alertIds: readonly string[]): Promise<AlertDeliveryRecord[]>;
}

/** What analytics filter telemetry by: a time range (minutes from `from` inclusive to `to` exclusive) and keys. */
export interface AnalyticsFilter {
  from: string;
  to: string;
  gatewayId?: string;
  collection?: string;
  endpoint?: string;
  clientId?: string;
  /** A derived credential's agent, or session: `-` for the requests that carried none. Read from the raw table. */
  agent?: string;
  session?: string;
}
export type AnalyticsDimension = 'gateway' | 'collection' | 'endpoint' | 'client' | 'agent' | 'session';

/** Sums over telemetry rows; `below[i]`: requests in rows whose mean duration is under `LATENCY_BOUNDS_MS[i]`. */
export interface AnalyticsAggregate {
  requests: number;
  status4xx: number;
  status5xx: number;
  rateLimited: number;
  durationMsSum: number;
  durationMsMax: number;
  below: number[];
}

/** The console's analytics, aggregated in the database (sql/analytics.ts). */
export interface AnalyticsOps {
  /**
   * Per bucket of the source read (sorted; `minute` is the bucket's start), optionally per value of one dimension
   * among `values`. The source's buckets nest in buckets of `everyMinutes` (default 1) aligned like the range.
   */
  analyticsByMinute(
    workspaceId: string,
    filter: AnalyticsFilter,
    groupBy?: { dimension: AnalyticsDimension; values: readonly string[] },
    everyMinutes?: number,
  ): Promise<(AnalyticsAggregate & { minute: string; group?: string })[]>;
  /** Totals per value of a dimension, most requests first (`onlyStatus`: rows of that status only). */
  analyticsTop(
    workspaceId: string,
    filter: AnalyticsFilter,
    dimension: AnalyticsDimension,
    options: { limit: number; onlyStatus?: number },
  ): Promise<(AnalyticsAggregate & { key: string })[]>;
  /**
   * Requests answered 400 or above, per status, collection and endpoint (`byAgent`: and agent and session, read
   * from the raw table); most first (`lastBucket`: latest hour or minute).
   */
  analyticsRefusedByStatus(
    workspaceId: string,
    filter: AnalyticsFilter,
    limit: number,
    options?: { byAgent?: boolean },
  ): Promise<
    {
      status: number;
      collection: string;
      endpoint: string;
      agent?: string;
      session?: string;
      count: number;
      lastBucket: string;
    }[]
  >;
  /** Security events per error code, kind, collection and client; most first. */
  analyticsRefusedByReason(
    workspaceId: string,
    filter: AnalyticsFilter,
    limit: number,
  ): Promise<
    {
      reason: string;
      kind: string;
      collection?: string;
      clientId?: string;
      agent?: string;
      session?: string;
      count: number;
      lastAt: string;
    }[]
  >;
}

/** The audit log of changes made through the admin API. */
export interface AuditOps {
  insertAuditEntry(e: AuditEntryRecord): Promise<void>;
  /** A workspace's entries, newest first (by `at`, then `id`). */
  listAuditLog(workspaceId: string, filter: AuditLogFilter): Promise<AuditEntryRecord[]>;
  /** Deletes the entries (of every workspace) made before `before`; returns how many. */
  pruneAuditLog(before: string): Promise<number>;
}

/** Compiled configuration snapshots, per scope. */
export interface SnapshotOps {
  /** The newest snapshot of a scope. */
  getLatestSnapshot(scope: string): Promise<SnapshotRecord | undefined>;
  getSnapshot(scope: string, version: number): Promise<SnapshotRecord | undefined>;
  insertSnapshot(s: SnapshotRecord): Promise<void>;
  /** The newest version of each of these scopes that has a snapshot, in one read (no bodies). */
  latestSnapshotVersions(scopes: readonly string[]): Promise<Map<string, number>>;
  /** Keeps the newest `keep` snapshots of a scope. */
  pruneSnapshots(scope: string, keep: number): Promise<number>;
}

/** One entity of a collection's relationship data (docs/policies.md), as stored. */
export interface EntityRecord {
  collectionId: string;
  type: string;
  id: string;
  attrs: Record<string, EntityAttributeValue>;
  parents: EntityUid[];
  updatedAt: string;
}

/** One entity as it changed at a version of its collection's relationship data: its new content, or deleted. */
export interface EntityChange {
  type: string;
  id: string;
  /** The collection's entity version that made this change. */
  version: number;
  /** Deleted at `version` (then `attrs` and `parents` are empty). */
  deleted: boolean;
  attrs: Record<string, EntityAttributeValue>;
  parents: EntityUid[];
}

/** A collection's relationship data version: 0 before any write; one more per write (a batch is one). */
export interface EntitySetVersion {
  version: number;
  /** Deletions up to this version were forgotten: a gateway that holds an older version needs the full set. */
  floor: number;
}

export interface EntityOps {
  /**
   * Inserts each entity, or replaces the one with the same collection, type and id (idempotent). Each collection
   * written takes its next entity version, stamped on the rows written (`entityChangesSince`).
   */
  upsertEntities(entities: readonly EntityRecord[]): Promise<void>;
  /**
   * Deletes these entities of the collection (absent ones are no error); resolves with how many were deleted.
   * When any was, the collection takes its next entity version and keeps a tombstone of each for gateways behind.
   */
  deleteEntities(collectionId: string, uids: readonly EntityUid[]): Promise<number>;
  /**
   * The collection's entities after `after` in type and id order, at most `limit`, each as its JSON text in Cedar's
   * form (`{"uid":…,"attrs":…,"parents":…}`), written from the stored JSON without parsing it: full sets for gateways.
   */
  listEntitiesJson(
    collectionId: string,
    page: { after?: EntityUid; limit: number },
  ): Promise<{ type: string; id: string; json: string }[]>;
  /** The collection's entity version and tombstone floor. */
  entitySetVersion(collectionId: string): Promise<EntitySetVersion>;
  /**
   * What changed after version `since`: each entity written or deleted since, once, as it is now, in version
   * order; whole versions only, stopping after the version that reaches `limit` rows. Empty when nothing did.
   */
  entityChangesSince(collectionId: string, since: number, limit: number): Promise<EntityChange[]>;
  /**
   * The collection's entities ordered by type and id, those up to `after` (keyset paging) and the `offset` first
   * skipped, at most `limit` (default all).
   */
  listEntities(
    collectionId: string,
    page?: { offset?: number; limit?: number; after?: EntityUid },
  ): Promise<EntityRecord[]>;
  getEntity(collectionId: string, uid: EntityUid): Promise<EntityRecord | undefined>;
  countEntities(collectionId: string): Promise<number>;
}

/** A derived credential revoked on its own (docs/agents.md), as stored; see config/revocations.ts. */
export interface DerivedRevocationRecord {
  id: string;
  workspaceId: string;
  clientId: string;
  /** One credential by id; or `agent` (optionally `session`) with `issuedBefore`. */
  credential?: string;
  agent?: string;
  session?: string;
  issuedBefore?: string;
  reason?: string;
  revokedAt: string;
  /** When the row may be dropped: every credential it can match has expired. */
  expiresAt: string;
}

export interface RevocationOps {
  insertDerivedRevocation(r: DerivedRevocationRecord): Promise<void>;
  /** A workspace's revocations still in force at `now` (expiring after it), optionally of one client; oldest first. */
  listDerivedRevocations(
    workspaceId: string,
    filter: { now: string; clientId?: string },
  ): Promise<DerivedRevocationRecord[]>;
  /** Deletes the revocations (of every workspace) that expired at or before `now`; returns how many. */
  pruneDerivedRevocations(now: string): Promise<number>;
}

/** Reads and writes; the same methods inside and outside a transaction. */
export interface StoreOps
  extends
    RevocationOps,
    EntityOps,
    SettingOps,
    ReplicaOps,
    WorkspaceOps,
    CollectionOps,
    RoleOps,
    ClientOps,
    UserOps,
    GatewayOps,
    TelemetryOps,
    QuotaUsageOps,
    AlertOps,
    AuditOps,
    AnalyticsOps,
    SnapshotOps {}

export interface Store extends StoreOps {
  readonly kind: 'sqlite' | 'postgres';
  /**
   * Runs `fn` in one transaction: all of its writes or none. Transactions are serialized on both databases (on
   * PostgreSQL through an advisory lock, so across control-plane replicas too), so a read-modify-write inside one
   * cannot lose an update; keep them short and free of network calls, as they hold everyone else up.
   *
   * Inside `fn` use only `tx`: the store itself refuses to run while `fn` runs in the same async flow (on SQLite it
   * would wait for this very transaction), and so does a nested `transaction()`. A statement that fails (e.g. a
   * `StoreConflictError`) fails the whole transaction: nothing more runs in it and it rolls back, even if `fn`
   * caught the error. `tx` is unusable once the transaction has ended.
   */
  transaction<T>(fn: (tx: StoreOps) => Promise<T>): Promise<T>;
  /**
   * Tells the other control-plane replicas sharing this database that a workspace changed, so that they
   * recompile it for their own cloud gateway and edge streams (PostgreSQL LISTEN/NOTIFY; on SQLite, a single
   * process, it does nothing).
   */
  notifyChange(workspaceId: string): Promise<void>;
  /**
   * Calls `listener` with the workspace ids other replicas changed, or `*` after the listening connection was
   * re-established (notifications may have been missed: recompile everything). Resolves once listening; the
   * returned function stops it. On SQLite it never calls the listener.
   */
  onRemoteChange(listener: (workspaceId: string) => void): Promise<() => Promise<void>>;
  close(): Promise<void>;
}
