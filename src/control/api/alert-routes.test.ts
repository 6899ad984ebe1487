/** Alert rules and destinations through the admin API, send-test and rule routing to a real loopback receiver. */
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { startAdminPlane, type AdminPlane } from '../../testing/admin-plane.ts';
import { startAlerting } from '../alerts/alerting.ts';
import { generateKey } from '../../shared/api-key.ts';
import { newId, nowIso } from '../ids.ts';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- answers are read loosely and checked by value
type Json = Record<string, any>;

interface Received {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
}

for (const database of ['sqlite', 'postgres'] as const) {
  describe(`alert rules and destinations (${database})`, () => {
    let plane: AdminPlane;
    let receiver: Server;
    let hook = '';
    const received: Received[] = [];
    const waiters: (() => void)[] = [];

    const call = async (method: string, path: string, body?: unknown, token = plane.token) => {
      const res = await fetch(`${plane.base}/api/v1/workspaces/acme${path}`, {
        method,
        headers: {
          authorization: `Bearer ${token}`,
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
      const text = await res.text();
      return { status: res.status, body: (text ? JSON.parse(text) : undefined) as Json };
    };
    const verify = (r: Received, secret: string) => {
      const mac = createHmac('sha256', secret)
        .update(`${String(r.headers['x-gatehouse-timestamp'])}.${r.body}`)
        .digest('hex');
      assert.equal(r.headers['x-gatehouse-signature'], `sha256=${mac}`);
    };
    const nextDelivery = () => new Promise<void>((resolve) => waiters.push(resolve));

    before(async () => {
      plane = await startAdminPlane({ database });
      receiver = createServer((req, res) => {
        let body = '';
        req.on('data', (c: Buffer) => (body += c.toString()));
        req.on('end', () => {
          received.push({ path: req.url ?? '', headers: req.headers, body });
          res.statusCode = req.url === '/broken' ? 500 : 204;
          res.end();
          waiters.shift()?.();
        });
      });
      await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
      hook = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
    });
    after(async () => {
      await plane.close();
      await new Promise<void>((r) => receiver.close(() => r()));
    });

    it('creates a destination with a secret shown once, and send-test delivers a signed test alert', async () => {
      const created = await call('POST', '/alert-destinations', { name: 'ops', url: `${hook}/ok` });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      assert.match(created.body.secret, /^whsec_/);
      const listed = await call('GET', '/alert-destinations');
      assert.equal(listed.body.items.length, 1);
      assert.equal(JSON.stringify(listed.body).includes(created.body.secret), false, 'the secret is not listed');

      const test = await call('POST', '/alert-destinations/ops/send-test');
      assert.equal(test.status, 200);
      assert.equal(test.body.ok, true);
      assert.equal(test.body.status, 204);
      const got = received.at(-1)!;
      assert.equal(got.path, '/ok');
      assert.equal(got.headers['x-gatehouse-delivery'], test.body.deliveryId);
      verify(got, created.body.secret);
      assert.equal(JSON.parse(got.body).kind, 'test');
    });

    it('reports a failing destination: the status, or the network error', async () => {
      await call('POST', '/alert-destinations', { name: 'broken', url: `${hook}/broken` });
      const refused = await call('POST', '/alert-destinations/broken/send-test');
      assert.equal(refused.body.ok, false);
      assert.equal(refused.body.status, 500);
      assert.match(refused.body.error, /HTTP 500/);

      const closed = createServer();
      await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
      const port = (closed.address() as AddressInfo).port;
      await new Promise<void>((r) => closed.close(() => r()));
      await call('POST', '/alert-destinations', { name: 'gone', url: `http://127.0.0.1:${port}/x` });
      const unreachable = await call('POST', '/alert-destinations/gone/send-test');
      assert.equal(unreachable.body.ok, false);
      assert.equal(unreachable.body.status, undefined);
      assert.match(unreachable.body.error, /ECONNREFUSED/);
    });

    it('refuses bad destinations and rules, saying where', async () => {
      const dup = await call('POST', '/alert-destinations', { name: 'ops', url: `${hook}/ok` });
      assert.equal(dup.status, 409);
      assert.match(dup.body.detail, /already exists/);
      const ftp = await call('POST', '/alert-destinations', { name: 'ftp', url: 'ftp://example.com/' });
      assert.equal(ftp.status, 400);
      assert.match(ftp.body.detail, /body\.url/);
      const creds = await call('POST', '/alert-destinations', { name: 'cred', url: 'https://u:p@example.com/' });
      assert.equal(creds.status, 400);
      const unknown = await call('POST', '/alert-rules', {
        name: 'r',
        kind: 'connectivity_lost',
        destinations: ['nope'],
      });
      assert.equal(unknown.status, 400);
      assert.match(unknown.body.detail, /body\.destinations\[0\].*unknown alert destination "nope"/);
      const threshold = await call('POST', '/alert-rules', { name: 'r', kind: 'version_mismatch', threshold: 5 });
      assert.equal(threshold.status, 400);
      assert.match(threshold.body.detail, /body\.threshold/);
      const gateway = await call('POST', '/alert-rules', { name: 'r', kind: 'connectivity_lost', gateway: 'nope' });
      assert.equal(gateway.status, 400);
      assert.match(gateway.body.detail, /body\.gateway/);
    });

    it('creates, edits and deletes rules; deleting a destination takes it off its rules', async () => {
      const rule = await call('POST', '/alert-rules', {
        name: 'auth-spikes',
        kind: 'auth_failure_spike',
        gateway: 'cloud',
        threshold: 5,
        destinations: ['ops', 'broken'],
      });
      assert.equal(rule.status, 201, JSON.stringify(rule.body));
      assert.deepEqual(
        rule.body.destinations.map((d: { name: string }) => d.name),
        ['ops', 'broken'],
      );
      const edited = await call('PUT', '/alert-rules/auth-spikes', {
        name: 'auth-spikes',
        kind: 'auth_failure_spike',
        threshold: 3,
        destinations: ['ops', 'broken', 'gone'],
      });
      assert.equal(edited.status, 200);
      assert.equal(edited.body.threshold, 3);
      assert.equal(edited.body.gateway, undefined);
      assert.equal((await call('DELETE', '/alert-destinations/gone')).status, 204);
      const after = await call('GET', '/alert-rules/auth-spikes');
      assert.deepEqual(
        after.body.destinations.map((d: { name: string }) => d.name),
        ['ops', 'broken'],
      );
      const tmp = await call('POST', '/alert-rules', { name: 'tmp', kind: 'connectivity_lost' });
      assert.equal(tmp.status, 201);
      assert.equal((await call('DELETE', '/alert-rules/tmp')).status, 204);
      assert.equal((await call('GET', '/alert-rules/tmp')).status, 404);
    });

    it('routes a raised alert to the rule destinations, signed, and lists the deliveries with the alert', async () => {
      const ops = (await plane.store.getAlertDestination(plane.workspace.id, { name: 'ops' }))!;
      const alerting = startAlerting({
        store: plane.store,
        logger: pino({ level: 'silent' }),
        now: () => plane.now(),
        softwareVersion: '0.0.0-test',
        intervalMs: 0,
        webhookRetryBaseMs: 60_000,
      });
      try {
        const at = nowIso(plane.now() - 1000);
        await plane.store.insertSecurityEvents(
          Array.from({ length: 3 }, (_v, i) => ({
            id: `sev-${database}-${i}`,
            workspaceId: plane.workspace.id,
            gatewayId: 'cloud',
            at,
            kind: 'auth_failure',
            reason: 'GH_ERR_AUTH_INVALID_KEY',
          })),
        );
        const delivered = nextDelivery();
        await alerting.evaluate(plane.workspace.id); // threshold 3 from the rule (the default is 20)
        await alerting.deliver();
        await delivered;
        const got = received.find((r) => r.path === '/ok' && JSON.parse(r.body).kind === 'auth_failure_spike')!;
        verify(got, ops.secret);
        assert.equal(JSON.parse(got.body).state, 'raised');

        const history = await call('GET', '/alerts?limit=1');
        assert.equal(history.body.items.length, 1);
        const deliveries = history.body.items[0].deliveries as Record<string, unknown>[];
        const byName = Object.fromEntries(deliveries.map((d) => [d.destinationName, d]));
        assert.ok(byName.ops?.deliveredAt);
        assert.equal(byName.broken?.lastStatus, 500);
        assert.match(String(byName.broken?.lastError), /HTTP 500/);
      } finally {
        await alerting.close();
      }
    });

    it("shows a rule about an edge gateway only to callers of that gateway's environment", async () => {
      await plane.store.insertGateway({
        id: `gw_dev_${database}`,
        workspaceId: plane.workspace.id,
        environment: 'DEV',
        name: 'dev-edge',
        installMethod: 'docker',
        createdAt: nowIso(plane.now()),
        updatedAt: nowIso(plane.now()),
      });
      const rule = await call('POST', '/alert-rules', {
        name: 'dev-offline',
        kind: 'connectivity_lost',
        gateway: 'dev-edge',
      });
      assert.equal(rule.status, 201, JSON.stringify(rule.body));
      assert.equal(rule.body.gatewayName, 'dev-edge');
      // A PROD-only caller holding every alerts permission.
      const roleId = newId('rol');
      await plane.store.insertRole({
        id: roleId,
        workspaceId: plane.workspace.id,
        name: `alerts-${database}`,
        permissions: ['admin:alerts:*'],
        endpoints: [],
        createdAt: nowIso(plane.now()),
        updatedAt: nowIso(plane.now()),
      });
      const clientId = newId('cli');
      await plane.store.insertClient({
        id: clientId,
        workspaceId: plane.workspace.id,
        kind: 'standard',
        name: clientId,
        roleId,
        environments: ['PROD'],
        projects: ['*'],
        status: 'active',
        operator: false,
        createdAt: nowIso(plane.now()),
        updatedAt: nowIso(plane.now()),
      });
      const key = generateKey();
      await plane.store.insertKey({ id: key.id, clientId, hash: key.hash, createdAt: nowIso(plane.now()) });
      const listed = await call('GET', '/alert-rules', undefined, key.key);
      assert.equal(listed.status, 200);
      const names = listed.body.items.map((r: { name: string }) => r.name);
      assert.ok(names.includes('auth-spikes') && !names.includes('dev-offline'), names.join(', '));
      assert.equal((await call('GET', '/alert-rules/dev-offline', undefined, key.key)).status, 404);
      assert.equal((await call('DELETE', '/alert-rules/dev-offline', undefined, key.key)).status, 404);
      const refused = await call(
        'POST',
        '/alert-rules',
        { name: 'sneaky', kind: 'connectivity_lost', gateway: 'dev-edge' },
        key.key,
      );
      assert.equal(refused.status, 400);
      assert.equal((await call('DELETE', '/alert-rules/dev-offline')).status, 204);
    });

    it('pages the alert history with a cursor', async () => {
      for (let i = 0; i < 3; i++)
        await plane.store.insertAlert({
          id: `alt_page_${i}`,
          workspaceId: plane.workspace.id,
          kind: 'connectivity_lost',
          key: `connectivity_lost:gw_${i}`,
          message: `m${i}`,
          raisedAt: nowIso(plane.now() - (i + 1) * 60_000),
          resolvedAt: nowIso(plane.now()),
          deliveryAttempts: 0,
        });
      const seen: string[] = [];
      let cursor: string | undefined;
      do {
        const page = await call('GET', `/alerts?limit=2${cursor ? `&before=${cursor}` : ''}`);
        assert.equal(page.status, 200);
        seen.push(...page.body.items.map((a: { id: string }) => a.id));
        cursor = page.body.next;
      } while (cursor);
      assert.equal(seen.length, 4);
      assert.equal(new Set(seen).size, 4);
      assert.equal((await call('GET', '/alerts?before=garbage')).status, 400);
    });
  });
}
