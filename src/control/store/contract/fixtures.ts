/** The records the contract suite writes and reads back, and the assertions its tests share. */
import assert from 'node:assert/strict';
import {
  StoreConflictError,
  type AlertRecord,
  type ClientRecord,
  type CollectionRecord,
  type GatewayCertificateRecord,
  type GatewayInstanceRecord,
  type GatewayRecord,
  type KeyRecord,
  type RegistrationTokenRecord,
  type RoleRecord,
  type SecurityEventRecord,
  type SessionRecord,
  type SnapshotRecord,
  type Store,
  type TelemetryRecord,
  type UserRecord,
  type WorkspaceRecord,
} from '../store.ts';
import type { CollectionSpec } from '../../../config/resources.ts';

export const T0 = '2025-01-01T00:00:00.000Z';
export const T1 = '2025-01-02T00:00:00.000Z';
export const T2 = '2025-01-03T00:00:00.000Z';

export function workspace(over: Partial<WorkspaceRecord> = {}): WorkspaceRecord {
  return {
    id: 'wsp_aaaaaaaaaaaaaaaaaaaa',
    name: 'acme',
    environments: ['DEV', 'TEST', 'PROD'],
    devEnvironment: 'DEV',
    createdAt: T0,
    ...over,
  };
}
export const WS = 'wsp_aaaaaaaaaaaaaaaaaaaa';
export const WS2 = 'wsp_bbbbbbbbbbbbbbbbbbbb';

export function spec(name: string, over: Partial<CollectionSpec> = {}): CollectionSpec {
  return {
    name,
    basePath: `/${name}/v1`,
    upstream: {
      url: 'http://127.0.0.1:9000',
      connectTimeout: 5000,
      headersTimeout: 30000,
      bodyTimeout: 30000,
      connections: 128,
    },
    project: 'default',
    stripBasePath: true,
    websocket: false,
    authRequired: true,
    endpoints: [{ method: 'GET', path: '/invoices/{id}', permission: 'invoices:read' }],
    target: { type: 'cloud' },
    ...over,
  };
}

export function collection(over: Partial<CollectionRecord> = {}): CollectionRecord {
  const name = over.name ?? 'billing';
  return {
    id: `col_${name.padEnd(20, 'x')}`,
    workspaceId: WS,
    environment: 'DEV',
    name,
    project: 'default',
    target: { type: 'cloud' },
    spec: spec(name),
    revision: 1,
    createdAt: T0,
    updatedAt: T0,
    ...over,
  };
}

export function role(over: Partial<RoleRecord> = {}): RoleRecord {
  return {
    id: 'rol_aaaaaaaaaaaaaaaaaaaa',
    workspaceId: WS,
    name: 'reader',
    permissions: ['invoices:read'],
    endpoints: [{ collection: 'billing', method: 'GET', path: '/invoices/{id}' }],
    createdAt: T0,
    updatedAt: T0,
    ...over,
  };
}

export function client(over: Partial<ClientRecord> = {}): ClientRecord {
  return {
    id: 'cli_aaaaaaaaaaaaaaaaaaaa',
    workspaceId: WS,
    kind: 'standard',
    name: 'Billing service',
    roleId: 'rol_aaaaaaaaaaaaaaaaaaaa',
    environments: ['DEV'],
    projects: ['default'],
    status: 'active',
    operator: false,
    createdAt: T0,
    updatedAt: T0,
    ...over,
  };
}

/** A client with every optional field set. */
export function fullClient(over: Partial<ClientRecord> = {}): ClientRecord {
  return client({
    id: 'cli_legacyaaaaaaaaaaaaa',
    kind: 'legacy',
    allowedIps: ['10.0.0.0/8', '2001:db8::/32'],
    userId: 'user-17',
    orgId: 'org-4',
    metadata: { plan: 'gold', seats: 12, trial: false },
    rateLimits: { key: { limit: 100, window: 60_000 }, client: { limit: 1000, window: 60_000 } },
    quotas: { client: { daily: 5_000, monthly: 100_000 } },
    expiresAt: T2,
    status: 'disabled',
    operator: true,
    email: 'ops@example.com',
    ...over,
  });
}

export function key(over: Partial<KeyRecord> = {}): KeyRecord {
  return { id: 'gh_live_abcd', clientId: 'cli_aaaaaaaaaaaaaaaaaaaa', hash: 'a'.repeat(64), createdAt: T0, ...over };
}

export function user(over: Partial<UserRecord> = {}): UserRecord {
  return {
    id: 'usr_aaaaaaaaaaaaaaaaaaaa',
    workspaceId: WS,
    email: 'ada@example.com',
    role: 'admin',
    passwordHash: 'scrypt$16384$8$1$c2FsdA$aGFzaA',
    createdAt: T0,
    ...over,
  };
}

export function session(over: Partial<SessionRecord> = {}): SessionRecord {
  return {
    hash: 'c'.repeat(64),
    userId: 'usr_aaaaaaaaaaaaaaaaaaaa',
    workspaceId: WS,
    createdAt: T0,
    expiresAt: T1,
    lastSeenAt: T0,
    ...over,
  };
}

export function snapshot(version: number, scope = `${WS}/PROD/cloud`): SnapshotRecord {
  const body = JSON.stringify({ version, collections: [] });
  return { scope, version, hash: version.toString(16).padStart(64, '0'), body, createdAt: T0 };
}

export const GW = 'gtw_aaaaaaaaaaaaaaaaaaaa';

export function gateway(over: Partial<GatewayRecord> = {}): GatewayRecord {
  return {
    id: GW,
    workspaceId: WS,
    environment: 'PROD',
    name: 'eu-1',
    installMethod: 'docker',
    createdAt: T0,
    updatedAt: T0,
    ...over,
  };
}

export function registrationToken(over: Partial<RegistrationTokenRecord> = {}): RegistrationTokenRecord {
  return { hash: 'd'.repeat(64), gatewayId: GW, createdAt: T0, expiresAt: T1, ...over };
}

export function certificate(over: Partial<GatewayCertificateRecord> = {}): GatewayCertificateRecord {
  return { serial: '01ab', gatewayId: GW, notBefore: T0, notAfter: T2, ...over };
}

export function instance(over: Partial<GatewayInstanceRecord> = {}): GatewayInstanceRecord {
  return {
    gatewayId: GW,
    instanceId: 'ins-1',
    softwareVersion: '0.1.0',
    appliedVersion: 0,
    connected: true,
    firstSeenAt: T0,
    lastSeenAt: T0,
    ...over,
  };
}

export function telemetry(over: Partial<TelemetryRecord> = {}): TelemetryRecord {
  return {
    workspaceId: WS,
    gatewayId: GW,
    minute: '2025-01-01T00:00:00.000Z',
    collection: 'billing',
    endpoint: 'GET /invoices/{id}',
    clientId: 'cli_aaaaaaaaaaaaaaaaaaaa',
    status: 200,
    count: 3,
    durationMsSum: 30.5,
    durationMsMax: 20.25,
    ...over,
  };
}

export function securityEvent(over: Partial<SecurityEventRecord> = {}): SecurityEventRecord {
  return {
    id: 'sev_aaaaaaaaaaaaaaaaaaaa',
    workspaceId: WS,
    gatewayId: GW,
    at: T0,
    kind: 'auth_failure',
    reason: 'GH_ERR_AUTH_INVALID_KEY',
    ...over,
  };
}

export function alert(over: Partial<AlertRecord> = {}): AlertRecord {
  return {
    id: 'alr_aaaaaaaaaaaaaaaaaaaa',
    workspaceId: WS,
    kind: 'auth_failure_spike',
    key: 'auth_failure_spike',
    message: '120 authentication failures in 5 minutes',
    raisedAt: T0,
    deliveryAttempts: 0,
    ...over,
  };
}

export async function rejectsWithConflict(promise: Promise<unknown>, constraint: string): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof StoreConflictError, `expected a StoreConflictError, got ${String(error)}`);
    assert.equal(error.constraint, constraint);
    return true;
  });
}

/** A store with the workspace `acme` (WS) and `globex` (WS2). */
export async function withWorkspaces(store: Store): Promise<void> {
  await store.insertWorkspace(workspace());
  await store.insertWorkspace(workspace({ id: WS2, name: 'globex' }));
}
