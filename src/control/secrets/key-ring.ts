/**
 * Encryption at rest of the control plane's secrets (the CA key, token-signing keys): AES-256-GCM with a key the
 * operator provides and the database never holds, so that a copy of the database alone discloses no secret.
 *
 * The key ring is one or more 32-byte keys, base64 (or 64 hex digits), separated by commas or new lines, from
 * `GATEHOUSE_ENCRYPTION_KEY` or the file `GATEHOUSE_ENCRYPTION_KEY_FILE` names (a mounted Kubernetes Secret). The
 * first key encrypts; every key decrypts. Each key is known by an id derived from it (`kid`, 16 hex digits of a
 * SHA-256 over a label and the key: it names the key without disclosing it), and every ciphertext carries the id
 * of the key that made it — so rotation is: put the new key first, keep the old one after it, restart the
 * replicas, run `gatehouse control rotate-key` (re-encrypts under the first key), then drop the old key.
 *
 * Sealed value: `gh-sealed:v1:<kid>:<iv, base64url>:<ciphertext and 16-byte tag, base64url>`. The additional
 * authenticated data is the name the value is stored under, so a sealed value copied under another name does not
 * open.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../../shared/atomic-file.ts';

export const SEALED_PREFIX = 'gh-sealed:v1:';
export const ENCRYPTION_KEY_ENV = 'GATEHOUSE_ENCRYPTION_KEY';
export const ENCRYPTION_KEY_FILE_ENV = 'GATEHOUSE_ENCRYPTION_KEY_FILE';

/** The key ring is missing, malformed, or lacks the key a value was sealed with: the operator's to fix. */
export class KeyRingError extends Error {
  override readonly name = 'KeyRingError';
}

export interface KeyRing {
  /** The id of the key new values are sealed with. */
  readonly activeKid: string;
  /** Every key id the ring holds, the active one first. */
  readonly kids: readonly string[];
  seal(name: string, plaintext: string): string;
  /** Opens a sealed value stored under `name`. Throws `KeyRingError` naming the key id it needs when absent. */
  open(name: string, sealed: string): string;
  /** The key id a sealed value names (undefined when it is not sealed). */
  kidOf(value: string): string | undefined;
}

export function isSealed(value: string): boolean {
  return value.startsWith(SEALED_PREFIX);
}

/** The id of a key: 16 hex digits of SHA-256("gatehouse-encryption-key-id" ‖ key). */
export function keyId(key: Buffer): string {
  return createHash('sha256').update('gatehouse-encryption-key-id\0').update(key).digest('hex').slice(0, 16);
}

/** Parses a key ring's text (`where` names its source in errors; the text itself is never repeated). */
export function parseKeyRing(text: string, where: string): KeyRing {
  const entries = text
    .split(/[\s,]+/)
    .map((s) => s.trim())
    .filter(Boolean);
  if (entries.length === 0)
    throw new KeyRingError(`${where} holds no key: generate one with \`openssl rand -base64 32\``);
  const keys = entries.map((entry, i) => {
    const key = /^[0-9a-fA-F]{64}$/.test(entry)
      ? Buffer.from(entry, 'hex')
      : /^[A-Za-z0-9+/_-]+={0,2}$/.test(entry)
        ? Buffer.from(entry, entry.includes('-') || entry.includes('_') ? 'base64url' : 'base64')
        : undefined;
    if (key?.length !== 32)
      throw new KeyRingError(
        `${where}: key ${i + 1} is not 32 bytes in base64 or hex (generate one with \`openssl rand -base64 32\`)`,
      );
    return key;
  });
  return createKeyRing(keys);
}

/** A key ring of raw 32-byte keys, the first one active. */
export function createKeyRing(keys: readonly Buffer[]): KeyRing {
  const byKid = new Map<string, Buffer>();
  for (const key of keys) byKid.set(keyId(key), key);
  const kids = [...byKid.keys()];
  const activeKid = kids[0]!;
  const active = byKid.get(activeKid)!;
  return {
    activeKid,
    kids,
    seal(name, plaintext) {
      const iv = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', active, iv);
      cipher.setAAD(Buffer.from(name));
      const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final(), cipher.getAuthTag()]);
      return `${SEALED_PREFIX}${activeKid}:${iv.toString('base64url')}:${body.toString('base64url')}`;
    },
    open(name, sealed) {
      const parts = sealed.slice(SEALED_PREFIX.length).split(':');
      if (!isSealed(sealed) || parts.length !== 3) throw new KeyRingError(`the stored value of ${name} is not sealed`);
      const [kid, ivText, bodyText] = parts as [string, string, string];
      const key = byKid.get(kid);
      if (!key)
        throw new KeyRingError(
          `${name} is encrypted with key ${kid}, which the encryption key ring (${ENCRYPTION_KEY_ENV} or ${ENCRYPTION_KEY_FILE_ENV}) does not hold; add that key after the active one (ring: ${kids.join(', ')})`,
        );
      const body = Buffer.from(bodyText, 'base64url');
      try {
        const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(ivText, 'base64url'));
        decipher.setAAD(Buffer.from(name));
        decipher.setAuthTag(body.subarray(body.length - 16));
        return Buffer.concat([decipher.update(body.subarray(0, body.length - 16)), decipher.final()]).toString('utf8');
      } catch {
        throw new KeyRingError(`${name} does not decrypt with key ${kid}: the stored value was altered`);
      }
    },
    kidOf(value) {
      return isSealed(value) ? value.slice(SEALED_PREFIX.length).split(':')[0] : undefined;
    },
  };
}

/**
 * The key ring from the environment: `GATEHOUSE_ENCRYPTION_KEY`, or the file `GATEHOUSE_ENCRYPTION_KEY_FILE`
 * names; undefined when neither is set. Both set is a mistake (which one would win?).
 */
export function keyRingFromEnv(env: NodeJS.ProcessEnv = process.env): KeyRing | undefined {
  const inline = env[ENCRYPTION_KEY_ENV];
  const file = env[ENCRYPTION_KEY_FILE_ENV];
  if (inline && file)
    throw new KeyRingError(`set either ${ENCRYPTION_KEY_ENV} or ${ENCRYPTION_KEY_FILE_ENV}, not both`);
  if (inline) return parseKeyRing(inline, ENCRYPTION_KEY_ENV);
  if (!file) return undefined;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new KeyRingError(
      `cannot read the encryption key file ${file} (${ENCRYPTION_KEY_FILE_ENV}): ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
    );
  }
  return parseKeyRing(text, `${ENCRYPTION_KEY_FILE_ENV} (${file})`);
}

/** The key file of a single-process (SQLite) installation, beside its database. */
export const LOCAL_KEY_FILE = 'encryption.key';

/**
 * A SQLite installation's key ring when the operator gives none: `<dataDir>/encryption.key`, generated once (mode
 * 0600). It keeps the secrets in the database file sealed (a copy of gatehouse.db alone discloses none); a
 * replicated installation (PostgreSQL) must be given its key instead, the same on every replica.
 */
export async function localKeyRing(dataDir: string): Promise<KeyRing> {
  const file = join(dataDir, LOCAL_KEY_FILE);
  try {
    return parseKeyRing(await readFile(file, 'utf8'), file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const key = randomBytes(32);
  await writeFileAtomic(file, `${key.toString('base64')}\n`, { mode: 0o600 });
  return createKeyRing([key]);
}
