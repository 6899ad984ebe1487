/**
 * The clients file: API clients as NDJSON, one `clients[]` entry (`ClientSchema`) per line, referenced from the
 * config file's `clientsFile`. Meant for client sets too large for one JSON or YAML document: a million clients
 * load in a few seconds because no line is ever part of a large parse, and each validated client is handed to the
 * caller at once (the gateway compiles it into its key index), so no array of a million objects builds up.
 *
 * Lines are validated by a hand-written check of the common shapes, which builds exactly what `ClientSchema`
 * outputs; a line it does not accept goes through `ClientSchema.safeParse`, so zod stays the source of truth and
 * says what is wrong. Errors name the file and line: `clients.ndjson:12: keys[0].hash: must be a SHA-256 hash…`.
 */
import { type FileHandle, open } from 'node:fs/promises';
import { dirname, isAbsolute, join } from 'node:path';
import { ConfigError } from './load.ts';
import { type Client, ClientKeySchema, ClientSchema, ENVIRONMENT_PATTERN, formatPath, type GatewayFile, type LegacyClient, NAME_PATTERN, type Role } from './schema.ts';

/** What the file's clients are checked against: the config file's roles and its inline clients. */
export interface ClientsFileReferences {
  roles: readonly Role[];
  clients: readonly Client[];
  legacyClients: readonly LegacyClient[];
}

export interface ClientsFileSummary {
  clients: number;
  keys: number;
  /** Identity of the file that was read (device, inode, size, times): a reload skips an untouched file. */
  signature: string;
}

/** Where `clientsFile` of the config file `configFile` points (relative paths are relative to its directory). */
export function clientsFilePath(configFile: string, config: Pick<GatewayFile, 'clientsFile'>): string | undefined {
  const path = config.clientsFile;
  if (path === undefined) return undefined;
  return isAbsolute(path) ? path : join(dirname(configFile), path);
}

/** Bytes read at a time. A chunk's lines are parsed without yielding, so this also bounds event-loop pauses. */
const CHUNK_BYTES = 1 << 20;
const MAX_ERRORS = 20;

/**
 * Reads and validates a clients file, calling `onClient` with each valid client as it goes. Rejects with one
 * `ConfigError` listing the first 20 problems (as `FILE:LINE: field: message`) when any line is invalid or breaks a
 * cross-reference rule: the role must exist, client ids and key hashes must be unique across the config file and
 * the clients file. After the first problem `onClient` is not called again, so callers discard what they built.
 */
export async function readClientsFile(file: string, refs: ClientsFileReferences, onClient?: (client: Client) => void): Promise<ClientsFileSummary> {
  let handle: FileHandle;
  try {
    handle = await open(file, 'r');
  } catch (error) {
    throw new ConfigError(`${file}: cannot read the clients file (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  const checker = new ClientsChecker(file, refs, onClient);
  try {
    const stat = await handle.stat();
    let buffer = Buffer.allocUnsafe(CHUNK_BYTES);
    let filled = 0;
    let start = -1; // the first chunk: skip a UTF-8 byte order mark
    for (;;) {
      if (filled === buffer.length) {
        // One line longer than the buffer: grow it.
        const bigger = Buffer.allocUnsafe(buffer.length * 2);
        buffer.copy(bigger, 0, 0, filled);
        buffer = bigger;
      }
      const { bytesRead } = await handle.read(buffer, filled, buffer.length - filled, null);
      const data = buffer.subarray(0, filled + bytesRead);
      if (start < 0) start = data[0] === 0xef && data[1] === 0xbb && data[2] === 0xbf ? 3 : 0;
      // Each line is decoded on its own: JSON.parse is much slower on slices of one large string, and a chunk-sized
      // string outlives its lines. ('\n' never occurs inside a multi-byte UTF-8 sequence.)
      for (let nl = data.indexOf(0x0a, start); nl >= 0; nl = data.indexOf(0x0a, start)) {
        checker.line(data, start, nl);
        start = nl + 1;
      }
      if (bytesRead === 0) {
        if (start < data.length) checker.line(data, start, data.length);
        break;
      }
      filled = data.copy(buffer, 0, start);
      start = 0;
    }
    checker.finish();
    return { clients: checker.clientCount, keys: checker.keyCount, signature: fileSignature(stat) };
  } finally {
    await handle.close();
  }
}

/** The identity of a file's current content as far as `stat` can tell. */
export function fileSignature(stat: { dev: number; ino: number; size: number; mtimeMs: number; ctimeMs: number }): string {
  return `${stat.dev}:${stat.ino}:${stat.size}:${stat.mtimeMs}:${stat.ctimeMs}`;
}

class ClientsChecker {
  readonly #file: string;
  readonly #onClient: ((client: Client) => void) | undefined;
  readonly #roles: Set<string>;
  readonly #inlineIds: Set<string>;
  readonly #ids = new Set<string>();
  readonly #hashes = new Set<string>();
  readonly #errors: string[] = [];
  #errorCount = 0;
  #line = 0;
  clientCount = 0;
  keyCount = 0;

  constructor(file: string, refs: ClientsFileReferences, onClient: ((client: Client) => void) | undefined) {
    this.#file = file;
    this.#onClient = onClient;
    this.#roles = new Set(refs.roles.map((r) => r.name));
    this.#inlineIds = new Set([...refs.clients, ...refs.legacyClients].map((c) => c.id));
    for (const c of refs.clients) for (const k of c.keys) this.#hashes.add(k.hash);
    for (const c of refs.legacyClients) this.#hashes.add(c.keyHash);
  }

  /** Checks the next line, `bytes[start, end)` without its '\n'. */
  line(bytes: Buffer, start: number, end: number): void {
    const line = ++this.#line;
    if (isBlankOrComment(bytes, start, end)) return;
    const client = this.#client(bytes.toString('utf8', start, end), line);
    if (client && this.#errorCount === 0) this.#onClient?.(client);
  }

  #client(source: string, line: number): Client | undefined {
    const parsed = parseClientLine(source);
    if (!parsed.ok) {
      for (const problem of parsed.problems) this.#error(line, problem);
      return undefined;
    }
    const client = parsed.client;
    let ok = true;
    if (!this.#roles.has(client.role)) ok = this.#error(line, `role: unknown role "${client.role}"`);
    if (this.#inlineIds.has(client.id)) ok = this.#error(line, `id: duplicate client id "${client.id}" (also in the config file)`);
    else if (this.#ids.has(client.id)) ok = this.#error(line, `id: duplicate client id "${client.id}"`);
    this.#ids.add(client.id);
    const keys = client.keys;
    for (let j = 0; j < keys.length; j++) {
      const hash = keys[j]!.hash;
      if (this.#hashes.has(hash)) ok = this.#error(line, `keys[${j}].hash: this key hash is already used by another key`);
      this.#hashes.add(hash);
    }
    this.clientCount++;
    this.keyCount += keys.length;
    return ok ? client : undefined;
  }

  /** Records `problem` (`field: what`) at `line`; false, for `ok = this.#error(…)`. */
  #error(line: number, problem: string): false {
    this.#errorCount++;
    if (this.#errors.length < MAX_ERRORS) this.#errors.push(`${this.#file}:${line}: ${problem}`);
    return false;
  }

  finish(): void {
    if (this.#errorCount === 0) return;
    const lines = this.#errors.map((e) => `  ${e}`);
    if (this.#errorCount > MAX_ERRORS) lines.push(`  … and ${this.#errorCount - MAX_ERRORS} more`);
    throw new ConfigError(`${this.#file}: invalid clients file\n${lines.join('\n')}`);
  }
}

/** Blank lines and lines whose first non-blank character is '#' are skipped. */
function isBlankOrComment(bytes: Buffer, start: number, end: number): boolean {
  for (let i = start; i < end; i++) {
    const c = bytes[i];
    if (c === 0x20 || c === 0x09 || c === 0x0d) continue;
    return c === 0x23; // '#'
  }
  return true;
}

/** One line of a clients file: what `ClientSchema` outputs for it, or its problems as `field: what` (zod's words). */
export type ClientLine = { ok: true; client: Client } | { ok: false; problems: string[] };

export function parseClientLine(source: string): ClientLine {
  let value: unknown;
  try {
    value = JSON.parse(source);
  } catch (error) {
    return { ok: false, problems: [`invalid JSON: ${(error as Error).message}`] };
  }
  const client = fastClient(value);
  if (client) return { ok: true, client };
  const result = ClientSchema.safeParse(value);
  if (result.success) return { ok: true, client: result.data };
  return { ok: false, problems: result.error.issues.map((i) => `${formatPath(i.path) || '(root)'}: ${i.message}`) };
}

/*
 * The fast path. Each check below accepts a subset of what the field's schema accepts and outputs the same value;
 * `clients-file.test.ts` compares it with `ClientSchema` on many generated lines. Fields that are rare in large
 * client sets (allowedIps, metadata, rateLimits, expiresAt) are checked by their own zod schema.
 */

const { allowedIps: AllowedIps, metadata: Metadata, rateLimits: ClientRateLimits, expiresAt: ExpiresAt } = ClientSchema.shape;
const KeyExpiresAt = ClientKeySchema.shape.expiresAt;
const CLIENT_FIELDS = new Set(Object.keys(ClientSchema.shape));

/** The client `ClientSchema` would output for `value`, or undefined when this fast check cannot tell (then ask zod). */
export function fastClient(value: unknown): Client | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const input = value as Record<string, unknown>;
  const { id, name, role, environments, projects, allowedIps, userId, orgId, metadata, rateLimits, expiresAt, status, keys } = input;
  for (const field in input) if (!CLIENT_FIELDS.has(field)) return undefined;

  if (!isName(id) || !isName(role) || !isOptionalString(name, 256) || !isOptionalString(userId, 256) || !isOptionalString(orgId, 256)) return undefined;
  if (!isNonEmptyArrayOf(environments, ENVIRONMENT_PATTERN) || !isNonEmptyArrayOf(projects, NAME_PATTERN)) return undefined;
  if (status !== undefined && status !== 'active' && status !== 'disabled') return undefined;
  if (!Array.isArray(keys) || keys.length === 0) return undefined;
  const outKeys: Client['keys'] = [];
  for (const key of keys as unknown[]) {
    const k = fastKey(key);
    if (!k) return undefined;
    outKeys.push(k);
  }

  // Same field order as ClientSchema's output; absent optional fields stay absent.
  const out: Record<string, unknown> = { id };
  if (name !== undefined) out.name = name;
  out.role = role;
  out.environments = environments;
  out.projects = projects;
  if (allowedIps !== undefined) {
    const r = AllowedIps.safeParse(allowedIps);
    if (!r.success) return undefined;
    out.allowedIps = r.data;
  }
  if (userId !== undefined) out.userId = userId;
  if (orgId !== undefined) out.orgId = orgId;
  if (metadata !== undefined) {
    const r = Metadata.safeParse(metadata);
    if (!r.success) return undefined;
    out.metadata = r.data;
  }
  if (rateLimits !== undefined) {
    const r = ClientRateLimits.safeParse(rateLimits);
    if (!r.success) return undefined;
    out.rateLimits = r.data;
  }
  if (expiresAt !== undefined) {
    if (!ExpiresAt.safeParse(expiresAt).success) return undefined;
    out.expiresAt = expiresAt;
  }
  out.status = status ?? 'active';
  out.keys = outKeys;
  return out as Client;
}

function fastKey(value: unknown): Client['keys'][number] | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const input = value as Record<string, unknown>;
  for (const field in input) if (field !== 'hash' && field !== 'id' && field !== 'expiresAt') return undefined;
  const { hash, id, expiresAt } = input;
  const normalized = typeof hash === 'string' ? keyHash(hash) : undefined;
  if (normalized === undefined || !isOptionalString(id, 64)) return undefined;
  const out: Client['keys'][number] = { hash: normalized };
  if (id !== undefined) out.id = id as string;
  if (expiresAt !== undefined) {
    if (!KeyExpiresAt.safeParse(expiresAt).success) return undefined;
    out.expiresAt = expiresAt as string;
  }
  return out;
}

/**
 * `KeyHashSchema` for ASCII input: 64 hex digits in any case, optionally after `sha256:` in any case; undefined for
 * anything else (zod decides). The result is lower case and, when a prefix was cut off, a string of its own:
 * `toLowerCase` copies the slice, which would otherwise keep the whole JSON string alive (these strings are the
 * key index's keys, a million of them).
 */
function keyHash(hash: string): string | undefined {
  let i = 0;
  if (hash.length === 71) {
    for (; i < 7; i++) {
      const c = hash.charCodeAt(i);
      const p = SHA256_PREFIX.charCodeAt(i);
      if (c !== p && !(p >= 0x61 && c === p - 0x20)) return undefined; // the letters may be upper case
    }
  } else if (hash.length !== 64) {
    return undefined;
  }
  let upper = i > 0; // with a prefix, always copy (see above)
  for (; i < hash.length; i++) {
    const c = hash.charCodeAt(i);
    if ((c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66)) continue; // 0-9 a-f
    if (c >= 0x41 && c <= 0x46) upper = true; // A-F
    else return undefined;
  }
  if (!upper) return hash;
  return (hash.length === 64 ? hash : hash.slice(7)).toLowerCase();
}

const SHA256_PREFIX = 'sha256:';

function isName(value: unknown): value is string {
  return typeof value === 'string' && NAME_PATTERN.test(value);
}

function isOptionalString(value: unknown, max: number): boolean {
  return value === undefined || (typeof value === 'string' && value.length <= max);
}

function isNonEmptyArrayOf(value: unknown, pattern: RegExp): boolean {
  if (!Array.isArray(value) || value.length === 0) return false;
  for (const item of value as unknown[]) if (typeof item !== 'string' || !pattern.test(item)) return false;
  return true;
}
