/**
 * Environment and project scoping of admin API callers. A caller sees a collection when its environment and
 * project are among the caller's; it sees an API client only when the client's scope lies within its own (so it
 * can never create, read or change a client that reaches further than itself).
 */
import type { Caller } from './operation.ts';
import { AdminError } from './errors.ts';

export function hasEnvironment(caller: Caller, environment: string): boolean {
  return caller.environments.includes('*') || caller.environments.includes(environment);
}

export function hasProject(caller: Caller, project: string): boolean {
  return caller.projects.includes('*') || caller.projects.includes(project);
}

/** Whether every entry of `scope` (possibly `*`) is within `held`. */
export function within(held: readonly string[], scope: readonly string[]): boolean {
  if (held.includes('*')) return true;
  return scope.every((s) => s !== '*' && held.includes(s));
}

export function clientInScope(
  caller: Caller,
  client: { environments: readonly string[]; projects: readonly string[] },
): boolean {
  return within(caller.environments, client.environments) && within(caller.projects, client.projects);
}

export function requireProject(caller: Caller, project: string, where = 'body.project'): void {
  if (!hasProject(caller, project))
    throw new AdminError(
      'GH_ERR_ADMIN_OUT_OF_SCOPE',
      `${where}: project "${project}" is not among this caller's projects`,
    );
}

/** Refuses an environment outside the caller's scope; `where` (e.g. `body.to`) leads the message when given. */
export function requireEnvironment(caller: Caller, environment: string, where?: string): void {
  if (!hasEnvironment(caller, environment))
    throw new AdminError(
      'GH_ERR_ADMIN_OUT_OF_SCOPE',
      `${where ? `${where}: ` : ''}environment "${environment}" is not among this caller's environments`,
    );
}

/** Whether the caller reaches every environment and every project (`*` for both). */
export function scopedToAll(caller: Caller): boolean {
  return caller.environments.includes('*') && caller.projects.includes('*');
}
