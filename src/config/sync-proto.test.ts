import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadSync } from '@grpc/proto-loader';
import {
  type AccessEventMessage,
  type AckMessage,
  type DeltaMessage,
  type EntityChangesMessage,
  type EntitySetVersionMessage,
  type HeartbeatMessage,
  type HelloMessage,
  loadSyncProto,
  type NackMessage,
  type NoticeMessage,
  PROTO_LOADER_OPTIONS,
  type RenewCertificateRequestMessage,
  type RenewCertificateResponseMessage,
  type QuotaUsageMessage,
  type RequestCountMessage,
  type SecurityEventMessage,
  type SnapshotMessage,
  SYNC_PROTO_FILE,
  type TelemetryAckMessage,
  type TelemetryBatchMessage,
} from './sync-proto.ts';

type Fields<T> = Record<keyof T, true>;

// `satisfies` makes tsc fail when an interface gains or loses a field these lists do not; the test below fails when
// the proto does. Together they keep the hand-written interfaces equal to the proto.
const MESSAGES = {
  Hello: {
    instanceId: true,
    softwareVersion: true,
    appliedVersion: true,
    appliedHash: true,
    hostname: true,
    entitySets: true,
  } satisfies Fields<HelloMessage>,
  EntitySetVersion: { set: true, version: true } satisfies Fields<EntitySetVersionMessage>,
  EntityChanges: {
    set: true,
    fromVersion: true,
    toVersion: true,
    reset: true,
    more: true,
    body: true,
  } satisfies Fields<EntityChangesMessage>,
  Ack: { version: true, hash: true } satisfies Fields<AckMessage>,
  Nack: { version: true, error: true } satisfies Fields<NackMessage>,
  Heartbeat: { appliedVersion: true } satisfies Fields<HeartbeatMessage>,
  Snapshot: { version: true, hash: true, body: true } satisfies Fields<SnapshotMessage>,
  Delta: { fromVersion: true, toVersion: true, hash: true, body: true } satisfies Fields<DeltaMessage>,
  Notice: { kind: true, message: true } satisfies Fields<NoticeMessage>,
  RenewCertificateRequest: { csrPem: true } satisfies Fields<RenewCertificateRequestMessage>,
  RenewCertificateResponse: { certificatePem: true, caPem: true } satisfies Fields<RenewCertificateResponseMessage>,
  TelemetryBatch: {
    instanceId: true,
    sequence: true,
    requests: true,
    securityEvents: true,
    accessEvents: true,
    dropped: true,
    quotaUsage: true,
  } satisfies Fields<TelemetryBatchMessage>,
  QuotaUsage: {
    collection: true,
    scope: true,
    subject: true,
    period: true,
    periodId: true,
    units: true,
  } satisfies Fields<QuotaUsageMessage>,
  RequestCount: {
    minute: true,
    collection: true,
    endpoint: true,
    clientId: true,
    status: true,
    count: true,
    durationMsSum: true,
    durationMsMax: true,
    agent: true,
    session: true,
  } satisfies Fields<RequestCountMessage>,
  SecurityEvent: {
    at: true,
    kind: true,
    reason: true,
    collection: true,
    clientId: true,
    keyLabel: true,
    ip: true,
    agent: true,
    session: true,
  } satisfies Fields<SecurityEventMessage>,
  AccessEvent: {
    at: true,
    requestId: true,
    method: true,
    path: true,
    status: true,
    durationMs: true,
    clientId: true,
    collection: true,
    agent: true,
    session: true,
  } satisfies Fields<AccessEventMessage>,
  TelemetryAck: { sequence: true } satisfies Fields<TelemetryAckMessage>,
};

describe('sync proto', () => {
  it('the message interfaces name exactly the fields of the proto', () => {
    const definition = loadSync(SYNC_PROTO_FILE, PROTO_LOADER_OPTIONS) as unknown as Record<
      string,
      { type?: { field: { name: string }[] } }
    >;
    for (const [name, fields] of Object.entries(MESSAGES)) {
      const type = definition[`gatehouse.v1.${name}`]?.type;
      assert.ok(type, `gatehouse.v1.${name} is not in the proto`);
      assert.deepEqual(type.field.map((f) => f.name).sort(), Object.keys(fields).sort(), `fields of ${name}`);
    }
  });

  it('round-trips a Sync request and response through the service definition', () => {
    const sync = loadSyncProto().ConfigSync.service.Sync!;
    const request = sync.requestDeserialize(
      sync.requestSerialize({ hello: { instanceId: 'i-1', appliedVersion: 2 ** 40 } }),
    ) as { message: string; hello: HelloMessage };
    assert.equal(request.message, 'hello');
    assert.equal(request.hello.instanceId, 'i-1');
    assert.equal(request.hello.appliedVersion, 2 ** 40, 'uint64 arrives as a number');
    const response = sync.responseDeserialize(
      sync.responseSerialize({ delta: { fromVersion: 1, toVersion: 2, hash: 'h', body: Buffer.from('{}') } }),
    ) as { message: string; delta: DeltaMessage };
    assert.equal(response.message, 'delta');
    assert.ok(Buffer.isBuffer(response.delta.body));
  });
});
