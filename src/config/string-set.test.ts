import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { StringSet } from './string-set.ts';

describe('a string set', () => {
  it('tells new strings from ones it holds, across many growths', () => {
    const set = new StringSet(['seed']);
    for (let i = 0; i < 50_000; i++) assert.equal(set.add(`client-${i}`), true);
    assert.equal(set.size, 50_001);
    for (let i = 0; i < 50_000; i += 997) assert.equal(set.add(`client-${i}`), false);
    assert.equal(set.add('seed'), false);
    assert.equal(set.has('client-49999'), true);
    assert.equal(set.has('client-50000'), false);
    assert.equal(set.size, 50_001);
  });

  it('compares whole strings, not only their hashes', () => {
    const set = new StringSet();
    // Strings that differ in one character, in length, or only beyond the ASCII range.
    for (const s of ['', 'a', 'b', 'ab', 'ba', 'a\u0000', 'é', 'e\u0301', '\ud83d\ude00'])
      assert.equal(set.add(s), true, JSON.stringify(s));
    for (const s of ['', 'a', 'b', 'ab', 'ba', 'a\u0000', 'é', 'e\u0301', '\ud83d\ude00'])
      assert.equal(set.has(s), true, JSON.stringify(s));
    assert.equal(set.has('abc'), false);
  });
});
