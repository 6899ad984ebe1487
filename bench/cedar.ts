/**
 * Cedar evaluator cost: how long one authorization decision takes with the official evaluator
 * (`@cedar-policy/cedar-wasm`) on a small policy set, against Gatehouse's compiled predicates on the same set,
 * request and entities, in one run. Measured for `isAuthorized` (policies parsed on every call),
 * `statefulIsAuthorized` (the set pre-parsed once), and the compiled decision (`compilePolicySet`).
 *
 * Usage: scripts/node bench/cedar.ts [--policies 10] [--iterations 20000] [--json]
 */
import { parseArgs } from 'node:util';
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import { type CedarEnv, compilePolicySet } from '../src/gateway/policies/resource-policy/compile-cedar.ts';
import { entityStore } from '../src/gateway/policies/resource-policy/entities.ts';
import { type CedarRecord, fromJson, Uid } from '../src/gateway/policies/resource-policy/values.ts';
import { resourcePolicy } from '../src/gateway/policies/resource-policy/policy.ts';
import type { RequestContext } from '../src/gateway/policies/policy.ts';
import { CollectionSchema } from '../src/config/schema.ts';
import { typicalPolicies } from './lib/typical-policies.ts';

const { values } = parseArgs({
  options: {
    policies: { type: 'string', default: '10' },
    iterations: { type: 'string', default: '20000' },
    json: { type: 'boolean', default: false },
  },
});
const POLICIES = Number(values.policies);
const ITERATIONS = Number(values.iterations);

/** A typical set: one tenant rule, one owner rule via a relationship, forbids on attributes, and filler permits. */
function policySet(n: number): string {
  const out = [
    `@id("tenant") permit (principal, action == Action::"invoices:read", resource) when { resource in principal.org };`,
    `@id("owner") permit (principal, action == Action::"invoices:write", resource) when { resource has owner && resource.owner == principal.user };`,
    `@id("no-test") forbid (principal, action, resource) when { principal.environment == "TEST" && context.method == "DELETE" };`,
  ];
  for (let i = out.length; i < n; i++)
    out.push(
      `@id("p${i}") permit (principal == Client::"other-${i}", action == Action::"invoices:read", resource) when { context.query has "v${i}" };`,
    );
  return out.slice(0, n).join('\n');
}

const text = policySet(POLICIES);
const entities: cedar.EntityJson[] = [
  { uid: { type: 'Org', id: 'acme' }, attrs: {}, parents: [] },
  {
    uid: { type: 'Invoice', id: '42' },
    attrs: { owner: { __entity: { type: 'User', id: '7' } } },
    parents: [{ type: 'Org', id: 'acme' }],
  },
  {
    uid: { type: 'Client', id: 'cli_1' },
    attrs: {
      org: { __entity: { type: 'Org', id: 'acme' } },
      user: { __entity: { type: 'User', id: '7' } },
      role: 'reader',
      environment: 'PROD',
      project: 'default',
      metadata: {},
    },
    parents: [],
  },
];
const request = {
  principal: { type: 'Client', id: 'cli_1' },
  action: { type: 'Action', id: 'invoices:read' },
  resource: { type: 'Invoice', id: '42' },
  context: { method: 'GET', query: {}, headers: {} },
};

function time(name: string, fn: () => string): { name: string; usPerCall: number; decision: string } {
  let decision = '';
  for (let i = 0; i < Math.min(2000, ITERATIONS); i++) decision = fn(); // warm-up
  const start = process.hrtime.bigint();
  for (let i = 0; i < ITERATIONS; i++) decision = fn();
  const ns = Number(process.hrtime.bigint() - start);
  return { name, usPerCall: ns / ITERATIONS / 1000, decision };
}

const staticPolicies = text;
const once = cedar.preparsePolicySet('bench', { staticPolicies });
if (once.type !== 'success') throw new Error(JSON.stringify(once.errors));

const compiled = compilePolicySet(text);
const store = entityStore(entities);
const env: CedarEnv = {
  principal: new Uid('Client', 'cli_1'),
  action: new Uid('Action', 'invoices:read'),
  resource: new Uid('Invoice', '42'),
  context: fromJson(request.context) as CedarRecord,
  lookup: store,
};

const results = [
  time('cedar-wasm isAuthorized (parses the set each call)', () => {
    const a = cedar.isAuthorized({ ...request, policies: { staticPolicies }, entities });
    return a.type === 'success' ? a.response.decision : 'failure';
  }),
  time('cedar-wasm statefulIsAuthorized (pre-parsed set)', () => {
    const a = cedar.statefulIsAuthorized({ ...request, preparsedPolicySetId: 'bench', entities });
    return a.type === 'success' ? a.response.decision : 'failure';
  }),
  time('compiled predicates (compilePolicySet)', () => {
    const d = compiled.decide(env, () => entities);
    return d.allowed ? 'allow' : 'deny';
  }),
];

/**
 * The whole per-request check on a guarded operation, as the gateway runs it (endpoint lookup, resource from the
 * path, principal cached per client, context when read, decision): median and p99 of single calls, in µs.
 */
function policyCheck(policies: number): { name: string; p50Us: number; p99Us: number } {
  const collection = CollectionSchema.parse({
    name: 'bench',
    basePath: '/bench',
    upstream: 'http://127.0.0.1:1',
    project: 'bench',
    environment: 'PROD',
    endpoints: [
      {
        method: 'GET',
        path: '/orgs/{orgId}/items/{itemId}',
        permission: 'items:read',
        resource: { type: 'Item', param: 'itemId', in: [{ type: 'Org', param: 'orgId' }] },
      },
    ],
    policies: { cedar: typicalPolicies(policies) },
  });
  const check = resourcePolicy({
    collection,
    policies: compilePolicySet(collection.policies!.cedar),
    entities: entityStore([
      { uid: { type: 'Item', id: '42' }, attrs: { owner: { __entity: { type: 'User', id: 'u-1' } } }, parents: [] },
    ] as never),
  });
  const principal = {
    id: 'bench-client',
    role: { name: 'reader' },
    userId: 'u-1',
    orgId: 'bench-org',
    metadata: undefined,
  };
  const ctx = {
    endpoint: { method: 'GET', template: '/orgs/{orgId}/items/{itemId}' },
    principal,
    params: ['bench-org', '42'],
    query: '',
    req: { method: 'GET', headers: {} },
  } as unknown as RequestContext;
  const samples = new Float64Array(ITERATIONS);
  for (let i = 0; i < 2000; i++) if (check(ctx) !== undefined) throw new Error('the bench request must be allowed');
  for (let i = 0; i < ITERATIONS; i++) {
    const t = process.hrtime.bigint();
    check(ctx);
    samples[i] = Number(process.hrtime.bigint() - t);
  }
  samples.sort();
  return {
    name: `gateway check, ${policies} policies (median / p99 of single calls)`,
    p50Us: samples[Math.floor(ITERATIONS / 2)]! / 1000,
    p99Us: samples[Math.floor(ITERATIONS * 0.99)]! / 1000,
  };
}
const checks = [policyCheck(10), policyCheck(100)];

if (values.json) console.log(JSON.stringify({ policies: POLICIES, iterations: ITERATIONS, results, checks }, null, 2));
else {
  console.log(`${POLICIES} policies, ${ITERATIONS} decisions each (compiled: ${compiled.fallbacks} via cedar-wasm)`);
  for (const r of results) console.log(`${r.name.padEnd(56)} ${r.usPerCall.toFixed(2).padStart(8)} µs  ${r.decision}`);
  for (const c of checks)
    console.log(`${c.name.padEnd(56)} ${c.p50Us.toFixed(2).padStart(8)} µs  (p99 ${c.p99Us.toFixed(2)} µs)`);
}
