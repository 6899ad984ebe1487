/**
 * Installation settings in SQL: one key/value row each. Secret settings are sealed with the key ring (when the
 * store has one) and their row records the key's id; a sealed value is opened on read.
 */
import { isSealed, KeyRingError, type KeyRing } from '../../secrets/key-ring.ts';
import type { SettingOps } from '../store.ts';
import type { Run } from './statement-runner.ts';

/** The settings that hold secrets: the CA's private key and every environment's token-signing keys. */
export function isSecretSetting(key: string): boolean {
  return key === CA_KEY_SETTING || key.startsWith('signing-keys:');
}

/** The control plane CA's certificate (PEM, public) and private key (PKCS#8 PEM, secret). */
export const CA_CERT_SETTING = 'ca:certificate';
export const CA_KEY_SETTING = 'ca:key';

export function settingQueries(run: Run, ring: KeyRing | undefined): SettingOps {
  return {
    async getSetting(key: string): Promise<string | undefined> {
      const row = await run((db) =>
        db.selectFrom('settings').select('value').where('key', '=', key).executeTakeFirst(),
      );
      if (row === undefined || !isSealed(row.value)) return row?.value;
      if (!ring)
        throw new KeyRingError(
          `the setting ${key} is encrypted, but no encryption key is configured: set GATEHOUSE_ENCRYPTION_KEY or GATEHOUSE_ENCRYPTION_KEY_FILE`,
        );
      return ring.open(key, row.value);
    },

    async setSetting(key: string, value: string): Promise<void> {
      const sealed = ring !== undefined && isSecretSetting(key);
      const row = { value: sealed ? ring.seal(key, value) : value, key_id: sealed ? ring.activeKid : null };
      await run((db) =>
        db
          .insertInto('settings')
          .values({ key, ...row })
          .onConflict((oc) => oc.column('key').doUpdateSet(row))
          .execute(),
      );
    },
  };
}
