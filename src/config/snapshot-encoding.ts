/**
 * A snapshot as bytes: its canonical order, canonical JSON, content hash, and the encoding back to the schema's
 * input form. Shared by the control plane (which compiles, hashes and stores snapshots) and by gateways (which
 * cache them and check what they received), so it lives in the contract.
 *
 * Why an encoding at all: a parsed snapshot holds durations in milliseconds, while a number given to
 * `DurationSchema` means seconds. Parsing a parsed snapshot again would multiply every timeout, window and token
 * lifetime by 1000. `encodeSnapshot` writes durations as strings ("30s", "250ms"), so that
 * `SnapshotSchema.parse(encodeSnapshot(s))` deep-equals `s`: it is the form to store, send and re-validate.
 */
import { createHash } from 'node:crypto';
import type { z } from 'zod';
import { formatDuration } from './duration.ts';
import { entityKey } from './resource-policies.ts';
import type {
  Client,
  ClientSchema,
  Collection,
  CollectionSchema,
  LegacyClient,
  LegacyClientSchema,
  RateLimitPolicies,
  RateLimitPoliciesSchema,
  Snapshot,
  SnapshotInput,
  TokenExchange,
  TokenExchangeSchema,
} from './schema.ts';

/**
 * JSON with object keys sorted (by UTF-16 code units, at every depth) and no whitespace: equal values give equal
 * strings, whatever order their keys were built in. Undefined object members are left out and other values
 * follow `JSON.stringify`. Hand-written because no dependency offers it, and it is a few lines: `JSON.stringify`
 * with a replacer cannot do it, since JavaScript enumerates integer-like keys ("2", "10") before the others.
 */
export function canonicalJson(value: unknown): string {
  return write(value) ?? 'null';
}

function write(value: unknown): string | undefined {
  if (value !== null && typeof value === 'object' && typeof (value as { toJSON?: unknown }).toJSON === 'function') {
    value = (value as { toJSON: () => unknown }).toJSON();
  }
  if (value === null || typeof value !== 'object') return JSON.stringify(value); // undefined for undefined and functions
  if (Array.isArray(value)) return `[${value.map((item) => write(item) ?? 'null').join(',')}]`;
  const members: string[] = [];
  for (const key of Object.keys(value).sort(compareStrings)) {
    const member = write((value as Record<string, unknown>)[key]);
    if (member !== undefined) members.push(`${JSON.stringify(key)}:${member}`);
  }
  return `{${members.join(',')}}`;
}

/**
 * SHA-256 (hex) of the snapshot's canonical JSON without its `version`: the identity of its content. The control
 * plane compares it to decide whether a recompiled snapshot is new; re-versioning the same content keeps it.
 */
export function snapshotHash(snapshot: Snapshot): string {
  const { version: _version, ...content } = snapshot;
  return createHash('sha256').update(canonicalJson(content)).digest('hex');
}

/** Orders strings by UTF-16 code units, the same on every machine (unlike `localeCompare`). */
export function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * The snapshot with collections and roles sorted by name and clients and legacy clients by id: the order the
 * compiler produces and `applyDelta` restores, so that equal content gives byte-identical JSON.
 */
export function inCanonicalOrder(snapshot: Snapshot): Snapshot {
  return {
    ...snapshot,
    collections: [...snapshot.collections].sort((a, b) => compareStrings(a.name, b.name)),
    roles: [...snapshot.roles].sort((a, b) => compareStrings(a.name, b.name)),
    clients: [...snapshot.clients].sort((a, b) => compareStrings(a.id, b.id)),
    legacyClients: [...snapshot.legacyClients].sort((a, b) => compareStrings(a.id, b.id)),
    ...(snapshot.entities && {
      entities: [...snapshot.entities].sort((a, b) => compareStrings(entityKey(a), entityKey(b))),
    }),
    ...(snapshot.revokedCredentials && {
      revokedCredentials: [...snapshot.revokedCredentials].sort((a, b) => compareStrings(a.id, b.id)),
    }),
  };
}

/** The snapshot in input form, durations as strings: `SnapshotSchema.parse(encodeSnapshot(s))` deep-equals `s`. */
export function encodeSnapshot(snapshot: Snapshot): SnapshotInput {
  return {
    ...snapshot,
    collections: snapshot.collections.map(encodeCollection),
    clients: snapshot.clients.map((c) => encodeClient(c)),
    legacyClients: snapshot.legacyClients.map((c) => encodeClient(c)),
    tokenExchange: encodeTokenExchange(snapshot.tokenExchange),
    rateLimits: encodeRateLimits(snapshot.rateLimits),
  };
}

export function encodeCollection(collection: Collection): z.input<typeof CollectionSchema> {
  const { upstream } = collection;
  return {
    ...collection,
    upstream: {
      ...upstream,
      connectTimeout: formatDuration(upstream.connectTimeout),
      headersTimeout: formatDuration(upstream.headersTimeout),
      bodyTimeout: formatDuration(upstream.bodyTimeout),
    },
    ...(collection.rateLimits && { rateLimits: encodeRateLimits(collection.rateLimits) }),
  };
}

export function encodeClient(client: Client): z.input<typeof ClientSchema>;
export function encodeClient(client: LegacyClient): z.input<typeof LegacyClientSchema>;
export function encodeClient(
  client: Client | LegacyClient,
): z.input<typeof ClientSchema> | z.input<typeof LegacyClientSchema> {
  return client.rateLimits ? { ...client, rateLimits: encodeRateLimits(client.rateLimits) } : client;
}

export function encodeTokenExchange(settings: TokenExchange): z.input<typeof TokenExchangeSchema> {
  return { ...settings, ttl: formatDuration(settings.ttl) };
}

export function encodeRateLimits(limits: RateLimitPolicies): z.input<typeof RateLimitPoliciesSchema> {
  const out: z.input<typeof RateLimitPoliciesSchema> = {};
  for (const who of ['key', 'client', 'org'] as const) {
    const limit = limits[who];
    if (limit) out[who] = { ...limit, window: formatDuration(limit.window) };
  }
  return out;
}
