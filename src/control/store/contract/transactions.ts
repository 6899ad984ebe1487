/** The store contract: transactions: all or nothing, serialized, and guarded against misuse. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Store } from '../store.ts';
import { workspace, WS, role, client, rejectsWithConflict } from './fixtures.ts';

export function transactionsContract(store: Store): void {
  describe('transactions', () => {
    it('commits every write of a transaction and returns its value', async () => {
      const result = await store.transaction(async (tx) => {
        await tx.insertWorkspace(workspace());
        await tx.insertRole(role());
        assert.deepEqual(await tx.getRole({ id: role().id }), role(), 'reads its own writes');
        return 42;
      });
      assert.equal(result, 42);
      assert.deepEqual(await store.getWorkspace({ id: WS }), workspace());
      assert.deepEqual(await store.getRole({ id: role().id }), role());
    });

    it('rolls back every write of a failed transaction', async () => {
      await store.insertWorkspace(workspace());
      await assert.rejects(
        store.transaction(async (tx) => {
          await tx.insertRole(role());
          await tx.insertClient(client());
          await tx.setSetting('x', 'y');
          throw new Error('changed my mind');
        }),
        /changed my mind/,
      );
      assert.equal(await store.getRole({ id: role().id }), undefined);
      assert.equal(await store.getClient(client().id), undefined);
      assert.equal(await store.getSetting('x'), undefined);
    });

    it('rolls back a transaction whose write conflicted, reporting the conflict', async () => {
      await store.insertWorkspace(workspace());
      await store.insertRole(role());
      await rejectsWithConflict(
        store.transaction(async (tx) => {
          await tx.insertClient(client());
          await tx.insertRole(role({ id: 'rol_bbbbbbbbbbbbbbbbbbbb' }));
        }),
        'role.name',
      );
      assert.equal(await store.getClient(client().id), undefined);
    });

    it('runs nothing more in a transaction after a statement failed, even if the error was caught', async () => {
      await store.insertWorkspace(workspace());
      await store.insertRole(role());
      await assert.rejects(
        store.transaction(async (tx) => {
          await tx.insertRole(role({ id: 'rol_bbbbbbbbbbbbbbbbbbbb' })).catch(() => {});
          await tx.insertClient(client());
        }),
        /nothing more can run/,
      );
      assert.equal(await store.getClient(client().id), undefined);
    });

    it('rolls back a transaction whose failed statement the callback caught, rather than commit half of it', async () => {
      await store.insertWorkspace(workspace());
      await store.insertRole(role());
      await rejectsWithConflict(
        store.transaction(async (tx) => {
          await tx.insertClient(client());
          await tx.insertRole(role({ id: 'rol_bbbbbbbbbbbbbbbbbbbb' })).catch(() => {});
          return 'done';
        }),
        'role.name',
      );
      assert.equal(await store.getClient(client().id), undefined);
    });

    it('concurrent transactions do not interleave', async () => {
      const log: string[] = [];
      await store.setSetting('counter', '0');
      await Promise.all(
        Array.from({ length: 5 }, (_, i) =>
          store.transaction(async (tx) => {
            log.push(`begin ${i}`);
            const n = Number(await tx.getSetting('counter'));
            // Widens the window between read and write (the scenario, not a wait): correct serialization passes
            // whatever the timing.
            await sleep(5);
            await tx.setSetting('counter', String(n + 1));
            log.push(`end ${i}`);
          }),
        ),
      );
      assert.equal(await store.getSetting('counter'), '5', 'no lost update');
      for (let i = 0; i < log.length; i += 2) {
        assert.match(log[i]!, /^begin /);
        assert.equal(log[i + 1], log[i]!.replace('begin', 'end'), `each transaction ran alone: ${log.join(', ')}`);
      }
    });

    it('refuses the store itself inside a transaction callback, which would hang or miss the writes', async () => {
      await assert.rejects(
        store.transaction(async () => {
          await store.getSetting('x');
        }),
        /use the tx argument/,
      );
      assert.equal(await store.getSetting('x'), undefined, 'usable again afterwards');
    });

    it('refuses a nested transaction', async () => {
      await assert.rejects(
        store.transaction(async () => store.transaction(async () => 1)),
        /do not nest/,
      );
    });

    it('refuses a transaction handle used after its transaction ended', async () => {
      let escaped: Parameters<Parameters<Store['transaction']>[0]>[0] | undefined;
      await store.transaction(async (tx) => {
        escaped = tx;
      });
      await assert.rejects(escaped!.setSetting('x', 'y'), /has ended/);
      assert.equal(await store.getSetting('x'), undefined);
    });
  });
}
