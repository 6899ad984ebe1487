/**
 * The console's refusal paths in a real browser against a real control plane: an invalid CIDR caught inline, a
 * duplicate name refused by the server, an expired registration token, a user whose role lacks the permission, an
 * expired session; a keyboard-only pass through the create-client form; the pages at a phone's 390 px width; and the
 * OpenAPI import (a broken document's problems with their lines, the dry-run diff, apply); admin API tokens in
 * Settings (created and shown once, revoked).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, before, describe, it } from 'node:test';
import type { Page } from 'playwright-core';
import { eventually } from '../../src/testing/eventually.ts';
import { addConsoleUser, shoot, signIn, startConsole, type ConsoleEnv } from './browser.ts';

describe('web console: refusals, keyboard, phone, collection history', { timeout: 300_000 }, () => {
  let env: ConsoleEnv;
  let page: Page;

  before(async () => {
    env = await startConsole();
    await addConsoleUser(env.plane, 'admin@example.com');
    const api = env.plane.api();
    assert.equal((await api.post('/workspaces/default/roles', { name: 'reader' })).status, 201);
    const role = await api.post('/workspaces/default/user-roles', { name: 'client-manager', privileges: ['clients'] });
    assert.equal(role.status, 201, JSON.stringify(role.body));
    await addConsoleUser(env.plane, 'limited@example.com', 'client-manager');
    ({ page } = await env.newPage());
    page.setDefaultTimeout(20_000);
    await page.clock.install();
    await signIn(page, env.url, 'admin@example.com');
  });
  after(async () => {
    await env?.stop();
  });

  it('validates IP ranges inline as CIDR v4/v6 and sends nothing while one is invalid', async () => {
    await page.getByRole('link', { name: 'API clients' }).click();
    await page.getByRole('button', { name: 'Create client' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.getByLabel('Name').fill('bad-ranges');
    const ips = dialog.getByLabel('Allowed IP ranges');
    let posted = false;
    page.on('request', (r) => {
      if (r.method() === 'POST' && r.url().endsWith('/clients')) posted = true;
    });
    await ips.fill('10.0.0.0/33');
    await ips.blur();
    await dialog.getByText('an IPv4 prefix is 0–32').waitFor();
    assert.equal(await ips.getAttribute('aria-invalid'), 'true');
    await ips.fill('2001:db8::/32, 2001:db8::zz/64');
    await dialog.getByText('is not a valid IPv6 address').waitFor();
    await ips.fill('office');
    await dialog.getByText('is not a CIDR range').waitFor();
    await shoot(page, '20-refusal-invalid-cidr');
    await dialog.getByRole('button', { name: 'Create client' }).click();
    assert.equal(posted, false, 'an invalid range is never sent');
    await ips.fill('192.0.2.0/24, 2001:db8::/32');
    assert.equal(await dialog.locator('.field-error').count(), 0);
    await dialog.getByRole('button', { name: 'Cancel' }).click();
  });

  it('shows the server refusing a duplicate name, and keeps the form', async () => {
    await page.getByRole('link', { name: 'Client roles' }).click();
    await page.getByRole('button', { name: 'Create role' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.getByLabel('Name').fill('reader');
    await dialog.getByRole('button', { name: 'Create role' }).click();
    await dialog.getByRole('alert').filter({ hasText: 'already exists' }).waitFor();
    assert.equal(await dialog.getByLabel('Name').inputValue(), 'reader');
    await shoot(page, '21-refusal-duplicate-name');
    await dialog.getByRole('button', { name: 'Cancel' }).click();
  });

  it('marks an expired registration token and regenerates a fresh one', async () => {
    await page.getByRole('link', { name: 'Gateways' }).click();
    await page.getByRole('button', { name: 'Set up gateway' }).click();
    await page.getByLabel('Name').fill('edge-prod');
    await page.getByLabel('Environment').selectOption('PROD');
    await page.getByRole('button', { name: 'Create and show install command' }).click();
    const countdown = page.getByTestId('countdown');
    assert.match((await countdown.textContent()) ?? '', /^[45]:[0-5]\d$/);
    await page.clock.fastForward('05:01');
    await page.getByText('This registration token expired').waitFor();
    assert.equal(await countdown.textContent(), 'expired');
    await shoot(page, '22-refusal-expired-registration-token');
    const old = await page.getByTestId('registration-token').textContent();
    await page.getByRole('button', { name: 'Regenerate' }).click();
    await eventually(async () => (await page.getByTestId('registration-token').textContent()) !== old, 10_000);
    // Measured against the control plane's clock (the Date header), so the page's clock being ahead does not matter.
    await eventually(async () => /^[45]:[0-5]\d$/.test((await countdown.textContent()) ?? ''), 5000);
    assert.equal(await page.getByText('This registration token expired').count(), 0);
    await page.getByRole('button', { name: 'Done' }).click();
  });

  it('goes through the create-client form with the keyboard only', async () => {
    await page.getByRole('link', { name: 'API clients' }).click();
    await page.getByRole('heading', { name: 'API clients' }).waitFor();
    const focused = () =>
      page.evaluate(
        '(() => { const e = document.activeElement; return e ? (e.getAttribute("aria-label") || e.labels?.[0]?.textContent || e.textContent || "").trim() : ""; })()',
      ) as Promise<string>;
    const tabTo = async (name: string | RegExp, limit = 40) => {
      for (let i = 0; i < limit; i++) {
        const now = await focused();
        if (typeof name === 'string' ? now === name : name.test(now)) return;
        await page.keyboard.press('Tab');
      }
      assert.fail(`Tab never reached "${name}" (last: "${await focused()}")`);
    };
    await page.locator('body').click({ position: { x: 600, y: 700 } });
    await tabTo('Create client');
    const outline = await page.evaluate('getComputedStyle(document.activeElement).outlineStyle');
    assert.notEqual(outline, 'none', 'the focused control shows a visible focus ring');
    await page.keyboard.press('Enter');
    await tabTo('Name');
    await page.keyboard.type('keyboard-app');
    await page.keyboard.press('Tab');
    assert.equal(await focused(), 'Role');
    await page.keyboard.press('Tab');
    assert.equal(await focused(), 'DEV');
    await page.keyboard.press('Tab');
    assert.equal(await focused(), 'TEST');
    await page.keyboard.press('Space');
    await tabTo('Allowed IP ranges');
    await page.keyboard.type('10.1.0.0/16');
    await tabTo('Org id');
    await page.keyboard.type('acme');
    await shoot(page, '23-keyboard-create-client');
    await tabTo('Create client');
    await page.keyboard.press('Enter');
    await page.getByTestId('client-token').waitFor();
    await tabTo('Copy token');
    await page.keyboard.press('Enter');
    await page.getByText('Copied', { exact: true }).waitFor();
    await tabTo('I have copied it');
    await page.keyboard.press('Enter');
    const clients = (await env.plane.api().get('/workspaces/default/clients')).body.items as {
      name: string;
      environments: string[];
      allowedIps?: string[];
      orgId?: string;
    }[];
    const created = clients.find((c) => c.name === 'keyboard-app');
    assert.deepEqual(created?.environments.sort(), ['DEV', 'TEST']);
    assert.deepEqual(created?.allowedIps, ['10.1.0.0/16']);
    assert.equal(created?.orgId, 'acme');
  });

  it('fits a 390 px wide phone', async () => {
    const { page: phone } = await env.newPage({ width: 390, height: 844 });
    await signIn(phone, env.url, 'admin@example.com');
    for (const [path, name] of [
      ['gateways', '24-phone-gateways'],
      ['clients', '25-phone-clients'],
      ['analytics', '26-phone-analytics'],
    ] as const) {
      await phone.goto(`${env.url}${path}`);
      await phone.locator('main h1').waitFor();
      await phone.locator('main [role=status]').first().waitFor({ state: 'detached' });
      const width = (await phone.evaluate('document.documentElement.scrollWidth')) as number;
      assert.ok(width <= 390, `${path} is ${width} px wide on a 390 px screen`);
      await shoot(phone, name);
    }
    await phone.getByRole('button', { name: 'Menu' }).click();
    await phone.getByRole('link', { name: 'Collections' }).click();
    await phone.getByRole('heading', { name: 'Collections' }).waitFor();
  });

  it('fits a 1280 px window: no Menu toggle, no row or header button spilling or wrapping', async () => {
    const { page: desk } = await env.newPage({ width: 1280, height: 800 });
    await signIn(desk, env.url, 'admin@example.com');
    assert.equal(await desk.getByRole('button', { name: 'Menu' }).isVisible(), false);
    await desk.goto(`${env.url}clients`);
    const regenerate = desk.getByRole('button', { name: /^Regenerate token of / }).first();
    await regenerate.waitFor();
    const card = await desk.locator('main .table-wrap').boundingBox();
    const button = await regenerate.boundingBox();
    assert.ok(card && button && button.x + button.width <= card.x + card.width, 'Regenerate inside the table card');
    await shoot(desk, '36-desktop-clients');
    await desk.goto(`${env.url}collections`);
    const importButton = desk.getByRole('button', { name: 'Import OpenAPI' });
    const create = desk.getByRole('button', { name: 'Create collection' });
    await create.waitFor();
    assert.equal((await importButton.boundingBox())?.y, (await create.boundingBox())?.y, 'header buttons on one line');
    // The import dialog does not pre-fill an existing collection (its endpoints would be replaced).
    await importButton.click();
    const target = desk.getByRole('dialog').getByLabel('Collection');
    assert.equal(await target.inputValue(), '');
    await target.fill('reader');
    await desk.getByRole('dialog').getByRole('button', { name: 'Continue' }).waitFor();
    await desk.keyboard.press('Escape');
    await desk.goto(`${env.url}analytics`);
    const refresh = desk.getByRole('button', { name: /^Refresh/ });
    const range = desk.getByLabel('Time range');
    await refresh.waitFor();
    const [r, t] = [await refresh.boundingBox(), await range.boundingBox()];
    assert.ok(r && t && Math.abs(r.y + r.height / 2 - (t.y + t.height / 2)) < 8, 'Refresh on the line of the filters');
    await shoot(desk, '37-desktop-analytics');
  });

  it('shows a user only what their role permits, and the server refuses the rest', async () => {
    const { page: limited } = await env.newPage();
    await signIn(limited, env.url, 'limited@example.com');
    const nav = limited.getByRole('navigation', { name: 'Console' });
    await nav.getByRole('link', { name: 'API clients' }).waitFor();
    assert.equal(await nav.getByRole('link', { name: 'Gateways' }).count(), 0);
    assert.equal(await nav.getByRole('link', { name: 'Collections' }).count(), 0);
    await limited.goto(`${env.url}gateways`);
    await limited.getByRole('alert').filter({ hasText: 'admin:gateways:read' }).waitFor();
    await shoot(limited, '27-refusal-no-permission');
  });

  it('refuses to delete a role that clients use, naming them', async () => {
    const api = env.plane.api();
    const client = await api.post('/workspaces/default/clients', {
      name: 'reporting-job',
      role: 'reader',
      environments: ['DEV'],
      projects: ['default'],
    });
    assert.equal(client.status, 201, JSON.stringify(client.body));
    await page.getByRole('link', { name: 'Client roles' }).click();
    await page.getByRole('button', { name: 'Delete reader', exact: true }).click();
    const dialog = page.getByRole('dialog');
    await dialog.getByText('It cannot be deleted while API clients use it: reporting-job').waitFor();
    await shoot(page, '29-refusal-role-in-use');
    await dialog.getByRole('button', { name: 'Close' }).last().click();
    assert.equal((await api.get('/workspaces/default/roles/reader')).status, 200);
    // The control plane refuses too (409, naming the clients), also when a client took the role after the page
    // loaded: the confirmation shows that refusal.
    const refused = await api.delete('/workspaces/default/roles/reader');
    assert.equal(refused.status, 409);
    assert.equal(refused.body.code, 'GH_ERR_ADMIN_ROLE_IN_USE');
    assert.deepEqual(
      (refused.body.clients as { name: string }[]).map((c) => c.name),
      ['reporting-job'],
    );
    assert.equal((await api.post('/workspaces/default/roles', { name: 'auditor' })).status, 201);
    await page.getByRole('link', { name: 'API clients' }).click();
    await page.getByRole('link', { name: 'Client roles' }).click();
    await page
      .getByRole('row', { name: /auditor/ })
      .getByText('no clients')
      .waitFor();
    const late = await api.post('/workspaces/default/clients', {
      name: 'late-job',
      role: 'auditor',
      environments: ['DEV'],
      projects: ['default'],
    });
    assert.equal(late.status, 201, JSON.stringify(late.body));
    await page.getByRole('button', { name: 'Delete auditor', exact: true }).click();
    await dialog.getByRole('button', { name: 'Delete role' }).click();
    await dialog
      .getByRole('alert')
      .filter({ hasText: 'role "auditor" is held by 1 API client(s): late-job' })
      .waitFor();
    await shoot(page, '33-refusal-role-in-use-server');
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    await page
      .getByRole('row', { name: /auditor/ })
      .getByText('late-job')
      .waitFor();
    assert.equal((await api.get('/workspaces/default/roles/auditor')).status, 200);
    // Once no client holds it, the console deletes it (a DELETE made with the session cookie).
    assert.equal((await api.delete(`/workspaces/default/clients/${late.body.client.id as string}`)).status, 204);
    await page.getByRole('link', { name: 'API clients' }).click();
    await page.getByRole('link', { name: 'Client roles' }).click();
    await page
      .getByRole('row', { name: /auditor/ })
      .getByText('no clients')
      .waitFor();
    await page.getByRole('button', { name: 'Delete auditor', exact: true }).click();
    await dialog.getByRole('button', { name: 'Delete role' }).click();
    await page.getByRole('row', { name: /auditor/ }).waitFor({ state: 'detached' });
    assert.equal((await api.get('/workspaces/default/roles/auditor')).status, 404);
  });

  it('edits a collection, publishes, diffs two versions and rolls back', async () => {
    const api = env.plane.api();
    const created = await api.post('/workspaces/default/environments/DEV/collections', {
      name: 'orders',
      basePath: '/orders',
      upstream: { url: 'http://127.0.0.1:9' },
      project: 'default',
      endpoints: [{ method: 'GET', path: '/{id}', permission: 'orders:read' }],
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const published = await api.post('/workspaces/default/environments/DEV/collections/orders/publish', {});
    assert.ok(published.status < 300, JSON.stringify(published.body));
    await page.goto(`${env.url}collections/DEV/orders`);
    await page.getByRole('heading', { name: 'orders' }).waitFor();
    await page.getByRole('button', { name: 'Edit' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.getByRole('button', { name: 'Add endpoint' }).click();
    await dialog.getByLabel('Endpoint 2 method').selectOption('POST');
    await dialog.getByLabel('Endpoint 2 path').fill('/');
    await dialog.getByLabel('Endpoint 2 permission').fill('orders:write');
    await dialog.getByRole('button', { name: 'Save draft' }).click();
    await page.getByText('Draft saved').waitFor();
    await page.getByRole('button', { name: 'Publish', exact: true }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Publish' }).click();
    await page.getByText(/^Published v2:/).waitFor();
    await page.getByRole('button', { name: 'Diff with v1' }).click();
    await page.getByRole('dialog').locator('.diff .add').filter({ hasText: 'orders:write' }).waitFor();
    await shoot(page, '30-collection-diff');
    await page.keyboard.press('Escape');
    await page.getByRole('button', { name: 'Roll back to v1' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Roll back to v1' }).click();
    await page.getByText('Rolled back: v3 restores v1').waitFor();
    const live = await api.get('/workspaces/default/environments/DEV/collections/orders/versions');
    const v3 = (live.body.items as { version: number; spec: { endpoints: unknown[] } }[]).find((v) => v.version === 3);
    assert.equal(v3?.spec.endpoints.length, 1);
  });

  it('imports an OpenAPI document: lists the problems of a broken one, previews the diff, applies it', async () => {
    const api = env.plane.api();
    const created = await api.post('/workspaces/default/environments/DEV/collections', {
      name: 'shipments',
      basePath: '/shipments',
      upstream: { url: 'http://127.0.0.1:9' },
      project: 'default',
      endpoints: [
        { method: 'GET', path: '/{id}', permission: 'shipments:read' },
        { method: 'POST', path: '/', permission: 'shipments:write' },
      ],
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const writer = await api.post('/workspaces/default/roles', { name: 'shipper', permissions: ['shipments:write'] });
    assert.equal(writer.status, 201, JSON.stringify(writer.body));
    await page.goto(`${env.url}collections/DEV/shipments`);
    await page.getByRole('link', { name: 'Import OpenAPI…' }).click();
    await page.getByRole('heading', { name: 'Import OpenAPI into shipments' }).waitFor();
    const picker = page.getByLabel('OpenAPI document');
    const head = "openapi: 3.1.0\ninfo: {title: Shipments, version: '2'}\npaths:\n";
    await picker.setInputFiles({
      name: 'broken.yaml',
      mimeType: 'application/yaml',
      buffer: Buffer.from(
        `${head}  /{id}:\n    get:\n      x-gatehouse-permission: 'not a permission!'\n      responses: {'200': {description: ok}}\n`,
      ),
    });
    await page.getByRole('button', { name: 'Preview changes' }).click();
    const problems = page.getByRole('table', { name: 'Problems in the document' });
    await problems.waitFor();
    assert.match((await problems.textContent()) ?? '', /x-gatehouse-permission/);
    const row = problems.locator('tbody tr', { hasText: 'x-gatehouse-permission' });
    assert.match(
      (await row.textContent()) ?? '',
      /^paths › \/\{id\} › get › x-gatehouse-permission6:31/,
      'the pointer decoded and readable, line:column',
    );
    await shoot(page, '31-import-openapi-problems');
    let applied = false;
    page.on('request', (r) => {
      if (r.method() === 'POST' && r.url().endsWith('/openapi') && !(r.postData() ?? '').includes('"dryRun":true'))
        applied = true;
    });
    await picker.setInputFiles({
      name: 'shipments.yaml',
      mimeType: 'application/yaml',
      buffer: Buffer.from(
        `${head}  /{id}:\n    parameters: [{name: id, in: path, required: true, schema: {type: string}}]\n` +
          "    get: {operationId: getShipment, x-gatehouse-permission: shipments:read, responses: {'200': {description: ok}}}\n" +
          "    delete: {operationId: cancelShipment, x-gatehouse-permission: shipments:cancel, responses: {'204': {description: gone}}}\n",
      ),
    });
    await page.getByRole('button', { name: 'Preview changes' }).click();
    const ops = page.getByRole('table', { name: 'Operations' });
    await ops.waitFor();
    await ops.locator('tr', { hasText: 'DELETE' }).filter({ hasText: 'added' }).waitFor();
    await ops.locator('tr', { hasText: 'POST' }).filter({ hasText: 'removed' }).waitFor();
    await page.getByText('shipments:cancel').first().waitFor();
    await page.getByRole('heading', { name: 'Roles affected' }).waitFor();
    await page.getByText('shipper').waitFor();
    await shoot(page, '32-import-openapi-diff');
    assert.equal(applied, false, 'the preview is a dry run');
    const before = await api.get('/workspaces/default/environments/DEV/collections/shipments');
    assert.equal((before.body.endpoints as unknown[]).length, 2);
    await page.getByRole('button', { name: 'Apply as a new draft' }).click();
    await page.getByText(/^Imported: the draft changed/).waitFor();
    const after = await api.get('/workspaces/default/environments/DEV/collections/shipments');
    assert.deepEqual(
      (after.body.endpoints as { method: string; path: string }[]).map((e) => `${e.method} ${e.path}`).sort(),
      ['DELETE /{id}', 'GET /{id}'],
    );
  });

  it('creates an admin API token in Settings, shown once, and revokes it', async () => {
    const me = (t: string) =>
      fetch(`${env.plane.adminUrl}/api/v1/me`, { headers: { authorization: `Bearer ${t}` } }).then((r) => r.status);
    await page.getByRole('link', { name: 'Settings' }).click();
    const tokens = page.getByRole('table', { name: 'Admin API tokens' });
    // The installation admin token printed at first start is one.
    await tokens.getByRole('row', { name: /installation/ }).waitFor();
    await page.getByRole('button', { name: 'Create admin token' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.getByLabel('Token name').fill('ci-deploy');
    await dialog.getByLabel('Role').selectOption('admin');
    await dialog.getByRole('button', { name: 'Create token' }).click();
    const token = (await page.getByTestId('client-token').textContent()) ?? '';
    assert.match(token, /^ghk_/);
    await page.getByRole('button', { name: 'Copy token' }).click();
    await page.getByText('Copied', { exact: true }).waitFor();
    await shoot(page, '34-admin-token-once');
    await page.getByRole('button', { name: 'I have copied it' }).click();
    assert.equal(await me(token), 200, 'the admin token authenticates the admin API');
    await tokens.getByRole('row', { name: /ci-deploy/ }).waitFor();
    await shoot(page, '35-settings-admin-tokens');
    await page.getByRole('button', { name: 'Revoke admin token ci-deploy' }).click();
    await dialog.getByText('its token is refused at once').waitFor();
    await dialog.getByRole('button', { name: 'Revoke token' }).click();
    await tokens.getByRole('row', { name: /ci-deploy/ }).waitFor({ state: 'detached' });
    assert.equal(await me(token), 401, 'a revoked admin token is refused');
  });

  it('sends the user back to sign-in, saying why, when the session has expired', async () => {
    const { page: p } = await env.newPage();
    await signIn(p, env.url, 'limited@example.com');
    await p.getByRole('heading', { name: 'Client roles' }).waitFor();
    await p.getByRole('table', { name: 'Roles' }).waitFor();
    // Age every session past the idle timeout (30 min), as if the user had left the console alone for an hour
    // (the other pages' sessions too: this test runs last).
    const db = new DatabaseSync(join(env.plane.dataDir, 'gatehouse.db'));
    try {
      db.prepare('UPDATE sessions SET last_seen_at = ?').run(new Date(Date.now() - 3600_000).toISOString());
    } finally {
      db.close();
    }
    await p.getByRole('link', { name: 'API clients' }).click();
    await p.getByText('You were signed out').waitFor();
    await p.getByRole('heading', { name: 'Sign in to the console' }).waitFor();
    await shoot(p, '28-refusal-expired-session');
  });

  it('reported no Content-Security-Policy violation and no page error', () => {
    assert.deepEqual(env.problems, []);
  });
});
