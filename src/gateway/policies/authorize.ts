/**
 * Authorize: the collection's environment and project must be among the client's (or the client has `*`: all of
 * them), and the client's role must grant the endpoint. All are Set lookups prepared when the snapshot was
 * compiled; role wildcards (`*`, `invoices:*`) were expanded to endpoint ids then.
 */
import { WILDCARD } from '../../shared/permissions.ts';
import { type Refusal, refusal } from '../../shared/errors.ts';
import type { CompiledEndpoint } from '../snapshot/compiled.ts';
import type { Policy, RequestContext } from './policy.ts';
import { comparableParam } from '../http/canonical-path.ts';
import type { DerivedClaims } from '../tokens/derived.ts';
import { grantsPermission } from '../../shared/permissions.ts';

const DERIVED_FORBIDDEN = refusal('GH_ERR_DERIVED_FORBIDDEN');

/**
 * A derived credential narrows its root key further: one of its permissions must grant the endpoint's, and every
 * path parameter it is pinned to must be in the path with that value (an endpoint without the parameter is
 * refused: a pin fails closed).
 */
function narrowed(ctx: RequestContext, claims: DerivedClaims, explain: boolean): Refusal | undefined {
  const endpoint = ctx.endpoint;
  if (!claims.s.some((s) => grantsPermission(s, endpoint.permission)))
    return explain
      ? refusal(
          'GH_ERR_DERIVED_FORBIDDEN',
          `This endpoint needs the permission "${endpoint.permission}", which the derived credential was not minted with.`,
        )
      : DERIVED_FORBIDDEN;
  if (claims.r !== undefined) {
    for (const name in claims.r) {
      const i = endpoint.paramNames.indexOf(name);
      const raw = i === -1 ? undefined : ctx.params?.[i];
      if (raw === undefined || comparableParam(raw) !== claims.r[name])
        return explain
          ? refusal('GH_ERR_DERIVED_FORBIDDEN', `The derived credential is pinned to ${name}=${claims.r[name]}.`)
          : DERIVED_FORBIDDEN;
    }
  }
  return undefined;
}

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
    if (!principal.role.endpointIds.has(ctx.endpoint.id)) return forbidden(ctx.endpoint);
    return ctx.derived === undefined ? undefined : narrowed(ctx, ctx.derived, options.explain);
  };
}
