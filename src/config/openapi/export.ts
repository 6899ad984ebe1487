/**
 * Export: a collection's endpoints as an OpenAPI 3.1 document that imports back to the same endpoints (rules in
 * docs/openapi.md): each operation carries `x-gatehouse-permission` (or, for permission sets, `security` with one
 * requirement per set of the `gatehouse` scheme), public ones `security: []`, and the request schemas with the
 * collection's `schemas` as `components.schemas`.
 */
import type { Collection, Endpoint, RequestParameter } from '../schema.ts';
import { SCHEMAS_ID } from './request-schemas.ts';

type Json = Record<string, unknown>;
const REF = `${SCHEMAS_ID}#/$defs/`;

export type ExportableCollection = Pick<Collection, 'name' | 'basePath' | 'endpoints' | 'schemas'> & {
  description?: string | undefined;
  revision?: number;
};

export function exportOpenApi(collection: ExportableCollection): Json {
  const paths: Record<string, Json> = {};
  for (const e of collection.endpoints) {
    const item = (paths[e.path] ??= {});
    item[e.method.toLowerCase()] = exportOperation(e);
  }
  const schemas = collection.schemas
    ? Object.fromEntries(Object.entries(collection.schemas).map(([k, v]) => [k, unrewrite(v)]))
    : undefined;
  return {
    openapi: '3.1.0',
    info: {
      title: collection.name,
      version: String(collection.revision ?? 1),
      ...(collection.description ? { description: collection.description } : {}),
    },
    ...(collection.basePath !== '/' ? { servers: [{ url: collection.basePath }] } : {}),
    paths,
    components: {
      securitySchemes: {
        gatehouse: {
          type: 'http',
          scheme: 'bearer',
          description:
            'A Gatehouse API key. The scopes of a requirement are Gatehouse permissions that a client role must grant together.',
        },
      },
      ...(schemas ? { schemas } : {}),
    },
    security: [{ gatehouse: [] }],
  };
}

function exportOperation(e: Endpoint): Json {
  const op: Json = {};
  if (e.operationId !== undefined) op.operationId = e.operationId;
  if (e.summary !== undefined) op.summary = e.summary;
  if (e.permissionSets) op.security = e.permissionSets.map((set) => ({ gatehouse: set }));
  else op['x-gatehouse-permission'] = e.permission;
  if (e.public) op.security = [];
  if (e.cost !== undefined) op['x-gatehouse-cost'] = e.cost;
  if (e.validate !== undefined) op['x-gatehouse-validation'] = e.validate;
  const declared = new Set<string>();
  const parameters: Json[] = [];
  for (const p of e.request?.parameters ?? []) {
    if (p.in === 'path') declared.add(p.name);
    parameters.push(exportParameter(p));
  }
  for (const m of e.path.matchAll(/\{([^}]+)\}/g))
    if (!declared.has(m[1]!)) parameters.push({ name: m[1], in: 'path', required: true, schema: { type: 'string' } });
  if (parameters.length > 0) op.parameters = parameters;
  if (e.request?.body)
    op.requestBody = {
      ...(e.request.body.required ? { required: true } : {}),
      content: { 'application/json': { schema: unrewrite(e.request.body.schema) } },
    };
  op.responses = { default: { description: "The upstream's answer" } };
  return op;
}

function exportParameter(p: RequestParameter): Json {
  const out: Json = { name: p.name, in: p.in };
  if (p.required) out.required = true;
  if (p.style !== undefined) out.style = p.style;
  if (p.explode !== undefined) out.explode = p.explode;
  if (p.schema !== undefined) out.schema = unrewrite(p.schema);
  return out;
}

/** `urn:gatehouse:schemas#/$defs/<key>` → `#/components/schemas/<key>`, everywhere in a schema. */
function unrewrite(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(unrewrite);
  if (value === null || typeof value !== 'object') return value;
  const out: Json = {};
  for (const [k, v] of Object.entries(value)) {
    out[k] =
      k === '$ref' && typeof v === 'string' && v.startsWith(REF)
        ? `#/components/schemas/${v.slice(REF.length)}`
        : unrewrite(v);
  }
  return out;
}
