/**
 * The permission grammar, one for the data plane (roles expanded at snapshot compile time) and the admin API:
 * a role holds exact permission names (`invoices:read`), `<prefix>:*` (every permission under `<prefix>:`), or
 * `*` (everything). In a client's `environments` or `projects`, `*` means all of them (an installation admin).
 */

export const WILDCARD = '*';

/** Whether the pattern `granted` grants an endpoint or operation that requires `permission` (an exact name). */
export function grantsPermission(granted: string, permission: string): boolean {
  if (granted === permission || granted === WILDCARD) return true;
  return granted.endsWith(':*') && permission.startsWith(granted.slice(0, -1));
}

/** Whether holding `held` includes everything `wanted` (itself possibly a pattern) grants. */
export function coversPattern(held: string, wanted: string): boolean {
  if (held === WILDCARD || held === wanted) return true;
  if (!held.endsWith(':*')) return false;
  return wanted.startsWith(held.slice(0, -1));
}
