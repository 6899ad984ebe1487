/**
 * Authorize: the collection's environment and project must be among the client's, and the client's role must
 * grant the endpoint. Both are Set lookups prepared when the snapshot was compiled.
 */
import { refusal } from '../http/errors.ts';
import type { Policy, RequestContext } from './policy.ts';

const SCOPE = refusal('GH_ERR_AUTH_FORBIDDEN_SCOPE');
const ENDPOINT = refusal('GH_ERR_AUTH_FORBIDDEN_ENDPOINT');

export function authorize(): Policy {
  return function authorizePolicy(ctx: RequestContext) {
    const principal = ctx.principal!;
    const collection = ctx.collection;
    if (!principal.environments.has(collection.environment) || !principal.projects.has(collection.project)) return SCOPE;
    return principal.role.endpointIds.has(ctx.endpoint.id) ? undefined : ENDPOINT;
  };
}
