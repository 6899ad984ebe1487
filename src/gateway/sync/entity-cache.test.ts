import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import type { EntityChangesMessage } from '../../config/sync-proto.ts';
import { EntitySets } from '../policies/resource-policy/entity-sets.ts';
import { EntityCacheFile } from './entity-cache.ts';

const keyPem = () => generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
const logger = pino({ level: 'silent' });
const doc = (id: string) => ({ uid: { type: 'Doc', id }, attrs: {}, parents: [] });
const msg = (over: Partial<EntityChangesMessage>, upsert: unknown[] = [], remove: unknown[] = []) => ({
  set: 's1',
  fromVersion: 0,
  toVersion: 0,
  reset: false,
  more: false,
  body: Buffer.from(JSON.stringify({ upsert, remove })),
  ...over,
});

describe('the entity cache (a journal per set)', () => {
  let dir: string;
  const key = keyPem();
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'gatehouse-entity-cache-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  /** Applies and records messages as the sync loop does. */
  async function receive(cache: EntityCacheFile, sets: EntitySets, messages: EntityChangesMessage[]) {
    for (const m of messages) {
      assert.ok(sets.apply(m).ok);
      void cache.record(m, sets);
    }
    await cache.settled();
  }

  it('restores a full set and the changes after it; stops at a torn or tampered line, keeping what came before', async () => {
    const cache = new EntityCacheFile(dir, key, logger);
    const sets = new EntitySets();
    await receive(cache, sets, [
      msg({ reset: true, more: true }, [doc('1')]),
      msg({ toVersion: 4 }, [doc('2')]),
      msg({ fromVersion: 4, toVersion: 5 }, [doc('3')], [{ type: 'Doc', id: '1' }]),
      msg({ fromVersion: 5, toVersion: 6 }, [doc('4')]),
    ]);

    const restored = new EntitySets();
    assert.equal(await new EntityCacheFile(dir, key, logger).load(restored), 1);
    assert.deepEqual(restored.versions(), [{ set: 's1', version: 6 }]);
    assert.equal(restored.get('s1').size, 3);

    // A crash mid-append: the last line is torn. Versions up to 5 are kept.
    const file = join(dir, 'cache', 'entities', 's1.log');
    const text = await readFile(file, 'utf8');
    await writeFile(file, text.slice(0, -10));
    const torn = new EntitySets();
    await new EntityCacheFile(dir, key, logger).load(torn);
    assert.deepEqual(torn.versions(), [{ set: 's1', version: 5 }]);

    // An edited line fails its MAC: the set is read up to the line before; the full set edited, not at all.
    const lines = text.split('\n');
    await writeFile(file, [lines[0], lines[1]!.replace('"2"', '"9"'), ...lines.slice(2)].join('\n'));
    const edited = new EntitySets();
    assert.equal(await new EntityCacheFile(dir, key, logger).load(edited), 0);
    assert.deepEqual(edited.versions(), []);

    // Written with another gateway key: refused.
    await writeFile(file, text);
    const otherKey = new EntitySets();
    assert.equal(await new EntityCacheFile(dir, keyPem(), logger).load(otherKey), 0);
  });

  it('rewrites a set from memory when its appended changes outgrow it, and drops the sets no snapshot names', async () => {
    const cache = new EntityCacheFile(dir, key, logger);
    const sets = new EntitySets();
    await receive(cache, sets, [msg({ set: 's2', reset: true, toVersion: 1 }, [doc('a')])]);
    const big = Array.from({ length: 3000 }, (_, i) => doc(`x${i}-${'p'.repeat(200)}`));
    await receive(cache, sets, [
      msg({ set: 's2', fromVersion: 1, toVersion: 2 }, big),
      msg(
        { set: 's2', fromVersion: 2, toVersion: 3 },
        [],
        big.slice(0, 2999).map((d) => d.uid),
      ),
    ]);
    const file = join(dir, 'cache', 'entities', 's2.log');
    const lines = (await readFile(file, 'utf8')).trim().split('\n');
    // ~1.5 MB appended after a full set of one entity: rewritten as the two entities held, at version 3.
    assert.equal(lines.length, 1, 'compacted');
    assert.match(lines[0]!, / 0 3 1 0 /);
    const restored = new EntitySets();
    await new EntityCacheFile(dir, key, logger).load(restored);
    assert.equal(restored.get('s2').version, 3);
    assert.equal(restored.get('s2').size, 2);

    await cache.retain(new Set(['s2']));
    assert.deepEqual(await readdir(join(dir, 'cache', 'entities')), ['s2.log']);
  });
});
