import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type EntityChangesMessage, EntitySets } from './entity-sets.ts';
import { isDescendant } from './entities.ts';
import { Uid } from './values.ts';

const e = (type: string, id: string, parents: [string, string][] = []) => ({
  uid: { type, id },
  attrs: {},
  parents: parents.map(([t, i]) => ({ type: t, id: i })),
});
function message(over: Partial<EntityChangesMessage>, upsert: unknown[] = [], remove: unknown[] = []) {
  return {
    set: 's',
    fromVersion: 0,
    toVersion: 0,
    reset: false,
    more: false,
    body: Buffer.from(JSON.stringify({ upsert, remove })),
    ...over,
  };
}
const key = (type: string, id: string) => new Uid(type, id).key;

describe('entity sets at the gateway', () => {
  it('swaps a full set in only with its last part, then applies changes from the version held', () => {
    const sets = new EntitySets();
    const set = sets.get('s');
    assert.deepEqual(sets.apply(message({ reset: true, toVersion: 3 }, [e('Doc', 'old')])), { ok: true, applied: 1 });
    assert.equal(set.version, 3);
    assert.deepEqual(sets.versions(), [{ set: 's', version: 3 }]);

    // A full set again, in two parts: what is held stays until the last part.
    assert.ok(sets.apply(message({ reset: true, more: true }, [e('Doc', '1')])).ok);
    assert.ok(set.get(key('Doc', 'old')), 'still the old set while parts arrive');
    assert.equal(set.get(key('Doc', '1')), undefined);
    assert.ok(sets.apply(message({ toVersion: 7 }, [e('Doc', '2')])).ok);
    assert.equal(set.get(key('Doc', 'old')), undefined);
    assert.equal(set.size, 2);
    assert.equal(set.version, 7);

    assert.ok(sets.apply(message({ fromVersion: 7, toVersion: 8 }, [e('Doc', '3')], [{ type: 'Doc', id: '1' }])).ok);
    assert.equal(set.size, 2);
    assert.equal(set.version, 8);
  });

  it('refuses a change that does not start from the version held, or a body it cannot read, and asks again', () => {
    const sets = new EntitySets();
    sets.apply(message({ reset: true, toVersion: 5 }, [e('Doc', '1')]));
    const gap = sets.apply(message({ fromVersion: 6, toVersion: 7 }, [e('Doc', '2')]));
    assert.equal(gap.ok, false);
    assert.ok(!gap.ok && gap.resync && /version 5 is held/.test(gap.error));
    assert.equal(sets.get('s').size, 1, 'nothing of it applied');
    const part = sets.apply(message({ toVersion: 0, more: true }, [e('Doc', '2')]));
    assert.ok(!part.ok && part.resync, 'a part of a full set without its first part');
    const bad = sets.apply({
      ...message({ fromVersion: 5, toVersion: 6 }),
      body: Buffer.from('{"upsert":[{"uid":1}]}'),
    });
    assert.ok(!bad.ok && bad.resync);
    assert.equal(sets.get('s').version, 0, 'dropped: the next Hello asks for the whole set');
  });

  it('answers `in` over a deep hierarchy from memoised ancestors, and forgets them below a change of parents', () => {
    const sets = new EntitySets();
    const set = sets.get('s');
    const chain = Array.from({ length: 50 }, (_, i) =>
      e('Folder', String(i), i === 49 ? [] : [['Folder', String(i + 1)]]),
    );
    sets.apply(message({ reset: true, toVersion: 1 }, [...chain, e('Doc', 'd', [['Folder', '0']])]));
    const doc = new Uid('Doc', 'd');
    const acme = new Uid('Org', 'acme');
    assert.equal(isDescendant(doc, new Uid('Folder', '49'), set), true);
    assert.equal(isDescendant(doc, acme, set), false);
    assert.equal(set.ancestors(key('Folder', '0')).size, 49);

    // Folder 30 moves under acme: everything below it is in acme now, and no longer in folders 31–49.
    sets.apply(message({ fromVersion: 1, toVersion: 2 }, [e('Folder', '30', [['Org', 'acme']])]));
    assert.equal(isDescendant(doc, acme, set), true);
    assert.equal(isDescendant(doc, new Uid('Folder', '49'), set), false);
    assert.equal(isDescendant(new Uid('Folder', '35'), acme, set), false);

    // Removing folder 30 cuts the chain there.
    sets.apply(message({ fromVersion: 2, toVersion: 3 }, [], [{ type: 'Folder', id: '30' }]));
    assert.equal(isDescendant(doc, acme, set), false);
    assert.equal(isDescendant(doc, new Uid('Folder', '29'), set), true);
  });
});
