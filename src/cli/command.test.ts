import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { portOption, shownUrl, UsageError } from './command.ts';

describe('portOption', () => {
  it('takes decimal whole numbers from 0 to 65535', () => {
    for (const [value, port] of [
      ['0', 0],
      ['80', 80],
      ['08080', 8080],
      ['65535', 65535],
    ] as const)
      assert.equal(portOption('gateway run', 'port', value), port);
    assert.equal(portOption('gateway run', 'port', undefined), undefined);
  });

  it('refuses what Number() would take but is not a port as written: empty, hex, exponent, blanks, fractions, signs', () => {
    for (const value of [
      '',
      ' ',
      '0x50',
      '0o17',
      '0b1',
      '1e3',
      ' 80',
      '80 ',
      '8.0',
      '+80',
      '-1',
      '65536',
      '100000',
      'Infinity',
      '８０',
    ]) {
      assert.throws(
        () => portOption('gateway run', 'ops-port', value),
        (error: unknown) =>
          error instanceof UsageError &&
          error.message === `gateway run: --ops-port must be a whole number from 0 to 65535, got "${value}"`,
        JSON.stringify(value),
      );
    }
  });
});

describe('shownUrl', () => {
  it('masks the password of a URL without adding a "/"', () => {
    assert.equal(shownUrl('http://user:pw@127.0.0.1:18999'), 'http://user:***@127.0.0.1:18999');
    assert.equal(shownUrl('https://cp.example.com/admin/?password=pw'), 'https://cp.example.com/admin/?password=***');
    assert.equal(shownUrl('http://127.0.0.1:8081'), 'http://127.0.0.1:8081');
  });

  it('masks the password of a string the URL parser refuses', () => {
    assert.ok(!shownUrl('http://user:p w@exa mple').includes('p w'));
  });
});
