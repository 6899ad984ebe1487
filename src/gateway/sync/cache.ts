/**
 * An edge gateway's fallback cache: `DIR/cache/snapshot.json`, the last snapshot it applied, so that it keeps
 * serving — and can start — while the control plane is out of reach.
 *
 * The file carries an HMAC-SHA256 over its version, content hash and canonical body, keyed by a key derived
 * (HKDF) from the gateway's private key: a plain checksum would only catch accidents, since whoever edits the
 * file can recompute it; the MAC cannot be recomputed without the key, which is in the same directory but
 * readable only by the gateway's user (mode 0600). The recorded content hash (the one the control plane sent, and
 * that the gateway checked when it received the snapshot) is covered by the MAC, so it is not computed again at
 * start-up, where hashing 10,000 clients would cost a quarter of a second; the body is parsed and validated again
 * (`parseSnapshot`), since this software may be newer than the one that wrote it. A file that fails any check is
 * refused as a whole.
 *
 * Writes are atomic and durable (src/shared/atomic-file.ts: temporary file, fsync, rename, fsync of the directory)
 * and mode 0600: a crash or a power loss leaves the old file or the new one.
 */
import { createHmac, createPrivateKey, hkdfSync, timingSafeEqual } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { formatIssues, type Snapshot } from '../../config/schema.ts';
import { canonicalJson, encodeSnapshot } from '../../config/snapshot-encoding.ts';
import { parseSnapshot } from '../../config/snapshot-parse.ts';
import { writeFileAtomic as writeFileAtomicShared } from '../../shared/atomic-file.ts';

const FORMAT = 'gatehouse-snapshot-cache/1';

export interface CachedSnapshot {
  snapshot: Snapshot;
  version: number;
  /** `snapshotHash` of the snapshot. */
  hash: string;
  savedAt: string;
}

export type CacheRead =
  { status: 'missing' } | { status: 'ok'; cached: CachedSnapshot } | { status: 'refused'; reason: string };

export interface SnapshotCacheFile {
  readonly file: string;
  /** Reads and checks the file; never throws. */
  read(): Promise<CacheRead>;
  /** Replaces the file atomically with this snapshot (whose `version` must be a number). */
  write(snapshot: Snapshot, hash: string): Promise<void>;
  /** Uses the key derived from this private key from now on (after a certificate renewal changed the key). */
  rekey(keyPem: string): void;
}

/** The cache of the config directory `dir`, keyed by the gateway's private key (PEM). */
export function openSnapshotCache(dir: string, keyPem: string): SnapshotCacheFile {
  const cacheDir = join(dir, 'cache');
  const file = join(cacheDir, 'snapshot.json');
  let key = deriveCacheKey(keyPem);
  const mac = (version: number, hash: string, body: string) =>
    createHmac('sha256', key).update(`${FORMAT}\n${version}\n${hash}\n${body}`).digest();

  return {
    file,
    async read() {
      let text: string;
      try {
        text = await readFile(file, 'utf8');
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') return { status: 'missing' };
        return { status: 'refused', reason: `cannot be read (${code ?? 'error'})` };
      }
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        return { status: 'refused', reason: 'is not valid JSON (corrupt)' };
      }
      const entry = parsed as Record<string, unknown>;
      if (
        entry === null ||
        typeof entry !== 'object' ||
        entry.format !== FORMAT ||
        !Number.isSafeInteger(entry.version) ||
        typeof entry.hash !== 'string' ||
        typeof entry.mac !== 'string' ||
        typeof entry.body !== 'string' ||
        typeof entry.savedAt !== 'string'
      ) {
        return { status: 'refused', reason: `is not a ${FORMAT} file (corrupt)` };
      }
      const version = entry.version as number;
      const expected = mac(version, entry.hash, entry.body);
      const given = Buffer.from(entry.mac, 'hex');
      if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
        return {
          status: 'refused',
          reason: 'failed its integrity check (the file was modified, or written with another gateway key)',
        };
      }
      let snapshot: Snapshot;
      try {
        const result = parseSnapshot(JSON.parse(entry.body));
        if (!result.success)
          return {
            status: 'refused',
            reason: `holds an invalid snapshot: ${formatIssues(result.error, 3).replaceAll('\n', '; ')}`,
          };
        snapshot = result.data;
      } catch {
        return { status: 'refused', reason: 'holds a snapshot that is not valid JSON' };
      }
      if (snapshot.version !== version)
        return { status: 'refused', reason: `says version ${version} but holds version ${String(snapshot.version)}` };
      return { status: 'ok', cached: { snapshot, version, hash: entry.hash, savedAt: entry.savedAt } };
    },
    async write(snapshot, hash) {
      if (typeof snapshot.version !== 'number') throw new TypeError('a cached snapshot needs a numeric version');
      const body = canonicalJson(encodeSnapshot(snapshot));
      const text = JSON.stringify({
        format: FORMAT,
        version: snapshot.version,
        hash,
        savedAt: new Date().toISOString(),
        mac: mac(snapshot.version, hash, body).toString('hex'),
        body,
      });
      await mkdir(cacheDir, { recursive: true, mode: 0o700 });
      await writeFileAtomic(file, text, 0o600);
    },
    rekey(keyPem) {
      key = deriveCacheKey(keyPem);
    },
  };
}

/** HKDF-SHA256 of the private key (PKCS#8 DER): a key for one purpose only, never the signing key itself. */
function deriveCacheKey(keyPem: string): Buffer {
  const der = createPrivateKey(keyPem).export({ type: 'pkcs8', format: 'der' });
  return Buffer.from(hkdfSync('sha256', der, 'gatehouse', 'gatehouse snapshot cache v1', 32));
}

/**
 * Replaces `file` with `content`, created with `mode`, atomically and durably: {@link writeFileAtomicShared} of
 * src/shared/atomic-file.ts, under the name and signature certificate-renewal.ts uses.
 */
export async function writeFileAtomic(file: string, content: string, mode: number): Promise<void> {
  await writeFileAtomicShared(file, content, { mode });
}
