/**
 * The admin API's view of the permission grammar (src/shared/permissions.ts): which patterns reach the admin API,
 * and whether a caller holds what it hands out.
 */

import { coversPattern, grantsPermission, WILDCARD } from '../../shared/permissions.ts';

/** Whether `pattern` grants `permission` (an exact permission name): the one grammar (src/shared/permissions.ts). */
export const grants = grantsPermission;

/** Whether holding `held` includes everything `wanted` (itself possibly a pattern) grants. */
export const covers = coversPattern;

export function anyGrants(patterns: readonly string[], permission: string): boolean {
  return patterns.some((p) => grants(p, permission));
}

/** Permissions that reach the admin API: a caller may hand these out only if it holds them itself. */
export function isAdminPattern(pattern: string): boolean {
  return pattern === WILDCARD || pattern.startsWith('admin:') || pattern === 'admin';
}
