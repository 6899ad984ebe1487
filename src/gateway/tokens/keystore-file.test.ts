/** The signing keys file's durability: written through src/shared/atomic-file.ts, and intact when a write fails. */
import assert from 'node:assert/strict';
import { constants } from 'node:fs';
import fs from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it, mock } from 'node:test';
import { ConfigError } from '../../config/load.ts';
import { recordDurableWrites } from '../../testing/durable-writes.ts';
import { openSigningKeyStore } from './keystore.ts';

const TTL = 5 * 60_000;

describe('signing keys file', () => {
  let dir: string;
  before(async () => {
    dir = await fs.mkdtemp(join(tmpdir(), 'gatehouse-keys-file-'));
  });
  after(() => fs.rm(dir, { recursive: true, force: true }));

  it('is created and rewritten on rotation through the atomic-write helper, mode 0600, file and directory fsynced', async () => {
    const file = join(dir, 'sub', 'keys.json');
    const recorder = recordDurableWrites();
    try {
      const store = await openSigningKeyStore({ algorithm: 'EdDSA', tokenTtlMs: TTL, file });
      await store.rotate();
      store.close();
    } finally {
      recorder.stop();
    }
    const durable = { path: file, mode: 0o600, exclusive: true, fileSynced: true, directorySynced: true };
    assert.deepEqual(recorder.writes, [durable, durable]);
    assert.equal((await fs.stat(file)).mode & 0o777, 0o600);
    assert.deepEqual(await fs.readdir(join(dir, 'sub')), ['keys.json']);
  });

  it('keeps the previous file whole when a write fails at fsync, and says which file', async () => {
    const file = join(dir, 'failing.json');
    const store = await openSigningKeyStore({ algorithm: 'ES256', tokenTtlMs: TTL, file });
    const before = await fs.readFile(file, 'utf8');
    const open = fs.open;
    mock.method(fs, 'open', async (path: string, flags: number, mode?: number) => {
      const handle = await open(path, flags, mode);
      if (flags & constants.O_EXCL)
        handle.sync = () => Promise.reject(Object.assign(new Error('EIO: injected'), { code: 'EIO' }));
      return handle;
    });
    try {
      await assert.rejects(
        store.rotate(),
        (e: Error) => e instanceof ConfigError && e.message === `cannot write signing keys file ${file}: EIO`,
      );
    } finally {
      mock.restoreAll();
      store.close();
    }
    assert.equal(await fs.readFile(file, 'utf8'), before);
    assert.deepEqual(
      (await fs.readdir(dir)).filter((f) => f.startsWith('failing')),
      ['failing.json'],
    );
  });
});
