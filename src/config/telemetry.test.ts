import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { loadPackageDefinition, type ServiceClientConstructor } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { securityEventKind, TelemetryBatchSchema, type TelemetryBatch } from './telemetry.ts';

const PROTO = fileURLToPath(new URL('../../proto/gatehouse/v1/sync.proto', import.meta.url));

const batch: TelemetryBatch = {
  instanceId: 'i-1',
  sequence: 2 ** 40,
  requests: [
    {
      minute: '2026-03-01T10:00:00.000Z',
      collection: 'billing',
      endpoint: 'GET /invoices/{id}',
      clientId: 'alice',
      agent: 'planner',
      session: 'chat-1',
      status: 200,
      count: 3,
      durationMsSum: 4.25,
      durationMsMax: 2.5,
    },
    {
      minute: '2026-03-01T10:00:00.000Z',
      collection: '-',
      endpoint: '-',
      clientId: '-',
      status: 404,
      count: 1,
      durationMsSum: 0.125,
      durationMsMax: 0.125,
    },
  ],
  securityEvents: [
    {
      at: '2026-03-01T10:00:01.123Z',
      kind: 'auth_failure',
      reason: 'GH_ERR_AUTH_INVALID_KEY',
      collection: 'billing',
      clientId: '',
      keyLabel: 'ghk_AbCd…',
      ip: '::1',
    },
    {
      at: '2026-03-01T10:00:01.500Z',
      kind: 'auth_failure',
      reason: 'GH_ERR_DERIVED_REVOKED',
      collection: 'billing',
      clientId: 'alice',
      keyLabel: 'alice#0a1b2c3d',
      ip: '::1',
      agent: 'planner',
      session: 'chat-1',
    },
  ],
  accessEvents: [
    {
      at: '2026-03-01T10:00:01.000Z',
      requestId: 'r-1',
      method: 'GET',
      path: '/invoices/{id}',
      status: 200,
      durationMs: 1.5,
      clientId: 'alice',
      collection: 'billing',
    },
  ],
  dropped: 7,
  quotaUsage: [
    {
      collection: 'billing',
      scope: 'client',
      subject: 'alice',
      period: 'daily',
      periodId: '2026-03-01',
      units: 2 ** 40,
    },
  ],
};

describe('the telemetry batch contract', () => {
  it('survives the wire: encoded and decoded with the channel options it parses to itself', () => {
    const definition = loadSync(PROTO, { keepCase: false, longs: Number, enums: String, defaults: true, oneofs: true });
    const telemetry = (
      loadPackageDefinition(definition) as unknown as { gatehouse: { v1: { Telemetry: ServiceClientConstructor } } }
    ).gatehouse.v1.Telemetry;
    const report = telemetry.service.Report!;
    const received = report.requestDeserialize(report.requestSerialize(batch));
    assert.deepEqual(TelemetryBatchSchema.parse(received), batch);

    const longsAsStrings = loadSync(PROTO, {
      keepCase: false,
      longs: String,
      enums: String,
      defaults: true,
      oneofs: true,
    });
    const asStrings = (
      loadPackageDefinition(longsAsStrings) as unknown as { gatehouse: { v1: { Telemetry: ServiceClientConstructor } } }
    ).gatehouse.v1.Telemetry.service.Report!;
    assert.deepEqual(
      TelemetryBatchSchema.parse(asStrings.requestDeserialize(asStrings.requestSerialize(batch))),
      batch,
    );
  });

  it('reads proto3 defaults as "none" and accepts a sparse batch', () => {
    const parsed = TelemetryBatchSchema.parse({
      instanceId: 'i-1',
      sequence: '3',
      requests: [{ ...batch.requests[0], collection: '', endpoint: '', clientId: '' }],
    });
    assert.deepEqual(parsed.requests[0], { ...batch.requests[0], collection: '-', endpoint: '-', clientId: '-' });
    assert.deepEqual([parsed.sequence, parsed.securityEvents, parsed.accessEvents, parsed.dropped], [3, [], [], 0]);
  });

  it('refuses a batch that carries a whole API key anywhere, or garbage', () => {
    const key = `ghk_${'a'.repeat(38)}`;
    assert.equal(
      TelemetryBatchSchema.safeParse({ ...batch, securityEvents: [{ ...batch.securityEvents[0], keyLabel: key }] })
        .success,
      false,
    );
    assert.equal(
      TelemetryBatchSchema.safeParse({ ...batch, accessEvents: [{ ...batch.accessEvents[0], path: `/x/${key}` }] })
        .success,
      false,
    );
    assert.equal(
      TelemetryBatchSchema.safeParse({
        ...batch,
        requests: [{ ...batch.requests[0], minute: '2026-03-01T10:00:30.000Z' }],
      }).success,
      false,
      'not a minute',
    );
    assert.equal(TelemetryBatchSchema.safeParse({ ...batch, sequence: 0 }).success, false);
    assert.equal(
      TelemetryBatchSchema.safeParse({ ...batch, requests: [{ ...batch.requests[0], count: -1 }] }).success,
      false,
    );
    assert.equal(
      TelemetryBatchSchema.safeParse({ ...batch, securityEvents: [{ ...batch.securityEvents[0], ip: '1'.repeat(65) }] })
        .success,
      false,
    );
    assert.equal(TelemetryBatchSchema.safeParse('nonsense').success, false);
  });

  it('classifies refusals into security event kinds', () => {
    assert.equal(securityEventKind('GH_ERR_AUTH_INVALID_KEY'), 'auth_failure');
    assert.equal(securityEventKind('GH_ERR_AUTH_MISSING_KEY'), 'auth_failure');
    assert.equal(securityEventKind('GH_ERR_AUTH_CLIENT_DISABLED'), 'auth_failure');
    assert.equal(securityEventKind('GH_ERR_AUTH_IP_NOT_ALLOWED'), 'ip_not_allowed');
    assert.equal(securityEventKind('GH_ERR_AUTH_FORBIDDEN_SCOPE'), 'forbidden');
    assert.equal(securityEventKind('GH_ERR_RATE_LIMITED'), undefined);
  });
});
