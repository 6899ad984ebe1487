import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import fs from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it, mock } from 'node:test';
import { type Snapshot, SnapshotSchema } from '../../config/schema.ts';
import { snapshotHash } from '../../config/snapshot-encoding.ts';
import { recordDurableWrites } from '../../testing/durable-writes.ts';
import { openSnapshotCache, writeFileAtomic } from './cache.ts';

function snapshot(version: number): Snapshot {
  return SnapshotSchema.parse({
    version,
    collections: [
      {
        name: 'shop',
        basePath: '/shop',
        upstream: 'http://127.0.0.1:9',
        project: 'shop',
        environment: 'PROD',
        endpoints: [{ method: 'GET', path: '/items', permission: 'items:read' }],
      },
    ],
    tokenExchange: { issuer: 'https://gatehouse.test', audience: 'api' },
  });
}

describe('snapshot cache file', () => {
  let dir: string;
  const keyPem = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({
    type: 'pkcs8',
    format: 'pem',
  }) as string;
  before(async () => {
    dir = await fs.mkdtemp(join(tmpdir(), 'gatehouse-cache-'));
  });
  after(() => fs.rm(dir, { recursive: true, force: true }));

  it('writes the snapshot through the atomic-write helper with mode 0600, fsyncing the file and its directory', async () => {
    const cache = openSnapshotCache(dir, keyPem);
    const s = snapshot(3);
    const recorder = recordDurableWrites();
    try {
      await cache.write(s, snapshotHash(s));
    } finally {
      recorder.stop();
    }
    assert.deepEqual(recorder.writes, [
      { path: cache.file, mode: 0o600, exclusive: true, fileSynced: true, directorySynced: true },
    ]);
    assert.equal((await fs.stat(cache.file)).mode & 0o777, 0o600);
    assert.deepEqual(await fs.readdir(join(dir, 'cache')), ['snapshot.json']);
    const read = await cache.read();
    assert.equal(read.status, 'ok');
    assert.equal(read.status === 'ok' && read.cached.version, 3);
  });

  it('keeps the previous snapshot readable when writing the next one fails', async () => {
    const cache = openSnapshotCache(dir, keyPem);
    const s4 = snapshot(4);
    await cache.write(s4, snapshotHash(s4));
    mock.method(fs, 'rename', async () => {
      throw Object.assign(new Error('ENOSPC: injected'), { code: 'ENOSPC' });
    });
    const s5 = snapshot(5);
    try {
      await assert.rejects(
        cache.write(s5, snapshotHash(s5)),
        /cannot write .*snapshot\.json: renaming the temporary file over it failed \(ENOSPC\)/,
      );
    } finally {
      mock.restoreAll();
    }
    const read = await cache.read();
    assert.equal(read.status === 'ok' && read.cached.version, 4);
    assert.deepEqual(await fs.readdir(join(dir, 'cache')), ['snapshot.json']);
  });

  it('writeFileAtomic (the renewed key and certificate) goes through the helper with the mode asked for', async () => {
    const file = join(dir, 'gateway.key');
    const recorder = recordDurableWrites();
    try {
      await writeFileAtomic(file, keyPem, 0o600);
    } finally {
      recorder.stop();
    }
    assert.deepEqual(recorder.writes, [
      { path: file, mode: 0o600, exclusive: true, fileSynced: true, directorySynced: true },
    ]);
    assert.equal(await fs.readFile(file, 'utf8'), keyPem);
  });
});
