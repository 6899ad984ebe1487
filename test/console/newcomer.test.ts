/**
 * The newcomer flow in a real browser against a real control plane: sign in → set up a gateway and see the
 * registration token count down → create and publish a collection → a role by ticking its endpoint → an API client
 * and its token (copied) → call the cloud gateway with it → see the request in Analytics → regenerate the token and
 * see the old one refused. A screenshot of every page goes to test-results/console/.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Page } from 'playwright-core';
import { eventually } from '../../src/testing/eventually.ts';
import { runCli, startUpstream, type Upstream } from '../helpers.ts';
import { shoot, signIn, startConsole, type ConsoleEnv } from './browser.ts';

describe('web console: the newcomer flow', { timeout: 300_000 }, () => {
  let env: ConsoleEnv;
  let upstream: Upstream;
  let page: Page;
  let password = '';

  before(async () => {
    upstream = await startUpstream();
    env = await startConsole();
    // As the README says on first start: a console user from the installation admin token, its password shown once.
    const created = await runCli(['user', 'create', '--email', 'newcomer@example.com'], {
      env: { GATEHOUSE_URL: env.plane.adminUrl, GATEHOUSE_TOKEN: env.plane.token },
    });
    assert.equal(created.code, 0, created.stderr);
    assert.ok(created.stdout.includes(`${env.plane.adminUrl}/console/`), created.stdout);
    password = /password\s+(\S+)/.exec(created.stdout)?.[1] ?? '';
    assert.ok(password.length >= 12, created.stdout);
    ({ page } = await env.newPage());
    page.setDefaultTimeout(20_000);
  });
  after(async () => {
    await env?.stop();
    await upstream?.close();
  });

  const call = (token: string) =>
    fetch(`${env.plane.gatewayUrl}/default/dev/billing/invoices`, { headers: { authorization: `Bearer ${token}` } });

  it('signs in with a console user', async () => {
    await page.goto(env.url);
    await page.getByRole('heading', { name: 'Sign in to the console' }).waitFor();
    assert.equal(await page.getByText('You were signed out').count(), 0, 'a first visit is not a signed-out session');
    await shoot(page, '01-sign-in');
    await signIn(page, env.url, 'newcomer@example.com', password);
    await page.getByRole('heading', { name: 'Gateways' }).waitFor();
    await page.getByText('No edge gateways yet').waitFor();
    assert.equal(
      await page.getByRole('button', { name: 'Menu' }).isVisible(),
      false,
      'no Menu toggle at desktop width',
    );
    await shoot(page, '02-gateways-empty');
  });

  it('sets up a gateway and shows its registration token counting down, then regenerates it', async () => {
    await page.getByRole('button', { name: 'Set up gateway' }).click();
    await page.getByLabel('Name').fill('edge-test');
    await page.getByLabel('Environment').selectOption('TEST');
    await page.getByLabel('Kubernetes (Helm)').check();
    await shoot(page, '03-gateway-setup-form');
    await page.getByRole('button', { name: 'Create and show install command' }).click();
    const countdown = page.getByTestId('countdown');
    const first = await countdown.textContent();
    assert.match(first ?? '', /^[45]:[0-5]\d$/);
    // Live: the text changes as the seconds pass.
    await eventually(async () => (await countdown.textContent()) !== first, 5000);
    const token = await page.getByTestId('registration-token').textContent();
    assert.match(token ?? '', /^ghr_/);
    assert.ok((await page.getByText('helm', { exact: false }).count()) > 0, 'a Helm install command is shown');
    assert.ok(await page.getByText(`gatehouse gateway bootstrap`).first().isVisible());
    await shoot(page, '04-gateway-install-countdown');
    await page.getByRole('button', { name: 'Regenerate' }).click();
    await eventually(async () => (await page.getByTestId('registration-token').textContent()) !== token, 10_000);
    await page.getByRole('button', { name: 'Done' }).click();
    await page.getByRole('link', { name: 'edge-test' }).click();
    await page.getByRole('heading', { name: 'edge-test' }).waitFor();
    await page.getByText('No instance has connected yet').waitFor();
    await shoot(page, '05-gateway-detail');
  });

  it('creates a collection and publishes it', async () => {
    await page.getByRole('link', { name: 'Collections' }).click();
    await page.getByText('No collections in DEV yet').waitFor();
    await shoot(page, '06-collections-empty');
    await page.getByRole('button', { name: 'Create collection' }).click();
    await page.getByLabel('Name', { exact: true }).fill('billing');
    await page.getByLabel('Base path').fill('/billing');
    await page.getByLabel('Upstream URL').fill(upstream.url);
    await page.getByLabel('Endpoint 1 method').selectOption('GET');
    await page.getByLabel('Endpoint 1 path').fill('/invoices');
    await page.getByLabel('Endpoint 1 permission').fill('invoices:read');
    await page.getByRole('button', { name: 'Create draft' }).click();
    await page.getByRole('heading', { name: 'billing' }).waitFor();
    await page.getByRole('button', { name: 'Publish' }).click();
    await page.getByText('The draft becomes version 1').waitFor();
    await page.getByRole('dialog').getByRole('button', { name: 'Publish' }).click();
    await page.getByText(/^Published v1:/).waitFor();
    // Nothing left to publish: the button says why it is disabled, and so does the page.
    await page
      .locator('#publish-why')
      .getByText(/^Nothing to publish/)
      .waitFor();
    const publish = page.getByRole('button', { name: 'Publish', exact: true });
    assert.equal(await publish.isDisabled(), true);
    assert.match((await publish.getAttribute('title')) ?? '', /^Nothing to publish: the draft equals the published/);
    // Version history names the publisher as the audit log does, not by its id.
    await page.getByRole('table', { name: 'Versions' }).getByRole('cell', { name: 'newcomer@example.com' }).waitFor();
    await shoot(page, '07-collection-detail');
  });

  it('creates a role by ticking the endpoint', async () => {
    await page.getByRole('link', { name: 'Client roles' }).click();
    await page.getByRole('heading', { name: 'Client roles' }).waitFor();
    await page.getByRole('button', { name: 'Create role' }).click();
    await page.getByLabel('Name').fill('invoice-reader');
    await page.getByLabel('Filter endpoints').fill('invoices');
    await page.getByRole('checkbox', { name: /GET \/invoices/ }).check();
    await shoot(page, '08-role-editor');
    await page.getByRole('dialog').getByRole('button', { name: 'Create role' }).click();
    await page.getByRole('row', { name: /invoice-reader/ }).waitFor();
    await shoot(page, '09-roles');
  });

  let token = '';
  it('creates an API client and copies its token, which the cloud gateway accepts', async () => {
    await page.getByRole('link', { name: 'API clients' }).click();
    // The installation admin token printed at first start is an API client too.
    await page
      .getByRole('cell', { name: /installation-admin|admin/ })
      .first()
      .waitFor();
    await page.getByRole('button', { name: 'Create client' }).click();
    await page.getByLabel('Name').fill('my-app');
    await page.getByLabel('Role').selectOption('invoice-reader');
    await page.getByLabel('Allowed IP ranges').fill('127.0.0.0/8, ::1/128');
    await page.getByLabel('Org id').fill('acme');
    await page.getByRole('dialog').getByRole('button', { name: 'Create client' }).click();
    token = (await page.getByTestId('client-token').textContent()) ?? '';
    assert.match(token, /^ghk_/);
    await page.getByRole('button', { name: 'Copy token' }).click();
    await page.getByText('Copied', { exact: true }).waitFor();
    assert.equal(await page.evaluate('navigator.clipboard.readText()'), token);
    await shoot(page, '10-client-token-once');
    await page.getByRole('button', { name: 'I have copied it' }).click();
    await page
      .getByRole('row', { name: /my-app/ })
      .getByText('never', { exact: true })
      .waitFor();
    await shoot(page, '11-clients');
    await eventually(
      async () => (await call(token)).status === 200,
      15_000,
      'the cloud gateway accepting the token',
      100,
    );
    assert.equal(upstream.requests.at(-1)?.url, '/invoices');
  });

  it('shows that request in Analytics', async () => {
    await page.getByRole('link', { name: 'Analytics' }).click();
    // The cloud gateway's telemetry reaches the store every 10 s; the page refreshes itself.
    await eventually(
      async () => Number(await page.getByTestId('requests-total').textContent()) >= 1,
      40_000,
      'the request in Analytics',
      250,
    ).catch(async (error: unknown) => {
      await shoot(page, '12-analytics-failed');
      throw error;
    });
    await page.getByRole('cell', { name: 'my-app' }).waitFor();
    await page.locator('.uplot').first().waitFor();
    await shoot(page, '12-analytics');
  });

  it('regenerates the token: the old one is refused, the new one works', async () => {
    await page.getByRole('link', { name: 'API clients' }).click();
    // Analytics showed the request: its telemetry is stored, and with it the client's last use.
    await page
      .getByRole('row', { name: /my-app/ })
      .locator('time')
      .filter({ hasText: /^\d+ (s|min) ago$/ })
      .waitFor();
    await shoot(page, '18-clients-last-used');
    await page.getByRole('button', { name: 'Regenerate token of my-app' }).click();
    await page.getByText('The old token is refused at once').waitFor();
    await page.getByRole('dialog').getByRole('button', { name: 'Regenerate token', exact: true }).click();
    const fresh = (await page.getByTestId('client-token').textContent()) ?? '';
    assert.match(fresh, /^ghk_/);
    assert.notEqual(fresh, token);
    await page.getByRole('button', { name: 'I have copied it' }).click();
    await eventually(async () => (await call(token)).status === 401, 15_000, 'the old token refused', 100);
    assert.equal((await call(fresh)).status, 200);
  });

  it('lists the refused old token among the top refusals, with its error code', async () => {
    await page.getByRole('link', { name: 'Analytics' }).click();
    const refusals = page.getByRole('table', { name: 'Top refusals' });
    await eventually(async () => (await refusals.getByText(/GH_ERR_AUTH_/).count()) > 0, 40_000, 'the refusal', 250);
    await shoot(page, '13-analytics-refusals');
  });

  it('shows the other pages', async () => {
    for (const [link, heading, name] of [
      ['Alerts', 'Alerts', '14-alerts'],
      ['Audit log', 'Audit log', '15-audit'],
      ['Settings', 'Settings', '16-settings'],
    ] as const) {
      await page.getByRole('link', { name: link }).click();
      await page.getByRole('heading', { name: heading, exact: true }).waitFor();
      await page
        .locator('[role=status]')
        .first()
        .waitFor({ state: 'detached' })
        .catch(() => {});
      await shoot(page, name);
    }
    await page.getByRole('link', { name: 'Gateways' }).click();
    await page.getByRole('link', { name: 'edge-test' }).waitFor();
    await shoot(page, '17-gateways');
  });

  it('reported no Content-Security-Policy violation and no page error', () => {
    assert.deepEqual(env.problems, []);
  });
});
