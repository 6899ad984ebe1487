/**
 * The Gateways page says whether each gateway serves the newest configuration published to it ("in sync") or how
 * far behind it is, in a real browser against a real control plane. Instances are written into the control
 * plane's store (live ones would come from gateway connections), as bench/console-gateways.ts does.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, before, describe, it } from 'node:test';
import type { Page } from 'playwright-core';
import { addConsoleUser, shoot, signIn, startConsole, type ConsoleEnv } from './browser.ts';

describe('web console: gateways configuration in sync or behind', { timeout: 120_000 }, () => {
  let env: ConsoleEnv;
  let page: Page;
  let db: DatabaseSync;

  before(async () => {
    env = await startConsole();
    await addConsoleUser(env.plane, 'sync@example.com');
    ({ page } = await env.newPage());
    page.setDefaultTimeout(20_000);
    db = new DatabaseSync(join(env.plane.dataDir, 'gatehouse.db'), { timeout: 10_000 });
  });
  after(async () => {
    db?.close();
    await env?.stop();
  });

  it('shows "behind by N" for an instance on an older snapshot, then "in sync" once it applied the newest', async () => {
    const created = await env.plane
      .api()
      .post('/workspaces/default/gateways', { name: 'edge-sync', environment: 'TEST' });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const id = created.body.gateway.id as string;
    const latest = (
      db.prepare(`SELECT max(version) AS v FROM snapshots WHERE scope LIKE ?`).get(`%/TEST/edge:edge-sync`) as {
        v: number;
      }
    ).v;
    assert.ok(latest >= 1, 'creating the gateway published its (empty) configuration');
    const now = new Date().toISOString();
    db.prepare(
      `INSERT INTO gateway_instances (gateway_id, instance_id, hostname, software_version, applied_version, connected,
         first_seen_at, last_seen_at, last_synced_at) VALUES (?, 'i-1', 'node-a', '0.1.0', 0, 1, ?, ?, ?)`,
    ).run(id, now, now, now);

    await signIn(page, env.url, 'sync@example.com');
    await page.getByRole('heading', { name: 'Gateways' }).waitFor();
    await page.getByTestId('config-edge-sync').getByText(`behind by ${latest}`).waitFor();
    await shoot(page, 'gateways-config-behind');

    db.prepare(`UPDATE gateway_instances SET applied_version = ?, last_seen_at = ? WHERE gateway_id = ?`).run(
      latest,
      new Date().toISOString(),
      id,
    );
    await page.reload();
    await page.getByTestId('config-edge-sync').getByText('in sync').waitFor();
    await page.getByRole('link', { name: 'edge-sync' }).click();
    await page.getByRole('heading', { name: 'edge-sync' }).waitFor();
    await page.getByRole('table').getByText('in sync').waitFor();
    assert.deepEqual(env.problems, []);
  });
});
