import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cedar, type EntityJson } from '../../../shared/cedar.ts';
import { prng } from '../../../testing/prng.ts';
import { compilePolicySet, type CedarEnv } from './compile-cedar.ts';
import { entityStore } from './entities.ts';
import { fromJson, Uid, type CedarRecord } from './values.ts';

/** A generator of policy sets, entity graphs and requests over three entity types, from a seeded PRNG. */
function generator(seed: number) {
  const random = prng(seed);
  const int = (n: number) => Math.floor(random() * n);
  const pick = <T>(items: readonly T[]): T => items[int(items.length)]!;
  const chance = (p: number) => random() < p;

  const ids = { User: ['u0', 'u1', 'u2'], Org: ['o0', 'o1', 'o2'], Doc: ['d0', 'd1', 'd2', 'd3'] };
  const types = Object.keys(ids) as (keyof typeof ids)[];
  const uidText = (type = pick(types)) => `${type}::"${pick(ids[type])}"`;
  const names = ['alpha', 'beta', 'al', 'a*b', ''];
  const str = () => JSON.stringify(pick(names));
  const attrs = ['owner', 'level', 'name', 'tags', 'meta', 'public'];

  /** A value-typed expression (often well-typed, sometimes not: errors are part of what is compared). */
  const value = (depth: number): string => {
    switch (int(depth <= 0 ? 5 : 12)) {
      case 0:
        return pick(['principal', 'resource', 'action', 'context']);
      case 1:
        return uidText();
      case 2:
        return String(int(11) - 5);
      case 3:
        return str();
      case 4:
        return `${pick(['principal', 'resource'])}.${pick(attrs)}`;
      case 5:
        return `[${Array.from({ length: int(3) }, () => (chance(0.5) ? str() : uidText())).join(', ')}]`;
      case 6:
        return `(${value(depth - 1)} ${pick(['+', '-', '*'])} ${value(depth - 1)})`;
      case 7:
        return `context.${pick(['method', 'n', 'q', 'missing'])}`;
      case 8:
        return `{a: ${value(depth - 1)}, b: ${str()}}`;
      case 9:
        return `(if ${condition(depth - 1)} then ${value(depth - 1)} else ${value(depth - 1)})`;
      case 10:
        return `${pick(['principal', 'resource'])}.meta.${pick(['a', 'b', 'c'])}`;
      default:
        return `${pick(['principal', 'resource'])}.owner.${pick(attrs)}`;
    }
  };
  const condition = (depth: number): string => {
    switch (int(depth <= 0 ? 4 : 19)) {
      case 0:
        return pick(['true', 'false']);
      case 1:
        return `${value(depth - 1)} == ${value(depth - 1)}`;
      case 2:
        return `${pick(['principal', 'resource'])} in ${chance(0.7) ? uidText(pick(['Org', 'User'])) : `[${uidText()}, ${uidText()}]`}`;
      case 3:
        return `${pick(['principal', 'resource', 'context', 'principal.meta', 'resource.owner'])} has ${pick([...attrs, 'a', 'q.status'])}`;
      case 4:
        return `${value(depth - 1)} != ${value(depth - 1)}`;
      case 5:
        return `${value(depth - 1)} ${pick(['<', '<=', '>', '>='])} ${value(depth - 1)}`;
      case 6:
        return `(${condition(depth - 1)} && ${condition(depth - 1)})`;
      case 7:
        return `(${condition(depth - 1)} || ${condition(depth - 1)})`;
      case 8:
        return `!(${condition(depth - 1)})`;
      case 9:
        return `${pick(['resource.tags', 'principal.tags', '[1, 2]', 'resource.name'])}.contains(${value(depth - 1)})`;
      case 10:
        return `${pick(['resource.tags', 'principal.tags'])}.${pick(['containsAll', 'containsAny'])}(${pick(['["alpha"]', '["alpha", "beta"]', '[]', 'principal.tags', '1'])})`;
      case 11:
        return `${pick(['resource.tags', 'principal.tags', '[]'])}.isEmpty()`;
      case 12:
        return `${pick(['resource.name', 'principal.name', 'context.method', 'resource.level'])} like ${pick(['"a*"', '"*"', '"al*a"', '"a\\*b"', '"*et*"'])}`;
      case 13:
        return `${pick(['principal', 'resource', 'resource.owner', 'context'])} is ${pick(types)}`;
      case 14:
        return `${pick(['principal', 'resource'])} is ${pick(types)} in ${uidText(pick(['Org', 'User']))}`;
      case 15:
        return `(if ${condition(depth - 1)} then ${condition(depth - 1)} else ${condition(depth - 1)})`;
      case 16:
        return `resource.owner == principal`;
      case 17:
        return `${value(depth - 1)}`;
      default:
        return `principal.public`;
    }
  };
  const scope = (variable: string): string => {
    switch (int(5)) {
      case 0:
        return `${variable} == ${uidText()}`;
      case 1:
        return `${variable} in ${uidText('Org')}`;
      case 2:
        return `${variable} is ${pick(types)}`;
      case 3:
        return `${variable} is ${pick(types)} in ${uidText('Org')}`;
      default:
        return variable;
    }
  };
  const actions = ['read', 'write', 'delete'];
  const policy = (i: number): string => {
    const action = pick([
      'action',
      `action == Action::"${pick(actions)}"`,
      `action in [Action::"${pick(actions)}", Action::"${pick(actions)}"]`,
    ]);
    const clauses = Array.from({ length: int(3) }, () => ` ${pick(['when', 'unless'])} { ${condition(3)} }`).join('');
    return `@id("p${i}") ${chance(0.7) ? 'permit' : 'forbid'} (${scope('principal')}, ${action}, ${scope('resource')})${clauses};`;
  };
  const entityValue = (type: keyof typeof ids) => ({ __entity: { type, id: pick(ids[type]) } });
  const entities = (): EntityJson[] => {
    const out: EntityJson[] = [];
    for (const type of types)
      for (const id of ids[type]) {
        if (chance(0.15)) continue; // some referenced entities do not exist
        const a: Record<string, unknown> = {};
        if (chance(0.7)) a.owner = entityValue('User');
        if (chance(0.7)) a.level = int(11) - 5;
        if (chance(0.7)) a.name = pick(names);
        if (chance(0.6)) a.tags = Array.from({ length: int(3) }, () => pick(names));
        if (chance(0.6)) a.meta = chance(0.5) ? { a: int(5), b: pick(names) } : { a: pick(names) };
        if (chance(0.5)) a.public = chance(0.5);
        // Acyclic (Cedar refuses a cyclic hierarchy): Doc → User/Org, User → Org, Org → an Org of a higher index.
        const above =
          type === 'Doc'
            ? ids.User.map((u) => ({ type: 'User', id: u })).concat(ids.Org.map((o) => ({ type: 'Org', id: o })))
            : ids.Org.filter((o) => type !== 'Org' || o > id).map((o) => ({ type: 'Org', id: o }));
        const parents = above.length === 0 ? [] : Array.from({ length: int(3) }, () => pick(above));
        out.push({ uid: { type, id }, attrs: a, parents } as EntityJson);
      }
    return out;
  };
  const request = () => ({
    principal: new Uid(pick(['User', 'Org']), pick(ids.User.concat(ids.Org))),
    action: new Uid('Action', pick(actions)),
    resource: new Uid(pick(types), pick(ids.Doc.concat(ids.Org))),
    context: {
      method: pick(['GET', 'DELETE']),
      n: int(7) - 3,
      ...(chance(0.5) && { q: chance(0.5) ? { status: pick(names) } : {} }),
    },
  });
  return { policy, entities, request, int };
}

describe('compiled Cedar policies', () => {
  it('decide as cedar-wasm does on generated policies, entities and requests (differential)', () => {
    const c = cedar();
    let decisions = 0;
    let allows = 0;
    let errored = 0;
    for (let round = 0; round < 250; round++) {
      const g = generator(1000 + round);
      const policies = Array.from({ length: 1 + g.int(8) }, (_, i) => g.policy(i));
      const text = policies.join('\n');
      const compiled = compilePolicySet(text);
      assert.equal(compiled.fallbacks, 0, text);
      const staticPolicies = Object.fromEntries(policies.map((p, i) => [`p${i}`, p]));
      assert.equal(c.preparsePolicySet('differential', { staticPolicies }).type, 'success');
      for (let world = 0; world < 3; world++) {
        const entities = g.entities();
        const store = entityStore(entities);
        for (let r = 0; r < 12; r++) {
          const req = g.request();
          const env: CedarEnv = {
            principal: req.principal,
            action: req.action,
            resource: req.resource,
            context: fromJson(req.context) as CedarRecord,
            lookup: store,
          };
          const ours = compiled.decide(env, () => entities);
          const answer = c.statefulIsAuthorized({
            principal: req.principal.toJSON(),
            action: req.action.toJSON(),
            resource: req.resource.toJSON(),
            context: req.context as never,
            preparsedPolicySetId: 'differential',
            entities,
          });
          assert.equal(answer.type, 'success', JSON.stringify(answer));
          if (answer.type !== 'success') continue;
          const theirs = answer.response;
          const where = `seed ${1000 + round}, world ${world}, request ${JSON.stringify(req)}\n${text}\nentities ${JSON.stringify(entities)}`;
          assert.equal(ours.allowed, theirs.decision === 'allow', `decision differs: ${where}`);
          assert.deepEqual([...ours.reasons].sort(), [...theirs.diagnostics.reason].sort(), `reasons differ: ${where}`);
          assert.deepEqual(
            [...ours.errors].sort(),
            theirs.diagnostics.errors.map((e) => e.policyId).sort(),
            `errors differ: ${where}`,
          );
          decisions++;
          if (ours.allowed) allows++;
          if (ours.errors.length) errored++;
        }
      }
    }
    // The generated cases must exercise allows, denies and errors, or equality would prove little.
    assert.ok(
      decisions >= 9000 && allows > decisions / 20 && allows < decisions - decisions / 20,
      `${allows}/${decisions}`,
    );
    assert.ok(errored > decisions / 20, `${errored}/${decisions} with errors`);
    console.log(`${decisions} decisions: ${allows} allowed, ${errored} with errored policies`);
  });

  it('hands a set holding a construct it does not compile to cedar-wasm, with the same decision', () => {
    const text = `@id("net") permit (principal, action, resource) when { ip("10.1.2.3").isInRange(ip("10.0.0.0/8")) };`;
    const compiled = compilePolicySet(text);
    assert.equal(compiled.fallbacks, 1);
    const store = entityStore();
    const env: CedarEnv = {
      principal: new Uid('User', '1'),
      action: new Uid('Action', 'read'),
      resource: new Uid('Doc', '1'),
      context: new Map(),
      lookup: store,
    };
    const decision = compiled.decide(env, () => []);
    assert.deepEqual([decision.allowed, decision.reasons, decision.evaluator], [true, ['net'], 'cedar-wasm']);
  });

  it('hands a decision whose arithmetic leaves the safe integer range to cedar-wasm', () => {
    const text = `@id("big") permit (principal, action, resource) when { context.n * 1000000000 > 9007199254740 };`;
    const compiled = compilePolicySet(text);
    const env: CedarEnv = {
      principal: new Uid('User', '1'),
      action: new Uid('Action', 'read'),
      resource: new Uid('Doc', '1'),
      context: new Map([['n', 9_000_000_000]]),
      lookup: entityStore(),
    };
    const decision = compiled.decide(env, () => []);
    assert.deepEqual([decision.allowed, decision.evaluator], [true, 'cedar-wasm']);
  });

  it('slices a set by action: only the policies that can apply to it', () => {
    const compiled = compilePolicySet(
      `@id("r") permit (principal, action == Action::"read", resource);\n@id("any") forbid (principal, action, resource) when { false };\n@id("w") permit (principal, action in [Action::"write"], resource);`,
    );
    assert.deepEqual(compiled.slice('read')?.ids, ['r', 'any']);
    assert.deepEqual(compiled.slice('write')?.ids, ['any', 'w']);
    assert.equal(
      compilePolicySet(`@id("r") permit (principal, action == Action::"read", resource);`).slice('x'),
      undefined,
    );
  });

  it('refuses a policy set that does not parse with Cedar’s message and location', () => {
    assert.throws(
      () => compilePolicySet('permit (principal, action, resource) when { resource.owner == };'),
      /line 1, column/,
    );
    assert.throws(
      () =>
        compilePolicySet(
          '@id("a") permit (principal, action, resource);\n@id("a") forbid (principal, action, resource);',
        ),
      /two policies have the id "a"/,
    );
  });
});
