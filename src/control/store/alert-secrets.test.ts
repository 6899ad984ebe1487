/** Alert destinations' signing secrets at rest: sealed with the key ring, and re-sealed by a key rotation. */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, describe, it } from 'node:test';
import { createKeyRing, keyId } from '../secrets/key-ring.ts';
import { createWorkspace } from '../workspaces.ts';
import { openStore } from './open.ts';

const tmp = mkdtempSync(join(tmpdir(), 'gatehouse-alert-secrets-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

describe('alert destination secrets at rest', () => {
  const k1 = randomBytes(32);
  const k2 = randomBytes(32);
  const stored = () => {
    const db = new DatabaseSync(join(tmp, 'gatehouse.db'), { readOnly: true });
    try {
      return (db.prepare('SELECT secret FROM alert_destinations').get() as { secret: string }).secret;
    } finally {
      db.close();
    }
  };

  it('seals the secret, opens it on read, and re-seals it under the new key on rotation', async () => {
    const secret = 'whsec_' + randomBytes(32).toString('base64url');
    const first = await openStore({ dataDir: tmp, keyRing: createKeyRing([k1]) });
    const { id: workspaceId } = await first.transaction((tx) =>
      createWorkspace(tx, { name: 'acme', environments: ['DEV'], devEnvironment: 'DEV', projects: ['p'] }, 0),
    );
    try {
      await first.insertAlertDestination({
        id: 'ald_1',
        workspaceId,
        name: 'ops',
        url: 'https://hooks.example/ops',
        secret,
        createdAt: '2026-01-01T00:00:00.000Z',
        updatedAt: '2026-01-01T00:00:00.000Z',
      });
    } finally {
      await first.close();
    }
    assert.doesNotMatch(stored(), new RegExp(secret));
    assert.match(stored(), new RegExp(`^gh-sealed:v1:${keyId(k1)}:`));

    const rotated = await openStore({ dataDir: tmp, keyRing: createKeyRing([k2, k1]) });
    try {
      assert.ok((await rotated.resealSecrets()) >= 1);
      assert.equal(await rotated.resealSecrets(), 0);
    } finally {
      await rotated.close();
    }
    assert.match(stored(), new RegExp(`^gh-sealed:v1:${keyId(k2)}:`));
    const onlyNew = await openStore({ dataDir: tmp, keyRing: createKeyRing([k2]) });
    try {
      assert.equal((await onlyNew.getAlertDestination(workspaceId, { name: 'ops' }))?.secret, secret);
    } finally {
      await onlyNew.close();
    }
  });
});
