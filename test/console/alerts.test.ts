/**
 * The Alerts page in a real browser against a real control plane: create webhook destinations pointing at a
 * loopback receiver started here (the signing secret shown once), create, edit and delete a rule, press "Send test"
 * and see the receiver get a signed test alert and the page say so; a failing destination shows its error.
 */
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, before, describe, it } from 'node:test';
import type { Page } from 'playwright-core';
import { addConsoleUser, shoot, signIn, startConsole, type ConsoleEnv } from './browser.ts';

describe('web console: alerts', { timeout: 180_000 }, () => {
  let env: ConsoleEnv;
  let page: Page;
  let receiver: Server;
  let hook = '';
  const received: { path: string; headers: IncomingHttpHeaders; body: string }[] = [];
  let secret = '';

  before(async () => {
    receiver = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        received.push({ path: req.url ?? '', headers: req.headers, body });
        res.statusCode = req.url === '/broken' ? 500 : 204;
        res.end();
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
    hook = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
    env = await startConsole();
    await addConsoleUser(env.plane, 'alerts@example.com');
    ({ page } = await env.newPage());
    page.setDefaultTimeout(20_000);
    await signIn(page, env.url, 'alerts@example.com');
  });
  after(async () => {
    await env?.stop();
    await new Promise<void>((r) => receiver?.close(() => r()));
  });

  const newDestination = async (name: string, url: string): Promise<string> => {
    await page.getByRole('button', { name: 'New destination' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.getByLabel('Name').fill(name);
    await dialog.getByLabel('URL').fill(url);
    await dialog.getByRole('button', { name: 'Create destination' }).click();
    const shown = (await dialog.getByLabel('Signing secret').textContent()) ?? '';
    assert.match(shown, /^whsec_/);
    await dialog.getByRole('button', { name: 'Done' }).click();
    await page.getByRole('cell', { name, exact: true }).waitFor();
    return shown;
  };

  it('shows the empty states, then creates destinations with their secret shown once', async () => {
    await page.getByRole('link', { name: 'Alerts' }).click();
    await page.getByRole('heading', { name: 'Alerts', level: 1 }).waitFor();
    await page.getByText('No alerts fired').waitFor();
    await page.getByText('No alert rules').waitFor();
    await page.getByText('No webhook destinations').waitFor();
    secret = await newDestination('ops', `${hook}/hooks/ops`);
    await newDestination('broken', `${hook}/broken`);
    assert.equal(await page.getByText(secret).count(), 0, 'the secret is not shown again');
  });

  it('refuses an invalid URL and a duplicate name, saying why', async () => {
    await page.getByRole('button', { name: 'New destination' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.getByLabel('Name').fill('ops');
    await dialog.getByLabel('URL').fill('ftp://example.com/');
    await dialog.getByText('an http:// or https:// URL').waitFor();
    await dialog.getByLabel('URL').fill(`${hook}/other`);
    await dialog.getByRole('button', { name: 'Create destination' }).click();
    await dialog.getByText('an alert destination with this name already exists').waitFor();
    await dialog.getByRole('button', { name: 'Cancel' }).click();
  });

  it('creates, edits and deletes a rule', async () => {
    await page.getByRole('button', { name: 'New rule' }).click();
    let dialog = page.getByRole('dialog');
    await dialog.getByLabel('Name').fill('auth-spikes');
    await dialog.getByLabel('Alert').selectOption('auth_failure_spike');
    await dialog.getByLabel('Threshold (failures per minute)').fill('5');
    await dialog.getByRole('checkbox', { name: /^ops/ }).check();
    await dialog.getByRole('button', { name: 'Create rule' }).click();
    const row = page.getByRole('table', { name: 'Alert rules' }).getByRole('row', { name: /auth-spikes/ });
    await row.getByText('5 failures/min').waitFor();
    await row.getByText('ops', { exact: true }).waitFor();

    await page.getByRole('button', { name: 'Edit rule auth-spikes' }).click();
    dialog = page.getByRole('dialog');
    await dialog.getByLabel('Threshold (failures per minute)').fill('8');
    await dialog.getByRole('checkbox', { name: /^broken/ }).check();
    await dialog.getByRole('button', { name: 'Save rule' }).click();
    await row.getByText('8 failures/min').waitFor();
    await row.getByText('ops, broken').waitFor();

    await page.getByRole('button', { name: 'New rule' }).click();
    dialog = page.getByRole('dialog');
    await dialog.getByLabel('Name').fill('temporary');
    await dialog.getByLabel('Alert').selectOption('connectivity_lost');
    await dialog.getByRole('button', { name: 'Create rule' }).click();
    await page.getByRole('cell', { name: 'temporary', exact: true }).waitFor();
    await page.getByRole('button', { name: 'Delete rule temporary' }).click();
    dialog = page.getByRole('dialog');
    await dialog.getByText('will still be raised and listed').waitFor();
    await dialog.getByRole('button', { name: 'Delete rule' }).click();
    await page.getByRole('cell', { name: 'temporary', exact: true }).waitFor({ state: 'detached' });
  });

  it('sends a signed test alert that the receiver gets, and shows a failing destination’s error', async () => {
    const before = received.length;
    await page.getByRole('button', { name: 'Send test to ops' }).click();
    await page
      .getByTestId('send-test-ops')
      .getByText(/Delivered: HTTP 204/)
      .waitFor();
    const got = received.slice(before).find((r) => r.path === '/hooks/ops');
    assert.ok(got, 'the receiver got the test alert');
    const mac = createHmac('sha256', secret)
      .update(`${String(got.headers['x-gatehouse-timestamp'])}.${got.body}`)
      .digest('hex');
    assert.equal(got.headers['x-gatehouse-signature'], `sha256=${mac}`);
    assert.equal((JSON.parse(got.body) as { kind: string }).kind, 'test');

    await page.getByRole('button', { name: 'Send test to broken' }).click();
    await page
      .getByTestId('send-test-broken')
      .getByText(/Failed: the receiver answered HTTP 500/)
      .waitFor();
    assert.deepEqual(env.problems, []);
  });

  it('pages the history of fired alerts and shows each delivery’s outcome', async () => {
    const workspace = await env.plane.api().get('/workspaces/default');
    assert.equal(workspace.status, 200);
    const wsId = workspace.body.id as string;
    // Alerts as the control plane raised them before: written into its store (SQLite, waiting on its lock).
    const db = new DatabaseSync(join(env.plane.dataDir, 'gatehouse.db'), { timeout: 10_000 });
    try {
      const destination = (
        db.prepare(`SELECT id FROM alert_destinations WHERE name = 'broken'`).get() as { id: string }
      ).id;
      const t0 = Date.now() - 3600_000;
      const insert = db.prepare(
        `INSERT INTO alerts (id, workspace_id, gateway_id, kind, key, message, details, raised_at, resolved_at,
           delivered_at, delivery_attempts) VALUES (?, ?, 'cloud', 'auth_failure_spike', ?, ?, NULL, ?, ?, NULL, 0)`,
      );
      for (let i = 0; i < 60; i++) {
        const at = new Date(t0 + i * 1000).toISOString();
        insert.run(`alt_hist_${String(i).padStart(2, '0')}`, wsId, `k${i}`, `spike number ${i}`, at, at);
      }
      db.prepare(
        `INSERT INTO alert_deliveries (id, workspace_id, alert_id, destination_id, state, payload, attempts,
           next_attempt_at, delivered_at, last_status, last_error, created_at)
         VALUES ('dlv_hist', ?, 'alt_hist_59', ?, 'raised', '{}', 3, ?, NULL, 500, 'the receiver answered HTTP 500', ?)`,
      ).run(wsId, destination, new Date(t0 + 3600_000 * 24).toISOString(), new Date(t0).toISOString());
    } finally {
      db.close();
    }
    await page.getByRole('button', { name: 'Refresh' }).click();
    const history = page.getByRole('table', { name: 'Alerts' });
    await history.getByText('spike number 59', { exact: true }).waitFor();
    await page.getByText('50 in all').waitFor();
    const newest = history.getByRole('row', { name: /spike number 59/ });
    await newest.getByText(/broken \(raised\)/).waitFor();
    await newest.getByText('HTTP 500 ×3').waitFor();
    await shoot(page, 'alerts');
    await page.getByRole('button', { name: 'Load 50 older alerts' }).click();
    await page.getByText('60 in all').waitFor();
    assert.equal(await page.getByRole('button', { name: 'Load 50 older alerts' }).count(), 0, 'no more pages');
    assert.deepEqual(env.problems, []);
  });
});
