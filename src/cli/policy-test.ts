/**
 * `gatehouse policy test`: decides one request against a collection's published resource policies, with the
 * relationship data the gateways hold, by the gateway's own code (`resourceDecisions`), and prints the decision
 * and the policies that decided it. Nothing is sent through a gateway.
 */
import type { CollectionResource, CollectionVersion } from '../config/resources.ts';
import { type EntityInput } from '../config/resource-policies.ts';
import { CollectionSchema } from '../config/schema.ts';
import { EndpointMatcher, type RouteEndpoint } from '../gateway/http/router.ts';
import type { RequestContext } from '../gateway/policies/policy.ts';
import { compilePolicySet } from '../gateway/policies/resource-policy/compile-cedar.ts';
import { entityStore } from '../gateway/policies/resource-policy/entities.ts';
import { NO_RESOURCE, resourceDecisions } from '../gateway/policies/resource-policy/policy.ts';
import type { EntityJson } from '../shared/cedar.ts';
import { adminCommand, connect, jsonOutput } from './admin-client.ts';
import { printJson } from './output.ts';
import { requireFlags, UsageError } from './command.ts';

const NAME = 'policy test';

export const policyTest = adminCommand({
  name: NAME,
  args: `--env ENV --collection NAME --client CLIENT_ID --method METHOD --path PATH [--query QUERY] [--header "name: value" ...] [--agent AGENT [--session SESSION]]`,
  help: `PATH is relative to the collection's base path (/orgs/acme/invoices/42). Prints ALLOW or DENY and the deciding
policies: the permits that allowed, or the forbids that denied (none: no permit applied). --agent (and --session)
decide the request as made with a derived credential of that agent acting for the client (principal.agent,
principal.session).`,
  options: {
    env: { type: 'string' },
    collection: { type: 'string' },
    client: { type: 'string' },
    method: { type: 'string', default: 'GET' },
    path: { type: 'string' },
    query: { type: 'string', default: '' },
    header: { type: 'string', multiple: true },
    agent: { type: 'string' },
    session: { type: 'string' },
  },
  async run(values) {
    if (values.session !== undefined && values.agent === undefined)
      throw new UsageError(`${NAME}: --session needs --agent (the agent whose session it is)`);
    requireFlags(NAME, values, ['env', 'collection', 'client', 'path']);
    const api = connect(NAME, values);
    const base = await api.workspacePath('environments', values.env!, 'collections', values.collection!);
    const resource = await api.request<CollectionResource>('GET', base);
    if (resource.publishedVersion === undefined)
      throw new UsageError(`${NAME}: collection "${values.collection}" is not published: nothing decides yet`);
    const { spec } = await api.request<CollectionVersion>('GET', `${base}/versions/${resource.publishedVersion}`);
    const { description: _d, target: _t, ...fields } = spec as CollectionVersion['spec'] & Record<string, unknown>;
    const collection = CollectionSchema.parse({ ...fields, environment: values.env });
    if (!collection.policies) {
      report(jsonOutput(NAME, values), {
        decision: 'allow',
        reason: 'the collection has no policies: the role alone decides',
      });
      return 0;
    }
    const client = await api.request<{ id: string; role: string; orgId?: string; userId?: string; metadata?: never }>(
      'GET',
      await api.workspacePath('clients', values.client!),
    );
    const entities: EntityJson[] = [];
    for (let offset = 0; ; offset += 10_000) {
      const page = await api.request<{ items: EntityInput[]; total: number }>(
        'GET',
        `${base}/entities?limit=10000&offset=${offset}`,
      );
      for (const e of page.items) entities.push({ uid: e.uid, attrs: e.attrs, parents: e.parents } as EntityJson);
      if (page.items.length < 10_000) break;
    }

    const matcher = new EndpointMatcher<null>();
    for (const e of collection.endpoints) {
      const endpoint: RouteEndpoint<null> = {
        id: `${e.method} ${e.path}`,
        method: e.method,
        template: e.path,
        permission: e.permission,
        collection: null,
        paramNames: [...e.path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]!),
      };
      matcher.add(endpoint);
    }
    const method = values.method!.toUpperCase();
    const match = matcher.match(method, values.path!);
    if (match === undefined || 'allow' in match)
      throw new UsageError(`${NAME}: collection "${collection.name}" has no endpoint ${method} ${values.path}`);

    const headers: Record<string, string> = {};
    // One header per --header: a value may itself hold commas.
    for (const h of values.header ?? []) {
      const colon = h.indexOf(':');
      if (colon < 1) throw new UsageError(`${NAME}: --header must be "name: value", got ${JSON.stringify(h)}`);
      headers[h.slice(0, colon).trim().toLowerCase()] = h.slice(colon + 1).trim();
    }
    const { decide } = resourceDecisions({
      collection,
      policies: compilePolicySet(collection.policies.cedar),
      entities: entityStore(entities),
    });
    const ctx = {
      endpoint: match.endpoint,
      principal: {
        id: client.id,
        role: { name: client.role },
        orgId: client.orgId,
        userId: client.userId,
        metadata: client.metadata,
      },
      params: match.params,
      query: values.query!.replace(/^\?/, ''),
      req: { method, headers },
      ...(values.agent !== undefined && {
        derived: { a: { sub: values.agent, ...(values.session !== undefined && { session: values.session }) } },
      }),
    } as unknown as RequestContext;
    const decision = decide(ctx);
    if (decision === undefined)
      report(jsonOutput(NAME, values), {
        decision: 'allow',
        reason: `no policy applies to ${method} ${match.endpoint.template}: the role alone decides`,
      });
    else if (decision === NO_RESOURCE)
      report(jsonOutput(NAME, values), {
        decision: 'deny',
        reason: 'a path parameter names no resource (Unicode that NFKC changes)',
      });
    else
      report(jsonOutput(NAME, values), {
        decision: decision.allowed ? 'allow' : 'deny',
        policies: [...decision.reasons],
        ...(decision.errors.length > 0 && { errored: [...decision.errors] }),
        reason: decision.allowed
          ? `permitted by ${decision.reasons.join(', ')}`
          : decision.reasons.length > 0
            ? `forbidden by ${decision.reasons.join(', ')}`
            : 'no permit policy applies',
      });
    return 0;
  },
});

function report(
  json: boolean | undefined,
  result: { decision: string; reason: string; policies?: string[]; errored?: string[] },
) {
  if (json) return printJson(result);
  console.log(`${result.decision.toUpperCase()}: ${result.reason}`);
  if (result.errored) console.log(`policies skipped on an evaluation error: ${result.errored.join(', ')}`);
}
