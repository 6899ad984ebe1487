/**
 * Length (about 600 lines formatted): one state machine (current, next and retired keys, rotation, persistence and its
 * retries) that reads best in one place; the file format and the distributed (read-only) store are at the end.
 *
 * Token-signing keys with rotation.
 *
 * The store holds one *current* key (signs tokens), optionally one *next* key (already published in the JWKS,
 * used from the next rotation on) and *retired* keys (public part only, published until every token they signed
 * has expired). Keeping the next key published ahead of time lets upstreams that cache the JWKS know a key
 * before the first token signed with it arrives, and it lets `current()` rotate synchronously: rotation is a
 * reference swap, the new next key is generated and persisted in the background.
 *
 * With `file` set, the keys live in a JSON file (mode 0600, written atomically and durably by
 * src/shared/atomic-file.ts). The file holds private parts only for the current and next key; retired keys keep
 * their public part only.
 *
 * Over 400 lines on purpose: the key store and its file (read, checked, written atomically) are one unit; the file's
 * format is this store's alone.
 */
import { chmod, mkdir, readFile, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import {
  calculateJwkThumbprint,
  CompactSign,
  compactVerify,
  exportJWK,
  generateKeyPair,
  importJWK,
  type CryptoKey,
  type JWK,
  type KeyObject,
} from 'jose';
import { z } from 'zod';
import { ConfigError } from '../../config/load.ts';
import { formatIssues, SigningJwkSchema, type SigningKeys, type TokenExchange } from '../../config/schema.ts';
import { writeFileAtomic } from '../../shared/atomic-file.ts';
import { derivationSecret } from './derived.ts';

export type SigningAlgorithm = TokenExchange['algorithm'];

export interface SigningKeyStoreOptions {
  /** `EdDSA` signs with Ed25519, `ES256` with ECDSA on P-256. */
  algorithm: SigningAlgorithm;
  /** JSON file with the keys (private parts included), written atomically with mode 0600; created when missing. Undefined: in memory only. */
  file?: string;
  /** Rotate when the current key is older than this (ms). Undefined: never rotate automatically. */
  rotateEveryMs?: number;
  /** Lifetime of tokens (ms): a retired key's public part stays published until retiredAt + tokenTtlMs + 60s skew. */
  tokenTtlMs: number;
  now?: () => number;
  /**
   * Called when background work after an automatic rotation fails (generating the next key, writing the file).
   * The store keeps working from memory and retries; default: `process.emitWarning`.
   */
  onError?: (error: Error) => void;
}

export interface SigningKey {
  readonly kid: string;
  readonly alg: SigningAlgorithm;
  readonly privateKey: CryptoKey | KeyObject;
  /** HMAC secret of derived credentials (derived.ts), made from the private part; absent: none can be minted. */
  readonly secret?: Buffer;
}

export interface SigningKeyStore {
  /** The key to sign with now. Rotates first if due (a synchronous swap to the pre-published next key). */
  current(): SigningKey;
  /** JWKS JSON body, cached until the key set changes: current, next and still-valid retired public keys, each with kid, alg, use 'sig'. */
  jwks(): string;
  /** Force a rotation now (new current key; the old one becomes retired). Persists when file is set. */
  rotate(): Promise<void>;
  /** Change the algorithm/ttl/rotation (config reload). Changing the algorithm rotates to a key of the new algorithm. */
  reconfigure(options: Omit<SigningKeyStoreOptions, 'file' | 'now' | 'onError'>): Promise<void>;
  /** Problems found and fixed while opening, e.g. a keys file readable by group or others; for the caller to log. */
  readonly warnings: readonly string[];
  /** Stops background work and further writes. Awaiting rotate()/reconfigure() before closing is the caller's job. */
  close(): void;
}

/** Clock skew allowed to verifiers: a retired key stays published this much longer than its last token lives. */
export const VERIFY_SKEW_MS = 60_000;
/** After failed background work, try again this much later. */
const RETRY_MS = 30_000;
const FILE_VERSION = 1;

const AlgorithmSchema = z.enum(['EdDSA', 'ES256']);
/** The config's signing JWK; in the key file, members other than its own are dropped, not refused. */
const JwkSchema = z.object(SigningJwkSchema.shape);
const Timestamp = z.iso.datetime({ offset: true });
const EntrySchema = z.discriminatedUnion('state', [
  z.object({
    state: z.literal('current'),
    kid: z.string().min(1),
    alg: AlgorithmSchema,
    createdAt: Timestamp,
    activatedAt: Timestamp,
    maxTokenTtlMs: z.number().positive(),
    jwk: JwkSchema,
  }),
  z.object({
    state: z.literal('next'),
    kid: z.string().min(1),
    alg: AlgorithmSchema,
    createdAt: Timestamp,
    jwk: JwkSchema,
  }),
  z.object({
    state: z.literal('retired'),
    kid: z.string().min(1),
    alg: AlgorithmSchema,
    createdAt: Timestamp,
    retiredAt: Timestamp,
    publishUntil: Timestamp,
    jwk: JwkSchema,
  }),
]);
const FileSchema = z.object({ version: z.literal(FILE_VERSION), keys: z.array(EntrySchema).min(1) });
type Entry = z.output<typeof EntrySchema>;
type Jwk = z.output<typeof JwkSchema>;

/** A key with its private part (current or next). */
interface PrivateKey {
  readonly signing: SigningKey;
  /** Private JWK, kept to write the file. */
  readonly jwk: Jwk;
  readonly publicJwk: Jwk;
  readonly createdAt: number;
}

interface CurrentKey extends PrivateKey {
  readonly activatedAt: number;
  /** Longest token lifetime in force while this key signed: decides how long it stays published once retired. */
  maxTokenTtlMs: number;
}

interface RetiredKey {
  readonly kid: string;
  readonly alg: SigningAlgorithm;
  readonly publicJwk: Jwk;
  readonly createdAt: number;
  readonly retiredAt: number;
  readonly publishUntil: number;
}

export async function openSigningKeyStore(options: SigningKeyStoreOptions): Promise<SigningKeyStore> {
  checkOptions(options);
  const now = options.now ?? Date.now;
  const warnings: string[] = [];
  let loaded: LoadedKeys | undefined;
  if (options.file !== undefined) {
    const found = await readKeysFile(options.file, warnings);
    if (found !== undefined) loaded = await parseKeysFile(options.file, found);
  }
  const store = new KeyStore(options, now, warnings, loaded);
  await store.settle(loaded === undefined);
  return store;
}

function checkOptions(options: Omit<SigningKeyStoreOptions, 'file' | 'now' | 'onError'>): void {
  if (options.algorithm !== 'EdDSA' && options.algorithm !== 'ES256')
    throw new TypeError(`signing algorithm must be EdDSA or ES256, got ${String(options.algorithm)}`);
  if (!(Number.isFinite(options.tokenTtlMs) && options.tokenTtlMs > 0))
    throw new TypeError('tokenTtlMs must be a positive number of milliseconds');
  if (options.rotateEveryMs !== undefined && !(Number.isFinite(options.rotateEveryMs) && options.rotateEveryMs > 0)) {
    throw new TypeError('rotateEveryMs must be a positive number of milliseconds');
  }
}

class KeyStore implements SigningKeyStore {
  readonly warnings: readonly string[];
  readonly #file: string | undefined;
  readonly #now: () => number;
  readonly #onError: (error: Error) => void;
  #algorithm: SigningAlgorithm;
  #tokenTtlMs: number;
  #rotateEveryMs: number | undefined;

  #current: CurrentKey | undefined;
  #next: PrivateKey | undefined;
  /** Newest first. */
  #retired: RetiredKey[] = [];
  /** When current() must act: rotation due, or a retry of failed background work. */
  #actAt = Infinity;
  /** Serializes every asynchronous change (rotate, reconfigure, background work, file writes). */
  #queue: Promise<void> = Promise.resolve();
  #backgroundPending = false;
  #closed = false;

  #jwks: string | undefined;
  #jwksValidUntil = Infinity;

  constructor(options: SigningKeyStoreOptions, now: () => number, warnings: string[], loaded: LoadedKeys | undefined) {
    this.#file = options.file;
    this.#now = now;
    this.#onError = options.onError ?? ((error) => process.emitWarning(error));
    this.#algorithm = options.algorithm;
    this.#tokenTtlMs = options.tokenTtlMs;
    this.#rotateEveryMs = options.rotateEveryMs;
    this.warnings = warnings;
    if (loaded !== undefined) {
      this.#current = loaded.current;
      this.#next = loaded.next;
      this.#retired = loaded.retired;
    }
  }

  /** Brings a freshly opened store in line with its options, and writes the file when anything changed. */
  async settle(dirty: boolean): Promise<void> {
    const now = this.#now();
    const before = this.#retired.length;
    this.#retired = this.#retired.filter((k) => k.publishUntil > now);
    dirty ||= this.#retired.length !== before;
    const current = this.#current;
    if (current !== undefined) current.maxTokenTtlMs = Math.max(current.maxTokenTtlMs, this.#tokenTtlMs);
    if (current === undefined || current.signing.alg !== this.#algorithm || this.#rotateDue(now)) {
      await this.#fitNext();
      this.#promote(this.#next ?? (await generate(this.#algorithm, now)));
      dirty = true;
    }
    dirty = (await this.#fitNext()) || dirty;
    this.#schedule();
    if (dirty) await this.#write();
  }

  current(): SigningKey {
    if (this.#now() >= this.#actAt) this.#act();
    return this.#current!.signing;
  }

  jwks(): string {
    const now = this.#now();
    if (this.#jwks === undefined || now >= this.#jwksValidUntil) {
      this.#retired = this.#retired.filter((k) => k.publishUntil > now);
      const keys: Record<string, unknown>[] = [];
      const publish = (kid: string, alg: SigningAlgorithm, jwk: Jwk) => keys.push({ ...jwk, kid, alg, use: 'sig' });
      const current = this.#current!;
      publish(current.signing.kid, current.signing.alg, current.publicJwk);
      if (this.#next !== undefined) publish(this.#next.signing.kid, this.#next.signing.alg, this.#next.publicJwk);
      for (const k of this.#retired) publish(k.kid, k.alg, k.publicJwk);
      this.#jwks = JSON.stringify({ keys });
      this.#jwksValidUntil = Math.min(Infinity, ...this.#retired.map((k) => k.publishUntil));
    }
    return this.#jwks;
  }

  rotate(): Promise<void> {
    return this.#enqueue(async () => {
      this.#promote(this.#next ?? (await generate(this.#algorithm, this.#now())));
      await this.#fitNext();
      await this.#write();
    });
  }

  reconfigure(options: Omit<SigningKeyStoreOptions, 'file' | 'now' | 'onError'>): Promise<void> {
    checkOptions(options);
    return this.#enqueue(async () => {
      this.#algorithm = options.algorithm;
      this.#tokenTtlMs = options.tokenTtlMs;
      this.#rotateEveryMs = options.rotateEveryMs;
      const current = this.#current!;
      current.maxTokenTtlMs = Math.max(current.maxTokenTtlMs, options.tokenTtlMs);
      let dirty = false;
      if (current.signing.alg !== options.algorithm) {
        // Drop a next key of the old algorithm before promoting, so that it is not published for nothing.
        await this.#fitNext();
        this.#promote(this.#next ?? (await generate(options.algorithm, this.#now())));
        dirty = true;
      }
      dirty = (await this.#fitNext()) || dirty;
      if (dirty) await this.#write();
    });
  }

  close(): void {
    this.#closed = true;
    this.#actAt = Infinity;
  }

  #rotateDue(now: number): boolean {
    return this.#rotateEveryMs !== undefined && now >= this.#current!.activatedAt + this.#rotateEveryMs;
  }

  /**
   * current() found `#actAt` reached: rotation is due, or failed background work should be retried. Swaps to the
   * next key synchronously when there is one, then generates a new next key and writes the file in the background.
   */
  #act(): void {
    const now = this.#now();
    this.#actAt = Infinity;
    if (this.#rotateDue(now) && this.#next !== undefined && this.#next.signing.alg === this.#algorithm)
      this.#promote(this.#next);
    if (this.#backgroundPending) return;
    this.#backgroundPending = true;
    this.#enqueue(async () => {
      if (this.#rotateDue(this.#now())) this.#promote(this.#next ?? (await generate(this.#algorithm, this.#now())));
      await this.#fitNext();
      await this.#write();
    }).then(
      () => {
        this.#backgroundPending = false;
      },
      (error: unknown) => {
        this.#backgroundPending = false;
        if (this.#closed) return;
        this.#actAt = Math.min(this.#actAt, this.#now() + RETRY_MS);
        this.#onError(error instanceof Error ? error : new Error(String(error)));
      },
    );
  }

  /** Makes `key` current; the current key (if any) retires and stays published until its tokens have expired. */
  #promote(key: PrivateKey): void {
    const now = this.#now();
    const old = this.#current;
    if (old !== undefined) {
      this.#retired.unshift({
        kid: old.signing.kid,
        alg: old.signing.alg,
        publicJwk: old.publicJwk,
        createdAt: old.createdAt,
        retiredAt: now,
        publishUntil: now + Math.max(old.maxTokenTtlMs, this.#tokenTtlMs) + VERIFY_SKEW_MS,
      });
    }
    this.#current = { ...key, activatedAt: now, maxTokenTtlMs: this.#tokenTtlMs };
    if (this.#next === key) this.#next = undefined;
    this.#jwks = undefined;
  }

  /** Makes the next key fit the options: present, with the configured algorithm, exactly when rotation is on. Returns whether it changed. */
  async #fitNext(): Promise<boolean> {
    const wanted = this.#rotateEveryMs !== undefined;
    let changed = false;
    if (this.#next !== undefined && (!wanted || this.#next.signing.alg !== this.#algorithm)) {
      // Never used to sign: nothing to keep published.
      this.#next = undefined;
      this.#jwks = undefined;
      changed = true;
    }
    if (wanted && this.#next === undefined) {
      this.#next = await generate(this.#algorithm, this.#now());
      this.#jwks = undefined;
      changed = true;
    }
    return changed;
  }

  #schedule(): void {
    if (this.#closed) return;
    this.#actAt = this.#rotateEveryMs === undefined ? Infinity : this.#current!.activatedAt + this.#rotateEveryMs;
  }

  /** Runs `task` after every earlier one. current() does not act while a task runs, so only tasks change the keys then. */
  #enqueue(task: () => Promise<void>): Promise<void> {
    if (this.#closed) return Promise.reject(new Error('signing key store is closed'));
    const run = this.#queue.then(async () => {
      this.#actAt = Infinity;
      try {
        await task();
      } finally {
        this.#schedule();
      }
    });
    this.#queue = run.catch(() => {});
    return run;
  }

  async #write(): Promise<void> {
    if (this.#file === undefined || this.#closed) return;
    const entries: Entry[] = [];
    const current = this.#current!;
    entries.push({
      state: 'current',
      kid: current.signing.kid,
      alg: current.signing.alg,
      createdAt: iso(current.createdAt),
      activatedAt: iso(current.activatedAt),
      maxTokenTtlMs: current.maxTokenTtlMs,
      jwk: current.jwk,
    });
    if (this.#next !== undefined) {
      entries.push({
        state: 'next',
        kid: this.#next.signing.kid,
        alg: this.#next.signing.alg,
        createdAt: iso(this.#next.createdAt),
        jwk: this.#next.jwk,
      });
    }
    for (const k of this.#retired) {
      entries.push({
        state: 'retired',
        kid: k.kid,
        alg: k.alg,
        createdAt: iso(k.createdAt),
        retiredAt: iso(k.retiredAt),
        publishUntil: iso(k.publishUntil),
        jwk: k.publicJwk,
      });
    }
    await writeKeysFile(this.#file, `${JSON.stringify({ version: FILE_VERSION, keys: entries }, null, 2)}\n`);
  }
}

// ── Keys distributed by the control plane ─────────────────────────────────────────────────────────────────

/**
 * A store over keys the control plane distributes in the snapshot (`signingKeys`): no file, no rotation of its
 * own (a new set arrives with a snapshot). `current()` is the active key; the JWKS publishes every listed key.
 * Throws when a kid is not its key's thumbprint or a private part does not pair with its public part; messages
 * name the kid, never key material.
 */
export async function openDistributedKeyStore(keys: SigningKeys): Promise<SigningKeyStore> {
  let active: SigningKey | undefined;
  const published: Record<string, unknown>[] = [];
  for (const entry of keys.keys) {
    const jwk = toJwk(entry.privateJwk);
    const publicJwk = publicPart(jwk);
    if ((await calculateJwkThumbprint(publicJwk)) !== entry.kid)
      throw new Error(`signing key ${entry.kid}: the kid is not the key's thumbprint`);
    const privateKey = await importPrivate(jwk, publicJwk, entry.alg);
    if (privateKey === undefined)
      throw new Error(`signing key ${entry.kid}: the private part does not match the public part`);
    if (entry.kid === keys.active)
      active = Object.freeze({
        kid: entry.kid,
        alg: entry.alg,
        privateKey,
        secret: derivationSecret(jwk.d!, entry.kid),
      });
    published.push({ ...publicJwk, kid: entry.kid, alg: entry.alg, use: 'sig' });
  }
  if (active === undefined) throw new Error(`signing keys: the active kid ${keys.active} is not among the keys`);
  const signing = active;
  const jwks = JSON.stringify({ keys: published });
  return {
    current: () => signing,
    jwks: () => jwks,
    rotate: () => Promise.reject(new Error('these signing keys are distributed by the control plane: it rotates them')),
    reconfigure: async (options) => {
      checkOptions(options);
      if (options.algorithm !== signing.alg)
        throw new Error(`the distributed signing key is ${signing.alg}, not ${options.algorithm}`);
    },
    warnings: [],
    close() {},
  };
}

/** A new key set of one key, as the control plane distributes it: kid = the public key's JWK thumbprint. */
export async function generateSigningKeys(alg: SigningAlgorithm): Promise<SigningKeys> {
  const key = await generate(alg, Date.now());
  const { kty, crv, x, y, d } = key.jwk;
  if (d === undefined) throw new Error('generated a key without its private part');
  return {
    active: key.signing.kid,
    keys: [{ kid: key.signing.kid, alg, privateJwk: y === undefined ? { kty, crv, x, d } : { kty, crv, x, y, d } }],
  };
}

async function generate(alg: SigningAlgorithm, now: number): Promise<PrivateKey> {
  const pair = await generateKeyPair(alg, { extractable: true });
  const jwk = toJwk(await exportJWK(pair.privateKey));
  const publicJwk = publicPart(jwk);
  const kid = await calculateJwkThumbprint(publicJwk);
  // The signing key itself need not be extractable: the file is written from `jwk`.
  const privateKey = await importJWK(jwk, alg);
  return {
    signing: Object.freeze({ kid, alg, privateKey, secret: derivationSecret(jwk.d!, kid) }),
    jwk,
    publicJwk,
    createdAt: now,
  };
}

function toJwk(jwk: JWK): Jwk {
  const out: Jwk = { kty: jwk.kty as Jwk['kty'], crv: jwk.crv as Jwk['crv'], x: jwk.x! };
  if (jwk.y !== undefined) out.y = jwk.y;
  if (jwk.d !== undefined) out.d = jwk.d;
  return out;
}

function publicPart(jwk: Jwk): Jwk {
  return jwk.y === undefined
    ? { kty: jwk.kty, crv: jwk.crv, x: jwk.x }
    : { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y };
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

// ── The keys file ──────────────────────────────────────────────────────────────────────────────────────────

interface LoadedKeys {
  current: CurrentKey;
  next: PrivateKey | undefined;
  retired: RetiredKey[];
}

/** Reads the file, tightening its mode to 0600 first when group or others may read it. Undefined: no file yet. */
async function readKeysFile(file: string, warnings: string[]): Promise<string | undefined> {
  try {
    const info = await stat(file);
    if (process.platform !== 'win32' && (info.mode & 0o077) !== 0) {
      await chmod(file, 0o600);
      warnings.push(
        `signing keys file ${file} was accessible to group or others (mode ${(info.mode & 0o777).toString(8).padStart(4, '0')}); changed it to 0600`,
      );
    }
    return await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new ConfigError(
      `cannot read signing keys file ${file}: ${(error as NodeJS.ErrnoException).code ?? 'unknown error'}`,
      { cause: error },
    );
  }
}

/** Validates and imports the file's keys. Error messages name the file and the entry, never key material. */
async function parseKeysFile(file: string, text: string): Promise<LoadedKeys> {
  const corrupt = (what: string) =>
    new ConfigError(
      `signing keys file ${file} is corrupt: ${what}. Restore it from a backup, or delete it to start with new keys (tokens signed with the old keys will stop verifying).`,
    );
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    // JSON.parse messages quote the input, which is key material here.
    throw corrupt('not valid JSON');
  }
  const parsed = FileSchema.safeParse(json);
  if (!parsed.success) throw corrupt(formatIssues(parsed.error, 5).replaceAll('\n', '; '));

  let current: CurrentKey | undefined;
  let next: PrivateKey | undefined;
  const retired: RetiredKey[] = [];
  const kids = new Set<string>();
  for (const [i, entry] of parsed.data.keys.entries()) {
    const where = `keys[${i}]`;
    if (kids.has(entry.kid)) throw corrupt(`${where}: kid appears twice`);
    kids.add(entry.kid);
    const [kty, crv] = entry.alg === 'EdDSA' ? ['OKP', 'Ed25519'] : ['EC', 'P-256'];
    if (entry.jwk.kty !== kty || entry.jwk.crv !== crv || (kty === 'EC') !== (entry.jwk.y !== undefined))
      throw corrupt(`${where}: the key is not an ${entry.alg} key`);
    const publicJwk = publicPart(entry.jwk);
    if ((await calculateJwkThumbprint(publicJwk)) !== entry.kid)
      throw corrupt(`${where}: kid does not match the key's thumbprint`);
    if (entry.state === 'retired') {
      if (entry.jwk.d !== undefined) throw corrupt(`${where}: a retired key must not hold a private part`);
      retired.push({
        kid: entry.kid,
        alg: entry.alg,
        publicJwk,
        createdAt: Date.parse(entry.createdAt),
        retiredAt: Date.parse(entry.retiredAt),
        publishUntil: Date.parse(entry.publishUntil),
      });
      continue;
    }
    if (entry.jwk.d === undefined) throw corrupt(`${where}: the ${entry.state} key has no private part`);
    const key = await importPrivate(entry.jwk, publicJwk, entry.alg);
    if (key === undefined) throw corrupt(`${where}: the private part does not match the public part`);
    const base: PrivateKey = {
      signing: Object.freeze({
        kid: entry.kid,
        alg: entry.alg,
        privateKey: key,
        secret: derivationSecret(entry.jwk.d, entry.kid),
      }),
      jwk: entry.jwk,
      publicJwk,
      createdAt: Date.parse(entry.createdAt),
    };
    if (entry.state === 'current') {
      if (current !== undefined) throw corrupt(`${where}: more than one current key`);
      current = { ...base, activatedAt: Date.parse(entry.activatedAt), maxTokenTtlMs: entry.maxTokenTtlMs };
    } else {
      if (next !== undefined) throw corrupt(`${where}: more than one next key`);
      next = base;
    }
  }
  if (current === undefined) throw corrupt('no current key');
  retired.sort((a, b) => b.retiredAt - a.retiredAt);
  return { current, next, retired };
}

/** Imports a private JWK and proves it pairs with its public part by signing and verifying a probe. */
async function importPrivate(jwk: Jwk, publicJwk: Jwk, alg: SigningAlgorithm): Promise<CryptoKey | undefined> {
  try {
    const privateKey = await importJWK(jwk, alg);
    const probe = await new CompactSign(new TextEncoder().encode('gatehouse key check'))
      .setProtectedHeader({ alg })
      .sign(privateKey);
    await compactVerify(probe, await importJWK(publicJwk, alg));
    return privateKey;
  } catch {
    return undefined;
  }
}

/** Replaces the keys file (mode 0600, atomically and durably), creating its directory (0700) when missing. */
async function writeKeysFile(file: string, data: string): Promise<void> {
  try {
    await mkdir(dirname(file), { recursive: true, mode: 0o700 });
    await writeFileAtomic(file, data, { mode: 0o600 });
  } catch (error) {
    throw new ConfigError(
      `cannot write signing keys file ${file}: ${(error as NodeJS.ErrnoException).code ?? 'unknown error'}`,
      { cause: error },
    );
  }
}
