/** The telemetry collector of a real gateway instance on loopback, in front of a real upstream. */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { ServerSchema, SnapshotSchema } from '../../config/schema.ts';
import { TelemetryBatchSchema } from '../../config/telemetry.ts';
import { createGatewayInstance, type GatewayInstance } from '../instance.ts';
import { generateKey, redactKey } from '../../shared/api-key.ts';
import { channels, type RequestEndEvent } from './channels.ts';
import { GatewayMetrics } from './metrics.ts';
import { createTelemetryCollector, type TelemetryCollector } from './telemetry.ts';
import { eventually } from '../../testing/eventually.ts';
import { startBlackHole } from '../../testing/redis-faults.ts';

const alice = generateKey();
const walled = generateKey();
const disabled = generateKey();
const stranger = generateKey(); // well-formed, never configured
const TOKEN_EXCHANGE = { issuer: 'https://gatehouse.test', audience: 'telemetry-test' };
const T0 = Date.parse('2026-03-01T10:00:00.000Z');

describe('the telemetry collector of a gateway instance', () => {
  let upstream: Server;
  let gateway: GatewayInstance;
  let other: GatewayInstance;
  let api = '';
  let otherApi = '';
  let clock = T0;
  const collectors: TelemetryCollector[] = [];
  const collector = (options: Partial<Parameters<typeof createTelemetryCollector>[0]> = {}) => {
    const c = createTelemetryCollector({ instanceId: 'i-test', server: gateway.server, now: () => clock, ...options });
    collectors.push(c);
    return c;
  };
  /** Request ids whose end was published: a response reaches the client a moment before the gateway records it. */
  const ended = new Set<string>();
  const onEnd = (m: unknown) => void ended.add((m as RequestEndEvent).requestId);
  const call = async (path: string, key?: string, method = 'GET', base = api) => {
    const res = await fetch(`${base}${path}`, { method, headers: key === undefined ? {} : { 'x-api-key': key } });
    await res.arrayBuffer();
    const id = res.headers.get('x-request-id')!;
    await eventually(() => ended.has(id), 10_000, `the end of request ${id} published`, 1);
    return res.status;
  };

  before(async () => {
    channels.requestEnd.subscribe(onEnd);
    upstream = createServer((req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    const upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
    const snapshot = SnapshotSchema.parse({
      version: 1,
      tokenExchange: TOKEN_EXCHANGE,
      collections: [
        {
          name: 'billing',
          basePath: '/billing',
          upstream: upstreamUrl,
          project: 'payments',
          environment: 'PROD',
          endpoints: [
            { method: 'GET', path: '/invoices/{id}', permission: 'invoices:read' },
            { method: 'POST', path: '/invoices', permission: 'invoices:write' },
          ],
        },
        {
          name: 'metered',
          basePath: '/metered',
          upstream: upstreamUrl,
          project: 'payments',
          environment: 'PROD',
          quotas: { client: { daily: 1000, monthly: 10_000 } },
          endpoints: [
            { method: 'GET', path: '/items', permission: 'invoices:read' },
            { method: 'POST', path: '/search', permission: 'invoices:read', cost: 5 },
          ],
        },
      ],
      roles: [{ name: 'reader', permissions: ['invoices:read'] }],
      clients: [
        {
          id: 'alice',
          role: 'reader',
          environments: ['PROD'],
          projects: ['payments'],
          keys: [{ id: 'alice-key', hash: alice.hash }],
        },
        {
          id: 'walled',
          role: 'reader',
          environments: ['PROD'],
          projects: ['payments'],
          allowedIps: ['10.0.0.0/8'],
          keys: [{ hash: walled.hash }],
        },
        {
          id: 'gone',
          role: 'reader',
          environments: ['PROD'],
          projects: ['payments'],
          status: 'disabled',
          keys: [{ hash: disabled.hash }],
        },
      ],
    });
    const open = async () => {
      const instance = await createGatewayInstance({
        logger: pino({ level: 'silent' }),
        server: ServerSchema.parse({}),
        tokenExchange: SnapshotSchema.shape.tokenExchange.parse(TOKEN_EXCHANGE),
      });
      assert.equal((await instance.apply(snapshot)).applied, true);
      const { api: address } = await instance.listen({ port: 0, host: '127.0.0.1', ops: false });
      return { instance, url: `http://127.0.0.1:${address.port}` };
    };
    ({ instance: gateway, url: api } = await open());
    ({ instance: other, url: otherApi } = await open());
  });

  after(async () => {
    channels.requestEnd.unsubscribe(onEnd);
    for (const c of collectors) c.close();
    await gateway?.close({ drainMs: 0 });
    await other?.close({ drainMs: 0 });
    await new Promise<void>((r) => {
      upstream.close(() => r());
      upstream.closeAllConnections();
    });
  });

  it("adds up the quota units this gateway admitted per quota and period, not another gateway's", async () => {
    const telemetry = collector();
    assert.equal(await call('/metered/items', alice.key), 200);
    assert.equal(await call('/metered/search', alice.key, 'POST'), 200);
    assert.equal(await call('/metered/items', alice.key, 'GET', otherApi), 200, 'another gateway of the process');
    assert.equal(await call('/billing/invoices/1', alice.key), 200, 'a collection without quotas');
    const now = new Date();
    const day = now.toISOString().slice(0, 10);
    assert.deepEqual(
      telemetry
        .takeBatch()!
        .quotaUsage.map((u) => `${u.collection} ${u.scope} ${u.subject} ${u.period} ${u.periodId} ${u.units}`),
      [`metered client alice daily ${day} 6`, `metered client alice monthly ${day.slice(0, 7)} 6`],
    );
  });

  it('counts requests per minute, collection, endpoint, client and status, and records refusals as security events', async () => {
    clock = T0 + 5_000;
    const telemetry = collector();
    assert.equal(await call('/billing/invoices/1', alice.key), 200);
    assert.equal(await call('/billing/invoices/2', alice.key), 200);
    assert.equal(await call('/billing/invoices/3', alice.key), 200);
    assert.equal(await call('/billing/invoices', alice.key, 'POST'), 403);
    assert.equal(await call('/billing/invoices/1', stranger.key), 401);
    assert.equal(await call('/billing/invoices/1', stranger.key), 401);
    assert.equal(await call('/billing/invoices/1', `${alice.key.slice(0, -1)}x`), 401);
    assert.equal(await call('/billing/invoices/1'), 401);
    assert.equal(await call('/billing/invoices/1', walled.key), 403);
    assert.equal(await call('/billing/invoices/1', disabled.key), 403);
    assert.equal(await call('/nowhere'), 404);
    clock = T0 + 65_000; // the next minute
    assert.equal(await call('/billing/invoices/4', alice.key), 200);
    assert.equal(await call('/billing/invoices/1', alice.key, 'GET', otherApi), 200, 'another gateway of the process');

    const batch = telemetry.takeBatch()!;
    assert.equal(batch.instanceId, 'i-test');
    assert.equal(batch.sequence, 1);
    assert.equal(batch.dropped, 0);
    const rows = batch.requests.map(({ durationMsSum, durationMsMax, ...key }) => {
      assert.ok(durationMsSum >= durationMsMax && durationMsMax > 0);
      return key;
    });
    const m0 = '2026-03-01T10:00:00.000Z';
    const m1 = '2026-03-01T10:01:00.000Z';
    const row = (
      minute: string,
      collection: string,
      endpoint: string,
      clientId: string,
      status: number,
      count: number,
    ) => ({ minute, collection, endpoint, clientId, status, count });
    assert.deepEqual(
      rows.map((r) => JSON.stringify(r)).sort(),
      [
        row(m0, 'billing', 'GET /invoices/{id}', 'alice', 200, 3),
        row(m0, 'billing', 'POST /invoices', 'alice', 403, 1),
        row(m0, 'billing', 'GET /invoices/{id}', '-', 401, 4),
        row(m0, 'billing', 'GET /invoices/{id}', 'walled', 403, 1),
        row(m0, 'billing', 'GET /invoices/{id}', 'gone', 403, 1),
        row(m0, '-', '-', '-', 404, 1),
        row(m1, 'billing', 'GET /invoices/{id}', 'alice', 200, 1),
      ]
        .map((r) => JSON.stringify(r))
        .sort(),
    );

    const at = new Date(T0 + 5_000).toISOString();
    const event = (kind: string, reason: string, clientId: string, keyLabel: string) => ({
      at,
      kind,
      reason,
      collection: 'billing',
      clientId,
      keyLabel,
      ip: '127.0.0.1',
    });
    assert.deepEqual(batch.securityEvents, [
      event('forbidden', 'GH_ERR_AUTH_FORBIDDEN_ENDPOINT', 'alice', 'alice-key'),
      event('auth_failure', 'GH_ERR_AUTH_INVALID_KEY', '', redactKey(stranger.key)),
      event('auth_failure', 'GH_ERR_AUTH_INVALID_KEY', '', redactKey(stranger.key)),
      event('auth_failure', 'GH_ERR_AUTH_MALFORMED_KEY', '', redactKey(alice.key)),
      event('auth_failure', 'GH_ERR_AUTH_MISSING_KEY', '', ''),
      event('ip_not_allowed', 'GH_ERR_AUTH_IP_NOT_ALLOWED', 'walled', `walled#${walled.hash.slice(0, 8)}`),
      event('auth_failure', 'GH_ERR_AUTH_CLIENT_DISABLED', 'gone', `gone#${disabled.hash.slice(0, 8)}`),
    ]);

    assert.equal(batch.accessEvents.length, 12, 'every request of this gateway, fewer than the sample size');
    assert.deepEqual(
      batch.accessEvents
        .map((e) => `${e.method} ${e.path} ${e.status} ${e.clientId || '-'} ${e.collection || '-'}`)
        .sort(),
      [
        'GET - 404 - -',
        'GET /invoices/{id} 200 alice billing',
        'GET /invoices/{id} 200 alice billing',
        'GET /invoices/{id} 200 alice billing',
        'GET /invoices/{id} 200 alice billing',
        'GET /invoices/{id} 401 - billing',
        'GET /invoices/{id} 401 - billing',
        'GET /invoices/{id} 401 - billing',
        'GET /invoices/{id} 401 - billing',
        'GET /invoices/{id} 403 gone billing',
        'GET /invoices/{id} 403 walled billing',
        'POST /invoices 403 alice billing',
      ],
    );

    const json = JSON.stringify(batch);
    for (const secret of [
      alice.key,
      walled.key,
      disabled.key,
      stranger.key,
      alice.key.slice(0, -1),
      alice.hash,
      stranger.hash,
    ])
      assert.ok(!json.includes(secret), 'no key (or key hash) in the batch');
    assert.deepEqual(TelemetryBatchSchema.parse(batch), batch, 'the control plane accepts it as it is');
    assert.equal(telemetry.takeBatch(), undefined, 'nothing new');
  });

  it("attributes a derived credential's requests and refusals to its agent and session", async () => {
    clock = T0 + 125_000;
    const telemetry = collector();
    const mint = async (session: string) => {
      const res = await fetch(`${api}/oauth2/token`, {
        method: 'POST',
        body: new URLSearchParams({
          grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
          subject_token: alice.key,
          subject_token_type: 'urn:ietf:params:oauth:token-type:access_token',
          agent_id: 'planner',
          agent_session: session,
        }),
      });
      assert.equal(res.status, 200);
      return ((await res.json()) as { access_token: string }).access_token;
    };
    const [one, two] = [await mint('s-1'), await mint('s-2')];
    assert.equal(await call('/billing/invoices/1', one), 200);
    assert.equal(await call('/billing/invoices/2', one), 200);
    assert.equal(await call('/billing/invoices/1', two), 200);
    assert.equal(await call('/billing/invoices', two, 'POST'), 403);
    assert.equal(await call('/billing/invoices/1', alice.key), 200);
    const batch = TelemetryBatchSchema.parse(JSON.parse(JSON.stringify(telemetry.takeBatch())));
    const rows = batch.requests.map((r) => [r.endpoint, r.agent, r.session, r.status, r.count]);
    assert.deepEqual(rows, [
      ['GET /invoices/{id}', 'planner', 's-1', 200, 2],
      ['GET /invoices/{id}', 'planner', 's-2', 200, 1],
      ['POST /invoices', 'planner', 's-2', 403, 1],
      ['GET /invoices/{id}', undefined, undefined, 200, 1],
    ]);
    assert.deepEqual(
      batch.securityEvents.map((e) => [e.reason, e.clientId, e.agent, e.session]),
      [['GH_ERR_AUTH_FORBIDDEN_ENDPOINT', 'alice', 'planner', 's-2']],
    );
  });

  it('keeps a taken batch until it is acknowledged, and resends unacknowledged ones in order after requeue', async () => {
    clock = T0;
    const telemetry = collector();
    await call('/billing/invoices/1', alice.key);
    const first = telemetry.takeBatch()!;
    await call('/billing/invoices/1', stranger.key);
    const second = telemetry.takeBatch()!;
    assert.deepEqual([first.sequence, second.sequence], [1, 2]);
    assert.equal(telemetry.buffered(), 5, 'two rows, one security event, two access events');

    telemetry.requeue(); // reconnected: nothing was acknowledged
    await call('/billing/invoices/2', alice.key);
    assert.equal(telemetry.takeBatch(), first);
    assert.equal(telemetry.takeBatch(), second);
    const third = telemetry.takeBatch()!;
    assert.equal(third.sequence, 3);
    assert.equal(telemetry.takeBatch(), undefined);

    assert.equal(telemetry.ack(2), true);
    assert.equal(telemetry.ack(2), false, 'once');
    telemetry.requeue();
    assert.deepEqual(
      [telemetry.takeBatch()?.sequence, telemetry.takeBatch()?.sequence, telemetry.takeBatch()],
      [1, 3, undefined],
    );
    assert.equal(telemetry.ack(1) && telemetry.ack(3), true);
    assert.equal(telemetry.buffered(), 0);
  });

  it('holds a bounded number of events while nothing is acknowledged, drops and counts the rest', async () => {
    const metrics = new GatewayMetrics();
    try {
      const telemetry = collector({ maxBufferedEvents: 5, accessEventsPerBatch: 0, metrics });
      for (let minute = 0; minute < 4; minute++) {
        clock = T0 + minute * 60_000; // every minute is a new row
        assert.equal(await call('/billing/invoices/1', alice.key), 200);
      }
      assert.equal(await call('/billing/invoices/1', stranger.key), 401); // a fifth row; its security event is one too many
      assert.equal(
        await call('/billing/invoices/1', alice.key),
        200,
        'adds to an existing row: costs nothing, never dropped',
      );
      clock += 60_000;
      assert.equal(await call('/billing/invoices/1', alice.key), 200); // a sixth row: dropped
      assert.equal(telemetry.dropped(), 2);
      assert.equal(telemetry.buffered(), 5);

      const batch = telemetry.takeBatch()!;
      assert.equal(batch.dropped, 2);
      assert.equal(batch.requests.length, 5);
      assert.equal(
        batch.requests.reduce((n, r) => n + r.count, 0),
        6,
      );
      assert.equal(batch.securityEvents.length, 0);

      // Taken but not acknowledged (the control plane is unreachable): still counts against the bound.
      assert.equal(await call('/billing/invoices/1', alice.key), 200);
      assert.equal(telemetry.dropped(), 3);
      const text = await metrics.registry.metrics();
      assert.match(text, /gatehouse_telemetry_dropped_total\{kind="request"\} 2/);
      assert.match(text, /gatehouse_telemetry_dropped_total\{kind="security"\} 1/);

      const next = telemetry.takeBatch()!;
      assert.deepEqual(
        { dropped: next.dropped, requests: next.requests.length },
        { dropped: 1, requests: 0 },
        'the drop count travels on its own',
      );
      telemetry.ack(batch.sequence);
      telemetry.ack(next.sequence);
      assert.equal(await call('/billing/invoices/1', alice.key), 200);
      assert.equal(telemetry.takeBatch()!.requests.length, 1, 'room again once acknowledged');
      assert.equal(telemetry.dropped(), 3);
    } finally {
      metrics.close();
    }
  });

  it('samples at most accessEventsPerBatch access events per batch', async () => {
    clock = T0;
    const telemetry = collector({ accessEventsPerBatch: 3 });
    for (let i = 0; i < 20; i++) await call(`/billing/invoices/${i}`, alice.key);
    const batch = telemetry.takeBatch()!;
    assert.equal(batch.accessEvents.length, 3);
    assert.equal(new Set(batch.accessEvents.map((e) => e.requestId)).size, 3);
    assert.equal(batch.requests[0]!.count, 20, 'the counts cover every request');
  });

  it('hears nothing once closed', async () => {
    const telemetry = collector();
    telemetry.close();
    await call('/billing/invoices/1', alice.key);
    assert.equal(telemetry.takeBatch(), undefined);
  });
});

describe('telemetry of a gateway instance whose shared rate-limit store is degraded', () => {
  it('sends a rate_limit_store_degraded event for its own instance only, which the control plane accepts', async () => {
    const hole = await startBlackHole();
    const server = ServerSchema.parse({
      rateLimitStore: {
        type: 'redis',
        url: hole.url,
        syncInterval: '20ms',
        commandTimeout: '100ms',
        connectTimeout: '200ms',
      },
    });
    const degraded = await createGatewayInstance({
      logger: pino({ level: 'silent' }),
      server,
      tokenExchange: SnapshotSchema.shape.tokenExchange.parse(TOKEN_EXCHANGE),
    });
    const healthy = await createGatewayInstance({
      logger: pino({ level: 'silent' }),
      server: ServerSchema.parse({}),
      tokenExchange: SnapshotSchema.shape.tokenExchange.parse(TOKEN_EXCHANGE),
    });
    const mine = createTelemetryCollector({ instanceId: 'i-degraded', server: degraded.server });
    const theirs = createTelemetryCollector({ instanceId: 'i-healthy', server: healthy.server });
    try {
      await eventually(
        () =>
          degraded.readiness().checks.rateLimitStore?.status === 'degraded' &&
          // The lease store (the default) may not get past the handshake: "no connection to Redis within 300ms".
          /no (answer|connection to Redis) within \d+ms/.test(degraded.readiness().checks.rateLimitStore?.detail ?? ''),
        5_000,
        'the readiness check says degraded, and why',
      );
      let batch = mine.takeBatch();
      // The first report may precede the collector (it repeats every 15 s): wait for either.
      if (batch === undefined) {
        await eventually(() => (batch = mine.takeBatch()) !== undefined, 20_000, 'a rate-limit store event');
      }
      const event = batch!.securityEvents[0]!;
      assert.equal(event.kind, 'rate_limit_store_degraded');
      assert.equal(event.reason, 'GH_ERR_RATE_LIMIT_STORE_UNAVAILABLE');
      assert.equal(TelemetryBatchSchema.safeParse(batch).success, true, 'the control plane accepts it');
      assert.equal(theirs.takeBatch(), undefined, "another instance's collector does not report it");
      assert.equal(healthy.readiness().checks.rateLimitStore, undefined, 'no check for the memory store');
    } finally {
      mine.close();
      theirs.close();
      await degraded.close({ drainMs: 0 });
      await healthy.close({ drainMs: 0 });
      await hole.close();
    }
  });
});
