/**
 * The contract every `Store` keeps, as one `node:test` suite that runs against each implementation
 * (`store.test.ts`: SQLite and PostgreSQL). `open` must return a fresh, empty, migrated store for every test.
 * The tests of each resource live in `contract/` (their records in `contract/fixtures.ts`).
 */
import { afterEach, beforeEach, describe } from 'node:test';
import type { Store } from './store.ts';
import { auditContract } from './contract/audit.ts';
import { clientsContract } from './contract/clients.ts';
import { collectionsContract } from './contract/collections.ts';
import { entitiesContract } from './contract/entities.ts';
import { gatewaysContract } from './contract/gateways.ts';
import { rolesContract } from './contract/roles.ts';
import { replicasContract } from './contract/replicas.ts';
import { revocationsContract } from './contract/revocations.ts';
import { settingsContract } from './contract/settings.ts';
import { snapshotsContract } from './contract/snapshots.ts';
import { telemetryContract } from './contract/telemetry.ts';
import { transactionsContract } from './contract/transactions.ts';
import { usersContract } from './contract/users.ts';
import { workspacesContract } from './contract/workspaces.ts';

/** Registers the contract suite for one store implementation. */
export function storeContract(name: string, open: () => Promise<Store>): void {
  describe(`${name} store`, () => {
    let current: Store | undefined;

    beforeEach(async () => {
      current = await open();
    });
    afterEach(async () => {
      await current?.close();
      current = undefined;
    });

    /**
     * The store of the test that is running: each test opens a fresh one, while the suites below are registered
     * once, so they are handed this stand-in that forwards every property to the current store.
     */
    const store = new Proxy({} as Store, {
      get(_target, property) {
        if (current === undefined) throw new Error('the contract suite used its store outside a test');
        const value: unknown = Reflect.get(current, property, current);
        return typeof value === 'function' ? value.bind(current) : value;
      },
    });

    settingsContract(store);
    replicasContract(store);
    workspacesContract(store);
    collectionsContract(store);
    entitiesContract(store);
    rolesContract(store);
    clientsContract(store);
    usersContract(store);
    snapshotsContract(store);
    gatewaysContract(store);
    telemetryContract(store);
    revocationsContract(store);
    auditContract(store);
    transactionsContract(store);
  });
}
