/**
 * Request validation against an endpoint's OpenAPI operation (opt-in: the collection's `validateRequests` or the
 * endpoint's `validate`). Schemas are compiled with ajv (JSON Schema 2020-12; the import turned OpenAPI 3.0's
 * dialect into it) once per snapshot, per collection: never per request.
 *
 * Parameters are read with OpenAPI's serialisations (path `simple`; query `form` exploded or not,
 * `spaceDelimited`, `pipeDelimited`, `deepObject`; header `simple`) and coerced to their schema's types. A JSON body
 * is read up to the collection's `maxBodyBytes` (refused with 413 before parsing when its Content-Length says more),
 * parsed and validated; the bytes read are then what is forwarded. A refusal is 400 `GH_ERR_REQUEST_VALIDATION`
 * with each failing field's JSON pointer and the rule it breaks, never the value sent.
 */
import type { IncomingMessage } from 'node:http';
import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import type { Endpoint, RequestParameter } from '../../config/schema.ts';
import { type Refusal, refusal } from '../../shared/errors.ts';
import { decodeSegment } from '../http/canonical-path.ts';
import type { Policy, RequestContext } from './policy.ts';

const SCHEMAS_ID = 'urn:gatehouse:schemas';
export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;

// ajv-formats is CommonJS with the plugin as module.exports (and .default): either shape is accepted.
const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ?? addFormatsModule) as (
  ajv: Ajv2020,
) => void;

/** The validators of one collection: two ajv instances (parameters coerce strings to their types; bodies do not). */
export class CollectionValidators {
  readonly #params: Ajv2020;
  readonly #body: Ajv2020;

  constructor(schemas: Record<string, unknown> | undefined) {
    this.#params = new Ajv2020({ strict: false, allErrors: true, coerceTypes: 'array', validateFormats: true });
    this.#body = new Ajv2020({ strict: false, allErrors: true, validateFormats: true });
    for (const ajv of [this.#params, this.#body]) {
      addFormats(ajv);
      // OpenAPI's own keywords inside schemas are annotations here.
      for (const keyword of ['discriminator', 'xml', 'externalDocs', 'example'])
        if (!ajv.getKeyword(keyword)) ajv.addKeyword(keyword);
      ajv.addSchema({ $id: SCHEMAS_ID, $defs: schemas ?? {} });
    }
  }

  /** The policy for one endpoint, or undefined when it has nothing to validate. */
  policy(endpoint: Endpoint, maxBodyBytes: number | undefined): Policy | undefined {
    const request = endpoint.request;
    if (!request) return undefined;
    const params = (request.parameters ?? []).map((p) => ({
      p,
      check: p.schema === undefined ? undefined : this.#params.compile(wrap(p.schema)),
      pathIndex: p.in === 'path' ? templateIndex(endpoint.path, p.name) : -1,
    }));
    const body = request.body
      ? { required: request.body.required === true, check: this.#body.compile(wrap(request.body.schema)) }
      : undefined;
    return validateRequest(params, body, maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES);
  }
}

/** A schema compiled on its own: booleans as they are, objects as a copy (ajv keeps what it is given). */
function wrap(schema: unknown): object | boolean {
  return typeof schema === 'boolean' ? schema : { ...(schema as object) };
}

function templateIndex(template: string, name: string): number {
  return template
    .slice(1)
    .split('/')
    .findIndex((s) => s === `{${name}}`);
}

interface CompiledParameter {
  p: RequestParameter;
  check: ValidateFunction | undefined;
  pathIndex: number;
}

interface FieldError {
  pointer: string;
  message: string;
}

const JSON_TYPE = /^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i;

function validateRequest(
  params: readonly CompiledParameter[],
  body: { required: boolean; check: ValidateFunction } | undefined,
  maxBodyBytes: number,
): Policy {
  return function validateRequestPolicy(ctx: RequestContext) {
    const errors: FieldError[] = [];
    if (params.length > 0) checkParameters(ctx, params, errors);
    if (!body) return errors.length > 0 ? invalid(errors) : undefined;
    const req = ctx.req;
    const hasBody = req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
    if (!hasBody) {
      if (body.required) errors.push({ pointer: '/body', message: 'a JSON body is required' });
      return errors.length > 0 ? invalid(errors) : undefined;
    }
    const type = req.headers['content-type'] ?? '';
    if (!JSON_TYPE.test(type)) {
      errors.push({ pointer: '/header/content-type', message: 'must be application/json (or a +json type)' });
      return invalid(errors);
    }
    if (Number(req.headers['content-length'] ?? 0) > maxBodyBytes) return tooLarge(maxBodyBytes);
    return readBody(req, maxBodyBytes).then((bytes) => {
      if (bytes === undefined) return tooLarge(maxBodyBytes);
      let value: unknown;
      try {
        value = JSON.parse(bytes.toString('utf8'));
      } catch {
        errors.push({ pointer: '/body', message: 'is not valid JSON' });
        return invalid(errors);
      }
      if (!body.check(value)) for (const e of body.check.errors ?? []) errors.push(fieldError('/body', e));
      if (errors.length > 0) return invalid(errors);
      ctx.requestBody = bytes;
      return undefined;
    });
  };
}

function checkParameters(ctx: RequestContext, params: readonly CompiledParameter[], errors: FieldError[]): void {
  let query: Map<string, string[]> | undefined;
  let segments: string[] | undefined;
  for (const { p, check, pathIndex } of params) {
    const base = `/${p.in}/${escape(p.name)}`;
    let value: unknown;
    if (p.in === 'path') {
      segments ??= ctx.forwardPath.slice(1).split('/');
      const raw = segments[pathIndex];
      value = raw === undefined ? undefined : fromSimple(decodeSegment(raw), p);
    } else if (p.in === 'header') {
      const raw = ctx.req.headers[p.name];
      value = raw === undefined ? undefined : fromSimple(Array.isArray(raw) ? raw.join(',') : raw, p);
    } else {
      query ??= parseQuery(rawQuery(ctx.req.url ?? ''));
      value = fromQuery(query, p);
    }
    if (value === undefined) {
      if (p.required) errors.push({ pointer: base, message: 'is required' });
      continue;
    }
    if (check && !check(value)) for (const e of check.errors ?? []) errors.push(fieldError(base, e));
  }
}

function rawQuery(url: string): string {
  const q = url.indexOf('?');
  return q === -1 ? '' : url.slice(q + 1);
}

function parseQuery(raw: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  if (raw === '') return out;
  for (const pair of raw.split('&')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    const name = decode(eq === -1 ? pair : pair.slice(0, eq));
    const value = eq === -1 ? '' : decode(pair.slice(eq + 1));
    let list = out.get(name);
    if (!list) out.set(name, (list = []));
    list.push(value);
  }
  return out;
}

function decode(s: string): string {
  try {
    return decodeURIComponent(s.replace(/\+/g, ' '));
  } catch {
    return s;
  }
}

function schemaType(p: RequestParameter): string | undefined {
  const schema = p.schema;
  if (typeof schema !== 'object' || schema === null) return undefined;
  const type = (schema as { type?: unknown }).type;
  if (Array.isArray(type)) return type.find((t) => t !== 'null') as string | undefined;
  return typeof type === 'string' ? type : undefined;
}

/** `simple` (path, header): arrays comma-separated; objects `k,v,k,v` or, exploded, `k=v,k=v`. */
function fromSimple(raw: string, p: RequestParameter): unknown {
  const type = schemaType(p);
  if (type === 'array') return raw === '' ? [] : raw.split(',');
  if (type === 'object') return pairs(raw.split(','), p.explode === true);
  return raw;
}

function pairs(items: string[], exploded: boolean): Record<string, string> {
  const out: Record<string, string> = {};
  if (exploded)
    for (const item of items) {
      const eq = item.indexOf('=');
      if (eq > 0) out[item.slice(0, eq)] = item.slice(eq + 1);
    }
  else for (let i = 0; i + 1 < items.length; i += 2) out[items[i]!] = items[i + 1]!;
  return out;
}

/** Query parameters: `form` (default; exploded by default), `spaceDelimited`, `pipeDelimited`, `deepObject`. */
function fromQuery(query: Map<string, string[]>, p: RequestParameter): unknown {
  const style = p.style ?? 'form';
  const type = schemaType(p);
  if (style === 'deepObject') {
    const out: Record<string, string> = {};
    let found = false;
    for (const [name, values] of query) {
      const m = /^([^[]+)\[([^\]]*)\]$/.exec(name);
      if (m && m[1] === p.name) {
        out[m[2]!] = values[values.length - 1]!;
        found = true;
      }
    }
    return found ? out : undefined;
  }
  const values = query.get(p.name);
  if (values === undefined) return undefined;
  const exploded = p.explode ?? style === 'form';
  if (type === 'array') {
    if (exploded) return values;
    const separator = style === 'spaceDelimited' ? ' ' : style === 'pipeDelimited' ? '|' : ',';
    return values.flatMap((v) => (v === '' ? [] : v.split(separator)));
  }
  if (type === 'object' && !exploded) return pairs(values[values.length - 1]!.split(','), false);
  return values.length === 1 ? values[0] : values;
}

function fieldError(base: string, e: ErrorObject): FieldError {
  let pointer = base + e.instancePath;
  // The name of a missing or unexpected property is the request's structure, not a value: it is named.
  const params = e.params as { missingProperty?: string; additionalProperty?: string };
  if (e.keyword === 'required' && params.missingProperty) pointer += `/${escape(params.missingProperty)}`;
  if (e.keyword === 'additionalProperties' && params.additionalProperty)
    pointer += `/${escape(params.additionalProperty)}`;
  return { pointer, message: e.message ?? `fails ${e.keyword}` };
}

function escape(name: string): string {
  return name.replace(/~/g, '~0').replace(/\//g, '~1');
}

function invalid(errors: FieldError[]): Refusal {
  const shown = errors.slice(0, 20);
  return {
    code: 'GH_ERR_REQUEST_VALIDATION',
    detail: shown.map((e) => `${e.pointer}: ${e.message}`).join('; ') + (errors.length > 20 ? '; …' : ''),
    extensions: { errors: shown },
  };
}

function tooLarge(max: number): Refusal {
  return refusal('GH_ERR_REQUEST_BODY_TOO_LARGE', `The body exceeds ${max} bytes.`);
}

/** The body's bytes, or undefined once more than `max` arrived (the rest is not read). */
function readBody(req: IncomingMessage, max: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > max) {
        cleanup();
        req.pause();
        resolve(undefined);
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve(Buffer.concat(chunks, size));
    };
    const onError = (error: Error) => {
      cleanup();
      reject(error);
    };
    const cleanup = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
  });
}
