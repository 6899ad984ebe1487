import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DUMMY_HASH, hashPassword, verifyPassword } from './passwords.ts';

describe('console passwords', () => {
  it('verifies the password it hashed and refuses another', async () => {
    const stored = await hashPassword('correct horse battery staple');
    assert.match(stored, /^scrypt\$16384\$8\$1\$/);
    assert.equal(await verifyPassword('correct horse battery staple', stored), true);
    assert.equal(await verifyPassword('correct horse battery stapl', stored), false);
  });

  it('salts every hash', async () => {
    assert.notEqual(await hashPassword('same password here'), await hashPassword('same password here'));
  });

  it('never matches the dummy hash or a malformed one', async () => {
    assert.equal(await verifyPassword('', DUMMY_HASH), false);
    assert.equal(await verifyPassword('x', 'bcrypt$whatever'), false);
  });
});
