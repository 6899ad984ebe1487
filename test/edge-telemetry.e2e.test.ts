/**
 * Telemetry and alerts end to end: a real control plane with an alert webhook pointing at a real local receiver,
 * a bootstrapped edge gateway process, traffic through it, then a burst of bad keys. The request counts arrive in
 * the admin API, the authentication failures arrive as security events (with their reason, never the key), an
 * `auth_failure_spike` alert is raised and delivered to the webhook.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type AdminApi, type ControlProcess, eventually, startControlPlane } from './control-helpers.ts';
import { createAndBootstrap, startEdge, type EdgeProcess } from './edge-helpers.ts';
import { generateKey } from '../src/shared/api-key.ts';
import { startUpstream, type Upstream } from './helpers.ts';

const WS = '/workspaces/default';
/** Well-formed (the checksum holds) but never issued: refused after the lookup, as GH_ERR_AUTH_INVALID_KEY. */
const BAD_KEY = generateKey().key;

describe('edge telemetry and alerts', () => {
  let cp: ControlProcess;
  let admin: AdminApi;
  let edge: EdgeProcess;
  let upstream: Upstream;
  let webhook: Server;
  let work: string;
  const delivered: Record<string, unknown>[] = [];

  before(async () => {
    webhook = createServer((req, res) => {
      let body = '';
      req.setEncoding('utf8').on('data', (c: string) => (body += c));
      req.on('end', () => {
        delivered.push(JSON.parse(body) as Record<string, unknown>);
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => webhook.listen(0, '127.0.0.1', r));
    const hook = `http://127.0.0.1:${(webhook.address() as AddressInfo).port}/alerts`;
    upstream = await startUpstream();
    work = await mkdtemp(join(tmpdir(), 'gatehouse-edge-telemetry-'));
    cp = await startControlPlane({ extraArgs: ['--alert-webhook', hook, '--alert-auth-failures', '10'] });
    admin = cp.api();
    await createAndBootstrap(admin, 'edge-1', join(work, 'gw'), 'DEV');
    const collection = {
      name: 'orders',
      basePath: '/orders',
      upstream: upstream.url,
      project: 'default',
      target: { type: 'edge', gateway: 'edge-1' },
      endpoints: [{ method: 'GET', path: '/list', permission: 'orders:read' }],
    };
    assert.equal((await admin.post(`${WS}/environments/DEV/collections`, collection)).status, 201);
    assert.equal((await admin.post(`${WS}/environments/DEV/collections/orders/publish`)).status, 201);
    edge = await startEdge(join(work, 'gw'));
  });
  after(async () => {
    await edge?.stop();
    await cp?.stop();
    await upstream?.close();
    await new Promise<void>((r) => webhook.close(() => r()));
    await rm(work, { recursive: true, force: true });
  });

  it('streams request counts and authentication failures, and raises an alert on a burst of bad keys', async () => {
    await admin.post(`${WS}/roles`, { name: 'orders', permissions: ['orders:read'] });
    const { body } = await admin.post(`${WS}/clients`, {
      name: 'shop',
      role: 'orders',
      environments: ['DEV'],
      projects: ['default'],
    });
    const token = body.token as string;
    const clientId = body.client.id as string;
    await eventually(
      async () =>
        (await fetch(`${edge.url}/orders/list`, { headers: { authorization: `Bearer ${token}` } })).status === 200,
      10_000,
      'the edge serves the client',
    );
    for (let i = 0; i < 4; i++)
      assert.equal(
        (await fetch(`${edge.url}/orders/list`, { headers: { authorization: `Bearer ${token}` } })).status,
        200,
      );
    for (let i = 0; i < 15; i++)
      assert.equal(
        (await fetch(`${edge.url}/orders/list`, { headers: { authorization: `Bearer ${BAD_KEY}` } })).status,
        401,
      );

    const since = new Date(Date.now() - 5 * 60_000).toISOString();
    // Request counts per collection, endpoint, client and status.
    await eventually(
      async () => {
        const t = await admin.get(`${WS}/telemetry?since=${encodeURIComponent(since)}`);
        const rows = (t.body?.items ?? []) as { collection: string; clientId: string; status: number; count: number }[];
        const ok = rows.filter((r) => r.clientId === clientId && r.status === 200).reduce((n, r) => n + r.count, 0);
        const refused = rows.filter((r) => r.status === 401).reduce((n, r) => n + r.count, 0);
        return ok >= 5 && refused >= 15;
      },
      20_000,
      'request counts in the admin API',
    );
    // Security events with the reason, never the key.
    const events = await admin.get(`${WS}/security-events?since=${encodeURIComponent(since)}`);
    assert.equal(events.status, 200, JSON.stringify(events.body));
    const failures = (events.body.items as { reason: string }[]).filter((e) => e.reason === 'GH_ERR_AUTH_INVALID_KEY');
    assert.ok(
      failures.length >= 15,
      `${failures.length} security events: ${JSON.stringify(events.body).slice(0, 600)}`,
    );
    assert.equal(JSON.stringify(events.body).includes(BAD_KEY), false, 'a key reached the control plane');

    // The alert is raised and delivered to the webhook.
    await eventually(
      async () =>
        ((await admin.get(`${WS}/alerts?open=true`)).body?.items ?? []).some(
          (a: { kind: string }) => a.kind === 'auth_failure_spike',
        ),
      20_000,
      'alert raised',
    );
    await eventually(
      async () => delivered.some((d) => d.kind === 'auth_failure_spike'),
      20_000,
      'alert delivered to the webhook',
    );
    assert.equal(JSON.stringify(delivered).includes(BAD_KEY), false);
    assert.equal(
      cp.output.some((l) => l.includes(BAD_KEY)) || edge.output.some((l) => l.includes(BAD_KEY)),
      false,
      'a key reached a log',
    );
  });
});
