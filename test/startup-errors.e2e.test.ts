/**
 * Operator mistakes that only show when a gateway starts — a listen address that does not exist, a signing-keys
 * file that is a directory, corrupt, or not JSON — stop `gatehouse gateway run` with exit code 2 and one line
 * naming the setting or file: no stack trace, and no key material from the file.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startGateway, TOKEN_EXCHANGE } from './helpers.ts';

describe('mistakes that stop a gateway at start', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'gatehouse-start-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function failsWith(
    config: Record<string, unknown>,
    expected: string,
    extraArgs: string[] = [],
  ): Promise<string> {
    let message = '';
    await assert.rejects(startGateway({ tokenExchange: TOKEN_EXCHANGE, ...config }, { extraArgs }), (error: Error) => {
      message = error.message;
      return true;
    });
    assert.match(message, /gateway exited with 2 /, message);
    assert.ok(message.includes(`gatehouse: ${expected}`), message);
    assert.doesNotMatch(message, /\n\s+at /, 'no stack trace');
    return message;
  }

  it('names a listen host that does not resolve', async () => {
    await failsWith({}, 'cannot listen for API traffic on no-such-host.invalid:', ['--host', 'no-such-host.invalid']);
  });

  it('names a signing-keys file that is a directory', async () => {
    await failsWith({ server: { signingKeysFile: dir } }, `cannot read signing keys file ${dir}: EISDIR`);
  });

  it('names a corrupt signing-keys file without quoting it', async () => {
    const file = join(dir, 'keys.json');
    await writeFile(file, '{"keys": [{"d": "c2VjcmV0LXByaXZhdGUta2V5LW1hdGVyaWFs"', { mode: 0o600 });
    const message = await failsWith(
      { server: { signingKeysFile: file } },
      `signing keys file ${file} is corrupt: not valid JSON`,
    );
    assert.ok(!message.includes('c2VjcmV0'), 'the file content is not quoted');
  });
});
