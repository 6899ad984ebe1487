/**
 * A collection's MCP tools, built once per snapshot (docs/mcp.md): one tool per endpoint, named after its OpenAPI
 * operationId (normalised) or its method and template, with an input schema from the imported request schemas, or
 * derived from the path parameters for a hand-written endpoint. What a request needs per call (which arguments go
 * to the path, the query, the headers and the body) is prepared here too, so a call only fills values in.
 */
import { createHash } from 'node:crypto';
import type { Collection, Endpoint, McpSettings, RequestParameter } from '../../config/schema.ts';
import { WILDCARD, grantsPermission } from '../../shared/permissions.ts';
import type { Policy, RequestContext } from '../policies/policy.ts';
import type { CompiledEndpoint } from '../snapshot/compiled.ts';
import type { DerivedClaims } from '../tokens/derived.ts';

/** Longest tool name: what the strictest MCP hosts accept (`^[A-Za-z0-9_-]{1,64}$`). */
export const TOOL_NAME_MAX = 64;
const SCHEMA_REF = 'urn:gatehouse:schemas#/$defs/';

/** A tool as `tools/list` shows it (the MCP `Tool` shape). */
export interface ToolDefinition {
  readonly name: string;
  readonly title?: string;
  readonly description: string;
  readonly inputSchema: { readonly type: 'object'; readonly [k: string]: unknown };
  readonly annotations: Readonly<Record<string, boolean | string>>;
}

/** Where one argument goes in the HTTP request. */
export interface ArgumentBinding {
  /** The argument's name in the tool's input. */
  readonly argument: string;
  readonly in: 'path' | 'query' | 'header';
  /** The parameter's name in the request (a header's in lower case). */
  readonly name: string;
  readonly required: boolean;
  /** Query arrays: repeated `name=a&name=b` (explode, OpenAPI's default) or `name=a,b`. */
  readonly explode: boolean;
}

export interface McpTool {
  readonly name: string;
  readonly endpoint: CompiledEndpoint;
  /** Whether the endpoint is public (no key, no role check). */
  readonly isPublic: boolean;
  readonly definition: ToolDefinition;
  readonly bindings: readonly ArgumentBinding[];
  /** `body` is sent as JSON: 'required', 'optional', or not accepted ('none'). */
  readonly body: 'required' | 'optional' | 'none';
  /** A hand-written endpoint: a free-form `query` object argument becomes the query string. */
  readonly freeQuery: boolean;
}

/** A collection's tools and what serving them needs; immutable once built. */
export interface McpToolSet {
  readonly settings: McpSettings;
  /** Server name for `initialize`. */
  readonly serverName: string;
  readonly tools: readonly McpTool[];
  readonly byName: ReadonlyMap<string, McpTool>;
  /** Authenticates the MCP request itself (the collection's authenticate and IP allow-list); empty: public. */
  readonly authChain: readonly Policy[];
  /** The tools `ctx` (authenticated) may call, as `tools/list` answers; cached per client while no credential narrows it. */
  listFor(ctx: RequestContext): readonly ToolDefinition[];
}

/**
 * Builds the tool set of a collection whose endpoints are compiled (`endpoints[i]` compiled from
 * `collection.endpoints[i]`).
 */
export function buildToolSet(
  collection: Collection,
  settings: McpSettings,
  endpoints: readonly CompiledEndpoint[],
  authChain: readonly Policy[],
): McpToolSet {
  const used = new Set<string>();
  const tools: McpTool[] = collection.endpoints.map((e, i) => {
    const name = uniqueName(toolName(e), used);
    return buildTool(name, e, endpoints[i]!, collection);
  });
  const byName = new Map(tools.map((t) => [t.name, t]));
  const cache = new WeakMap<object, readonly ToolDefinition[]>();
  const all = Object.freeze(tools.map((t) => t.definition));
  return Object.freeze({
    settings,
    serverName: settings.name ?? collection.name,
    tools: Object.freeze(tools),
    byName,
    authChain,
    listFor(ctx: RequestContext): readonly ToolDefinition[] {
      if (!collection.authRequired) return all;
      const principal = ctx.principal;
      if (principal === undefined) return [];
      const derived = ctx.derived;
      const cacheKey = derived ?? principal;
      let list = cache.get(cacheKey);
      if (list === undefined) {
        list = Object.freeze(tools.filter((t) => mayCall(t, ctx, derived)).map((t) => t.definition));
        cache.set(cacheKey, list);
      }
      return list;
    },
  });
}

/**
 * Whether the authenticated caller may call the tool as far as its identity decides (the authorize policy's checks:
 * environment and project scope, the role's grants, a derived credential's scope and that its pins can be met).
 * Resource policies, limits and the pins' values are decided when the tool is called.
 */
function mayCall(tool: McpTool, ctx: RequestContext, derived: DerivedClaims | undefined): boolean {
  if (tool.isPublic) return true;
  const principal = ctx.principal!;
  const endpoint = tool.endpoint;
  const c = endpoint.collection;
  if (!(principal.environments.has(c.environment) || principal.environments.has(WILDCARD))) return false;
  if (!(principal.projects.has(c.project) || principal.projects.has(WILDCARD))) return false;
  if (!principal.role.endpointIds.has(endpoint.id)) return false;
  if (derived === undefined) return true;
  if (!derived.s.some((s) => grantsPermission(s, endpoint.permission))) return false;
  if (derived.r !== undefined) for (const name in derived.r) if (!endpoint.paramNames.includes(name)) return false;
  return true;
}

/** The operationId normalised (`[A-Za-z0-9_-]`), else `<method>_<template segments>`: `get_orgs_orgId_invoices`. */
export function toolName(e: Pick<Endpoint, 'operationId' | 'method' | 'path'>): string {
  const raw =
    e.operationId ??
    `${e.method.toLowerCase()}${e.path === '/' ? '_root' : e.path.replace(/[{}]/g, '').replace(/\//g, '_')}`;
  let name = raw.replace(/[^A-Za-z0-9_-]+/g, '_').replace(/^_+|_+$/g, '');
  if (name === '') name = `${e.method.toLowerCase()}_root`;
  if (name.length > TOOL_NAME_MAX) {
    const hash = createHash('sha256').update(raw).digest('hex').slice(0, 8);
    name = `${name.slice(0, TOOL_NAME_MAX - 9)}_${hash}`;
  }
  return name;
}

/** Names stay unique in endpoint order: a later duplicate gets `_2`, `_3`, … */
function uniqueName(name: string, used: Set<string>): string {
  let candidate = name;
  for (let n = 2; used.has(candidate); n++) {
    const suffix = `_${n}`;
    candidate = name.slice(0, TOOL_NAME_MAX - suffix.length) + suffix;
  }
  used.add(candidate);
  return candidate;
}

function buildTool(name: string, e: Endpoint, endpoint: CompiledEndpoint, collection: Collection): McpTool {
  const properties: Record<string, unknown> = {};
  const required: string[] = [];
  const bindings: ArgumentBinding[] = [];
  const taken = new Set<string>(['body', 'query']);
  const bind = (p: RequestParameter | { name: string; in: 'path'; required: true; schema?: unknown }) => {
    let argument = p.name;
    if (taken.has(argument)) argument = `${p.in}_${p.name}`;
    if (taken.has(argument)) return;
    taken.add(argument);
    properties[argument] = p.schema ?? { type: 'string' };
    const isRequired = p.in === 'path' || p.required === true;
    if (isRequired) required.push(argument);
    bindings.push({
      argument,
      in: p.in,
      name: p.name,
      required: isRequired,
      explode: 'explode' in p && p.explode === false ? false : true,
    });
  };
  const declared = e.request?.parameters ?? [];
  // Path parameters first, in template order, described by the document where it declares them.
  for (const param of endpoint.paramNames) {
    const own = declared.find((p) => p.in === 'path' && p.name === param);
    bind({ name: param, in: 'path', required: true, ...(own?.schema !== undefined && { schema: own.schema }) });
  }
  for (const p of declared) if (p.in !== 'path') bind(p);

  const fromDocument = e.request !== undefined;
  const freeQuery = !fromDocument;
  if (freeQuery)
    properties.query = {
      type: 'object',
      description: 'Query parameters, sent as name=value (an array value repeats the name).',
      additionalProperties: { type: ['string', 'number', 'boolean', 'array'] },
    };
  let body: McpTool['body'] = 'none';
  if (e.request?.body) {
    body = e.request.body.required ? 'required' : 'optional';
    properties.body = e.request.body.schema;
    if (body === 'required') required.push('body');
  } else if (!fromDocument && (e.method === 'POST' || e.method === 'PUT' || e.method === 'PATCH')) {
    body = 'optional';
    properties.body = { description: 'The JSON request body.' };
  }

  const defs: Record<string, unknown> = {};
  const inputSchema: Record<string, unknown> = {
    type: 'object',
    properties: localRefs(properties, collection.schemas, defs) as Record<string, unknown>,
    ...(required.length > 0 && { required }),
    additionalProperties: false,
  };
  if (Object.keys(defs).length > 0) inputSchema.$defs = defs;

  const where = `${e.method} ${collection.basePath === '/' ? '' : collection.basePath}${e.path}`;
  const annotations: Record<string, boolean | string> = {
    readOnlyHint: e.method === 'GET' || e.method === 'HEAD' || e.method === 'OPTIONS',
    idempotentHint: e.method !== 'POST' && e.method !== 'PATCH',
    destructiveHint: e.method === 'DELETE',
    openWorldHint: false,
  };
  if (e.summary !== undefined) annotations.title = e.summary;
  const definition: ToolDefinition = Object.freeze({
    name,
    ...(e.summary !== undefined && { title: e.summary }),
    description: `${e.summary === undefined ? '' : `${e.summary}\n\n`}Calls ${where}${
      collection.hidePermissions ? '' : ` (permission ${e.permission})`
    }.`,
    inputSchema: Object.freeze(inputSchema) as ToolDefinition['inputSchema'],
    annotations: Object.freeze(annotations),
  });
  return Object.freeze({
    name,
    endpoint,
    isPublic: collection.authRequired && e.public === true && collection.publicEndpoints === true,
    definition,
    bindings: Object.freeze(bindings),
    body,
    freeQuery,
  });
}

/**
 * A copy of `schema` whose references into the collection's `schemas` point at the tool's own `$defs` (an MCP
 * client sees each tool's schema alone), the referenced definitions copied into `defs`, transitively.
 */
function localRefs(
  schema: unknown,
  schemas: Record<string, unknown> | undefined,
  defs: Record<string, unknown>,
): unknown {
  if (Array.isArray(schema)) return schema.map((s) => localRefs(s, schemas, defs));
  if (schema === null || typeof schema !== 'object') return schema;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(schema)) {
    if (k === '$ref' && typeof v === 'string' && v.startsWith(SCHEMA_REF)) {
      const key = v.slice(SCHEMA_REF.length);
      out.$ref = `#/$defs/${key}`;
      if (!(key in defs)) {
        defs[key] = true; // placeholder: a cycle ends here
        defs[key] = localRefs(schemas?.[key] ?? true, schemas, defs);
      }
    } else out[k] = localRefs(v, schemas, defs);
  }
  return out;
}
