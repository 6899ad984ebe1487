/**
 * The admin API's OpenAPI 3.1 document, generated from the operation objects and their zod schemas (zod 4's
 * `toJSONSchema` emits JSON Schema 2020-12, which OpenAPI 3.1 uses as is). Served at `/api/openapi.json`.
 */
import { z } from 'zod';
import { ERRORS } from '../../shared/errors.ts';
import type { Operation } from './operation.ts';

const PROBLEM = {
  type: 'object',
  required: ['type', 'title', 'status', 'code'],
  properties: {
    type: { type: 'string', format: 'uri' },
    title: { type: 'string' },
    status: { type: 'integer' },
    code: { type: 'string', enum: Object.keys(ERRORS).filter((c) => c.startsWith('GH_ERR_ADMIN_')) },
    detail: { type: 'string' },
    errors: {
      type: 'array',
      items: { type: 'object', properties: { path: { type: 'string' }, message: { type: 'string' } } },
    },
    instance: { type: 'string' },
    clients: {
      description: 'GH_ERR_ADMIN_ROLE_IN_USE: the API clients holding the role (within the caller’s scope)',
      type: 'array',
      items: {
        type: 'object',
        required: ['id', 'name'],
        properties: { id: { type: 'string' }, name: { type: 'string' } },
      },
    },
  },
};

/**
 * The JSON Schema of `s`. A recursive schema comes out of zod with `$defs` and `$ref: "#/$defs/…"`, which in an
 * OpenAPI document would resolve against the document's root: those definitions move to `components.schemas`
 * (named `<operation>_<part>_<def>`) and their references follow, so that every `$ref` of the document resolves.
 */
function schema(s: z.ZodType, io: 'input' | 'output', name: string, components: Record<string, unknown>): unknown {
  const json = z.toJSONSchema(s, { io, unrepresentable: 'any', target: 'draft-2020-12' }) as Record<string, unknown>;
  const defs = json.$defs as Record<string, unknown> | undefined;
  if (defs === undefined) return json;
  delete json.$defs;
  const component = (def: string) => `${name}_${def.replace(/[^A-Za-z0-9_]/g, '')}`;
  const rewrite = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(rewrite);
    if (value === null || typeof value !== 'object') return value;
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) =>
        k === '$ref' && typeof v === 'string' && v.startsWith('#/$defs/')
          ? [k, `#/components/schemas/${component(v.slice('#/$defs/'.length))}`]
          : [k, rewrite(v)],
      ),
    );
  };
  for (const [def, body] of Object.entries(defs)) components[component(def)] = rewrite(body);
  return rewrite(json);
}

/** An operation's query schema as OpenAPI `in: query` parameters, each with its own schema and description. */
function queryParameters(s: z.ZodObject, name: string, components: Record<string, unknown>): Record<string, unknown>[] {
  const json = schema(s, 'input', name, components) as {
    properties?: Record<string, Record<string, unknown>>;
    required?: string[];
  };
  return Object.entries(json.properties ?? {}).map(([param, { description, ...rest }]) => ({
    name: param,
    in: 'query',
    required: json.required?.includes(param) ?? false,
    ...(typeof description === 'string' ? { description } : {}),
    schema: rest,
  }));
}

export function buildOpenApi(operations: readonly Operation[], version: string): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  const schemas: Record<string, unknown> = { Problem: PROBLEM };
  for (const op of operations) {
    const params: Record<string, unknown>[] = [...op.path.matchAll(/\{([A-Za-z]+)\}/g)].map((m) => ({
      name: m[1],
      in: 'path',
      required: true,
      schema: { type: 'string' },
    }));
    if (op.query) params.push(...queryParameters(op.query, `${op.id}_query`, schemas));
    const status = String(op.status ?? 200);
    const responses: Record<string, unknown> = {
      [status]:
        status === '204'
          ? { description: 'Done' }
          : {
              description: 'Success',
              content: {
                'application/json': {
                  schema: op.response
                    ? schema(op.response, op.responseForm ?? 'output', `${op.id}_response`, schemas)
                    : {},
                },
              },
            },
      default: {
        description: 'An error (RFC 9457 problem details)',
        content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } },
      },
    };
    (paths[op.path] ??= {})[op.method.toLowerCase()] = {
      operationId: op.id,
      summary: op.summary,
      tags: [op.tag],
      ...(params.length ? { parameters: params } : {}),
      ...(op.body
        ? {
            requestBody: {
              required: true,
              content: { 'application/json': { schema: schema(op.body, 'input', `${op.id}_body`, schemas) } },
            },
          }
        : {}),
      responses,
      ...(op.permission === 'public' ? { security: [] } : {}),
      ...(typeof op.permission === 'string' && op.permission !== 'public'
        ? { 'x-gatehouse-permission': op.permission }
        : {}),
      ...(op.devOnly ? { 'x-gatehouse-dev-only': true } : {}),
    };
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Gatehouse admin API',
      version,
      description:
        "Manage workspaces, API collections, client roles and API clients. Authenticate with an API client token (`Authorization: Bearer <token>`); the client's role must grant each operation's `x-gatehouse-permission` (patterns: exact, `prefix:*`, `*`).",
    },
    servers: [{ url: '/' }],
    security: [{ apiClientToken: [] }, { session: [] }],
    components: {
      securitySchemes: {
        apiClientToken: { type: 'http', scheme: 'bearer', description: 'An API client token (ghk_…)' },
        session: { type: 'apiKey', in: 'cookie', name: 'gh_session' },
      },
      schemas,
    },
    paths,
  };
}
