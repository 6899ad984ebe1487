/**
 * The control plane's CA in the store, shared by every replica: the certificate in the setting `ca:certificate`,
 * the private key in `ca:key`, sealed with the operator's encryption key (store/sql/settings.ts). The first replica
 * to start creates it in one transaction (serialized across replicas on PostgreSQL), so replicas starting at once
 * agree on one CA; a replica started later loads it and is a full member at once.
 *
 * An installation from before the CA moved into the store kept it in `<data dir>/pki` (ca.crt, ca.key, mode 0600):
 * `importCaFromDirectory` (the command `gatehouse control migrate-ca`) copies it in, so that every gateway's pin
 * still holds. A store that has no CA yet imports the data directory's at start too, when it finds one.
 */
import type { Logger } from 'pino';
import { CA_CERT_SETTING, CA_KEY_SETTING } from '../store/sql/settings.ts';
import type { Store } from '../store/store.ts';
import {
  caPin,
  certificateAuthority,
  createCaMaterial,
  readCaFiles,
  type CaMaterial,
  type CertificateAuthority,
} from './ca.ts';

/** The store's CA; created (or imported from `legacyDir` when it holds one) when the store has none. */
export async function openStoredCertificateAuthority(
  store: Store,
  options: { legacyDir?: string; logger?: Logger } = {},
): Promise<CertificateAuthority> {
  const stored = await readStoredCa(store);
  if (stored) return certificateAuthority(stored);
  const legacy = options.legacyDir === undefined ? undefined : await readCaFiles(options.legacyDir);
  const candidate = legacy ?? (await createCaMaterial());
  if (legacy) await certificateAuthority(legacy); // refuses a key that does not belong to its certificate
  const { material, created } = await storeCaIfAbsent(store, candidate);
  if (created)
    options.logger?.info(
      { pin: caPin(material.certPem), from: legacy ? options.legacyDir : undefined },
      legacy
        ? 'imported the CA of the data directory into the store (every replica shares it from now on)'
        : 'created the control plane CA in the store',
    );
  return certificateAuthority(material);
}

export type CaImport =
  | { outcome: 'imported' | 'already'; pin: string }
  | { outcome: 'conflict'; pin: string; storedPin: string }
  | { outcome: 'missing' };

/**
 * Copies the CA of `dir` (ca.crt, ca.key) into the store. `already` when the store holds that very CA, `conflict`
 * when it holds another one (nothing is changed: the gateways pinned to one of them would break), `missing` when
 * `dir` has no CA.
 */
export async function importCaFromDirectory(store: Store, dir: string): Promise<CaImport> {
  const legacy = await readCaFiles(dir);
  if (!legacy) return { outcome: 'missing' };
  await certificateAuthority(legacy);
  const pin = caPin(legacy.certPem);
  const { material, created } = await storeCaIfAbsent(store, legacy);
  if (created) return { outcome: 'imported', pin };
  const storedPin = caPin(material.certPem);
  return storedPin === pin ? { outcome: 'already', pin } : { outcome: 'conflict', pin, storedPin };
}

async function readStoredCa(store: Store): Promise<CaMaterial | undefined> {
  const certPem = await store.getSetting(CA_CERT_SETTING);
  const keyPem = await store.getSetting(CA_KEY_SETTING);
  if (certPem === undefined && keyPem === undefined) return undefined;
  if (certPem === undefined || keyPem === undefined)
    throw new Error(`the store holds only half of the control plane CA (${CA_CERT_SETTING} or ${CA_KEY_SETTING})`);
  return { certPem, keyPem };
}

async function storeCaIfAbsent(
  store: Store,
  candidate: CaMaterial,
): Promise<{ material: CaMaterial; created: boolean }> {
  return store.transaction(async (tx) => {
    const certPem = await tx.getSetting(CA_CERT_SETTING);
    if (certPem !== undefined) {
      const keyPem = await tx.getSetting(CA_KEY_SETTING);
      if (keyPem === undefined)
        throw new Error(`the store holds the CA certificate but not its key (${CA_KEY_SETTING})`);
      return { material: { certPem, keyPem }, created: false };
    }
    await tx.setSetting(CA_KEY_SETTING, candidate.keyPem);
    await tx.setSetting(CA_CERT_SETTING, candidate.certPem);
    return { material: candidate, created: true };
  });
}
