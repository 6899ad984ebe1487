/**
 * Cedar policies compiled into JavaScript predicates, once per snapshot. cedar-wasm parses each policy to its JSON
 * form (`policyToJson`); every construct below is turned into a closure with Cedar's semantics (a policy whose
 * condition raises an error is skipped and reported; `forbid` overrides `permit`; nothing satisfied is a deny).
 * A policy set holding a construct not compiled here (extension functions such as `ip()` or `decimal()`, tags,
 * templates) is evaluated by cedar-wasm as a whole, from a pre-parsed copy; so is a single decision whose values
 * leave the safe integer range. `compile-cedar.test.ts` checks decisions against cedar-wasm's on generated sets.
 *
 * Over 400 lines on purpose: one compiler, a closure per Cedar construct; the constructs nest in one another and share
 * the value helpers, so they read together.
 */
import { splitPolicies } from '../../../config/cedar-schema.ts';
import { cedar, type EntityJson, type Expr, type PolicyJson } from '../../../shared/cedar.ts';
import { type EntityLookup, isDescendant, uidOf } from './entities.ts';
import {
  type CedarRecord,
  CedarEvalError,
  CedarSet,
  fromJson,
  likeMatcher,
  NeedsCedarWasm,
  toJson,
  Uid,
  type Value,
  valueEquals,
} from './values.ts';

/** One request as the predicates see it. `context` may be a getter: it is read only by policies that use it. */
export interface CedarEnv {
  readonly principal: Uid;
  readonly action: Uid;
  readonly resource: Uid;
  readonly context: CedarRecord;
  /** The request's entities (principal, resource) and the collection's relationship data. */
  readonly lookup: EntityLookup;
}

export interface Decision {
  readonly allowed: boolean;
  /** The policies that decided: the satisfied `forbid`s on a deny, the satisfied `permit`s on an allow. */
  readonly reasons: readonly string[];
  /** Policies skipped because their condition raised an error. */
  readonly errors: readonly string[];
  readonly evaluator: 'compiled' | 'cedar-wasm';
}

export interface CompiledPolicySet {
  /** Policy ids, in the order of the text. */
  readonly ids: readonly string[];
  /** How many policies could not be compiled (the set is then decided by cedar-wasm). */
  readonly fallbacks: number;
  /** The policies that may apply to an action (`Action::"<id>"`), or undefined when none does. */
  slice(action: string): CompiledPolicySet | undefined;
  /** Decides; `entities` gives cedar-wasm the entities it needs, and is called only when it decides. */
  decide(env: CedarEnv, entities: () => EntityJson[]): Decision;
}

/** A policy set that does not parse: Cedar's messages with their locations. */
export class CedarPolicyError extends Error {
  override readonly name = 'CedarPolicyError';
}

interface CompiledPolicy {
  readonly id: string;
  readonly text: string;
  readonly forbid: boolean;
  readonly json: PolicyJson;
  /** Undefined when the policy uses a construct not compiled here. */
  readonly test: ((env: CedarEnv) => boolean) | undefined;
}

class Unsupported extends Error {}

let nextSetId = 0;

/** Parses and compiles a policy set (Cedar text). Ids come from `@id("…")` annotations, else `policy<N>`. */
export function compilePolicySet(text: string): CompiledPolicySet {
  const { policies: parts, errors } = splitPolicies(text);
  if (errors.length > 0) throw new CedarPolicyError(errors.join('\n'));
  const policies = parts.map(({ id, text: policyText, json }): CompiledPolicy => {
    let test: CompiledPolicy['test'];
    try {
      test = compilePolicy(json);
    } catch (error) {
      if (!(error instanceof Unsupported)) throw error;
      test = undefined;
    }
    return { id, text: policyText, forbid: json.effect === 'forbid', json, test };
  });
  return policySet(policies);
}

function policySet(policies: readonly CompiledPolicy[]): CompiledPolicySet {
  const fallbacks = policies.filter((p) => p.test === undefined).length;
  let wasmId: string | undefined;
  /** The set pre-parsed into cedar-wasm, on the first decision that needs it. */
  const preparsed = () => {
    if (wasmId !== undefined) return wasmId;
    const id = `gatehouse-${nextSetId++}`;
    const staticPolicies: Record<string, string> = {};
    for (const p of policies) staticPolicies[p.id] = p.text;
    const answer = cedar().preparsePolicySet(id, { staticPolicies });
    if (answer.type === 'failure')
      throw new Error(`cedar-wasm refused a policy set it parsed before: ${answer.errors[0]?.message}`);
    return (wasmId = id);
  };
  const byWasm = (env: CedarEnv, entities: () => EntityJson[]): Decision => {
    const answer = cedar().statefulIsAuthorized({
      principal: env.principal.toJSON(),
      action: env.action.toJSON(),
      resource: env.resource.toJSON(),
      context: toJson(env.context) as Record<string, never>,
      preparsedPolicySetId: preparsed(),
      entities: entities(),
    });
    if (answer.type === 'failure')
      throw new Error(`cedar-wasm failed: ${answer.errors.map((e) => e.message).join('; ')}`);
    const { decision, diagnostics } = answer.response;
    return {
      allowed: decision === 'allow',
      reasons: diagnostics.reason,
      errors: diagnostics.errors.map((e) => e.policyId),
      evaluator: 'cedar-wasm',
    };
  };
  const slices = new Map<string, CompiledPolicySet | undefined>();
  const set: CompiledPolicySet = {
    ids: policies.map((p) => p.id),
    fallbacks,
    slice(action) {
      if (slices.has(action)) return slices.get(action);
      const uid = new Uid('Action', action);
      const kept = policies.filter((p) => actionMayMatch(p.json.action, uid));
      const slice = kept.length === 0 ? undefined : kept.length === policies.length ? set : policySet(kept);
      slices.set(action, slice);
      return slice;
    },
    decide(env, entities) {
      if (fallbacks > 0) return byWasm(env, entities);
      let permits: string[] | undefined;
      let forbids: string[] | undefined;
      let errors: string[] | undefined;
      try {
        for (const p of policies) {
          let satisfied: boolean;
          try {
            satisfied = p.test!(env);
          } catch (error) {
            if (!(error instanceof CedarEvalError)) throw error;
            (errors ??= []).push(p.id);
            continue;
          }
          if (satisfied) {
            if (p.forbid) (forbids ??= []).push(p.id);
            else (permits ??= []).push(p.id);
          }
        }
      } catch (error) {
        if (error instanceof NeedsCedarWasm) return byWasm(env, entities);
        throw error;
      }
      if (forbids) return { allowed: false, reasons: forbids, errors: errors ?? NONE, evaluator: 'compiled' };
      return {
        allowed: permits !== undefined,
        reasons: permits ?? NONE,
        errors: errors ?? NONE,
        evaluator: 'compiled',
      };
    },
  };
  return set;
}

const NONE: readonly string[] = Object.freeze([]);

/** Whether a policy's action constraint can match this action (actions have no hierarchy here). */
function actionMayMatch(constraint: PolicyJson['action'], action: Uid): boolean {
  if (constraint.op === 'All') return true;
  if (constraint.op === '==') return 'entity' in constraint && uidOf(constraint.entity).key === action.key;
  const list = 'entities' in constraint ? constraint.entities : [constraint.entity];
  return list.some((e) => uidOf(e).key === action.key);
}

function compilePolicy(json: PolicyJson): (env: CedarEnv) => boolean {
  const checks: ((env: CedarEnv) => boolean)[] = [];
  const scope = (variable: 'principal' | 'resource', c: PolicyJson['principal']) => {
    if (c.op === 'All') return;
    if ('slot' in c) throw new Unsupported('template slot');
    if (c.op === '==') {
      const target = uidOf(c.entity);
      checks.push((env) => env[variable].key === target.key);
    } else if (c.op === 'in') {
      const target = uidOf(c.entity);
      checks.push((env) => isDescendant(env[variable], target, env.lookup));
    } else {
      const type = c.entity_type;
      const within = c.in;
      if (within !== undefined && 'slot' in within) throw new Unsupported('template slot');
      const target = within === undefined ? undefined : uidOf(within.entity);
      checks.push(
        (env) =>
          env[variable].type === type && (target === undefined || isDescendant(env[variable], target, env.lookup)),
      );
    }
  };
  scope('principal', json.principal);
  if (json.action.op !== 'All') {
    const a = json.action;
    const targets =
      a.op === '=='
        ? ['entity' in a ? uidOf(a.entity) : unsupported('slot')]
        : ('entities' in a ? a.entities : [a.entity]).map(uidOf);
    const keys = new Set(targets.map((t) => t.key));
    checks.push((env) => keys.has(env.action.key));
  }
  scope('resource', json.resource);
  for (const clause of json.conditions) {
    const body = compileExpr(clause.body);
    checks.push(clause.kind === 'when' ? (env) => bool(body(env)) : (env) => !bool(body(env)));
  }
  return (env) => {
    for (const check of checks) if (!check(env)) return false;
    return true;
  };
}

function unsupported(what: string): never {
  throw new Unsupported(what);
}

type Fn = (env: CedarEnv) => Value;

function bool(v: Value): boolean {
  if (typeof v !== 'boolean') throw new CedarEvalError('type error: expected a boolean');
  return v;
}
function long(v: Value): number {
  if (typeof v !== 'number') throw new CedarEvalError('type error: expected a Long');
  return v;
}
function entity(v: Value): Uid {
  if (!(v instanceof Uid)) throw new CedarEvalError('type error: expected an entity');
  return v;
}
function set(v: Value): CedarSet {
  if (!(v instanceof CedarSet)) throw new CedarEvalError('type error: expected a set');
  return v;
}
function checked(n: number): number {
  if (!Number.isSafeInteger(n)) throw new NeedsCedarWasm('a Long beyond the safe integer range');
  return n;
}

function getAttr(v: Value, attr: string, env: CedarEnv): Value {
  if (v instanceof Uid) {
    const e = env.lookup.get(v.key);
    const value = e?.attrs.get(attr);
    if (value === undefined) throw new CedarEvalError(`attribute ${attr} not found`);
    return value;
  }
  if (v instanceof Map) {
    const value = v.get(attr);
    if (value === undefined) throw new CedarEvalError(`attribute ${attr} not found`);
    return value;
  }
  throw new CedarEvalError('type error: expected an entity or a record');
}

function hasAttr(v: Value, attr: string, env: CedarEnv): boolean {
  if (v instanceof Uid) return env.lookup.get(v.key)?.attrs.has(attr) ?? false;
  if (v instanceof Map) return v.has(attr);
  throw new CedarEvalError('type error: expected an entity or a record');
}

function inValue(left: Value, right: Value, env: CedarEnv): boolean {
  const uid = entity(left);
  if (right instanceof Uid) return isDescendant(uid, right, env.lookup);
  if (right instanceof CedarSet) {
    const targets = right.items.map(entity); // every element must be an entity, whatever matches first
    return targets.some((t) => isDescendant(uid, t, env.lookup));
  }
  throw new CedarEvalError('type error: expected an entity or a set of entities');
}

type Binary = { left: Expr; right: Expr };

function compileExpr(expr: Expr): Fn {
  const keys = Object.keys(expr);
  if (keys.length !== 1) unsupported('expression');
  const op = keys[0]!;
  const node = (expr as Record<string, unknown>)[op];
  const bin = (f: (l: Value, r: Value, env: CedarEnv) => Value): Fn => {
    const { left, right } = node as Binary;
    const l = compileExpr(left);
    const r = compileExpr(right);
    return (env) => f(l(env), r(env), env);
  };
  switch (op) {
    case 'Value': {
      let value: Value;
      try {
        value = fromJson(node);
      } catch (error) {
        if (error instanceof NeedsCedarWasm) unsupported('value');
        throw error;
      }
      return () => value;
    }
    case 'Var': {
      const name = node as 'principal' | 'action' | 'resource' | 'context';
      return (env) => env[name];
    }
    case '!': {
      const arg = compileExpr((node as { arg: Expr }).arg);
      return (env) => !bool(arg(env));
    }
    case 'neg': {
      const arg = compileExpr((node as { arg: Expr }).arg);
      return (env) => checked(-long(arg(env)));
    }
    case '==':
      return bin((l, r) => valueEquals(l, r));
    case '!=':
      return bin((l, r) => !valueEquals(l, r));
    case 'in':
      return bin(inValue);
    case '<':
      return bin((l, r) => long(l) < long(r));
    case '<=':
      return bin((l, r) => long(l) <= long(r));
    case '>':
      return bin((l, r) => long(l) > long(r));
    case '>=':
      return bin((l, r) => long(l) >= long(r));
    case '+':
      return bin((l, r) => checked(long(l) + long(r)));
    case '-':
      return bin((l, r) => checked(long(l) - long(r)));
    case '*':
      return bin((l, r) => checked(long(l) * long(r)));
    case '&&': {
      const { left, right } = node as Binary;
      const l = compileExpr(left);
      const r = compileExpr(right);
      return (env) => bool(l(env)) && bool(r(env));
    }
    case '||': {
      const { left, right } = node as Binary;
      const l = compileExpr(left);
      const r = compileExpr(right);
      return (env) => bool(l(env)) || bool(r(env));
    }
    case 'contains':
      return bin((l, r) => set(l).has(r));
    case 'containsAll':
      return bin((l, r) => {
        const a = set(l);
        return set(r).items.every((x) => a.has(x));
      });
    case 'containsAny':
      return bin((l, r) => {
        const a = set(l);
        return set(r).items.some((x) => a.has(x));
      });
    case 'isEmpty': {
      const arg = compileExpr((node as { arg: Expr }).arg);
      return (env) => set(arg(env)).items.length === 0;
    }
    case '.': {
      const { left, attr } = node as { left: Expr; attr: string };
      const l = compileExpr(left);
      return (env) => getAttr(l(env), attr, env);
    }
    case 'has': {
      const { left, attr } = node as { left: Expr; attr: string | string[] };
      const l = compileExpr(left);
      const path = typeof attr === 'string' ? [attr] : attr;
      return (env) => {
        let v = l(env);
        for (let i = 0; i < path.length; i++) {
          if (!hasAttr(v, path[i]!, env)) return false;
          if (i < path.length - 1) v = getAttr(v, path[i]!, env);
        }
        return true;
      };
    }
    case 'like': {
      const { left, pattern } = node as { left: Expr; pattern: ('Wildcard' | { Literal: string })[] };
      const l = compileExpr(left);
      const matches = likeMatcher(pattern);
      return (env) => {
        const v = l(env);
        if (typeof v !== 'string') throw new CedarEvalError('type error: expected a string');
        return matches(v);
      };
    }
    case 'is': {
      const { left, entity_type: type, in: within } = node as { left: Expr; entity_type: string; in?: Expr };
      const l = compileExpr(left);
      const w = within === undefined ? undefined : compileExpr(within);
      return (env) => {
        const uid = entity(l(env));
        if (w === undefined) return uid.type === type;
        if (uid.type !== type) return false;
        return inValue(uid, w(env), env);
      };
    }
    case 'if-then-else': {
      const n = node as { if: Expr; then: Expr; else: Expr };
      const c = compileExpr(n.if);
      const t = compileExpr(n.then);
      const e = compileExpr(n.else);
      return (env) => (bool(c(env)) ? t(env) : e(env));
    }
    case 'Set': {
      const items = (node as Expr[]).map(compileExpr);
      return (env) => new CedarSet(items.map((f) => f(env)));
    }
    case 'Record': {
      const fields = Object.entries(node as Record<string, Expr>).map(([k, e]) => [k, compileExpr(e)] as const);
      return (env) => {
        const record: CedarRecord = new Map();
        for (const [k, f] of fields) record.set(k, f(env));
        return record;
      };
    }
    default:
      return unsupported(op); // extension functions (ip, decimal, datetime, …), tags, slots
  }
}
