/**
 * The admin API as the CLI needs it, read from the OpenAPI document that `src/control/api/openapi.ts` builds from the
 * operation objects: per operation its method, path, path parameters, success status, and the top-level fields
 * of its request body with the kind of flag each becomes. `gatehouse docs cli` writes it to `api.json` next to
 * this file (a test fails when it differs from what the operations give), so that an admin command loads this
 * small file instead of the control plane's code.
 */

/** How a body field is given on the command line. */
export type FieldKind =
  /** one value, sent as a string */
  | 'string'
  /** one value, sent as a number */
  | 'integer'
  | 'number'
  /** `--flag` / `--no-flag` */
  | 'boolean'
  /** repeatable, comma lists: `--env DEV,TEST --env PROD` */
  | 'list'
  /** a duration or a count: digits are sent as a number, anything else (`30m`) as a string */
  | 'number-or-string'
  /** one value sent as a string, several as a list */
  | 'string-or-list'
  /** an object or a list of objects, written as JSON or YAML flow (`{type: edge, gateway: local}`) */
  | 'structured';

export interface ApiField {
  kind: FieldKind;
  required: boolean;
  /** The values it takes, when it is an enumeration (of a list: of its items). */
  choices?: string[];
  description?: string;
  /** The server's default, when it has one. */
  default?: unknown;
}

export interface ApiOperation {
  id: string;
  method: string;
  path: string;
  summary: string;
  tag: string;
  /** The permission the caller's role must grant; null: any authenticated caller; 'public': none. */
  permission: string | null;
  /** Path parameters, in path order. */
  params: string[];
  /** Top-level request body fields, in schema order; absent: the operation takes no body. */
  body?: Record<string, ApiField>;
  /** Query parameters, as the OpenAPI document describes them. */
  query?: Record<string, ApiField>;
  /** Success status (204: no answer body). */
  status: number;
  /** The answer is `{ items: [...] }`. */
  list: boolean;
  /**
   * What a success answer must hold (dotted paths of required fields and their kind), to tell a Gatehouse control
   * plane's answer from another server's before it is read.
   */
  expect: Record<string, 'string' | 'number' | 'boolean' | 'object' | 'array'>;
}

export interface ApiManifest {
  /** Regenerate with `gatehouse docs cli`. */
  generatedBy: string;
  operations: ApiOperation[];
}

type JsonSchema = {
  type?: string | string[];
  enum?: unknown[];
  const?: unknown;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  items?: JsonSchema;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  description?: string;
  default?: unknown;
};

interface OpenApiOperation {
  operationId: string;
  summary: string;
  tags: string[];
  security?: unknown[];
  'x-gatehouse-permission'?: string;
  parameters?: { name: string; in: string; required?: boolean; description?: string; schema?: JsonSchema }[];
  requestBody?: { content: Record<string, { schema: JsonSchema }> };
  responses: Record<string, { content?: Record<string, { schema: JsonSchema }> }>;
}

const METHODS = ['get', 'post', 'put', 'patch', 'delete'];

function alternatives(s: JsonSchema): JsonSchema[] {
  return s.anyOf ?? s.oneOf ?? [s];
}

function scalarType(s: JsonSchema): string | undefined {
  const alts = alternatives(s);
  const types = new Set(alts.map((a) => (a.const !== undefined ? typeof a.const : String(a.type))));
  return types.size === 1 ? [...types][0] : undefined;
}

function choicesOf(s: JsonSchema): string[] | undefined {
  const values = alternatives(s).flatMap((a) => a.enum ?? (a.const !== undefined ? [a.const] : [undefined]));
  return values.every((v) => typeof v === 'string') ? (values as string[]) : undefined;
}

/** The flag kind of one JSON Schema (zod's `toJSONSchema` output). */
export function fieldKind(s: JsonSchema): FieldKind {
  const alts = alternatives(s);
  if (alts.length > 1) {
    const types = alts.map((a) => a.type);
    if (types.includes('number') && types.includes('string') && types.length === 2) return 'number-or-string';
    const stringy = alts.every((a) => a.type === 'string' || (a.type === 'array' && a.items?.type === 'string'));
    if (stringy && types.includes('array')) return 'string-or-list';
  }
  const type = scalarType(s);
  if (type === 'string' || type === 'integer' || type === 'number' || type === 'boolean') return type;
  if (type === 'array' && s.items && ['string', 'integer', 'number'].includes(scalarType(s.items) ?? '')) return 'list';
  return 'structured';
}

type Kind = ApiOperation['expect'][string];

function kindOf(s: JsonSchema): Kind | undefined {
  const t = scalarType(s);
  if (t === 'integer' || t === 'number') return 'number';
  return t === 'string' || t === 'boolean' || t === 'object' || t === 'array' ? t : undefined;
}

/** Required fields of an answer, objects by their own required fields (`client.id`), at most 6. */
function expected(answer: JsonSchema | undefined): ApiOperation['expect'] {
  const out: ApiOperation['expect'] = {};
  for (const name of answer?.required ?? []) {
    const s = answer!.properties?.[name];
    const kind = s && kindOf(s);
    if (!kind) continue;
    const inner = kind === 'object' ? (s.required ?? []).filter((n) => s.properties?.[n]) : [];
    if (inner.length === 0) out[name] = kind;
    for (const n of inner) {
      const k = kindOf(s.properties![n]!);
      if (k) out[`${name}.${n}`] = k;
    }
  }
  return Object.fromEntries(Object.entries(out).slice(0, 6));
}

/** The manifest of every operation in an OpenAPI document built by `buildOpenApi`. */
export function buildManifest(openapi: { paths: Record<string, Record<string, unknown>> }): ApiManifest {
  const operations: ApiOperation[] = [];
  for (const [path, methods] of Object.entries(openapi.paths)) {
    for (const method of METHODS) {
      const op = methods[method] as OpenApiOperation | undefined;
      if (!op) continue;
      const [status] = Object.keys(op.responses).filter((s) => /^2\d\d$/.test(s));
      const answer = op.responses[status ?? '200']?.content?.['application/json']?.schema;
      const bodySchema = op.requestBody?.content['application/json']?.schema;
      let body: Record<string, ApiField> | undefined;
      if (bodySchema) {
        const required = new Set(bodySchema.required ?? []);
        body = {};
        for (const [name, s] of Object.entries(bodySchema.properties ?? {})) {
          const kind = fieldKind(s);
          const choices = choicesOf(kind === 'list' && s.items ? s.items : s);
          body[name] = {
            kind,
            required: required.has(name),
            ...(choices && choices.length > 1 ? { choices } : {}),
            ...(s.description ? { description: s.description } : {}),
            ...(s.default !== undefined ? { default: s.default } : {}),
          };
        }
      }
      const queryParams = (op.parameters ?? []).filter((p) => p.in === 'query');
      const query = Object.fromEntries(
        queryParams.map((p): [string, ApiField] => {
          const kind = p.schema ? fieldKind(p.schema) : 'string';
          const choices = p.schema && choicesOf(p.schema);
          return [
            p.name,
            {
              kind: kind === 'structured' ? 'string' : kind,
              required: p.required ?? false,
              ...(choices && choices.length > 1 ? { choices } : {}),
              ...(p.description ? { description: p.description } : {}),
            },
          ];
        }),
      );
      operations.push({
        id: op.operationId,
        method: method.toUpperCase(),
        path,
        summary: op.summary,
        tag: op.tags[0] ?? '',
        permission: op.security?.length === 0 ? 'public' : (op['x-gatehouse-permission'] ?? null),
        params: (op.parameters ?? []).filter((p) => p.in === 'path').map((p) => p.name),
        ...(body ? { body } : {}),
        ...(queryParams.length ? { query } : {}),
        status: Number(status ?? 200),
        list: answer?.properties?.items?.type === 'array',
        expect: status === '204' ? {} : expected(answer),
      });
    }
  }
  return { generatedBy: 'gatehouse docs cli (from the admin API operations); do not edit', operations };
}
