/**
 * The request schemas of imported operations, made self-contained for the gateway: every internal `$ref` an
 * operation's schemas reach (transitively, circular ones included) is copied once into the collection's `schemas`
 * under a key, and the reference rewritten to `urn:gatehouse:schemas#/$defs/<key>`. The gateway compiles them
 * with ajv once per snapshot. Keys are component names where the target is `#/components/schemas/<name>` (so an
 * export writes them back under the same names), else the pointer with `/` as `.`.
 */
import type { RequestParameter, RequestValidation } from '../schema.ts';
import { pointerOf, pointerSegments, resolvePointer, type SpecProblem } from './source.ts';

export const SCHEMAS_ID = 'urn:gatehouse:schemas';
const REF_PREFIX = `${SCHEMAS_ID}#/$defs/`;
const COMPONENT = /^\/components\/schemas\/([A-Za-z0-9._-]+)$/;

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** Collects the schemas operations reference into one `schemas` record for the collection. */
export class SchemaCollector {
  readonly schemas: Record<string, Json> = {};
  readonly #document: unknown;
  readonly #keys = new Map<string, string>();
  readonly #used = new Set<string>();
  readonly #problems: SpecProblem[];

  constructor(document: unknown, problems: SpecProblem[]) {
    this.#document = document;
    this.#problems = problems;
  }

  /** A copy of `schema` (found at `at`) whose internal references point into the collection's `schemas`. */
  rewrite(schema: unknown, at: string): Json {
    if (Array.isArray(schema)) return schema.map((s, i) => this.rewrite(s, `${at}/${i}`));
    if (schema === null || typeof schema !== 'object') return schema as Json;
    const out: Record<string, Json> = {};
    for (const [k, v] of Object.entries(schema)) {
      if (k === '$ref' && typeof v === 'string') {
        out[k] = this.#reference(v, `${at}/$ref`);
      } else out[k] = this.rewrite(v, `${at}${pointerOf(k)}`);
    }
    return out;
  }

  #reference(ref: string, at: string): string {
    if (!ref.startsWith('#')) {
      this.#problems.push({
        pointer: at,
        message: `external reference "${ref}" was not bundled: upload one document (the CLI bundles relative files)`,
      });
      return ref;
    }
    const pointer = decodeURIComponent(ref.slice(1));
    let key = this.#keys.get(pointer);
    if (key !== undefined) return REF_PREFIX + key;
    const target = resolvePointer(this.#document, pointer);
    if (target === undefined) {
      this.#problems.push({ pointer: at, message: `reference "${ref}" points at nothing in the document` });
      return ref;
    }
    const component = COMPONENT.exec(pointer);
    key = component
      ? component[1]!
      : pointerSegments(pointer)
          .join('.')
          .replace(/[^A-Za-z0-9._-]/g, '-');
    while (this.#used.has(key) || key === '') key += '_';
    this.#keys.set(pointer, key);
    this.#used.add(key);
    this.schemas[key] = true; // placeholder while the target's own references are rewritten (cycles end here)
    this.schemas[key] = this.rewrite(target, pointer);
    return REF_PREFIX + key;
  }
}

/** Follows `$ref`s of non-schema objects (parameters, request bodies, path items); cycles and misses are problems. */
export function deref(document: unknown, value: unknown, at: string, problems: SpecProblem[]): unknown {
  const seen = new Set<string>();
  let current = value;
  while (current !== null && typeof current === 'object' && typeof (current as { $ref?: unknown }).$ref === 'string') {
    const ref = (current as { $ref: string }).$ref;
    if (!ref.startsWith('#')) {
      problems.push({ pointer: `${at}/$ref`, message: `external reference "${ref}" was not bundled` });
      return undefined;
    }
    if (seen.has(ref)) {
      problems.push({ pointer: `${at}/$ref`, message: `reference "${ref}" refers to itself` });
      return undefined;
    }
    seen.add(ref);
    current = resolvePointer(document, decodeURIComponent(ref.slice(1)));
    if (current === undefined)
      problems.push({ pointer: `${at}/$ref`, message: `reference "${ref}" points at nothing` });
  }
  return current;
}

const JSON_MEDIA = /^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i;

/** The validation data of one operation (parameters of the path item and the operation, and a JSON body). */
export function requestValidation(
  document: unknown,
  pathItem: Record<string, unknown>,
  operation: Record<string, unknown>,
  pathPointer: string,
  operationPointer: string,
  collector: SchemaCollector,
  problems: SpecProblem[],
): RequestValidation | undefined {
  const byKey = new Map<string, RequestParameter>();
  const add = (list: unknown, at: string) => {
    if (!Array.isArray(list)) return;
    list.forEach((raw, i) => {
      const p = deref(document, raw, `${at}/${i}`, problems) as Record<string, unknown> | undefined;
      if (!p || typeof p.name !== 'string' || typeof p.in !== 'string') return;
      if (p.in !== 'path' && p.in !== 'query' && p.in !== 'header') return; // cookies are not validated
      const parameter: RequestParameter = { name: p.in === 'header' ? p.name.toLowerCase() : p.name, in: p.in };
      if (p.required === true) parameter.required = true;
      if (typeof p.style === 'string') parameter.style = p.style as RequestParameter['style'];
      if (typeof p.explode === 'boolean') parameter.explode = p.explode;
      let schema = p.schema;
      if (schema === undefined && p.content && typeof p.content === 'object') {
        const first = Object.values(p.content as Record<string, { schema?: unknown }>)[0];
        schema = first?.schema;
      }
      if (schema !== undefined)
        parameter.schema = collector.rewrite(schema, `${at}/${i}/schema`) as RequestParameter['schema'];
      byKey.set(`${parameter.in} ${parameter.name}`, parameter); // an operation's parameter overrides the path's
    });
  };
  add(pathItem.parameters, `${pathPointer}/parameters`);
  add(operation.parameters, `${operationPointer}/parameters`);
  const out: RequestValidation = {};
  if (byKey.size > 0) out.parameters = [...byKey.values()];
  const body = deref(document, operation.requestBody, `${operationPointer}/requestBody`, problems) as
    { required?: unknown; content?: Record<string, { schema?: unknown }> } | undefined;
  if (body?.content) {
    const media = Object.keys(body.content).find((m) => JSON_MEDIA.test(m));
    const schema = media === undefined ? undefined : body.content[media]?.schema;
    if (schema !== undefined)
      out.body = {
        ...(body.required === true ? { required: true } : {}),
        schema: collector.rewrite(
          schema,
          `${operationPointer}/requestBody/content${pointerOf(media!)}/schema`,
        ) as RequestParameter['schema'] & object,
      };
  }
  return out.parameters || out.body ? out : undefined;
}
