/**
 * The Cedar schema of a collection, derived from its endpoints and its policies' declarations: what the control
 * plane validates a collection's policies against when it is published (docs/policies.md has the model).
 *
 * - `Client` (the principal): `org` (Org), `user` (User), `role`, `environment`, `project` (strings) and
 *   `metadata` (the declared keys); a member of its `Org`. A request made with a derived credential (an agent
 *   acting for the client) also has `agent` and, when the credential names one, `session` (optional strings:
 *   test them with `has`).
 * - `Org` and `User` always exist; the collection declares its other types (`policies.entityTypes`), and may
 *   declare attributes and parents for `Org` and `User` too.
 * - One action per permission of the collection's endpoints, `Action::"invoices:read"`, applying to `Client` and
 *   to the resource types of the endpoints with that permission (`Collection` for those that declare none).
 * - `context`: `method`, and `query` and `headers` records of the declared names (each optional).
 */
import { cedar, type DetailedError, formatCedarError, type PolicyJson, type SchemaJson } from '../shared/cedar.ts';
import type { CollectionPolicies, EndpointResource } from './resource-policies.ts';

interface CollectionShape {
  endpoints: readonly { permission: string; resource?: EndpointResource | undefined }[];
  policies?: CollectionPolicies | undefined;
}

type Attributes = Record<string, Record<string, unknown>>;

const optionalString = { type: 'String', required: false };

export function cedarSchemaOf(collection: CollectionShape): SchemaJson<string> {
  const policies = collection.policies;
  const declared = policies?.entityTypes ?? {};
  const entityTypes: Record<string, { memberOfTypes?: string[]; shape?: unknown }> = {};
  const addType = (name: string) => {
    if (entityTypes[name]) return;
    const d = declared[name];
    entityTypes[name] = d
      ? { memberOfTypes: [...d.memberOf], shape: { type: 'Record', attributes: { ...d.attributes } } }
      : { memberOfTypes: [] };
  };
  addType('Org');
  addType('User');
  for (const name of Object.keys(declared)) addType(name);

  const metadata: Attributes = {};
  for (const [key, type] of Object.entries(policies?.metadata ?? {})) metadata[key] = { ...type, required: false };
  entityTypes.Client = {
    memberOfTypes: ['Org'],
    shape: {
      type: 'Record',
      attributes: {
        org: { type: 'Entity', name: 'Org', required: false },
        user: { type: 'Entity', name: 'User', required: false },
        role: { type: 'String' },
        environment: { type: 'String' },
        project: { type: 'String' },
        metadata: { type: 'Record', attributes: metadata },
        agent: optionalString,
        session: optionalString,
      },
    },
  };

  const resourceTypes = new Map<string, Set<string>>();
  for (const e of collection.endpoints) {
    let types = resourceTypes.get(e.permission);
    if (!types) resourceTypes.set(e.permission, (types = new Set()));
    if (e.resource === undefined) {
      types.add('Collection');
      entityTypes.Collection ??= { memberOfTypes: [] };
    } else {
      types.add(e.resource.type);
      addType(e.resource.type);
      for (const parent of e.resource.in) {
        addType(parent.type);
        const memberOf = (entityTypes[e.resource.type]!.memberOfTypes ??= []);
        if (!memberOf.includes(parent.type)) memberOf.push(parent.type);
      }
    }
  }

  const record = (names: readonly string[]) => ({
    type: 'Record',
    attributes: Object.fromEntries(names.map((n) => [n, optionalString])),
  });
  const context = {
    type: 'Record',
    attributes: {
      method: { type: 'String' },
      query: record(policies?.context.query ?? []),
      headers: record(policies?.context.headers ?? []),
    },
  };
  const actions: Record<string, unknown> = {};
  for (const [permission, types] of resourceTypes)
    actions[permission] = { appliesTo: { principalTypes: ['Client'], resourceTypes: [...types].sort(), context } };
  return { '': { entityTypes, actions } } as unknown as SchemaJson<string>;
}

/** One policy of a policy set: its id (`@id("…")`, else `policy<N>`), its text and where it starts in the set. */
export interface PolicyPart {
  id: string;
  text: string;
  offset: number;
  json: PolicyJson;
}

/** Splits and parses a policy set; `errors` holds Cedar's messages with line and column in `text`. */
export function splitPolicies(text: string): { policies: PolicyPart[]; errors: string[] } {
  const c = cedar();
  const parts = c.policySetTextToParts(text);
  if (parts.type === 'failure') return { policies: [], errors: parts.errors.map((e) => formatCedarError(e, text)) };
  const errors: string[] = [];
  if (parts.policy_templates.length > 0)
    errors.push('templates (policies with ?principal or ?resource slots) are not supported: write static policies');
  const policies: PolicyPart[] = [];
  const seen = new Set<string>();
  let cursor = 0;
  parts.policies.forEach((part, i) => {
    const found = text.indexOf(part, cursor);
    const offset = found === -1 ? cursor : found;
    if (found !== -1) cursor = found + part.length;
    const parsed = c.policyToJson(part);
    if (parsed.type === 'failure') {
      errors.push(...parsed.errors.map((e) => formatCedarError(shift(e, offset), text)));
      return;
    }
    const id = parsed.json.annotations?.id ?? `policy${i}`;
    if (seen.has(id)) errors.push(`two policies have the id "${id}": @id annotations must be unique`);
    seen.add(id);
    policies.push({ id, text: part, offset, json: parsed.json });
  });
  return { policies, errors };
}

/**
 * Validates a collection's policies against its Cedar schema (`cedarSchemaOf`), in Cedar's strict mode: the
 * errors, each naming the policy and its line and column in `policies.cedar`. Empty when they are valid.
 */
export function validateCollectionPolicies(collection: CollectionShape): string[] {
  const text = collection.policies?.cedar;
  if (text === undefined) return [];
  const { policies, errors } = splitPolicies(text);
  if (errors.length > 0) return errors;
  const answer = cedar().validate({
    schema: cedarSchemaOf(collection),
    policies: { staticPolicies: Object.fromEntries(policies.map((p) => [p.id, p.text])) },
    validationSettings: { mode: 'strict' },
  });
  if (answer.type === 'failure') return answer.errors.map((e) => `the derived Cedar schema: ${formatCedarError(e)}`);
  const offsets = new Map(policies.map((p) => [p.id, p.offset]));
  return answer.validationErrors.map(
    (v) => `policy "${v.policyId}": ${formatCedarError(shift(v.error, offsets.get(v.policyId) ?? 0), text)}`,
  );
}

function shift(error: DetailedError, offset: number): DetailedError {
  return {
    ...error,
    sourceLocations: error.sourceLocations?.map((l) => ({ ...l, start: l.start + offset, end: l.end + offset })),
  };
}
