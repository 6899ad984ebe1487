/**
 * Gatehouse API keys: `ghk_` + 32 base62 random characters (≈190 bits) + 6 base62 characters of the CRC32 of
 * everything before them. The prefix lets secret scanners find leaked keys; the checksum lets the gateway refuse
 * typos and garbage without a lookup. Keys are stored only as SHA-256: with this much randomness a slow hash buys
 * nothing, and one SHA-256 keeps verification in-process and cheap.
 */
import { hash, randomBytes } from 'node:crypto';
import { crc32 } from 'node:zlib';

export const KEY_PREFIX = 'ghk_';

export interface GeneratedKey {
  /** The key itself: show it once, never store or log it. */
  key: string;
  /** SHA-256 of the key as 64 lower-case hex digits: what the configuration stores. */
  hash: string;
  /** Display id: the first 12 characters of the key + '...' (ASCII, so log lines stay one-byte strings). Safe to log. */
  id: string;
}

const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const RANDOM_LENGTH = 32;
const CHECKSUM_LENGTH = 6; // 62^6 > 2^32 > 62^5
const BODY_LENGTH = KEY_PREFIX.length + RANDOM_LENGTH;
const KEY_LENGTH = BODY_LENGTH + CHECKSUM_LENGTH;
/** Bytes at or above this would make `byte % 62` favour the low digits, so they are drawn again. */
const UNBIASED_LIMIT = 256 - (256 % ALPHABET.length); // 248

/** Base62 digit value by char code, -1 outside the alphabet. */
const DIGIT = new Int8Array(128).fill(-1);
for (let i = 0; i < ALPHABET.length; i++) DIGIT[ALPHABET.charCodeAt(i)] = i;

export function generateKey(): GeneratedKey {
  let random = '';
  while (random.length < RANDOM_LENGTH) {
    // 40 bytes usually suffice (each is kept with probability 248/256); loop on the rare shortfall.
    for (const byte of randomBytes(40)) {
      if (byte >= UNBIASED_LIMIT) continue;
      random += ALPHABET[byte % ALPHABET.length];
      if (random.length === RANDOM_LENGTH) break;
    }
  }
  const body = KEY_PREFIX + random;
  const key = body + encodeChecksum(crc32(body));
  return { key, hash: hashKey(key), id: `${key.slice(0, 12)}...` };
}

/**
 * CRC-32 (IEEE) table for `isWellFormedKey`. zlib's crc32 computes the same value (it makes the checksum in
 * `generateKey`, and a test ties the two), but on the request path a slice and a native call cost more than the
 * whole check: this loop runs on the key's characters as they are.
 */
const CRC_TABLE = new Int32Array(256);
for (let n = 0; n < 256; n++) {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  CRC_TABLE[n] = c;
}

/** Cheap structural + checksum check, no lookup: length, prefix, charset, CRC32. */
export function isWellFormedKey(candidate: string): boolean {
  if (typeof candidate !== 'string' || candidate.length !== KEY_LENGTH || !candidate.startsWith(KEY_PREFIX))
    return false;
  let crc = -1;
  for (let i = 0; i < KEY_PREFIX.length; i++) crc = CRC_TABLE[(crc ^ candidate.charCodeAt(i)) & 0xff]! ^ (crc >>> 8);
  let checksum = 0;
  for (let i = KEY_PREFIX.length; i < KEY_LENGTH; i++) {
    const code = candidate.charCodeAt(i);
    const digit = code < 128 ? DIGIT[code]! : -1;
    if (digit < 0) return false;
    // All characters are ASCII here, so their codes are the UTF-8 bytes zlib's crc32 sums in generateKey.
    if (i < BODY_LENGTH) crc = CRC_TABLE[(crc ^ code) & 0xff]! ^ (crc >>> 8);
    else checksum = checksum * ALPHABET.length + digit;
  }
  return checksum === (crc ^ -1) >>> 0;
}

/** A Gatehouse key (or what is left of one with a broken checksum) inside a longer string. */
const KEY_INSIDE = /ghk_[0-9A-Za-z]{32}/;

/**
 * Whether a request target part (a canonical path, or a raw query) carries something shaped like a Gatehouse key,
 * as written or once percent-decoded (`%67hk_…`, `+` as a space): such a URL is refused rather than forwarded, so
 * that a key never reaches a backend, its access log or a cache. Cheap when there is no `ghk_` and no `%`.
 */
export function carriesKey(part: string): boolean {
  if (part.indexOf(KEY_PREFIX) !== -1 && KEY_INSIDE.test(part)) return true;
  // Decoded again while escapes remain (`%2567hk_…` is the key to a backend that decodes twice), a few rounds at most.
  let decoded = part;
  for (let round = 0; round < 4 && decoded.indexOf('%') !== -1; round++) {
    decoded = decodeEscapes(decoded.replaceAll('+', ' '));
    if (KEY_INSIDE.test(decoded)) return true;
  }
  return false;
}

/** The well-formed `%XX` escapes decoded as UTF-8 where they can be, byte by byte otherwise (a stray `%` stays). */
function decodeEscapes(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s.replace(/%[0-9A-Fa-f]{2}/g, (escape) => String.fromCharCode(parseInt(escape.slice(1), 16)));
  }
}

/** SHA-256 of the key (UTF-8) as 64 lower-case hex digits. */
export function hashKey(key: string): string {
  return hash('sha256', key, 'hex');
}

/**
 * A display form for logs: the prefix and the first 4 random characters of a Gatehouse key, then '…'. Anything
 * else (a foreign or truncated credential) shows at most a third of its characters, and never more than 8.
 * Characters outside printable ASCII are shown as '?'.
 */
export function redactKey(key: string): string {
  const shown = Math.min(KEY_PREFIX.length + 4, Math.floor(key.length / 3));
  let out = '';
  for (let i = 0; i < shown; i++) {
    const code = key.charCodeAt(i);
    out += code >= 0x21 && code <= 0x7e ? key[i] : '?';
  }
  return `${out}…`;
}

function encodeChecksum(value: number): string {
  let out = '';
  for (let i = 0; i < CHECKSUM_LENGTH; i++) {
    out = ALPHABET[value % ALPHABET.length] + out;
    value = Math.floor(value / ALPHABET.length);
  }
  return out;
}
