/**
 * Authorize: the collection's environment and project must be among the client's (or the client has `*`: all of
 * them), and the client's role must grant the endpoint. All are Set lookups prepared when the snapshot was
 * compiled; role wildcards (`*`, `invoices:*`) were expanded to endpoint ids then.
 */
import { WILDCARD } from '../../shared/permissions.ts';
import { refusal } from '../../shared/errors.ts';
import type { Policy, RequestContext } from './policy.ts';

const SCOPE = refusal('GH_ERR_AUTH_FORBIDDEN_SCOPE');
const ENDPOINT = refusal('GH_ERR_AUTH_FORBIDDEN_ENDPOINT');

export function authorize(): Policy {
  return function authorizePolicy(ctx: RequestContext) {
    const principal = ctx.principal!;
    const collection = ctx.collection;
    const { environments, projects } = principal;
    if (
      !(environments.has(collection.environment) || environments.has(WILDCARD)) ||
      !(projects.has(collection.project) || projects.has(WILDCARD))
    )
      return SCOPE;
    return principal.role.endpointIds.has(ctx.endpoint.id) ? undefined : ENDPOINT;
  };
}
