/**
 * The analytics admin API over real telemetry in SQLite and PostgreSQL, through real sockets: series in buckets
 * (from the roll-ups and from the raw table, which must agree), grouped series, top clients, top refusals with
 * their codes, and the refusals of bad queries and narrow callers.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startAdminPlane, type AdminPlane } from '../../testing/admin-plane.ts';
import { probePostgres } from '../../testing/postgres.ts';
import { newId, nowIso } from '../ids.ts';
import type { TelemetryRecord } from '../store/store.ts';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- JSON of many shapes; tests assert on it
type Json = any;
const MIN = 60_000;
const pgUnreachable = await probePostgres();

for (const database of ['sqlite', 'postgres'] as const) {
  describe(`the analytics API (${database})`, { skip: database === 'postgres' && pgUnreachable }, () => {
    let cp: AdminPlane;
    let clientA = '';
    const get = async (path: string, token = cp.token) => {
      const res = await fetch(`${cp.base}/api/v1/workspaces/acme/analytics${path}`, {
        headers: { authorization: `Bearer ${token}` },
      });
      return { status: res.status, body: (await res.json()) as Json };
    };

    before(async () => {
      cp = await startAdminPlane({ database });
      const role = (await cp.store.getRole({ workspaceId: cp.workspace.id, name: 'admin' }))!;
      clientA = newId('cli');
      await cp.store.insertClient({
        id: clientA,
        workspaceId: cp.workspace.id,
        kind: 'standard',
        name: 'client-a',
        roleId: role.id,
        environments: ['PROD'],
        projects: ['payments'],
        status: 'active',
        operator: false,
        createdAt: nowIso(cp.now()),
        updatedAt: nowIso(cp.now()),
      });
      // The last hour before T0: client A makes 10 requests a minute (one 429, one 500 every 10 minutes), client
      // B 2 a minute (401s), unknown callers 1 a minute (404).
      const rows: TelemetryRecord[] = [];
      const row = (m: number, over: Partial<TelemetryRecord>): TelemetryRecord => ({
        workspaceId: cp.workspace.id,
        gatewayId: 'cloud',
        minute: nowIso(cp.now() - (60 - m) * MIN),
        collection: 'orders',
        endpoint: 'GET /orders',
        clientId: clientA,
        status: 200,
        count: 1,
        durationMsSum: 10,
        durationMsMax: 10,
        ...over,
      });
      for (let m = 0; m < 60; m++) {
        rows.push(row(m, { count: 8, durationMsSum: 8 * 20, durationMsMax: 30 }));
        rows.push(row(m, { status: 429, durationMsSum: 1, durationMsMax: 1 }));
        rows.push(
          row(m, {
            status: m % 10 === 0 ? 500 : 201,
            endpoint: 'POST /orders',
            durationMsSum: 400,
            durationMsMax: 400,
          }),
        );
        rows.push(row(m, { clientId: 'cli_b', status: 401, count: 2, durationMsSum: 2, durationMsMax: 1 }));
        rows.push(
          row(m, { clientId: '-', collection: '-', endpoint: '-', status: 404, durationMsSum: 1, durationMsMax: 1 }),
        );
      }
      // Sent in two batches, as two gateways' reports of the same minutes would be: the roll-ups add up.
      await cp.store.addTelemetry(rows.slice(0, 150));
      await cp.store.addTelemetry(rows.slice(150));
      await cp.store.insertSecurityEvents(
        Array.from({ length: 7 }, (_v, i) => ({
          id: `sev_${i}`,
          workspaceId: cp.workspace.id,
          gatewayId: 'cloud',
          at: nowIso(cp.now() - (i + 1) * MIN),
          kind: 'auth_failure',
          reason: 'GH_ERR_AUTH_INVALID_KEY',
          collection: 'orders',
          clientId: 'cli_b',
        })),
      );
    });
    after(() => cp?.close());

    it('answers the last hour in 5-minute buckets with counts, error classes and latency percentiles', async () => {
      const { status, body } = await get('/series?from=1h&bucket=5m');
      assert.equal(status, 200, JSON.stringify(body));
      assert.equal(body.from, nowIso(cp.now() - 60 * MIN));
      assert.equal(body.to, nowIso(cp.now()));
      const [series] = body.series;
      assert.equal(series.points.length, 12);
      assert.deepEqual(
        { ...series.totals, latencyMs: undefined },
        {
          requests: 60 * 13,
          errors: 60 * 4 + 6,
          status4xx: 60 * 4,
          status5xx: 6,
          rateLimited: 60,
          errorRate: Math.round(((60 * 4 + 6) / 780) * 10_000) / 10_000,
          latencyMs: undefined,
        },
      );
      const first = series.points[0];
      assert.equal(first.at, body.from);
      assert.equal(first.requests, 5 * 13);
      assert.equal(first.status5xx, 1);
      const latency = series.totals.latencyMs;
      assert.equal(latency.max, 400);
      // 480 of 780 requests took 20 ms, 60 took 400 ms, the rest 1 ms or less.
      assert.ok(latency.p50 > 10 && latency.p50 <= 25, `p50 ${latency.p50}`);
      assert.ok(latency.p95 > 250 && latency.p95 <= 400, `p95 ${latency.p95}`);
      assert.ok(latency.p99 >= latency.p95 && latency.p99 <= 400, `p99 ${latency.p99}`);
    });

    it('gives the same answers from the roll-ups as from the raw rows', async () => {
      // 5-minute buckets by client read telemetry_by_client; 1-minute buckets of one client read the raw table.
      const grouped = await get('/series?from=1h&bucket=5m&groupBy=client&top=2');
      assert.equal(grouped.status, 200, JSON.stringify(grouped.body));
      assert.deepEqual(
        grouped.body.series.map((s: Json) => [s.group, s.groupName, s.totals.requests]),
        [
          [clientA, 'client-a', 600],
          ['cli_b', undefined, 120],
        ],
      );
      const raw = await get(`/series?from=1h&bucket=1m&client=${clientA}`);
      assert.equal(raw.body.series[0].points.length, 60);
      assert.deepEqual(raw.body.series[0].totals, grouped.body.series[0].totals);
      const byEndpoint = await get('/series?from=1h&bucket=15m&groupBy=endpoint&top=3');
      assert.deepEqual(
        byEndpoint.body.series.map((s: Json) => [s.group, s.totals.requests]),
        [
          ['GET /orders', 9 * 60 + 120],
          ['-', 60],
          ['POST /orders', 60],
        ],
      );
    });

    it('lists the top clients and the top refusals with their codes', async () => {
      const top = await get('/top-clients?from=1h&limit=2');
      assert.equal(top.status, 200, JSON.stringify(top.body));
      assert.deepEqual(
        top.body.items.map((c: Json) => [c.clientId, c.clientName, c.requests, c.rateLimited]),
        [
          [clientA, 'client-a', 600, 60],
          ['cli_b', undefined, 120, 0],
        ],
      );
      const refusals = await get('/refusals?from=1h');
      assert.equal(refusals.status, 200, JSON.stringify(refusals.body));
      const codes = refusals.body.items.map((r: Json) => `${r.code} ${r.endpoint ?? r.clientId} ${r.count}`);
      assert.deepEqual(codes, [
        'GH_ERR_RATE_LIMITED GET /orders 60',
        'GH_HTTP_404 - 60',
        'GH_ERR_AUTH_INVALID_KEY cli_b 7',
        'GH_HTTP_500 POST /orders 6',
      ]);
    });

    it('refuses bad queries and callers not scoped to every environment and project', async () => {
      for (const [query, field] of [
        ['/series?bucket=2m', 'query.bucket'],
        ['/series?from=2d&bucket=1m', 'query.bucket'],
        ['/series?groupBy=status', 'query.groupBy'],
        ['/series?from=yesterday', 'query.from'],
        ['/top-clients?limit=1000', 'query.limit'],
      ] as const) {
        const res = await get(query);
        assert.equal(res.status, 400, query);
        assert.equal(res.body.errors[0].path, field, query);
      }
      const narrow = await cp.store.transaction(async (tx) => {
        const { createAdminClient } = await import('../workspaces.ts');
        return createAdminClient(tx, cp.workspace, { name: 'narrow' });
      });
      const client = (await cp.store.getClient(narrow.clientId))!;
      await cp.store.updateClient({ ...client, environments: ['PROD'] });
      const refused = await get('/series', narrow.token);
      assert.equal(refused.status, 403);
      assert.equal(refused.body.code, 'GH_ERR_ADMIN_OUT_OF_SCOPE');
    });
  });
}
