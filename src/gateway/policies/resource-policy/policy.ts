/**
 * Resource policy: a collection's Cedar policies, decided in-process after authorization (docs/policies.md). Built
 * once per snapshot: the policy set compiled (`compile-cedar.ts`), sliced per endpoint by its permission, and the
 * collection's relationship data converted. An endpoint that no policy can apply to pays one Map lookup; for the
 * others, the request builds only what a decision reads: the principal once per client and snapshot, the
 * resource from the path parameters, and the context (method, declared query parameters and headers) only when a
 * policy reads it. A deny is 403 `GH_ERR_AUTH_FORBIDDEN_RESOURCE`; the ids of the policies that denied are
 * logged, and sent to the caller only when the collection sets `exposeDecidingPolicies`.
 */
import type { Collection } from '../../../config/schema.ts';
import { refusal, type Refusal } from '../../../shared/errors.ts';
import { comparableParam } from '../../http/canonical-path.ts';
import type { CompiledEndpoint, Principal } from '../../snapshot/compiled.ts';
import type { Policy, RequestContext } from '../policy.ts';
import type { DerivedClaims } from '../../tokens/derived.ts';
import type { CedarEnv, CompiledPolicySet, Decision } from './compile-cedar.ts';
import { type Entity, type EntityLookup, type EntityStore, reachableEntities } from './entities.ts';
import { type CedarRecord, Uid } from './values.ts';

export interface ResourcePolicyOptions {
  collection: Collection;
  policies: CompiledPolicySet;
  entities: EntityStore;
  /** Called on every deny, with the deciding policies (for the log). */
  onDeny?: ((ctx: RequestContext, decision: Decision) => void) | undefined;
}

/** What one endpoint's decisions need, prepared when the snapshot is compiled. */
interface EndpointGuard {
  readonly slice: CompiledPolicySet;
  readonly action: Uid;
  /** Index of the resource's id among the path parameters, and its type; undefined: `Collection::"<name>"`. */
  readonly resource: { readonly type: string; readonly index: number } | undefined;
  readonly parents: readonly { readonly type: string; readonly index: number }[];
}

const DENIED = refusal('GH_ERR_AUTH_FORBIDDEN_RESOURCE');
export const NO_RESOURCE = Symbol('no resource');
const EMPTY: CedarRecord = new Map();

/** The policy for the chain; `resourceDecisions` gives the decisions themselves (for `gatehouse policy test`). */
export function resourcePolicy(options: ResourcePolicyOptions): Policy {
  return resourceDecisions(options).check;
}

/**
 * Decides a request: undefined when no policy can apply to its endpoint, `NO_RESOURCE` when a path parameter names
 * no resource (a value NFKC would change: denied), else Cedar's decision.
 */
export function resourceDecisions(options: ResourcePolicyOptions): {
  check: Policy;
  decide: (ctx: RequestContext) => Decision | typeof NO_RESOURCE | undefined;
} {
  const { collection, policies, entities, onDeny } = options;
  const settings = collection.policies!;
  const expose = settings.exposeDecidingPolicies;
  const queryNames = new Set(settings.context.query);
  const headerNames = settings.context.headers;
  const collectionUid = new Uid('Collection', collection.name);

  const guards = new Map<string, EndpointGuard>();
  for (const e of collection.endpoints) {
    const slice = policies.slice(e.permission);
    if (slice === undefined) continue;
    const params = [...e.path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]!);
    const at = (param: string) => params.indexOf(param);
    guards.set(`${e.method} ${e.path}`, {
      slice,
      action: new Uid('Action', e.permission),
      resource: e.resource && { type: e.resource.type, index: at(e.resource.param) },
      parents: e.resource?.in.map((p) => ({ type: p.type, index: at(p.param) })) ?? [],
    });
  }
  const byEndpoint = new WeakMap<CompiledEndpoint, EndpointGuard | null>();
  const principals = new WeakMap<Principal, Entity>();

  const agentPrincipals = new WeakMap<DerivedClaims, Entity>();

  /** With a derived credential: the client's entity plus the acting agent and its session (once per credential). */
  const principalOf = (ctx: RequestContext): Entity => {
    const client = principalEntity(ctx.principal!);
    const derived = ctx.derived;
    if (derived === undefined) return client;
    let entity = agentPrincipals.get(derived);
    if (entity) return entity;
    const attrs: CedarRecord = new Map(client.attrs);
    attrs.set('agent', derived.a.sub);
    if (derived.a.session !== undefined) attrs.set('session', derived.a.session);
    entity = { uid: client.uid, attrs, parents: client.parents };
    agentPrincipals.set(derived, entity);
    return entity;
  };

  const principalEntity = (p: Principal): Entity => {
    let entity = principals.get(p);
    if (entity) return entity;
    const attrs: CedarRecord = new Map();
    const org = p.orgId === undefined ? undefined : new Uid('Org', p.orgId);
    if (org) attrs.set('org', org);
    if (p.userId !== undefined) attrs.set('user', new Uid('User', p.userId));
    attrs.set('role', p.role.name);
    attrs.set('environment', collection.environment);
    attrs.set('project', collection.project);
    const metadata: CedarRecord = new Map();
    for (const [k, v] of Object.entries(p.metadata ?? {}))
      if (typeof v !== 'number' || Number.isSafeInteger(v)) metadata.set(k, v);
    attrs.set('metadata', metadata);
    entity = { uid: new Uid('Client', p.id), attrs, parents: org ? [org] : [] };
    principals.set(p, entity);
    return entity;
  };

  const decide = (ctx: RequestContext): Decision | typeof NO_RESOURCE | undefined => {
    let guard = byEndpoint.get(ctx.endpoint);
    if (guard === undefined) {
      guard = guards.get(`${ctx.endpoint.method} ${ctx.endpoint.template}`) ?? null;
      byEndpoint.set(ctx.endpoint, guard);
    }
    if (guard === null) return undefined;
    const params = ctx.params ?? [];
    let resource: Entity;
    if (guard.resource === undefined) {
      resource = entities.get(collectionUid.key) ?? { uid: collectionUid, attrs: EMPTY, parents: [] };
    } else {
      const id = comparableParam(params[guard.resource.index] ?? '');
      if (id === undefined) return NO_RESOURCE; // a value NFKC would change names no resource
      const uid = new Uid(guard.resource.type, id);
      const stored = entities.get(uid.key);
      // Parents from the relationship data and from the path (`/orgs/{orgId}/…` puts the resource in that Org).
      const parents: Uid[] = stored ? [...stored.parents] : [];
      for (const p of guard.parents) {
        const parentId = comparableParam(params[p.index] ?? '');
        if (parentId === undefined) return NO_RESOURCE;
        parents.push(new Uid(p.type, parentId));
      }
      resource = { uid, attrs: stored?.attrs ?? EMPTY, parents };
    }
    const env = new RequestEnv(ctx, principalOf(ctx), guard.action, resource, entities, queryNames, headerNames);
    return guard.slice.decide(env, () => reachableEntities([env.principal, env.resource], env.lookup));
  };

  const check = function resourcePolicyCheck(ctx: RequestContext): Refusal | undefined {
    const decision = decide(ctx);
    if (decision === undefined || (decision !== NO_RESOURCE && decision.allowed)) return undefined;
    if (decision === NO_RESOURCE) return DENIED;
    onDeny?.(ctx, decision);
    return expose ? { code: DENIED.code, extensions: { policies: decision.reasons } } : DENIED;
  };
  return { check, decide };
}

/** One decision's request: entities looked up request-first, and the context built only when read. */
class RequestEnv implements CedarEnv, EntityLookup {
  readonly principal: Uid;
  readonly action: Uid;
  readonly resource: Uid;
  readonly lookup: EntityLookup = this;
  readonly #principal: Entity;
  readonly #resource: Entity;
  readonly #store: EntityStore;
  readonly #ctx: RequestContext;
  readonly #query: ReadonlySet<string>;
  readonly #headers: readonly string[];
  #context: CedarRecord | undefined;

  constructor(
    ctx: RequestContext,
    principal: Entity,
    action: Uid,
    resource: Entity,
    store: EntityStore,
    query: ReadonlySet<string>,
    headers: readonly string[],
  ) {
    this.#ctx = ctx;
    this.#principal = principal;
    this.#resource = resource;
    this.principal = principal.uid;
    this.action = action;
    this.resource = resource.uid;
    this.#store = store;
    this.#query = query;
    this.#headers = headers;
  }

  get(key: string): Entity | undefined {
    if (key === this.#principal.uid.key) return this.#principal;
    if (key === this.#resource.uid.key) return this.#resource;
    return this.#store.get(key);
  }

  ancestors(key: string): ReadonlySet<string> | undefined {
    // The request's principal and resource are not the store's: a chain through them is walked instead.
    const principal = this.#principal.uid.key;
    const resource = this.#resource.uid.key;
    if (key === principal || key === resource) return undefined;
    const above = this.#store.ancestors?.(key);
    return above === undefined || above.has(principal) || above.has(resource) ? undefined : above;
  }

  get context(): CedarRecord {
    if (this.#context) return this.#context;
    const query: CedarRecord = new Map();
    const raw = this.#ctx.query ?? '';
    if (raw !== '' && this.#query.size > 0) {
      for (const [name, value] of new URLSearchParams(raw))
        if (this.#query.has(name) && !query.has(name)) query.set(name, value);
    }
    const headers: CedarRecord = new Map();
    const sent = this.#ctx.req.headers;
    for (const name of this.#headers) {
      const value = sent[name];
      if (typeof value === 'string') headers.set(name, value);
      else if (Array.isArray(value) && value.length > 0) headers.set(name, value.join(', '));
    }
    return (this.#context = new Map<string, CedarRecord | string>([
      ['method', this.#ctx.req.method ?? 'GET'],
      ['query', query],
      ['headers', headers],
    ]));
  }
}
