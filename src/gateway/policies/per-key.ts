/**
 * What the per-key limit policies (rate limit, concurrency caps) share: their limits resolved once per key entry,
 * and the refusal of the limits set to fail closed while the shared store is degraded.
 */
import { refusal, type ErrorCode, type Refusal } from '../../shared/errors.ts';
import type { KeyEntry } from '../snapshot/compiled.ts';

/**
 * `resolve`, called once per key entry of the snapshot the policy was compiled with: both are replaced together,
 * so entries of an older snapshot are collected with it. null: no limit applies to this key.
 */
export function perKeyEntry<T extends object>(resolve: (entry: KeyEntry) => T | null): (entry: KeyEntry) => T | null {
  const resolved = new WeakMap<KeyEntry, T | null>();
  return (entry) => {
    let s = resolved.get(entry);
    if (s === undefined) {
      s = resolve(entry);
      resolved.set(entry, s);
    }
    return s;
  };
}

/**
 * The 503 (`Retry-After: 1`) for the `closed` limits (by scope name, `onStoreFailure: closed`) while `store` is
 * degraded; undefined when none applies. `what` names one limit ("rate limit"), `storeName` the store.
 */
export function failClosed(
  store: { readonly degraded?: boolean },
  closed: readonly string[],
  code: ErrorCode,
  what: string,
  storeName: string,
): Refusal | undefined {
  if (closed.length === 0 || store.degraded !== true) return undefined;
  const many = closed.length > 1;
  return refusal(
    code,
    `The ${closed.join(' and ')} ${what}${many ? 's' : ''} cannot be checked: the shared ${storeName} is unavailable and ${many ? 'they are' : 'it is'} configured to fail closed (onStoreFailure: closed).`,
    { 'retry-after': '1' },
  );
}
