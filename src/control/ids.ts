/** Server-generated resource ids: a type prefix and 20 base62 characters (≈119 random bits), e.g. `cli_4fQ…`. */
import { randomBytes } from 'node:crypto';

const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

export type IdPrefix = 'wsp' | 'col' | 'rol' | 'cli' | 'usr' | 'gw' | 'aud' | 'drv' | 'alr' | 'ald';

export function newId(prefix: IdPrefix): string {
  let out = '';
  while (out.length < 20) {
    for (const byte of randomBytes(24)) {
      if (byte >= 248) continue; // 248 = 4 × 62: keeps the digits unbiased
      out += ALPHABET[byte % 62];
      if (out.length === 20) break;
    }
  }
  return `${prefix}_${out}`;
}

export function nowIso(now = Date.now()): string {
  return new Date(now).toISOString();
}
