/**
 * The difference between two versions of one scope's snapshot: what edge sync sends instead of a full snapshot
 * when a gateway is only a little behind. Entries are replaced whole (an upsert carries the complete collection,
 * role or client) and removed by name or id; the settings travel only when they changed.
 *
 * On the wire a delta is `encodeDelta(delta)` (durations as strings, see `snapshot-encoding.ts`), read back with
 * `SnapshotDeltaSchema.parse`.
 */
import { z } from 'zod';
import {
  ClientSchema,
  CollectionSchema,
  formatIssues,
  LegacyAuthSchema,
  LegacyClientSchema,
  NameSchema,
  RateLimitPoliciesSchema,
  RoleSchema,
  type Snapshot,
  SigningKeysSchema,
  SnapshotSchema,
  TokenExchangeSchema,
} from './schema.ts';
import {
  canonicalJson,
  encodeClient,
  encodeCollection,
  encodeRateLimits,
  encodeSnapshot,
  encodeTokenExchange,
  inCanonicalOrder,
} from './snapshot-encoding.ts';
import {
  entityKey,
  EntitySetIdSchema,
  EntityUidSchema,
  type SnapshotEntity,
  SnapshotEntitySchema,
} from './resource-policies.ts';
import { type RevokedCredential, RevokedCredentialSchema } from './revocations.ts';

/** A snapshot version, as in `Snapshot.version`. */
export const SnapshotVersionSchema = z.union([z.int().nonnegative(), z.string().max(128)]);
export type SnapshotVersion = z.output<typeof SnapshotVersionSchema>;

/** Entries to add or replace, and the names or ids of entries to remove; no name appears twice. */
function changes<T extends z.ZodType>(entry: T, key: (value: z.output<T>) => string) {
  return z
    .strictObject({ upsert: z.array(entry).default([]), remove: z.array(NameSchema).default([]) })
    .superRefine((value, ctx) => {
      const seen = new Set<string>();
      const check = (name: string, path: (string | number)[]) => {
        if (seen.has(name)) ctx.addIssue({ code: 'custom', path, message: `"${name}" appears twice in this delta` });
        seen.add(name);
      };
      value.upsert.forEach((e, i) => check(key(e), ['upsert', i]));
      value.remove.forEach((name, i) => check(name, ['remove', i]));
    })
    .default(() => ({ upsert: [], remove: [] }));
}

export const SnapshotDeltaSchema = z.strictObject({
  /** The version the delta applies to: a gateway at any other version needs a full snapshot. */
  fromVersion: SnapshotVersionSchema,
  /** The version of the result. */
  toVersion: SnapshotVersionSchema,
  /** Upserted and removed by name. */
  collections: changes(CollectionSchema, (c) => c.name),
  /** Upserted and removed by name. */
  roles: changes(RoleSchema, (r) => r.name),
  /** Upserted and removed by id. */
  clients: changes(ClientSchema, (c) => c.id),
  /** Upserted and removed by id. */
  legacyClients: changes(LegacyClientSchema, (c) => c.id),
  /** Present only when changed; replaces the whole setting. */
  tokenExchange: TokenExchangeSchema.optional(),
  legacyAuth: LegacyAuthSchema.optional(),
  rateLimits: RateLimitPoliciesSchema.optional(),
  /** Present only when changed. Keys are never removed by a delta: the control plane always sends them. */
  signingKeys: SigningKeysSchema.optional(),
  /**
   * Relationship data, present only when it changed (so that gateways that predate it read every other delta):
   * entities upserted whole, and removed by collection and uid.
   */
  entities: z
    .strictObject({
      upsert: z.array(SnapshotEntitySchema).default([]),
      remove: z.array(z.strictObject({ collection: NameSchema, uid: EntityUidSchema })).default([]),
    })
    .optional(),
  /** Present only when changed; replaces the whole map (`{}`: no collection has an entity set any more). */
  entitySets: z.record(NameSchema, EntitySetIdSchema).optional(),
  /**
   * Revocations of single derived credentials, present only when they changed (like `entities`): upserted whole,
   * removed by id (when they expire).
   */
  revokedCredentials: z
    .strictObject({
      upsert: z.array(RevokedCredentialSchema).default([]),
      remove: z.array(z.string().min(1).max(128)).default([]),
    })
    .optional(),
});
export type SnapshotDelta = z.output<typeof SnapshotDeltaSchema>;
export type SnapshotDeltaInput = z.input<typeof SnapshotDeltaSchema>;

/** Why a delta could not be applied. On `version-mismatch` a gateway should ask for a full snapshot. */
export class SnapshotDeltaError extends Error {
  override readonly name = 'SnapshotDeltaError';
  readonly reason: 'version-mismatch' | 'invalid-result';
  constructor(reason: 'version-mismatch' | 'invalid-result', message: string) {
    super(message);
    this.reason = reason;
  }
}

/**
 * What turns `prev` into `next`: only the entries whose content differs (compared as canonical JSON), the names
 * of those that are gone, and the settings that changed. Both snapshots must carry a version.
 */
export function diffSnapshots(prev: Snapshot, next: Snapshot): SnapshotDelta {
  if (prev.version === undefined || next.version === undefined) {
    throw new TypeError('diffSnapshots needs two versioned snapshots: a delta names the version it applies to');
  }
  const delta: SnapshotDelta = {
    fromVersion: prev.version,
    toVersion: next.version,
    collections: diffEntries(prev.collections, next.collections, (c) => c.name),
    roles: diffEntries(prev.roles, next.roles, (r) => r.name),
    clients: diffEntries(prev.clients, next.clients, (c) => c.id),
    legacyClients: diffEntries(prev.legacyClients, next.legacyClients, (c) => c.id),
  };
  const entities = diffEntities(prev.entities ?? [], next.entities ?? []);
  if (entities.upsert.length > 0 || entities.remove.length > 0) delta.entities = entities;
  if (canonicalJson(prev.entitySets ?? {}) !== canonicalJson(next.entitySets ?? {}))
    delta.entitySets = { ...next.entitySets };
  const revoked = diffEntries(prev.revokedCredentials ?? [], next.revokedCredentials ?? [], (r) => r.id);
  if (revoked.upsert.length > 0 || revoked.remove.length > 0) delta.revokedCredentials = revoked;
  if (canonicalJson(prev.tokenExchange) !== canonicalJson(next.tokenExchange))
    delta.tokenExchange = structuredClone(next.tokenExchange);
  if (canonicalJson(prev.legacyAuth) !== canonicalJson(next.legacyAuth))
    delta.legacyAuth = structuredClone(next.legacyAuth);
  if (canonicalJson(prev.rateLimits) !== canonicalJson(next.rateLimits))
    delta.rateLimits = structuredClone(next.rateLimits);
  if (canonicalJson(prev.signingKeys) !== canonicalJson(next.signingKeys)) {
    if (next.signingKeys === undefined)
      throw new TypeError('diffSnapshots cannot express removed signing keys: send a full snapshot');
    delta.signingKeys = structuredClone(next.signingKeys);
  }
  return delta;
}

/** Whether the delta changes nothing but the version. */
export function isEmptyDelta(delta: SnapshotDelta): boolean {
  const sections = [delta.collections, delta.roles, delta.clients, delta.legacyClients];
  return (
    sections.every((s) => s.upsert.length === 0 && s.remove.length === 0) &&
    (delta.entities === undefined || (delta.entities.upsert.length === 0 && delta.entities.remove.length === 0)) &&
    (delta.revokedCredentials === undefined ||
      (delta.revokedCredentials.upsert.length === 0 && delta.revokedCredentials.remove.length === 0)) &&
    delta.tokenExchange === undefined &&
    delta.entitySets === undefined &&
    delta.legacyAuth === undefined &&
    delta.rateLimits === undefined &&
    delta.signingKeys === undefined
  );
}

/**
 * The snapshot `delta` turns `prev` into, in canonical order (see `inCanonicalOrder`) and validated as a whole.
 * Throws a `SnapshotDeltaError` when `prev` is not the delta's `fromVersion`, or when the result is not a valid
 * snapshot (e.g. a client left pointing at a removed role).
 */
export function applyDelta(prev: Snapshot, delta: SnapshotDelta): Snapshot {
  if (prev.version !== delta.fromVersion) {
    throw new SnapshotDeltaError(
      'version-mismatch',
      `cannot apply the delta from version ${JSON.stringify(delta.fromVersion)} to ${JSON.stringify(delta.toVersion)}: the snapshot is at version ${JSON.stringify(prev.version ?? null)}`,
    );
  }
  const next: Snapshot = inCanonicalOrder({
    version: delta.toVersion,
    collections: applyEntries(prev.collections, delta.collections, (c) => c.name),
    roles: applyEntries(prev.roles, delta.roles, (r) => r.name),
    clients: applyEntries(prev.clients, delta.clients, (c) => c.id),
    legacyClients: applyEntries(prev.legacyClients, delta.legacyClients, (c) => c.id),
    tokenExchange: delta.tokenExchange ?? prev.tokenExchange,
    legacyAuth: delta.legacyAuth ?? prev.legacyAuth,
    rateLimits: delta.rateLimits ?? prev.rateLimits,
    ...((delta.signingKeys ?? prev.signingKeys) && { signingKeys: delta.signingKeys ?? prev.signingKeys }),
    ...entitiesAfter(prev.entities ?? [], delta.entities),
    ...entitySetsAfter(prev.entitySets, delta.entitySets),
    ...revokedAfter(prev.revokedCredentials ?? [], delta.revokedCredentials),
  });
  // Parsing builds fresh objects, so the result shares nothing with `prev` or `delta`.
  const result = SnapshotSchema.safeParse(encodeSnapshot(next));
  if (!result.success) {
    throw new SnapshotDeltaError(
      'invalid-result',
      `the delta from version ${JSON.stringify(delta.fromVersion)} to ${JSON.stringify(delta.toVersion)} gives an invalid snapshot:\n${formatIssues(result.error)}`,
    );
  }
  return result.data;
}

/** The delta in input form, durations as strings: `SnapshotDeltaSchema.parse(encodeDelta(d))` deep-equals `d`. */
export function encodeDelta(delta: SnapshotDelta): SnapshotDeltaInput {
  const encoded: SnapshotDeltaInput = {
    ...delta,
    collections: { ...delta.collections, upsert: delta.collections.upsert.map(encodeCollection) },
    clients: { ...delta.clients, upsert: delta.clients.upsert.map((c) => encodeClient(c)) },
    legacyClients: { ...delta.legacyClients, upsert: delta.legacyClients.upsert.map((c) => encodeClient(c)) },
  };
  if (delta.tokenExchange) encoded.tokenExchange = encodeTokenExchange(delta.tokenExchange);
  if (delta.rateLimits) encoded.rateLimits = encodeRateLimits(delta.rateLimits);
  return encoded;
}

function diffEntries<T>(prev: T[], next: T[], key: (entry: T) => string): { upsert: T[]; remove: string[] } {
  const before = new Map<string, string>();
  for (const entry of prev) before.set(key(entry), canonicalJson(entry));
  const upsert: T[] = [];
  const kept = new Set<string>();
  for (const entry of next) {
    const name = key(entry);
    kept.add(name);
    if (before.get(name) !== canonicalJson(entry)) upsert.push(structuredClone(entry));
  }
  return { upsert, remove: [...before.keys()].filter((name) => !kept.has(name)) };
}

function applyEntries<T>(prev: T[], changes: { upsert: T[]; remove: string[] }, key: (entry: T) => string): T[] {
  const entries = new Map<string, T>();
  for (const entry of prev) entries.set(key(entry), entry);
  for (const name of changes.remove) entries.delete(name);
  for (const entry of changes.upsert) entries.set(key(entry), entry);
  return [...entries.values()];
}

/** Entities compared by their content (canonical JSON); removals named by collection and uid. */
function diffEntities(prev: SnapshotEntity[], next: SnapshotEntity[]): NonNullable<SnapshotDelta['entities']> {
  const { upsert, remove } = diffEntries(prev, next, entityKey);
  const gone = new Set(remove);
  return {
    upsert,
    remove: prev.filter((e) => gone.has(entityKey(e))).map((e) => ({ collection: e.collection, uid: { ...e.uid } })),
  };
}

/** `{ entities }` after the delta, or nothing when no entity is left (a snapshot without any has none). */
function entitiesAfter(prev: SnapshotEntity[], changes: SnapshotDelta['entities']): { entities?: SnapshotEntity[] } {
  if (changes === undefined) return prev.length === 0 ? {} : { entities: prev };
  if (prev.length === 0 && changes.upsert.length === 0) return {};
  const entities = applyEntries(
    prev,
    { upsert: changes.upsert, remove: changes.remove.map((r) => entityKey(r)) },
    entityKey,
  );
  return entities.length === 0 ? {} : { entities };
}

/** `{ entitySets }` after the delta, or nothing when none is left. */
function entitySetsAfter(
  prev: Snapshot['entitySets'],
  changed: SnapshotDelta['entitySets'],
): { entitySets?: Record<string, string> } {
  const sets = changed ?? prev;
  return sets === undefined || Object.keys(sets).length === 0 ? {} : { entitySets: { ...sets } };
}

/** `{ revokedCredentials }` after the delta, or nothing when none is left. */
function revokedAfter(
  prev: RevokedCredential[],
  changes: SnapshotDelta['revokedCredentials'],
): { revokedCredentials?: RevokedCredential[] } {
  const list = changes === undefined ? prev : applyEntries(prev, changes, (r) => r.id);
  return list.length === 0 ? {} : { revokedCredentials: list };
}
