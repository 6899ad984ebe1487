import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { crc32 } from 'node:zlib';
import { generateKey, hashKey, isWellFormedKey, KEY_PREFIX, redactKey } from './api-key.ts';

const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/** Builds a key around a chosen random part, with a correct checksum. */
function keyWith(random: string): string {
  const body = KEY_PREFIX + random;
  let value = crc32(body);
  let checksum = '';
  for (let i = 0; i < 6; i++) {
    checksum = ALPHABET[value % 62] + checksum;
    value = Math.floor(value / 62);
  }
  return body + checksum;
}

describe('API keys', () => {
  it('generates 42-character keys of prefix, 32 base62 characters and a 6-character checksum', () => {
    for (let i = 0; i < 1000; i++) {
      const { key } = generateKey();
      assert.equal(key.length, 42);
      assert.match(key, /^ghk_[0-9A-Za-z]{38}$/);
      assert.ok(isWellFormedKey(key), key);
    }
  });

  it('generates unique keys', () => {
    const keys = new Set<string>();
    for (let i = 0; i < 10_000; i++) keys.add(generateKey().key);
    assert.equal(keys.size, 10_000);
  });

  it('draws every base62 character, roughly evenly', () => {
    const counts = new Map<string, number>();
    const n = 4000;
    for (let i = 0; i < n; i++) {
      for (const c of generateKey().key.slice(4, 36)) counts.set(c, (counts.get(c) ?? 0) + 1);
    }
    assert.equal(counts.size, 62);
    // 128,000 draws: ~2065 per character (standard deviation ~2%); `byte % 62` without rejection would put the
    // first 8 characters ~21% high.
    const expected = (n * 32) / 62;
    for (const [c, count] of counts) assert.ok(Math.abs(count - expected) < expected * 0.15, `${c}: ${count}`);
  });

  it('returns the SHA-256 of the key as its hash', () => {
    const generated = generateKey();
    const expected = createHash('sha256').update(generated.key, 'utf8').digest('hex');
    assert.equal(generated.hash, expected);
    assert.equal(hashKey(generated.key), expected);
    assert.match(generated.hash, /^[0-9a-f]{64}$/);
  });

  it('returns a display id of the first 12 characters followed by three dots', () => {
    const { key, id } = generateKey();
    assert.equal(id, `${key.slice(0, 12)}...`);
  });

  it('refuses a key in which any one character was changed', () => {
    for (let k = 0; k < 20; k++) {
      const { key } = generateKey();
      for (let i = KEY_PREFIX.length; i < key.length; i++) {
        for (const replacement of ALPHABET) {
          if (replacement === key[i]) continue;
          const changed = key.slice(0, i) + replacement + key.slice(i + 1);
          assert.equal(isWellFormedKey(changed), false, `${changed} (position ${i})`);
        }
      }
    }
  });

  it('refuses a key whose checksum was computed for another prefix', () => {
    const { key } = generateKey();
    assert.equal(isWellFormedKey(`ghx_${key.slice(4)}`), false);
    assert.equal(isWellFormedKey(`GHK_${key.slice(4)}`), false);
  });

  it('refuses keys that are too short or too long', () => {
    const { key } = generateKey();
    assert.equal(isWellFormedKey(key.slice(0, -1)), false);
    assert.equal(isWellFormedKey(`${key}0`), false);
    assert.equal(isWellFormedKey(''), false);
    assert.equal(isWellFormedKey(KEY_PREFIX), false);
  });

  it('refuses characters outside base62 even where the checksum would match', () => {
    // Same length and prefix; the checksum is right for the body, so only the charset check can refuse these.
    for (const bad of ['-', '_', '+', '/', '=', ' ', 'é', '\u0000', '０']) {
      const key = keyWith(`${bad}${'a'.repeat(31)}`);
      assert.equal(key.length, 42);
      assert.equal(isWellFormedKey(key), false, JSON.stringify(key));
    }
    assert.equal(isWellFormedKey(keyWith('a'.repeat(32))), true);
  });

  it('refuses a non-string without throwing', () => {
    assert.equal(isWellFormedKey(undefined as unknown as string), false);
    assert.equal(isWellFormedKey(42 as unknown as string), false);
  });

  it('redacts a key to its prefix and first 4 random characters', () => {
    const { key } = generateKey();
    assert.equal(redactKey(key), `${key.slice(0, 8)}…`);
  });

  it('never shows more than 8 characters of any input when redacting', () => {
    const inputs = [
      generateKey().key,
      'sk_live_0123456789abcdefghijklmnop',
      'short',
      'abcdefghijklmnopqrstuvwx',
      '',
      'x'.repeat(5000),
    ];
    for (const input of inputs) {
      const redacted = redactKey(input);
      assert.ok(redacted.endsWith('…'));
      const shown = redacted.slice(0, -1);
      assert.ok(shown.length <= 8, redacted);
      assert.ok(shown.length <= input.length / 3, `${redacted} shows too much of ${input}`);
      assert.ok(input.startsWith(shown));
    }
  });

  it('replaces control and non-ASCII characters when redacting', () => {
    assert.equal(redactKey('a\nb\u0000cdéfghijklmnopqrstuvwxyz'), 'a?b?cd?f…');
  });
});
