/**
 * The permission of an imported operation, by the rules of docs/openapi.md, in this order:
 *
 * 1. `x-gatehouse-permission` on the operation, else on its path item;
 * 2. the scopes of its security requirements (the operation's `security`, else the document's): the list is OR,
 *    each requirement object is AND. One requirement with one scope is that permission; anything else becomes
 *    `permissionSets` (a role may call the endpoint when it grants every permission of one set). A requirement
 *    without scopes (an API key, plain bearer) asks for authentication only: its set is the operation's own name
 *    (rule 3 or 4), so that a role still has to be granted the operation;
 * 3. the `operationId`, normalised (`normaliseOperationId`);
 * 4. the method and template (`methodTemplatePermission`).
 */

/** A permission name an import may produce: the grammar of `PermissionNameSchema` without wildcards. */
const PERMISSION = /^[A-Za-z0-9._:-]{1,128}$/;

export function isImportablePermission(name: string): boolean {
  return PERMISSION.test(name);
}

/**
 * `operationId` → permission: groups separated by `/`, `.` or `:` become `:`-separated parts (so that a role's
 * `repos:*` grants every `repos/…` operation); inside a group, words (split at camelCase humps, digits-to-letters
 * stay together, `_`, `-` and spaces) are lower-cased and joined by `-`. Other characters are dropped.
 * `invoices.list` → `invoices:list`, `listInvoices` → `list-invoices`, `repos/list-for-org` →
 * `repos:list-for-org`, `Pets_GetByID` → `pets-get-by-id`. Undefined when nothing is left or the result is too long.
 */
export function normaliseOperationId(operationId: string): string | undefined {
  const groups = operationId
    .split(/[/.:]+/)
    .map((group) =>
      group
        .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
        .replace(/([A-Z]+)([A-Z][a-z])/g, '$1 $2')
        .split(/[\s_-]+/)
        .map((w) => w.toLowerCase().replace(/[^a-z0-9]/g, ''))
        .filter((w) => w !== '')
        .join('-'),
    )
    .filter((g) => g !== '');
  const name = groups.join(':');
  return name !== '' && PERMISSION.test(name) ? name : undefined;
}

/**
 * `METHOD /template` → permission: the lower-case method, then each segment, `:`-separated, parameters without
 * their braces and other characters outside the grammar as `-`: `GET /users/{id}/orders` → `get:users:id:orders`,
 * `GET /` → `get`. A role's `get:*` then grants every read of the collection. Too long (> 128) → undefined.
 */
export function methodTemplatePermission(method: string, template: string): string | undefined {
  const parts = [method.toLowerCase()];
  if (template !== '/')
    for (const segment of template.slice(1).split('/'))
      parts.push(segment.replace(/^\{(.*)\}$/, '$1').replace(/[^A-Za-z0-9._-]/g, '-'));
  const name = parts.join(':');
  return PERMISSION.test(name) ? name : undefined;
}

/** One security requirement object as the document has it: scheme name → scopes. */
export type SecurityRequirement = Record<string, unknown>;

export interface SecurityPermissions {
  /** The alternatives (OR) of permission sets (AND); empty when the requirements carry no scopes. */
  sets: string[][];
  /** `security: []`, or a `{}` requirement: the spec lets anonymous callers in. */
  anonymous: boolean;
  /** Scopes that are not importable permission names, with their index path under `security`. */
  invalid: { at: (string | number)[]; scope: string }[];
}

/** Reads OpenAPI security requirements as permission sets; `own` is the operation's name by rule 3 or 4. */
export function securityPermissions(security: readonly SecurityRequirement[], own: string): SecurityPermissions {
  const out: SecurityPermissions = { sets: [], anonymous: security.length === 0, invalid: [] };
  let scoped = false;
  const seen = new Set<string>();
  security.forEach((requirement, i) => {
    const schemes = Object.keys(requirement);
    if (schemes.length === 0) {
      out.anonymous = true;
      return;
    }
    const set = new Set<string>();
    for (const scheme of schemes) {
      const scopes = requirement[scheme];
      if (!Array.isArray(scopes)) continue;
      scopes.forEach((scope: unknown, k) => {
        if (typeof scope === 'string' && PERMISSION.test(scope)) set.add(scope);
        else out.invalid.push({ at: [i, scheme, k], scope: String(scope) });
      });
    }
    if (set.size > 0) scoped = true;
    else set.add(own);
    const sorted = [...set].sort();
    const key = sorted.join('\u0000');
    if (!seen.has(key)) {
      seen.add(key);
      out.sets.push(sorted);
    }
  });
  if (!scoped) out.sets = [];
  return out;
}
