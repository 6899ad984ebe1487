import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, describe, it } from 'node:test';
import { createKeyRing, keyId } from '../secrets/key-ring.ts';
import { openStore, SQLITE_FILE_NAME } from '../store/open.ts';
import { openCertificateAuthority } from './ca.ts';
import { importCaFromDirectory, openStoredCertificateAuthority } from './stored-ca.ts';

const tmp = mkdtempSync(join(tmpdir(), 'gatehouse-stored-ca-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
let n = 0;
const freshDir = () => join(tmp, `d${++n}`);

function rawSettings(dir: string): Map<string, { value: string; key_id: string | null }> {
  const db = new DatabaseSync(join(dir, SQLITE_FILE_NAME));
  try {
    const rows = db.prepare('select key, value, key_id from settings').all() as {
      key: string;
      value: string;
      key_id: string | null;
    }[];
    return new Map(rows.map((r) => [r.key, r]));
  } finally {
    db.close();
  }
}

describe('the CA in the store', () => {
  const k1 = randomBytes(32);
  const k2 = randomBytes(32);

  it('is created once, its key sealed with the operator key, and is the same CA for the next replica', async () => {
    const dir = freshDir();
    const store = await openStore({ dataDir: dir, keyRing: createKeyRing([k1]) });
    const first = await openStoredCertificateAuthority(store);
    await store.close();
    const raw = rawSettings(dir);
    assert.match(raw.get('ca:key')!.value, /^gh-sealed:v1:/);
    assert.doesNotMatch(raw.get('ca:key')!.value, /PRIVATE KEY/);
    assert.equal(raw.get('ca:key')!.key_id, keyId(k1));
    assert.match(raw.get('ca:certificate')!.value, /BEGIN CERTIFICATE/);

    const again = await openStore({ dataDir: dir, keyRing: createKeyRing([k1]) });
    try {
      const second = await openStoredCertificateAuthority(again);
      assert.equal(second.pin, first.pin);
      // The second replica signs with the same key: its certificate chains to the first one's CA.
      const leaf = await second.issueServerCertificate(['gatehouse-control-plane']);
      assert.ok(leaf.certPem.includes('BEGIN CERTIFICATE'));
    } finally {
      await again.close();
    }
    const wrongKey = await openStore({ dataDir: dir, keyRing: createKeyRing([k2]) });
    try {
      await assert.rejects(openStoredCertificateAuthority(wrongKey), new RegExp(`encrypted with key ${keyId(k1)}`));
    } finally {
      await wrongKey.close();
    }
  });

  it('imports the CA of a data directory (migrate-ca) and keeps its pin; a second CA is a conflict', async () => {
    const dir = freshDir();
    const legacy = await openCertificateAuthority(join(dir, 'pki'));
    const store = await openStore({ dataDir: dir, keyRing: createKeyRing([k1]) });
    try {
      assert.deepEqual(await importCaFromDirectory(store, join(dir, 'pki')), { outcome: 'imported', pin: legacy.pin });
      assert.deepEqual(await importCaFromDirectory(store, join(dir, 'pki')), { outcome: 'already', pin: legacy.pin });
      assert.equal((await openStoredCertificateAuthority(store)).pin, legacy.pin);
      const other = await openCertificateAuthority(join(dir, 'other'));
      assert.deepEqual(await importCaFromDirectory(store, join(dir, 'other')), {
        outcome: 'conflict',
        pin: other.pin,
        storedPin: legacy.pin,
      });
      assert.deepEqual(await importCaFromDirectory(store, join(dir, 'none')), { outcome: 'missing' });
    } finally {
      await store.close();
    }
  });

  it('imports the data directory CA at start when the store has none (an upgraded installation)', async () => {
    const dir = freshDir();
    const legacy = await openCertificateAuthority(join(dir, 'pki'));
    const store = await openStore({ dataDir: dir, keyRing: createKeyRing([k1]) });
    try {
      assert.equal((await openStoredCertificateAuthority(store, { legacyDir: join(dir, 'pki') })).pin, legacy.pin);
    } finally {
      await store.close();
    }
  });

  it('rotates: a ring with a new key first re-seals every secret, plaintext ones included', async () => {
    const dir = freshDir();
    const plain = await openStore({ dataDir: dir });
    await plain.setSetting('signing-keys:wsp_1/DEV', '{"legacy":"plaintext"}');
    await plain.setSetting('installation.id', 'not a secret');
    await plain.close();
    const before = await openStore({ dataDir: dir, keyRing: createKeyRing([k1]) });
    const ca = await openStoredCertificateAuthority(before);
    await before.close();

    const rotated = await openStore({ dataDir: dir, keyRing: createKeyRing([k2, k1]) });
    try {
      assert.equal(await rotated.resealSecrets(), 2); // the CA key and the plaintext signing keys
      assert.equal(await rotated.resealSecrets(), 0);
    } finally {
      await rotated.close();
    }
    const raw = rawSettings(dir);
    assert.equal(raw.get('ca:key')!.key_id, keyId(k2));
    assert.equal(raw.get('signing-keys:wsp_1/DEV')!.key_id, keyId(k2));
    assert.match(raw.get('signing-keys:wsp_1/DEV')!.value, /^gh-sealed:v1:/);
    assert.equal(raw.get('installation.id')!.value, 'not a secret');

    const newOnly = await openStore({ dataDir: dir, keyRing: createKeyRing([k2]) });
    try {
      assert.equal((await openStoredCertificateAuthority(newOnly)).pin, ca.pin);
      assert.equal(await newOnly.getSetting('signing-keys:wsp_1/DEV'), '{"legacy":"plaintext"}');
    } finally {
      await newOnly.close();
    }
  });
});
