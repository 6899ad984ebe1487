/**
 * OpenAPI import: a document (Swagger 2.0, OpenAPI 3.0 or 3.1; JSON or YAML; bundled into one document) becomes a
 * collection's endpoints. Pure: no I/O; the rules are in docs/openapi.md. Every problem is collected and returned
 * at once, each with its JSON pointer (and line:column when the document came as text); with any problem, no
 * endpoints are returned, so nothing can be applied.
 *
 * The parser is @scalar/openapi-parser (validation against the official schemas, with JSON pointers; upgrade of
 * 2.0 and 3.0 to 3.1, which turns 3.0's `nullable` and boolean `exclusiveMinimum` into JSON Schema 2020-12).
 */
import { upgrade, validate } from '@scalar/openapi-parser';
import type { Endpoint, HttpMethod } from '../schema.ts';
import { EndpointSchema } from '../schema.ts';
import {
  isImportablePermission,
  methodTemplatePermission,
  normaliseOperationId,
  type SecurityRequirement,
  securityPermissions,
} from './permission-rules.ts';
import { deref, requestValidation, SchemaCollector } from './request-schemas.ts';
import { locateProblems, parseSpecText, pointerOf, type SpecProblem } from './source.ts';
import { findOverlaps, type Overlap, templateShape } from './templates.ts';

export type { SpecProblem } from './source.ts';
export type { Overlap } from './templates.ts';

export interface ImportOptions {
  /** The collection allows public endpoints (`publicEndpoints: true`): `security: []` operations become public. */
  publicEndpoints?: boolean;
  /** The collection validates requests (`validateRequests: true`): request schemas are kept for every operation. */
  validateRequests?: boolean;
  /**
   * The collection is served as an MCP server (`mcp.enabled`): request schemas are kept for every operation, as the
   * tools' input schemas, without turning validation on.
   */
  mcp?: boolean;
}

export interface ImportedSpec {
  /** The version of the document as uploaded. */
  version: '2.0' | '3.0' | '3.1';
  title: string | undefined;
  /** The path of the document's server URL(s), when they agree on one (e.g. `/v1`); see docs/openapi.md. */
  serverBasePath: string | undefined;
  /** In the input form of `EndpointSchema`, in document order. */
  endpoints: Endpoint[];
  /** The JSON Schemas the endpoints' request schemas reference (absent when no operation is validated). */
  schemas: Record<string, unknown> | undefined;
  /** Templates of the same method that match some of the same paths; the literal segment wins (docs/openapi.md). */
  overlaps: Overlap[];
  /** What was imported with a change the document did not ask for (e.g. a public operation made private). */
  warnings: SpecProblem[];
}

export type ImportOutcome = { ok: true; spec: ImportedSpec } | { ok: false; problems: SpecProblem[] };

const METHODS: readonly [string, HttpMethod][] = [
  ['get', 'GET'],
  ['put', 'PUT'],
  ['post', 'POST'],
  ['delete', 'DELETE'],
  ['options', 'OPTIONS'],
  ['head', 'HEAD'],
  ['patch', 'PATCH'],
];

type Obj = Record<string, unknown>;
const isObject = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);

/** Imports a document given as text (JSON or YAML) or as a parsed object. */
export async function importOpenApi(input: string | object, options: ImportOptions = {}): Promise<ImportOutcome> {
  const text = typeof input === 'string' ? input : undefined;
  let document: unknown = input;
  if (text !== undefined) {
    const parsed = parseSpecText(text);
    if (!parsed.ok) return parsed;
    document = parsed.document;
  }
  const outcome = await importDocument(document, options);
  if (!outcome.ok && text !== undefined) return { ok: false, problems: locateProblems(text, outcome.problems) };
  if (outcome.ok && text !== undefined && outcome.spec.warnings.length > 0)
    outcome.spec.warnings = locateProblems(text, outcome.spec.warnings);
  return outcome;
}

async function importDocument(document: unknown, options: ImportOptions): Promise<ImportOutcome> {
  if (!isObject(document))
    return { ok: false, problems: [{ pointer: '', message: 'must be an OpenAPI document (an object)' }] };
  const declared = typeof document.openapi === 'string' ? document.openapi : document.swagger;
  const version = declared === '2.0' ? '2.0' : /^3\.0\.\d+$/.test(String(declared)) ? '3.0' : '3.1';
  if (declared !== '2.0' && !/^3\.[01]\.\d+$/.test(String(declared)))
    return {
      ok: false,
      problems: [
        {
          pointer: document.openapi !== undefined ? '/openapi' : '',
          message: `must be Swagger 2.0 or OpenAPI 3.0/3.1 (found ${declared === undefined ? 'no "openapi" field' : JSON.stringify(declared)})`,
        },
      ],
    };
  const problems: SpecProblem[] = [];
  const checked = await validate(document);
  for (const e of checked.errors ?? []) {
    const path: unknown = e.path;
    problems.push({
      pointer: Array.isArray(path) ? pointerOf(...(path as string[])) : String(path ?? ''),
      message: e.message,
    });
  }

  // Swagger 2.0's base path and 3.0's dialect are read through the 3.1 form; the paths keep their pointers.
  const upgraded = upgrade(document).specification as unknown as Obj; // in place: the original is not read again
  const warnings: SpecProblem[] = [];
  const collector = new SchemaCollector(upgraded, problems);
  const endpoints: Endpoint[] = [];
  const shapes = new Map<
    string,
    { path: string; pointer: string; methods: Set<string>; names: Map<string, string> }[]
  >();
  const rootSecurity = Array.isArray(upgraded.security) ? (upgraded.security as SecurityRequirement[]) : undefined;
  const paths = isObject(upgraded.paths) ? upgraded.paths : {};

  for (const [written, rawItem] of Object.entries(paths)) {
    if (written.startsWith('x-')) continue;
    const pathPointer = pointerOf('paths', written);
    const item = deref(upgraded, rawItem, pathPointer, problems);
    if (!isObject(item)) continue;
    const template = routedTemplate(written);
    if (template !== written)
      warnings.push({
        pointer: pathPointer,
        message: `"${written}" is routed as "${template}": the gateway matches whole segments, so a segment that mixes parameters and text is one parameter`,
      });
    const templateOk = EndpointSchema.shape.path.safeParse(template);
    if (!templateOk.success) {
      problems.push({
        pointer: pathPointer,
        message: `path template ${JSON.stringify(template)} ${templateOk.error.issues.map((i) => i.message).join('; ')} (Gatehouse matches whole segments: "/users/{id}", not "/files/{name}.json", and no trailing "/")`,
      });
      continue;
    }
    if (isObject(item.trace))
      warnings.push({
        pointer: `${pathPointer}/trace`,
        message: 'TRACE is never served by the gateway (it would echo credentials); the operation is skipped',
      });
    const methods = METHODS.filter(([key]) => isObject(item[key]));
    const label = (list: typeof methods) =>
      list
        .map(([key, method]) => {
          const id = (item[key] as Obj).operationId;
          return typeof id === 'string' ? id : `${method} ${template}`;
        })
        .join(', ');
    const shape = templateShape(template);
    const others = shapes.get(shape) ?? [];
    for (const other of others) {
      const shared = methods.filter(([, method]) => other.methods.has(method));
      if (shared.length > 0)
        problems.push({
          pointer: pathPointer,
          message: `"${template}" (${label(shared)}) collides with "${other.path}" (${shared.map(([, m]) => other.names.get(m)).join(', ')}, at ${other.pointer}): the two templates differ only in parameter names, so the same requests match both; use one template for both`,
        });
      else
        warnings.push({
          pointer: pathPointer,
          message: `"${template}" and "${other.path}" differ only in parameter names (OpenAPI forbids this); their methods differ, so each request still has one endpoint`,
        });
    }
    others.push({
      path: template,
      pointer: pathPointer,
      methods: new Set(methods.map(([, m]) => m)),
      names: new Map(methods.map((entry) => [entry[1], label([entry])])),
    });
    shapes.set(shape, others);
    for (const [key, method] of METHODS) {
      const op = item[key];
      if (!isObject(op)) continue;
      const at = `${pathPointer}/${key}`;
      const endpoint = mapOperation(upgraded, item, op, method, template, at, pathPointer, rootSecurity, {
        options,
        problems,
        warnings,
        collector,
      });
      if (endpoint) endpoints.push(endpoint);
    }
  }

  if (problems.length > 0) return { ok: false, problems: dedupe(problems) };
  const schemas = Object.keys(collector.schemas).length > 0 ? collector.schemas : undefined;
  return {
    ok: true,
    spec: {
      version,
      title: isObject(upgraded.info) && typeof upgraded.info.title === 'string' ? upgraded.info.title : undefined,
      serverBasePath: serverBasePath(upgraded, warnings),
      endpoints,
      schemas,
      overlaps: findOverlaps(endpoints),
      warnings,
    },
  };
}

interface MapContext {
  options: ImportOptions;
  problems: SpecProblem[];
  warnings: SpecProblem[];
  collector: SchemaCollector;
}

function mapOperation(
  document: Obj,
  item: Obj,
  op: Obj,
  method: HttpMethod,
  template: string,
  at: string,
  pathPointer: string,
  rootSecurity: SecurityRequirement[] | undefined,
  { options, problems, warnings, collector }: MapContext,
): Endpoint | undefined {
  const operationId = typeof op.operationId === 'string' ? op.operationId : undefined;
  const own =
    (operationId !== undefined ? normaliseOperationId(operationId) : undefined) ??
    methodTemplatePermission(method, template);
  if (own === undefined) {
    problems.push({
      pointer: operationId !== undefined ? `${at}/operationId` : at,
      message: `no permission name can be made from ${operationId !== undefined ? `operationId "${operationId}"` : `${method} ${template}`} (at most 128 characters): set x-gatehouse-permission`,
    });
    return undefined;
  }
  const endpoint: Endpoint = { method, path: template, permission: own };
  if (operationId !== undefined) endpoint.operationId = operationId;
  const summary = typeof op.summary === 'string' ? op.summary : undefined;
  if (summary !== undefined) endpoint.summary = summary.slice(0, 1024);

  // Rule 1: the extension. Rule 2: the security requirements. Rules 3 and 4 gave `own`.
  const extensionAt = op['x-gatehouse-permission'] !== undefined ? at : pathPointer;
  const extension = op['x-gatehouse-permission'] ?? item['x-gatehouse-permission'];
  const ownSecurity = Array.isArray(op.security) ? (op.security as SecurityRequirement[]) : undefined;
  const security = ownSecurity ?? rootSecurity;
  const securityAt = ownSecurity ? `${at}/security` : '/security';
  const read = security ? securityPermissions(security.filter(isObject), own) : undefined;
  if (extension !== undefined) {
    if (typeof extension !== 'string' || !isImportablePermission(extension))
      problems.push({
        pointer: `${extensionAt}/x-gatehouse-permission`,
        message: `must be a permission name: 1-128 letters, digits, ".", "_", ":" or "-" (found ${JSON.stringify(extension)})`,
      });
    else endpoint.permission = extension;
  } else if (read) {
    for (const bad of read.invalid)
      problems.push({
        pointer: `${securityAt}${pointerOf(...bad.at)}`,
        message: `scope ${JSON.stringify(bad.scope)} is not a permission name (1-128 letters, digits, ".", "_", ":" or "-"): set x-gatehouse-permission on the operation`,
      });
    const [first] = read.sets;
    if (read.sets.length === 1 && first!.length === 1) endpoint.permission = first![0]!;
    else if (first) {
      endpoint.permission = first[0]!;
      endpoint.permissionSets = read.sets;
    }
  }

  // Public: `security: []` or a `{}` requirement, or x-gatehouse-public; only where the collection allows it.
  const publicFlag = op['x-gatehouse-public'] ?? item['x-gatehouse-public'];
  if (publicFlag !== undefined && typeof publicFlag !== 'boolean')
    problems.push({ pointer: `${at}/x-gatehouse-public`, message: 'must be true or false' });
  const wantsPublic = publicFlag === true || (publicFlag === undefined && read?.anonymous === true);
  if (wantsPublic) {
    if (options.publicEndpoints) endpoint.public = true;
    else
      warnings.push({
        pointer: publicFlag === true ? `${at}/x-gatehouse-public` : securityAt,
        message: `${operationId ?? `${method} ${template}`} is public in the document, but the collection does not allow public endpoints (publicEndpoints): it requires the permission "${endpoint.permission}"`,
      });
  }

  const cost = op['x-gatehouse-cost'] ?? item['x-gatehouse-cost'];
  if (cost !== undefined) {
    if (typeof cost !== 'number' || !Number.isInteger(cost) || cost < 1 || cost > 1000)
      problems.push({ pointer: `${at}/x-gatehouse-cost`, message: 'must be an integer from 1 to 1000' });
    else if (cost !== 1) endpoint.cost = cost;
  }

  const validation = op['x-gatehouse-validation'] ?? item['x-gatehouse-validation'];
  if (validation !== undefined && typeof validation !== 'boolean')
    problems.push({ pointer: `${at}/x-gatehouse-validation`, message: 'must be true or false' });
  if (typeof validation === 'boolean' && validation !== (options.validateRequests ?? false))
    endpoint.validate = validation;
  if (validation === true || (validation === undefined && options.validateRequests) || options.mcp) {
    const request = requestValidation(document, item, op, pathPointer, at, collector, problems);
    if (request) endpoint.request = request;
  }
  return endpoint;
}

/**
 * The path of the servers' URLs when every server agrees on it (`https://api.example.com/v1` → `/v1`; variables
 * take their default values); undefined for `/`, no servers, or servers that disagree (a warning then).
 */
function serverBasePath(document: Obj, warnings: SpecProblem[]): string | undefined {
  const servers = Array.isArray(document.servers) ? document.servers.filter(isObject) : [];
  const found = new Set<string>();
  for (const server of servers) {
    if (typeof server.url !== 'string') continue;
    const variables = isObject(server.variables) ? server.variables : {};
    const url = server.url.replace(/\{([^}]+)\}/g, (_m, name: string) => {
      const v = variables[name];
      return isObject(v) && typeof v.default === 'string' ? v.default : '';
    });
    let path: string;
    try {
      path = new URL(url, 'http://relative.invalid').pathname;
    } catch {
      continue;
    }
    found.add(path.replace(/\/+$/, '') || '/');
  }
  if (found.size > 1)
    warnings.push({
      pointer: '/servers',
      message: `the servers have different paths (${[...found].join(', ')}); none is used as the base path`,
    });
  const [only] = found;
  return found.size === 1 && only !== '/' ? only : undefined;
}

/** `/compare/{base}...{head}` → `/compare/{base_head}`, `/files/{name}.json` → `/files/{name}`: one parameter per segment. */
export function routedTemplate(template: string): string {
  return template
    .split('/')
    .map((segment) => {
      if (!segment.includes('{') || /^\{[^{}]+\}$/.test(segment)) return segment;
      const names = [...segment.matchAll(/\{([^{}]+)\}/g)].map((m) => m[1]!);
      return names.length > 0 ? `{${names.join('_')}}` : segment;
    })
    .join('/');
}

function dedupe(problems: SpecProblem[]): SpecProblem[] {
  const seen = new Set<string>();
  return problems.filter((p) => {
    const key = `${p.pointer}\u0000${p.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}
