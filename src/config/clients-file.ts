/**
 * Length (about 460 lines): the line reader, its fast check and its error positions are one
 * streaming parser.
 *
 * The clients file: API clients as NDJSON, one `clients[]` entry (`ClientSchema`) per line, referenced from the
 * config file's `clientsFile`. Meant for client sets too large for one JSON or YAML document: a million clients
 * load in a few seconds because no line is ever part of a large parse, and each validated client is handed to the
 * caller at once (the gateway compiles it into its key index), so no array of a million objects builds up.
 *
 * Lines are validated by a hand-written check of the common shapes, which builds exactly what `ClientSchema`
 * outputs; a line it does not accept goes through `ClientSchema.safeParse`, so zod stays the source of truth and
 * says what is wrong. Errors name the file and line: `clients.ndjson:12: keys[0].hash: must be a SHA-256 hash…`.
 *
 * Over 400 lines on purpose: the reader and its fast check of one client line belong together: the fast path must
 * build exactly what `ClientSchema` outputs, and is read against it.
 */
import { constants } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { dirname, isAbsolute, join } from 'node:path';
import { scanJson } from './json-scan.ts';
import { checkRegularFile, ConfigError } from './load.ts';
import {
  type Client,
  ClientKeySchema,
  ClientSchema,
  ENVIRONMENT_PATTERN,
  formatPath,
  type GatewayFile,
  KEY_IN_LABEL,
  type LegacyClient,
  NAME_PATTERN,
  type Role,
} from './schema.ts';
import { WILDCARD } from '../shared/permissions.ts';
import { StringSet } from './string-set.ts';

/** What the file's clients are checked against: the config file's roles and its inline clients. */
export interface ClientsFileReferences {
  roles: readonly Role[];
  clients: readonly Client[];
  legacyClients: readonly LegacyClient[];
}

/** Where the valid clients go: the gateway's compilation, whose key index then doubles as the duplicate check. */
export interface ClientsFileTarget {
  add(client: Client): void;
  /** Whether a client of the config file or one added before has a key with this hash. */
  hasKey(hash: string): boolean;
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

/** Bytes read at a time. A chunk's lines are parsed without yielding: this keeps a reload's event-loop pauses to a few ms. */
const CHUNK_BYTES = 1 << 18;
/** Bytes decoded into one string: well below V8's large-object size, so the string is cheap young garbage. */
const PIECE_BYTES = 1 << 16;
const MAX_ERRORS = 20;
/**
 * The longest line, in bytes (without its '\n'): far above any real client (tens of thousands of keys fit), and it
 * bounds what parsing one line can cost; without it, one line of many millions of properties exhausts the heap. A
 * longer line is an error, and its bytes are skipped without being held in memory.
 */
export const MAX_LINE_BYTES = 16 * 2 ** 20;

/**
 * Reads and validates a clients file, adding each valid client to `target` as it goes. Rejects with one
 * `ConfigError` listing the first 20 problems (as `FILE:LINE: field: message`) when any line is invalid or breaks a
 * cross-reference rule: the role must exist, client ids and key hashes must be unique across the config file and
 * the clients file. After the first problem nothing more is added, so callers discard what they built.
 */
export async function readClientsFile(
  file: string,
  refs: ClientsFileReferences,
  target?: ClientsFileTarget,
): Promise<ClientsFileSummary> {
  let handle: FileHandle;
  try {
    // Non-blocking: a named pipe is refused below instead of waiting for a writer.
    handle = await open(file, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (error) {
    throw new ConfigError(
      `${file}: cannot read the clients file (${(error as NodeJS.ErrnoException).code ?? 'error'})`,
    );
  }
  const checker = new ClientsChecker(file, refs, target);
  try {
    const stat = await handle.stat();
    checkRegularFile(stat, file, 'clients file');
    let buffer = Buffer.allocUnsafe(CHUNK_BYTES);
    let filled = 0;
    let start = -1; // the first chunk: skip a UTF-8 byte order mark
    let skipping = false; // in a line longer than MAX_LINE_BYTES, already reported: drop bytes up to its '\n'
    for (;;) {
      if (filled === buffer.length) {
        if (buffer.length > MAX_LINE_BYTES) {
          // The buffer holds one partial line only, and it is already too long.
          checker.tooLong();
          skipping = true;
          filled = 0;
        } else {
          // One line longer than the buffer: grow it.
          const bigger = Buffer.allocUnsafe(Math.min(buffer.length * 2, MAX_LINE_BYTES + 1));
          buffer.copy(bigger, 0, 0, filled);
          buffer = bigger;
        }
      }
      const { bytesRead } = await handle.read(buffer, filled, buffer.length - filled, null);
      const data = buffer.subarray(0, filled + bytesRead);
      if (start < 0) start = data[0] === 0xef && data[1] === 0xbb && data[2] === 0xbf ? 3 : 0;
      const eof = bytesRead === 0;
      if (skipping) {
        const nl = data.indexOf(0x0a);
        if (nl < 0) {
          if (eof) break;
          filled = 0;
          continue;
        }
        skipping = false;
        start = nl + 1;
      }
      const end = eof ? data.length : data.lastIndexOf(0x0a) + 1; // whole lines only, but for the last one
      while (start < end) {
        // Decoded in pieces of whole lines: JSON.parse is fastest on slices of a small string (much slower on a
        // chunk-sized one, which is also an external string that outlives its lines), and one decode per line
        // costs a native call each. '\n' never occurs inside a multi-byte UTF-8 sequence.
        let stop = Math.min(start + PIECE_BYTES, end);
        if (stop < end) {
          let nl = data.lastIndexOf(0x0a, stop - 1);
          if (nl < start) nl = data.indexOf(0x0a, stop); // one line longer than a piece
          stop = nl < 0 || nl >= end ? end : nl + 1;
        }
        checker.lines(data.toString('utf8', start, stop));
        start = stop;
      }
      if (eof) break;
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
export function fileSignature(stat: {
  dev: number;
  ino: number;
  size: number;
  mtimeMs: number;
  ctimeMs: number;
}): string {
  return `${stat.dev}:${stat.ino}:${stat.size}:${stat.mtimeMs}:${stat.ctimeMs}`;
}

class ClientsChecker {
  readonly #file: string;
  readonly #target: ClientsFileTarget | undefined;
  readonly #roles: Set<string>;
  readonly #inlineIds: Set<string>;
  /** Client ids of the config file and of the lines so far. */
  readonly #ids: StringSet;
  /** Key hashes seen and not in the target's index (all of them without a target). */
  readonly #hashes = new StringSet();
  readonly #errors: string[] = [];
  #errorCount = 0;
  #line = 0;
  clientCount = 0;
  keyCount = 0;

  constructor(file: string, refs: ClientsFileReferences, target: ClientsFileTarget | undefined) {
    this.#file = file;
    this.#target = target;
    this.#roles = new Set(refs.roles.map((r) => r.name));
    this.#inlineIds = new Set([...refs.clients, ...refs.legacyClients].map((c) => c.id));
    this.#ids = new StringSet(this.#inlineIds);
    if (!target) {
      for (const c of refs.clients) for (const k of c.keys) this.#hashes.add(k.hash);
      for (const c of refs.legacyClients) this.#hashes.add(c.keyHash);
    }
  }

  /** Checks the next lines: `text` holds whole lines, each ending with '\n' but for the last line of the file. */
  lines(text: string): void {
    for (let start = 0; start < text.length;) {
      let end = text.indexOf('\n', start);
      if (end < 0) end = text.length;
      const line = ++this.#line;
      if (!isBlankOrComment(text, start, end)) this.#client(text.slice(start, end), line);
      start = end + 1;
    }
  }

  #client(source: string, line: number): void {
    const parsed = parseClientLine(source);
    if (!parsed.ok) {
      for (const problem of parsed.problems) this.#error(line, problem);
      return;
    }
    const client = parsed.client;
    let ok = true;
    if (!this.#roles.has(client.role)) ok = this.#error(line, `role: unknown role "${client.role}"`);
    if (!this.#ids.add(client.id)) {
      ok = this.#error(
        line,
        `id: duplicate client id "${client.id}"${this.#inlineIds.has(client.id) ? ' (also in the config file)' : ''}`,
      );
    }
    const keys = client.keys;
    for (let j = 0; j < keys.length; j++) {
      const hash = keys[j]!.hash;
      if (
        this.#target?.hasKey(hash) ||
        (this.#hashes.size > 0 && this.#hashes.has(hash)) ||
        (j > 0 && keys.some((k, i) => i < j && k.hash === hash))
      ) {
        ok = this.#error(line, `keys[${j}].hash: this key hash is already used by another key`);
      }
    }
    this.clientCount++;
    this.keyCount += keys.length;
    if (ok && this.#errorCount === 0 && this.#target) this.#target.add(client);
    else for (const k of keys) this.#hashes.add(k.hash);
  }

  /** Counts the next line as one that is too long (its bytes are skipped). */
  tooLong(): void {
    this.#error(++this.#line, `the line is longer than the ${MAX_LINE_BYTES / 2 ** 20} MiB limit`);
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
function isBlankOrComment(text: string, start: number, end: number): boolean {
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i);
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
  } catch {
    // Not JSON.parse's message: it quotes the text around the error, which may be a key.
    const problem = scanJson(source, false);
    return {
      ok: false,
      problems: [problem ? `invalid JSON at column ${problem.offset + 1}: ${problem.message}` : 'invalid JSON'],
    };
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
 * client sets (allowedIps, metadata, rateLimits, expiresAt) are checked by their own zod schema; an unknown field,
 * or any value a check refuses, sends the whole line to `ClientSchema`.
 */

const {
  allowedIps: AllowedIps,
  metadata: Metadata,
  rateLimits: ClientRateLimits,
  expiresAt: ExpiresAt,
} = ClientSchema.shape;
const KeyExpiresAt = ClientKeySchema.shape.expiresAt;
const CLIENT_FIELDS = new Set(Object.keys(ClientSchema.shape));

/** The client `ClientSchema` would output for `value`, or undefined when this fast check cannot tell (then ask zod). */
export function fastClient(value: unknown): Client | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const input = value as Record<string, unknown>;
  const {
    id,
    name,
    role,
    environments,
    projects,
    allowedIps,
    userId,
    orgId,
    metadata,
    rateLimits,
    expiresAt,
    status,
    keys,
  } = input;
  for (const field in input) if (!CLIENT_FIELDS.has(field)) return undefined;

  if (!isString(id) || !NAME_PATTERN.test(id) || !isString(role) || !NAMES.test(role)) return undefined;
  if (!isOptionalString(name, 256) || !isOptionalString(userId, 256) || !isOptionalString(orgId, 256)) return undefined;
  if (!isScopeList(environments, ENVIRONMENTS) || !isScopeList(projects, NAMES)) return undefined;
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
  if (normalized === undefined || !isOptionalString(id, 64) || (id !== undefined && KEY_IN_LABEL.test(id as string)))
    return undefined;
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
  let all = HEX_LOWER; // stays set while every character is a hex digit
  let any = 0; // gets HEX_UPPER when one is an upper-case A-F
  for (; i < hash.length; i++) {
    const c = hash.charCodeAt(i);
    const kind = c < 0x80 ? HEX_KIND[c]! : 0;
    all &= kind;
    any |= kind;
  }
  if (all === 0) return undefined;
  if (hash.length === 64 && any !== HEX_UPPER) return hash;
  return (hash.length === 64 ? hash : hash.slice(7)).toLowerCase(); // with a prefix, always a copy (see above)
}

/** ASCII code → HEX_LOWER for 0-9 and a-f, HEX_UPPER (which includes HEX_LOWER) for A-F, 0 for anything else. */
const HEX_LOWER = 1;
const HEX_UPPER = 3;
const HEX_KIND = new Uint8Array(0x80);
for (const c of '0123456789abcdef') HEX_KIND[c.charCodeAt(0)] = HEX_LOWER;
for (const c of 'ABCDEF') HEX_KIND[c.charCodeAt(0)] = HEX_UPPER;
const SHA256_PREFIX = 'sha256:';

/** A pattern test that remembers values it accepted: roles, environments and projects repeat on most lines. */
class RecentMatches {
  readonly #pattern: RegExp;
  readonly #accepted = new Set<string>();

  constructor(pattern: RegExp) {
    this.#pattern = pattern;
  }

  test(value: string): boolean {
    if (this.#accepted.has(value)) return true;
    if (!this.#pattern.test(value)) return false;
    if (this.#accepted.size >= 64) this.#accepted.clear();
    this.#accepted.add(value);
    return true;
  }
}

const NAMES = new RecentMatches(NAME_PATTERN);
const ENVIRONMENTS = new RecentMatches(ENVIRONMENT_PATTERN);

function isString(value: unknown): value is string {
  return typeof value === 'string';
}

function isOptionalString(value: unknown, max: number): boolean {
  return value === undefined || (typeof value === 'string' && value.length <= max);
}

/** A client's `environments` or `projects`: a non-empty array of names matching `pattern`, or `*`. */
function isScopeList(value: unknown, pattern: RecentMatches): boolean {
  if (!Array.isArray(value) || value.length === 0) return false;
  for (const item of value as unknown[])
    if (typeof item !== 'string' || (item !== WILDCARD && !pattern.test(item))) return false;
  return true;
}
