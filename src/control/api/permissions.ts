/**
 * Permission patterns as client roles hold them: `*` (everything), `prefix:*` (every permission under the
 * prefix), or an exact name. The data plane expands these at snapshot compile time; the admin API checks them here.
 */

/** Whether `pattern` grants `permission` (an exact permission name). */
export function grants(pattern: string, permission: string): boolean {
  if (pattern === '*' || pattern === permission) return true;
  return pattern.endsWith(':*') && permission.startsWith(pattern.slice(0, -1));
}

/** Whether holding `held` includes everything `wanted` (itself possibly a pattern) grants. */
export function covers(held: string, wanted: string): boolean {
  if (held === '*' || held === wanted) return true;
  if (!held.endsWith(':*')) return false;
  return wanted.startsWith(held.slice(0, -1));
}

export function anyGrants(patterns: readonly string[], permission: string): boolean {
  return patterns.some((p) => grants(p, permission));
}

/** Permissions that reach the admin API: a caller may hand these out only if it holds them itself. */
export function isAdminPattern(pattern: string): boolean {
  return pattern === '*' || pattern.startsWith('admin:') || pattern === 'admin';
}
