/**
 * `SnapshotSchema.safeParse` with a fast path for the clients, which are most of a large snapshot: an edge
 * gateway parses 10,000 clients from its cache at every start and from every full snapshot it receives, and zod
 * takes ~45 µs a client where the clients file's hand-written check (`fastClient`) takes ~2 µs.
 *
 * The fast path parses everything but the clients with the schema, each client with `fastClient`, and then checks
 * the clients' cross-references as the schema does (known role, unique ids and key hashes). It only ever says yes:
 * when a client is one `fastClient` cannot tell, or any cross-check fails, the whole value goes through
 * `SnapshotSchema.safeParse`, so zod stays the source of truth and says what is wrong.
 */
import { fastClient } from './clients-file.ts';
import { type Client, type Snapshot, SnapshotSchema } from './schema.ts';

export type SnapshotParse = ReturnType<typeof SnapshotSchema.safeParse>;

export function parseSnapshot(value: unknown): SnapshotParse {
  return fastParse(value) ?? SnapshotSchema.safeParse(value);
}

function fastParse(value: unknown): SnapshotParse | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const input = value as Record<string, unknown>;
  if (!Array.isArray(input.clients)) return undefined;
  const clients: Client[] = [];
  for (const c of input.clients as unknown[]) {
    const client = fastClient(c);
    if (!client) return undefined;
    clients.push(client);
  }
  const rest = SnapshotSchema.safeParse({ ...input, clients: [] });
  if (!rest.success) return undefined;
  const snapshot: Snapshot = rest.data;
  const roles = new Set(snapshot.roles.map((r) => r.name));
  const ids = new Set(snapshot.legacyClients.map((c) => c.id));
  const hashes = new Set(snapshot.legacyClients.map((c) => c.keyHash));
  for (const client of clients) {
    if (!roles.has(client.role) || ids.has(client.id)) return undefined;
    ids.add(client.id);
    for (const key of client.keys) {
      if (hashes.has(key.hash)) return undefined;
      hashes.add(key.hash);
    }
  }
  snapshot.clients = clients;
  return rest;
}
