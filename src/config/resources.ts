/**
 * The resources of the control plane: what the admin API accepts and returns, what the store keeps, and what the
 * declarative `collection apply` file holds. One schema per resource; types, validation and the admin API's
 * OpenAPI document all come from here (see `src/control/api/openapi.ts`).
 *
 * Naming: `XInput` is a request body (create / replace), `XPatch` a partial update, `X` the resource as returned.
 * The snapshot a gateway serves (`schema.ts`) is compiled from these by `src/control/compile/`.
 */
import { z } from 'zod';
import {
  ClientBaseSchema,
  ClientStatusSchema,
  CollectionSchema,
  DurationSchema,
  EnvironmentSchema,
  LegacyClientSchema,
  NamedSchema,
  NameSchema,
  RoleSchema,
} from './schema.ts';

export { EnvironmentScopeSchema, ProjectScopeSchema } from './schema.ts';

/** Server-generated ids: a type prefix and 20 base62 characters, e.g. `cli_4fQ…`. */
export const IdSchema = z.string().regex(/^[a-z]{2,4}_[A-Za-z0-9]{8,40}$/, 'must be a Gatehouse id such as "cli_…"');
const Timestamp = z.iso.datetime({ offset: true });

// ── Workspaces, environments, projects ──────────────────────────────────────────────────────────────────────────

export const WorkspaceInputSchema = z.strictObject({
  name: NameSchema,
  environments: z.array(EnvironmentSchema).min(1).default(['DEV', 'TEST', 'PROD']),
  /** The environment where collections are edited and from which projects are deployed to the others. */
  devEnvironment: EnvironmentSchema.default('DEV'),
  projects: z.array(NameSchema).default(['default']),
});
export type WorkspaceInput = z.output<typeof WorkspaceInputSchema>;

export const WorkspaceSchema = z.strictObject({
  id: IdSchema,
  name: NameSchema,
  environments: z.array(EnvironmentSchema),
  devEnvironment: EnvironmentSchema,
  createdAt: Timestamp,
});
export type Workspace = z.output<typeof WorkspaceSchema>;

export const ProjectInputSchema = NamedSchema;
export const ProjectSchema = ProjectInputSchema.extend({ createdAt: Timestamp });
export type Project = z.output<typeof ProjectSchema>;

export const EnvironmentInputSchema = z.strictObject({ name: EnvironmentSchema });

// ── API collections ─────────────────────────────────────────────────────────────────────────────────────────────

/** Where a collection is served: the control plane's cloud gateway, or one edge gateway of its environment. */
export const DeploymentTargetSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('cloud') }),
  z.strictObject({ type: z.literal('edge'), gateway: NameSchema }),
]);
export type DeploymentTarget = z.output<typeof DeploymentTargetSchema>;

/**
 * A collection as edited: the snapshot's collection without `environment` (it comes from the URL), plus a
 * description and the deployment target. This is also what a published version freezes.
 */
export const CollectionInputSchema = CollectionSchema.omit({ environment: true }).extend({
  description: z.string().max(4096).optional(),
  target: DeploymentTargetSchema.default({ type: 'cloud' }),
});
export type CollectionInput = z.output<typeof CollectionInputSchema>;
export type CollectionSpec = CollectionInput;

export const CollectionSchemaOut = CollectionInputSchema.extend({
  id: IdSchema,
  environment: EnvironmentSchema,
  /** Increments on every edit of the draft. */
  revision: z.int().positive(),
  /** The version gateways serve; absent until first published. */
  publishedVersion: z.int().positive().optional(),
  /** The draft differs from the published version. */
  unpublishedChanges: z.boolean(),
  createdAt: Timestamp,
  updatedAt: Timestamp,
});
export type CollectionResource = z.output<typeof CollectionSchemaOut>;

export const CollectionVersionSchema = z.strictObject({
  version: z.int().positive(),
  spec: CollectionInputSchema,
  publishedAt: Timestamp,
  /** Who published it (client or user id). */
  publishedBy: z.string().optional(),
  /** Set when this version republished an earlier one (a rollback). */
  restoredFrom: z.int().positive().optional(),
});
export type CollectionVersion = z.output<typeof CollectionVersionSchema>;

export const PublishInputSchema = z.strictObject({
  /** Republish this earlier version instead of the draft (rollback); the draft is reset to it. */
  version: z.int().positive().optional(),
});

/** Promote a project's published collections from the development environment to another one, atomically. */
export const DeployInputSchema = z.strictObject({
  to: EnvironmentSchema,
  /** Only these collections (default: every published collection of the project). */
  collections: z.array(NameSchema).min(1).optional(),
});

// ── Client roles ────────────────────────────────────────────────────────────────────────────────────────────────

/**
 * A client role: permission names (an admin API operation's permission such as `admin:clients:write`, or a
 * collection endpoint's permission such as `invoices:read`; `prefix:*` and `*` are wildcards) and individual
 * collection endpoints.
 */
export const RoleInputSchema = RoleSchema;
export type RoleInput = z.output<typeof RoleInputSchema>;
export const RolePatchSchema = RoleInputSchema.partial();

export const RoleSchemaOut = RoleInputSchema.extend({ id: IdSchema, createdAt: Timestamp, updatedAt: Timestamp });
export type RoleResource = z.output<typeof RoleSchemaOut>;

// ── API clients ─────────────────────────────────────────────────────────────────────────────────────────────────

/**
 * The snapshot's client fields (`ClientBaseSchema`) without the id (the server makes it), with a required name,
 * and with `operator`.
 */
const ClientFieldsSchema = ClientBaseSchema.omit({ id: true }).extend({
  name: ClientBaseSchema.shape.name.unwrap().min(1),
  /** Acts on every workspace of the installation (an embedding partner's client). Only an operator may set it. */
  operator: z.boolean().default(false),
});

export const ClientInputSchema = ClientFieldsSchema;
export type ClientInput = z.output<typeof ClientInputSchema>;
/** Every field optional and without defaults: a PATCH changes only what it names (no silent re-enable). */
export const ClientPatchSchema = ClientFieldsSchema.extend({
  status: ClientStatusSchema,
  operator: z.boolean(),
}).partial();

/** A migrated client authenticating with an existing API key plus an email header. Never regenerable. */
export const LegacyClientInputSchema = ClientFieldsSchema.extend({
  email: LegacyClientSchema.shape.email,
  /** The existing key, hashed on arrival and never stored or shown again. */
  key: z.string().min(16).max(512),
});
export type LegacyClientInput = z.output<typeof LegacyClientInputSchema>;

export const ClientKeyInfoSchema = z.strictObject({
  /** A label: the key's prefix and first characters, never the key. */
  id: z.string(),
  createdAt: Timestamp,
  /** Set on a regenerated key's predecessor during its grace period. */
  expiresAt: Timestamp.optional(),
});

/** A client as the admin API answers it: in its input form (rate-limit windows as written, e.g. "1m"). */
export const ClientSchemaOut = z.strictObject({
  id: IdSchema,
  workspace: IdSchema,
  kind: z.enum(['standard', 'legacy']),
  ...ClientFieldsSchema.shape,
  /** The role's name; `(deleted role <id>)` once the role is deleted (the client's tokens are refused then). */
  role: z.union([NameSchema, z.string().regex(/^\(deleted role [^)]+\)$/)]),
  email: LegacyClientSchema.shape.email.optional(),
  keys: z.array(ClientKeyInfoSchema),
  createdAt: Timestamp,
  updatedAt: Timestamp,
  lastUsedAt: Timestamp.optional().describe(
    "The minute of the client's latest request: reported by a gateway, or made to the admin API with its token; absent: none yet",
  ),
});
export type ClientResource = z.output<typeof ClientSchemaOut>;

/** Returned by create and regenerate: the only time the token is ever shown. */
export const ClientWithTokenSchema = z.strictObject({ client: ClientSchemaOut, token: z.string() });

export const RegenerateInputSchema = z.strictObject({
  /** Keep the old token working this long (e.g. "1h"); default: it stops working at once. At most 30 days. */
  gracePeriod: DurationSchema.pipe(z.number().max(30 * 86_400_000, 'must be at most 30 days')).optional(),
});

// ── Users (console collaborators) ───────────────────────────────────────────────────────────────────────────────

/** Privilege areas a user role can hold; `admin` holds them all. */
export const PrivilegeSchema = z.enum(['clients', 'roles', 'collections', 'deploy', 'collaborators', 'gateways']);
export type Privilege = z.output<typeof PrivilegeSchema>;

export const UserRoleInputSchema = z.strictObject({
  name: NameSchema,
  privileges: z.array(PrivilegeSchema),
});
export const UserRoleSchemaOut = UserRoleInputSchema.extend({ builtIn: z.boolean() });
export type UserRole = z.output<typeof UserRoleSchemaOut>;

export const UserInputSchema = z.strictObject({
  email: z.email(),
  name: z.string().max(256).optional(),
  /** `admin` or the name of a custom user role. */
  role: NameSchema,
  password: z.string().min(12, 'must be at least 12 characters').max(1024),
});
export const UserPatchSchema = UserInputSchema.partial();

export const UserSchemaOut = z.strictObject({
  id: IdSchema,
  workspace: IdSchema,
  email: z.email(),
  name: z.string().optional(),
  role: NameSchema,
  createdAt: Timestamp,
});
export type UserResource = z.output<typeof UserSchemaOut>;

export const LoginInputSchema = z.strictObject({
  workspace: NameSchema,
  email: z.email(),
  password: z.string().min(1).max(1024),
});

// ── Declarative file (`gatehouse collection apply -f FILE`) ─────────────────────────────────────────────────────

/** decK-style: the collections of one environment as they should be; `apply` creates, updates and publishes. */
export const ApplyFileSchema = z.strictObject({
  environment: EnvironmentSchema,
  collections: z.array(CollectionInputSchema).default([]),
  /** Publish every collection whose draft changed (default true). */
  publish: z.boolean().default(true),
  /** Delete collections of the environment that the file does not list (default false: never delete by omission). */
  prune: z.boolean().default(false),
});
export type ApplyFile = z.output<typeof ApplyFileSchema>;
