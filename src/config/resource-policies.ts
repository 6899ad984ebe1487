/**
 * The contract of resource-level policies (docs/policies.md): what an endpoint declares about the resource it
 * touches, a collection's Cedar policies with the entity types they talk about, and the relationship data
 * (entities) that gateways hold per collection. `schema.ts` puts these into endpoints, collections and the
 * snapshot; `cedar-schema.ts` derives the Cedar schema that policies are validated against at publish.
 *
 * This module imports nothing from `schema.ts` (which imports it), so its few patterns are its own.
 */
import { z } from 'zod';

/** An entity type name as Cedar writes it, without a namespace: `Invoice`, `Org`. */
export const EntityTypeNameSchema = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_]{0,63}$/, 'must be a Cedar type name such as Invoice (letters, digits, "_")');

/** Types the gateway defines itself: a collection may not declare them. */
export const RESERVED_ENTITY_TYPES: ReadonlySet<string> = new Set(['Client', 'Action', 'Collection']);

const ParamNameSchema = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must name a {parameter} of the path');

/** `{ type: 'Org', param: 'orgId' }`: the entity `Org::"<value of {orgId}>"`. */
export const PathEntitySchema = z.strictObject({ type: EntityTypeNameSchema, param: ParamNameSchema });

/**
 * The resource a request to an endpoint touches, built from its path parameters: for
 * `/orgs/{orgId}/invoices/{invoiceId}`, `{ type: 'Invoice', param: 'invoiceId', in: [{ type: 'Org', param: 'orgId' }] }`
 * makes `Invoice::"42"` with the parent `Org::"acme"`. Endpoints that declare none have the resource
 * `Collection::"<collection name>"`.
 */
export const EndpointResourceSchema = PathEntitySchema.extend({
  /** Parents taken from the path, besides those the relationship data gives the entity. */
  in: z.array(PathEntitySchema).max(8).default([]),
});
export type EndpointResource = z.output<typeof EndpointResourceSchema>;

/** A Cedar attribute type in Cedar's JSON schema form, e.g. `{ "type": "Entity", "name": "User" }`. */
const CedarTypeSchema = z.looseObject({ type: z.string().min(1).max(64) });

export const EntityTypeDeclarationSchema = z.strictObject({
  /** Types this type's entities may be members of (`in`), e.g. `["Org"]` for an Invoice. */
  memberOf: z.array(EntityTypeNameSchema).max(32).default([]),
  /** Attributes, in Cedar's JSON schema form; add `"required": false` for optional ones. */
  attributes: z.record(z.string().min(1).max(128), CedarTypeSchema).default({}),
});

const HeaderNameSchema = z.string().regex(/^[a-z0-9-]{1,64}$/, 'must be a lower-case header name');
const QueryNameSchema = z.string().regex(/^[A-Za-z0-9._~-]{1,64}$/, 'must be a query parameter name');

/** The largest policy text a collection may hold (256 KiB). */
export const MAX_POLICY_TEXT = 262_144;

export const CollectionPoliciesSchema = z.strictObject({
  /** The policy set, in Cedar's syntax. Give each policy an id with `@id("…")`; otherwise it is `policy<N>`. */
  cedar: z.string().max(MAX_POLICY_TEXT),
  /** Entity types the policies name (resources, parents, attribute values); `Org` and `User` exist already. */
  entityTypes: z.record(EntityTypeNameSchema, EntityTypeDeclarationSchema).default({}),
  /** Request attributes policies may read as `context.query.<name>` and `context.headers.<name>` (never the body). */
  context: z
    .strictObject({
      query: z.array(QueryNameSchema).max(64).default([]),
      headers: z.array(HeaderNameSchema).max(64).default([]),
    })
    .default({ query: [], headers: [] }),
  /**
   * The client metadata keys policies read as `principal.metadata.<key>`, with their Cedar types (e.g.
   * `{ "tier": { "type": "String" } }`); each may be absent on a client, so test with `has` first.
   */
  metadata: z.record(z.string().min(1).max(128), CedarTypeSchema).default({}),
  /** Send the ids of the policies that denied to the caller in the 403 (`policies`); default: only logged. */
  exposeDecidingPolicies: z.boolean().default(false),
});
export type CollectionPolicies = z.output<typeof CollectionPoliciesSchema>;

export const EntityUidSchema = z.strictObject({ type: EntityTypeNameSchema, id: z.string().min(1).max(1024) });
export type EntityUid = z.output<typeof EntityUidSchema>;

/**
 * An attribute value of relationship data, in Cedar's JSON form: strings, integers, booleans, entity references
 * `{ "__entity": { "type": "User", "id": "7" } }`, lists (sets) and records. Extension values are not accepted.
 */
export type EntityAttributeValue =
  | string
  | number
  | boolean
  | { __entity: EntityUid }
  | EntityAttributeValue[]
  | { [key: string]: EntityAttributeValue };
export const EntityAttributeValueSchema: z.ZodType<EntityAttributeValue> = z.lazy(() =>
  z.union([
    z.string().max(4096),
    z.int().refine(Number.isSafeInteger, 'must be a safe integer'),
    z.boolean(),
    z.strictObject({ __entity: EntityUidSchema }),
    z.array(EntityAttributeValueSchema).max(1000),
    z
      .record(z.string().min(1).max(128), EntityAttributeValueSchema)
      .refine((r) => !('__extn' in r) && !('__entity' in r), 'extension values are not accepted'),
  ]),
);

/** One entity of a collection's relationship data: `Document::"9"` with its attributes and parents. */
export const EntityInputSchema = z.strictObject({
  uid: EntityUidSchema,
  attrs: z.record(z.string().min(1).max(128), EntityAttributeValueSchema).default({}),
  parents: z.array(EntityUidSchema).max(256).default([]),
});
export type EntityInput = z.output<typeof EntityInputSchema>;

/** An entity in a snapshot: the collection it belongs to, and the entity. */
export const SnapshotEntitySchema = EntityInputSchema.extend({ collection: z.string().min(1).max(128) });
export type SnapshotEntity = z.output<typeof SnapshotEntitySchema>;

/** The id of a collection's entity set (the collection's id in the control plane). */
export const EntitySetIdSchema = z.string().regex(/^[A-Za-z0-9_-]{1,128}$/, 'must be an entity set id');

/** The identity of a snapshot entity: `<collection> <Type>::"<id>"`. */
export function entityKey(e: { collection: string; uid: EntityUid }): string {
  return `${e.collection} ${e.uid.type}::${JSON.stringify(e.uid.id)}`;
}

/**
 * The most entities one collection may hold; a write that would go past it is refused whole (409
 * `GH_ERR_ADMIN_ENTITY_LIMIT`). Relationship data travels on its own incremental stream (one update costs
 * O(changed entities)), so the bound is the gateway's memory: bench/RESULTS.md "Relationship data at scale"
 * measures a million entities held by a gateway and the time a full set takes to sync.
 */
export const MAX_ENTITIES_PER_COLLECTION = 1_000_000;

/** The admin API's batch of entities to write (its bodies are limited to 1 MiB). */
export const EntityBatchSchema = z.strictObject({ entities: z.array(EntityInputSchema).min(1).max(1000) });
/** The admin API's batch of entities to delete. */
export const EntityDeleteBatchSchema = z.strictObject({ uids: z.array(EntityUidSchema).min(1).max(1000) });
/** An entity as the admin API answers it. */
export const EntitySchemaOut = EntityInputSchema.extend({ updatedAt: z.iso.datetime({ offset: true }) });
