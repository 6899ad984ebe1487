/**
 * Authorize: the collection's environment and project must be among the client's (or the client has `*`: all of
 * them), and the client's role must grant the endpoint. All are Set lookups prepared when the snapshot was
 * compiled; role wildcards (`*`, `invoices:*`) were expanded to endpoint ids then.
 */
import { WILDCARD } from '../../shared/permissions.ts';
import { type Refusal, refusal } from '../../shared/errors.ts';
import type { CompiledEndpoint } from '../snapshot/compiled.ts';
import type { Policy, RequestContext } from './policy.ts';

const SCOPE = refusal('GH_ERR_AUTH_FORBIDDEN_SCOPE');
const ENDPOINT = refusal('GH_ERR_AUTH_FORBIDDEN_ENDPOINT');

/**
 * `explain`: a refusal names the permission the endpoint needs (detail, `requiredPermission`), built once per
 * endpoint of the snapshot; otherwise the bare code (a collection with `hidePermissions`).
 */
export function authorize(options: { explain: boolean } = { explain: true }): Policy {
  const refusals = new WeakMap<CompiledEndpoint, Refusal>();
  const forbidden = (endpoint: CompiledEndpoint): Refusal => {
    if (!options.explain) return ENDPOINT;
    let r = refusals.get(endpoint);
    if (r === undefined) {
      r = {
        code: 'GH_ERR_AUTH_FORBIDDEN_ENDPOINT',
        detail: `${endpoint.method} ${endpoint.collection.basePath === '/' ? '' : endpoint.collection.basePath}${endpoint.template} needs the permission "${endpoint.permission}", which the API client's role does not grant: ask for a role that grants it.`,
        extensions: { requiredPermission: endpoint.permission },
      };
      refusals.set(endpoint, r);
    }
    return r;
  };
  return function authorizePolicy(ctx: RequestContext) {
    const principal = ctx.principal!;
    const collection = ctx.collection;
    const { environments, projects } = principal;
    if (
      !(environments.has(collection.environment) || environments.has(WILDCARD)) ||
      !(projects.has(collection.project) || projects.has(WILDCARD))
    )
      return SCOPE;
    return principal.role.endpointIds.has(ctx.endpoint.id) ? undefined : forbidden(ctx.endpoint);
  };
}
