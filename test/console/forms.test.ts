/**
 * The console's shared form pieces (console/src/ui/fields.tsx: TextField, SelectField, FormActions, useSubmit) in a
 * real browser against a real control plane, through the forms that use them: Settings' project and console-user
 * dialogs and a gateway's rename. A refusal keeps the dialog open with the server's message and what was typed; a
 * success closes it and the table shows the change; a hint is tied to its input.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Page } from 'playwright-core';
import { addConsoleUser, signIn, startConsole, type ConsoleEnv } from './browser.ts';

describe('web console: the shared form fields', { timeout: 300_000 }, () => {
  let env: ConsoleEnv;
  let page: Page;
  let gatewayId = '';

  before(async () => {
    env = await startConsole();
    await addConsoleUser(env.plane, 'admin@example.com');
    const api = env.plane.api();
    assert.equal((await api.post('/workspaces/default/projects', { name: 'taken' })).status, 201);
    const gw = await api.post('/workspaces/default/gateways', { name: 'edge-old', environment: 'PROD' });
    assert.equal(gw.status, 201, JSON.stringify(gw.body));
    gatewayId = (gw.body as { gateway: { id: string } }).gateway.id;
    ({ page } = await env.newPage());
    page.setDefaultTimeout(20_000);
    await signIn(page, env.url, 'admin@example.com');
  });
  after(async () => {
    await env?.stop();
  });

  it('creates a project; a refused name keeps the dialog, the message and the name', async () => {
    await page.getByRole('link', { name: 'Settings' }).click();
    await page.getByRole('button', { name: 'Create project' }).click();
    const dialog = page.getByRole('dialog');
    const name = dialog.getByLabel('Project name');
    assert.equal(await name.getAttribute('aria-describedby'), 'name-dialog-hint', 'the hint is tied to the input');
    await name.fill('taken');
    await dialog.getByRole('button', { name: 'Create' }).click();
    await dialog.getByRole('alert').filter({ hasText: 'already exists' }).waitFor();
    assert.equal(await name.inputValue(), 'taken');
    assert.equal(await dialog.getByRole('button', { name: 'Create' }).isEnabled(), true, 'it can be sent again');
    await name.fill('payments');
    await dialog.getByRole('button', { name: 'Create' }).click();
    await dialog.waitFor({ state: 'detached' });
    await page.getByRole('table', { name: 'Projects' }).getByRole('cell', { name: 'payments', exact: true }).waitFor();
  });

  it('adds a console user with a role chosen from the list; Cancel sends nothing', async () => {
    let posted = 0;
    page.on('request', (r) => {
      if (r.method() === 'POST' && r.url().endsWith('/collaborators')) posted++;
    });
    await page.getByRole('button', { name: 'Add user' }).click();
    let dialog = page.getByRole('dialog');
    await dialog.getByLabel('Email').fill('nobody@example.com');
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    await dialog.waitFor({ state: 'detached' });
    assert.equal(posted, 0);

    await page.getByRole('button', { name: 'Add user' }).click();
    dialog = page.getByRole('dialog');
    await dialog.getByLabel('Email').fill('second@example.com');
    const roles = await dialog.getByLabel('Role').locator('option').allTextContents();
    assert.ok(roles.includes('admin'), `roles offered: ${roles.join(', ')}`);
    await dialog.getByLabel('Role').selectOption('admin');
    await dialog.getByLabel('Initial password').fill('a password long enough');
    await dialog.getByRole('button', { name: 'Add user' }).click();
    await dialog.waitFor({ state: 'detached' });
    assert.equal(posted, 1);
    await page
      .getByRole('table', { name: 'Console users' })
      .getByRole('cell', { name: 'second@example.com', exact: true })
      .waitFor();
  });

  it('renames a gateway', async () => {
    await page.goto(`${env.url}gateways/${gatewayId}`);
    await page.getByRole('button', { name: 'Rename' }).click();
    const dialog = page.getByRole('dialog');
    const name = dialog.getByLabel('New name');
    assert.equal(await name.inputValue(), 'edge-old');
    await name.fill('edge-new');
    await dialog.getByRole('button', { name: 'Rename' }).click();
    await dialog.waitFor({ state: 'detached' });
    await page.getByRole('heading', { name: 'edge-new' }).waitFor();
    assert.deepEqual(env.problems, []);
  });
});
