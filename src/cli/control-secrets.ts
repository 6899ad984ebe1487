/**
 * `gatehouse control migrate-ca` and `gatehouse control rotate-key`: the two operations on the secrets a
 * replicated control plane keeps in its store (docs/high-availability.md). Both open the store the way `control
 * start` does (`DATABASE_URL` or `--database-url`, else SQLite in `--data-dir`) with the key ring of
 * `GATEHOUSE_ENCRYPTION_KEY` / `GATEHOUSE_ENCRYPTION_KEY_FILE` (a SQLite installation without one: its
 * `<data dir>/encryption.key`).
 */
import { join, resolve } from 'node:path';
import { ConfigError } from '../config/load.ts';
import { importCaFromDirectory } from '../control/pki/stored-ca.ts';
import { KeyRingError, keyRingFromEnv, localKeyRing } from '../control/secrets/key-ring.ts';
import { isPostgresUrl, openStore, StoreOpenError } from '../control/store/open.ts';
import { type Command, parse } from './command.ts';

const STORE_OPTIONS = {
  'data-dir': { type: 'string', default: 'data' },
  'database-url': { type: 'string' },
} as const;

async function openSecretStore(command: string, values: { 'data-dir': string; 'database-url'?: string }) {
  const dataDir = resolve(values['data-dir']);
  const databaseUrl = values['database-url'] ?? process.env.DATABASE_URL;
  try {
    let keyRing = keyRingFromEnv();
    if (!keyRing && isPostgresUrl(databaseUrl?.trim() ?? ''))
      throw new KeyRingError(
        `${command} on PostgreSQL needs the encryption key the replicas use: set GATEHOUSE_ENCRYPTION_KEY or GATEHOUSE_ENCRYPTION_KEY_FILE`,
      );
    keyRing ??= await localKeyRing(dataDir);
    return { store: await openStore({ databaseUrl, dataDir, keyRing }), keyRing, dataDir };
  } catch (error) {
    if (error instanceof StoreOpenError || error instanceof KeyRingError) throw new ConfigError(error.message);
    throw error;
  }
}

export const controlMigrateCa: Command = {
  usage:
    '[--data-dir DIR] [--ca-dir DIR] [--database-url postgres://…]\n\nCopies the CA of an installation from before 0009-replicas (<data dir>/pki/ca.crt and ca.key) into the store,\nits key encrypted with GATEHOUSE_ENCRYPTION_KEY (or GATEHOUSE_ENCRYPTION_KEY_FILE), so that every replica shares\nit and every bootstrapped gateway keeps trusting the control plane (same CA pin). Run it once, before starting\nthe replicas; running it again is harmless. --ca-dir: the directory holding ca.crt and ca.key (default\n<data dir>/pki). The files are left in place: delete them once every replica runs this version.',
  async run(args) {
    const { values } = parse('control migrate-ca', args, { ...STORE_OPTIONS, 'ca-dir': { type: 'string' } });
    const { store, dataDir } = await openSecretStore('control migrate-ca', values);
    const caDir = resolve(values['ca-dir'] ?? join(dataDir, 'pki'));
    try {
      const result = await importCaFromDirectory(store, caDir);
      switch (result.outcome) {
        case 'missing':
          throw new ConfigError(
            `control migrate-ca: ${caDir} holds no CA (ca.crt and ca.key); pass the directory that does with --ca-dir`,
          );
        case 'conflict':
          throw new ConfigError(
            `control migrate-ca: the store holds another CA already (pin ${result.storedPin}) than ${caDir} (pin ${result.pin}); nothing was changed. Gateways bootstrapped against one of them trust only that one: keep the store's and bootstrap the others again, or restore the store from before the other CA was created`,
          );
        case 'already':
          process.stdout.write(`The store holds the CA of ${caDir} already (pin ${result.pin}); nothing to do.\n`);
          return 0;
        case 'imported':
          process.stdout.write(
            `Imported the CA of ${caDir} into the store (pin ${result.pin}, key encrypted). Every replica uses it from its next start.\n`,
          );
          return 0;
      }
    } finally {
      await store.close();
    }
  },
};

export const controlRotateKey: Command = {
  usage:
    '[--data-dir DIR] [--database-url postgres://…]\n\nRe-encrypts every secret in the store (the CA key, token-signing keys) with the first key of\nGATEHOUSE_ENCRYPTION_KEY (or GATEHOUSE_ENCRYPTION_KEY_FILE); the other keys listed there are used to decrypt.\nRotation: put the new key first and keep the old one after it on every replica, restart them, run this, then\nremove the old key. Secrets stored before encryption at rest are encrypted too.',
  async run(args) {
    const { values } = parse('control rotate-key', args, STORE_OPTIONS);
    const { store, keyRing } = await openSecretStore('control rotate-key', values);
    try {
      const n = await store.resealSecrets().catch((error: unknown) => {
        if (error instanceof KeyRingError) throw new ConfigError(`control rotate-key: ${error.message}`);
        throw error;
      });
      process.stdout.write(
        `Re-encrypted ${n} secret${n === 1 ? '' : 's'} with key ${keyRing.activeKid}; every secret in the store is now encrypted with it.\n`,
      );
      return 0;
    } finally {
      await store.close();
    }
  },
};
