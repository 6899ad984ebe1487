/**
 * Response checking for tests: every body the admin API sends is checked against its operation's response schema
 * as the OpenAPI document shows it (`z.toJSONSchema` of the side `Operation.responseForm` names), so that a
 * handler returning a field its schema does not declare, or one of another type, fails the tests instead of
 * silently breaking the documented contract. On when `NODE_ENV=test` or `GATEHOUSE_CHECK_RESPONSES=1`; the check
 * costs a JSON round trip and a walk of the body, so production does not run it.
 *
 * Why JSON Schema and not `schema.parse(body)`: parsing reads the body as *input*, where some fields mean
 * something else (a duration number is seconds on input and milliseconds on output; defaults fill what is
 * missing; unknown members of a plain `z.object` are dropped silently). The documented JSON Schema is what a
 * client is promised. Only the keywords zod emits are understood; `format` is an annotation (zod adds a `pattern`
 * for the formats it checks).
 */
import { z } from 'zod';

/** Whether responses are checked: `NODE_ENV=test` or `GATEHOUSE_CHECK_RESPONSES=1`. */
export function responseCheckEnabled(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.NODE_ENV === 'test' || env.GATEHOUSE_CHECK_RESPONSES === '1';
}

/** A handler answered with a body its operation's response schema does not describe (a bug: a 500 in tests). */
export class ResponseMismatchError extends Error {
  override readonly name = 'ResponseMismatchError';
}

type JsonSchema = boolean | { readonly [keyword: string]: unknown };
const cache = { input: new WeakMap<z.ZodType, JsonSchema>(), output: new WeakMap<z.ZodType, JsonSchema>() };

/**
 * The problems of `body` (as it goes on the wire: after a JSON round trip) against one side of `schema` (see
 * `Operation.responseForm`), as `where: what` lines; empty when it matches.
 */
export function responseProblems(
  schema: z.ZodType,
  body: unknown,
  form: 'input' | 'output' = 'output',
  max = 10,
): string[] {
  let json = cache[form].get(schema);
  if (json === undefined) {
    json = z.toJSONSchema(schema, { io: form, unrepresentable: 'any', target: 'draft-2020-12' }) as JsonSchema;
    cache[form].set(schema, json);
  }
  const problems: string[] = [];
  const wire: unknown = body === undefined ? undefined : JSON.parse(JSON.stringify(body));
  check(json, json, wire, '', problems);
  return problems.slice(0, max);
}

/** Throws `ResponseMismatchError` naming the operation and the first problems when `body` does not match. */
export function assertResponse(
  operationId: string,
  schema: z.ZodType,
  body: unknown,
  form: 'input' | 'output' = 'output',
): void {
  const problems = responseProblems(schema, body, form);
  if (problems.length > 0)
    throw new ResponseMismatchError(
      `the response of ${operationId} does not match its schema:\n${problems.join('\n')}`,
    );
}

function typeOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  return typeof value;
}

function resolve(root: JsonSchema, ref: string): JsonSchema {
  if (ref === '#') return root;
  if (!ref.startsWith('#/')) throw new Error(`unsupported $ref ${ref}`);
  let node: unknown = root;
  for (const part of ref.slice(2).split('/'))
    node = (node as Record<string, unknown>)[part.replaceAll('~1', '/').replaceAll('~0', '~')];
  return node as JsonSchema;
}

/** Appends the problems of `value` at `at` against `schema` to `out`; returns whether it matched. */
function check(root: JsonSchema, schema: JsonSchema, value: unknown, at: string, out: string[]): boolean {
  if (schema === true) return true;
  const where = at || '(body)';
  if (schema === false) return fail(out, `${where}: is not allowed here`);
  const s = schema;
  const before = out.length;
  if (typeof s.$ref === 'string' && !check(root, resolve(root, s.$ref), value, at, out)) return false;
  if (value === undefined) return fail(out, `${where}: is missing`);
  const actual = typeOf(value);
  if (s.type !== undefined) {
    const types = Array.isArray(s.type) ? (s.type as string[]) : [s.type as string];
    if (!types.includes(actual) && !(actual === 'integer' && types.includes('number')))
      return fail(out, `${where}: is ${actual}, the schema says ${types.join(' or ')}`);
  }
  if ('const' in s && JSON.stringify(s.const) !== JSON.stringify(value))
    return fail(out, `${where}: must be ${JSON.stringify(s.const)}`);
  if (Array.isArray(s.enum) && !s.enum.some((e) => JSON.stringify(e) === JSON.stringify(value)))
    return fail(
      out,
      `${where}: ${JSON.stringify(value)} is not one of ${s.enum.map((e) => JSON.stringify(e)).join(', ')}`,
    );
  for (const key of ['anyOf', 'oneOf'] as const) {
    const options = s[key];
    if (Array.isArray(options) && !options.some((o: JsonSchema) => check(root, o, value, at, []))) {
      // Show why the closest option failed: the one with the fewest problems.
      const attempts = options.map((o: JsonSchema) => {
        const problems: string[] = [];
        check(root, o, value, at, problems);
        return problems;
      });
      attempts.sort((a, b) => a.length - b.length);
      out.push(`${where}: matches none of the ${options.length} alternatives (closest: ${attempts[0]!.join('; ')})`);
      return false;
    }
  }
  if (Array.isArray(s.allOf)) for (const part of s.allOf as JsonSchema[]) check(root, part, value, at, out);
  if (typeof value === 'string') {
    if (typeof s.minLength === 'number' && [...value].length < s.minLength)
      out.push(`${where}: shorter than ${s.minLength} characters`);
    if (typeof s.maxLength === 'number' && [...value].length > s.maxLength)
      out.push(`${where}: longer than ${s.maxLength} characters`);
    if (typeof s.pattern === 'string' && !new RegExp(s.pattern).test(value))
      out.push(`${where}: ${JSON.stringify(value.slice(0, 64))} does not match ${s.pattern}`);
  }
  if (typeof value === 'number') {
    if (typeof s.minimum === 'number' && value < s.minimum) out.push(`${where}: ${value} is below ${s.minimum}`);
    if (typeof s.maximum === 'number' && value > s.maximum) out.push(`${where}: ${value} is above ${s.maximum}`);
    if (typeof s.exclusiveMinimum === 'number' && value <= s.exclusiveMinimum)
      out.push(`${where}: ${value} is not above ${s.exclusiveMinimum}`);
    if (typeof s.exclusiveMaximum === 'number' && value >= s.exclusiveMaximum)
      out.push(`${where}: ${value} is not below ${s.exclusiveMaximum}`);
  }
  if (Array.isArray(value)) {
    if (typeof s.minItems === 'number' && value.length < s.minItems)
      out.push(`${where}: fewer than ${s.minItems} items`);
    if (typeof s.maxItems === 'number' && value.length > s.maxItems)
      out.push(`${where}: more than ${s.maxItems} items`);
    const prefix = Array.isArray(s.prefixItems) ? (s.prefixItems as JsonSchema[]) : [];
    value.forEach((item, i) => {
      const itemSchema = i < prefix.length ? prefix[i] : (s.items as JsonSchema | undefined);
      if (itemSchema !== undefined) check(root, itemSchema, item, `${at}[${i}]`, out);
    });
  }
  if (actual === 'object') {
    const object = value as Record<string, unknown>;
    const properties = (s.properties ?? {}) as Record<string, JsonSchema>;
    for (const name of Array.isArray(s.required) ? (s.required as string[]) : []) {
      if (!(name in object)) out.push(`${at ? `${at}.` : ''}${name}: is missing`);
    }
    for (const [name, member] of Object.entries(object)) {
      const path = at ? `${at}.${name}` : name;
      if (name in properties) check(root, properties[name]!, member, path, out);
      else if (s.additionalProperties !== undefined) {
        if (s.additionalProperties === false) out.push(`${path}: is not in the schema`);
        else check(root, s.additionalProperties as JsonSchema, member, path, out);
      }
      if (s.propertyNames !== undefined) check(root, s.propertyNames as JsonSchema, name, `${path} (name)`, out);
    }
  }
  return out.length === before;
}

function fail(out: string[], problem: string): false {
  out.push(problem);
  return false;
}
