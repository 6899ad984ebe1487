import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import {
  createKeyRing,
  isSealed,
  keyId,
  KeyRingError,
  keyRingFromEnv,
  localKeyRing,
  parseKeyRing,
} from './key-ring.ts';

const tmp = mkdtempSync(join(tmpdir(), 'gatehouse-keyring-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

describe('encryption key ring', () => {
  const k1 = randomBytes(32);
  const k2 = randomBytes(32);

  it('seals with AES-256-GCM under the first key, naming it, and opens what it sealed', () => {
    const ring = createKeyRing([k1]);
    const sealed = ring.seal('ca:key', 'secret PEM');
    assert.ok(isSealed(sealed));
    assert.equal(ring.kidOf(sealed), keyId(k1));
    assert.doesNotMatch(sealed, /secret PEM/);
    assert.notEqual(ring.seal('ca:key', 'secret PEM'), sealed, 'a fresh IV every time');
    assert.equal(ring.open('ca:key', sealed), 'secret PEM');
  });

  it('refuses a sealed value moved under another name, or altered', () => {
    const ring = createKeyRing([k1]);
    const sealed = ring.seal('signing-keys:a/DEV', 'x');
    assert.throws(() => ring.open('signing-keys:b/DEV', sealed), /does not decrypt .* altered/);
    const flipped = sealed.slice(0, -2) + (sealed.at(-2) === 'A' ? 'B' : 'A') + sealed.at(-1);
    assert.throws(() => ring.open('signing-keys:a/DEV', flipped), KeyRingError);
  });

  it('opens values sealed with an older key listed after the active one, and names a key it lacks', () => {
    const old = createKeyRing([k1]).seal('ca:key', 'v');
    const rotated = createKeyRing([k2, k1]);
    assert.equal(rotated.activeKid, keyId(k2));
    assert.equal(rotated.open('ca:key', old), 'v');
    assert.equal(rotated.kidOf(rotated.seal('ca:key', 'v')), keyId(k2));
    assert.throws(() => createKeyRing([k2]).open('ca:key', old), new RegExp(`encrypted with key ${keyId(k1)}`));
  });

  it('reads keys in base64 or hex, separated by commas or new lines, and refuses a wrong length', () => {
    const ring = parseKeyRing(`${k2.toString('base64')},\n${k1.toString('hex')}\n`, 'test');
    assert.deepEqual(ring.kids, [keyId(k2), keyId(k1)]);
    assert.throws(
      () => parseKeyRing(randomBytes(16).toString('base64'), 'GATEHOUSE_ENCRYPTION_KEY'),
      /key 1 is not 32 bytes/,
    );
    assert.throws(() => parseKeyRing(' ', 'GATEHOUSE_ENCRYPTION_KEY'), /holds no key/);
  });

  it('takes the key from the environment or a mounted file, not both', () => {
    assert.equal(keyRingFromEnv({}), undefined);
    assert.equal(keyRingFromEnv({ GATEHOUSE_ENCRYPTION_KEY: k1.toString('base64') })?.activeKid, keyId(k1));
    const file = join(tmp, 'key');
    writeFileSync(file, `${k2.toString('base64')}\n`);
    assert.equal(keyRingFromEnv({ GATEHOUSE_ENCRYPTION_KEY_FILE: file })?.activeKid, keyId(k2));
    assert.throws(
      () => keyRingFromEnv({ GATEHOUSE_ENCRYPTION_KEY: k1.toString('base64'), GATEHOUSE_ENCRYPTION_KEY_FILE: file }),
      /either GATEHOUSE_ENCRYPTION_KEY or GATEHOUSE_ENCRYPTION_KEY_FILE/,
    );
    assert.throws(() => keyRingFromEnv({ GATEHOUSE_ENCRYPTION_KEY_FILE: join(tmp, 'absent') }), /ENOENT/);
  });

  it('generates a SQLite installation its key once, mode 0600', async () => {
    const dir = join(tmp, 'data');
    const first = await localKeyRing(dir);
    assert.equal(statSync(join(dir, 'encryption.key')).mode & 0o777, 0o600);
    assert.equal((await localKeyRing(dir)).activeKid, first.activeKid);
  });
});
