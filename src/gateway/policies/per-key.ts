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

/** How a policy's refusal names its limits and its store when the store is unavailable. */
export interface StoreUnavailable {
  code: ErrorCode;
  /** One limit, e.g. "rate limit". */
  what: string;
  /** The store, e.g. "rate-limit store". */
  store: string;
}

/**
 * The 503 (`Retry-After: 1`) for the `closed` limits (by scope name, `onStoreFailure: closed`) while `store` is
 * degraded; undefined when none applies.
 */
export function failClosed(
  store: { readonly degraded?: boolean },
  closed: readonly string[],
  names: StoreUnavailable,
): Refusal | undefined {
  if (closed.length === 0 || store.degraded !== true) return undefined;
  const many = closed.length > 1;
  return refusal(
    names.code,
    `The ${closed.join(' and ')} ${names.what}${many ? 's' : ''} cannot be checked: the shared ${names.store} is unavailable and ${many ? 'they are' : 'it is'} configured to fail closed (onStoreFailure: closed).`,
    { 'retry-after': '1' },
  );
}
