/**
 * `gatehouse control migrate-ca` and `gatehouse control rotate-key`, run as a user would, on a SQLite data
 * directory (the store logic is tested on both databases in src/control/pki/stored-ca.test.ts).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { openCertificateAuthority } from '../src/control/pki/ca.ts';
import { keyId } from '../src/control/secrets/key-ring.ts';
import { runCli } from './helpers.ts';

const work = await mkdtemp(join(tmpdir(), 'gatehouse-cli-secrets-'));
after(() => rm(work, { recursive: true, force: true }));
const noKey = {
  GATEHOUSE_ENCRYPTION_KEY: undefined,
  GATEHOUSE_ENCRYPTION_KEY_FILE: undefined,
  DATABASE_URL: undefined,
};

describe('gatehouse control migrate-ca and rotate-key', () => {
  it('imports the CA of a data directory once, then rotates the key its key is encrypted with', async () => {
    const dir = join(work, 'data');
    const ca = await openCertificateAuthority(join(dir, 'pki'));
    const first = await runCli(['control', 'migrate-ca', '--data-dir', dir], { env: noKey });
    assert.equal(first.code, 0, first.stderr);
    assert.match(
      first.stdout,
      new RegExp(`Imported the CA of .*pki into the store \\(pin ${ca.pin}, key encrypted\\)`),
    );
    const again = await runCli(['control', 'migrate-ca', '--data-dir', dir], { env: noKey });
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /nothing to do/);

    // SQLite without a key: the data directory's own key. Rotation: a new key first, the old one after it.
    const local = (await readFile(join(dir, 'encryption.key'), 'utf8')).trim();
    const fresh = randomBytes(32);
    const rotated = await runCli(['control', 'rotate-key', '--data-dir', dir], {
      env: { ...noKey, GATEHOUSE_ENCRYPTION_KEY: `${fresh.toString('base64')},${local}` },
    });
    assert.equal(rotated.code, 0, rotated.stderr);
    assert.match(rotated.stdout, new RegExp(`Re-encrypted 1 secret with key ${keyId(fresh)}`));
    // The old key is no longer needed; without the new one, the CA key does not open.
    const newOnly = await runCli(['control', 'migrate-ca', '--data-dir', dir], {
      env: { ...noKey, GATEHOUSE_ENCRYPTION_KEY: fresh.toString('base64') },
    });
    assert.equal(newOnly.code, 0, newOnly.stderr);
    const oldOnly = await runCli(['control', 'migrate-ca', '--data-dir', dir], { env: noKey });
    assert.notEqual(oldOnly.code, 0);
    assert.match(oldOnly.stderr, new RegExp(`encrypted with key ${keyId(fresh)}`));
  });

  it('refuses a CA directory without a CA, and PostgreSQL without a key, with exit 2', async () => {
    const missing = await runCli(['control', 'migrate-ca', '--data-dir', join(work, 'empty')], { env: noKey });
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /holds no CA \(ca\.crt and ca\.key\); pass the directory that does with --ca-dir/);
    const pg = await runCli(['control', 'rotate-key', '--database-url', 'postgres://gh@127.0.0.1:1/gh'], {
      env: noKey,
    });
    assert.equal(pg.code, 2);
    assert.match(pg.stderr, /needs the encryption key the replicas use: set GATEHOUSE_ENCRYPTION_KEY/);
  });
});
