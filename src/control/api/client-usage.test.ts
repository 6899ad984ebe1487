/** An API client's last use: its token's calls to the admin API count (gateway traffic: the store contract). */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startAdminPlane, T0, type AdminPlane } from '../../testing/admin-plane.ts';

describe('lastUsedAt of API clients', () => {
  let cp: AdminPlane;
  before(async () => {
    cp = await startAdminPlane();
  });
  after(() => cp?.close());
  const clients = async (token = cp.token) => {
    const res = await fetch(`${cp.base}/api/v1/workspaces/acme/clients`, {
      headers: { authorization: `Bearer ${token}` },
    });
    assert.equal(res.status, 200);
    return ((await res.json()) as { items: { name: string; lastUsedAt?: string }[] }).items;
  };

  it('is the minute of the latest admin API call made with the token, and absent before any use', async () => {
    const created = await fetch(`${cp.base}/api/v1/workspaces/acme/clients`, {
      method: 'POST',
      headers: { authorization: `Bearer ${cp.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'idle', role: 'admin', environments: ['*'], projects: ['*'] }),
    });
    assert.equal(created.status, 201);
    const minute = new Date(T0 - (T0 % 60_000)).toISOString();
    let items = await clients();
    assert.equal(items.find((c) => c.name === 'admin')?.lastUsedAt, minute, 'this very call counts');
    assert.equal(
      Object.hasOwn(
        items.find((c) => c.name === 'idle')!,
        'lastUsedAt',
      ),
      false,
    );
    cp.advance(5 * 60_000 + 1000);
    items = await clients();
    assert.equal(
      items.find((c) => c.name === 'admin')?.lastUsedAt,
      new Date(Date.parse(minute) + 5 * 60_000).toISOString(),
    );
  });
});
