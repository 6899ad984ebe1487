/**
 * The gRPC contract of the gateway channel (`proto/gatehouse/v1/sync.proto`), loaded at run time with
 * @grpc/proto-loader: both ends — the control plane's sync server and an edge gateway's sync client — use the
 * service definitions from here, so neither carries generated code.
 *
 * Messages are plain objects with camelCase field names (`instanceId`, `appliedVersion`), 64-bit integers as
 * numbers and `bytes` as Buffers; a received `oneof` also names its set member in `message`. The interfaces below
 * mirror the proto for TypeScript; the proto stays the definition (a test checks that they name the same fields).
 */
import { fileURLToPath } from 'node:url';
import { loadPackageDefinition, type ServiceClientConstructor, type ServiceDefinition } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import type { AccessEvent, QuotaUsage, RequestCount, SecurityEvent, TelemetryBatch } from './telemetry.ts';

/** The proto file, relative to this module (the repository layout, also in the container image). */
export const SYNC_PROTO_FILE = fileURLToPath(new URL('../../proto/gatehouse/v1/sync.proto', import.meta.url));

/** How messages are turned into objects: camelCase names, uint64 as numbers, bytes as Buffers, oneof names. */
export const PROTO_LOADER_OPTIONS = {
  keepCase: false,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
  bytes: Buffer,
} as const;

/**
 * Trailer of a refused or ended call, `deleted` when the gateway no longer exists in the control plane: its edge
 * instances then stop serving its endpoints and drop their cache, instead of serving a frozen configuration that
 * revocations no longer reach.
 */
export const GATEWAY_STATUS_TRAILER = 'gatehouse-gateway-status';

export interface SyncProto {
  /** `gatehouse.v1.ConfigSync`: a client constructor; `.service` is the definition a server adds. */
  ConfigSync: ServiceClientConstructor;
  /** `gatehouse.v1.Telemetry`. */
  Telemetry: ServiceClientConstructor;
}

let loaded: SyncProto | undefined;

/** Loads the proto once per process. */
export function loadSyncProto(): SyncProto {
  if (loaded) return loaded;
  const definition = loadSync(SYNC_PROTO_FILE, PROTO_LOADER_OPTIONS);
  const v1 = (loadPackageDefinition(definition) as unknown as { gatehouse: { v1: Record<string, unknown> } }).gatehouse
    .v1;
  loaded = {
    ConfigSync: v1.ConfigSync as ServiceClientConstructor,
    Telemetry: v1.Telemetry as ServiceClientConstructor,
  };
  return loaded;
}

/** The service definition of `gatehouse.v1.ConfigSync` / `Telemetry`, for `Server.addService`. */
export function syncServices(): { configSync: ServiceDefinition; telemetry: ServiceDefinition } {
  const proto = loadSyncProto();
  return { configSync: proto.ConfigSync.service, telemetry: proto.Telemetry.service };
}

// ── Messages (see sync.proto for what each field means) ─────────────────────────────────────────────────────────

export interface HelloMessage {
  instanceId: string;
  softwareVersion: string;
  appliedVersion: number;
  appliedHash: string;
  hostname: string;
  /** Sent by gateways that hold relationship data; received as [] when absent. */
  entitySets?: EntitySetVersionMessage[];
}
export interface EntitySetVersionMessage {
  set: string;
  version: number;
}
export interface AckMessage {
  version: number;
  hash: string;
}
export interface NackMessage {
  version: number;
  error: string;
}
export interface HeartbeatMessage {
  appliedVersion: number;
}

/** What a gateway sends on the Sync stream: exactly one member set. */
export type SyncRequestMessage =
  { hello: HelloMessage } | { ack: AckMessage } | { nack: NackMessage } | { heartbeat: HeartbeatMessage };
/** A received SyncRequest: the oneof's member is named in `message`. */
export interface ReceivedSyncRequest {
  message?: 'hello' | 'ack' | 'nack' | 'heartbeat';
  hello?: HelloMessage | null;
  ack?: AckMessage | null;
  nack?: NackMessage | null;
  heartbeat?: HeartbeatMessage | null;
}

export interface SnapshotMessage {
  version: number;
  hash: string;
  body: Buffer;
}
export interface DeltaMessage {
  fromVersion: number;
  toVersion: number;
  hash: string;
  body: Buffer;
}
export interface NoticeMessage {
  kind: string;
  message: string;
}
export interface EntityChangesMessage {
  set: string;
  fromVersion: number;
  toVersion: number;
  reset: boolean;
  more: boolean;
  body: Buffer;
}

/** The control-plane replicas that are up now (high availability). */
export interface ReplicasMessage {
  replicas: { bootstrap: string; sync: string; telemetry: string }[];
}

/** What the control plane sends on the Sync stream. */
export type SyncResponseMessage =
  | { snapshot: SnapshotMessage }
  | { delta: DeltaMessage }
  | { notice: NoticeMessage }
  | { entities: EntityChangesMessage }
  | { replicas: ReplicasMessage };
export interface ReceivedSyncResponse {
  message?: 'snapshot' | 'delta' | 'notice' | 'entities' | 'replicas';
  snapshot?: SnapshotMessage | null;
  delta?: DeltaMessage | null;
  notice?: NoticeMessage | null;
  entities?: EntityChangesMessage | null;
  replicas?: ReplicasMessage | null;
}

export interface RenewCertificateRequestMessage {
  csrPem: string;
}
export interface RenewCertificateResponseMessage {
  certificatePem: string;
  caPem: string;
}

/** The telemetry messages are the shapes `telemetry.ts` checks them with (one schema per message). */
export type RequestCountMessage = RequestCount;
export type SecurityEventMessage = SecurityEvent;
export type AccessEventMessage = AccessEvent;
/** One telemetry batch. Sent with any subset of fields (the rest default); received with every field set. */
export type TelemetryBatchMessage = TelemetryBatch;
export type QuotaUsageMessage = QuotaUsage;
export interface TelemetryAckMessage {
  sequence: number;
}
