/**
 * The fallback cache of an edge gateway's relationship data: `DIR/cache/entities/<set>.log`, one file per entity
 * set, so that a gateway that restarts while the control plane is out of reach decides with the entities it had,
 * and one that reconnects asks only for what changed since (its Hello names the versions held).
 *
 * A file is a journal of the entity stream's messages as received, one line each: the full set's parts (written to
 * a temporary file, renamed into place with the last part), then every change appended — O(changed entities) per
 * change, never a rewrite of a million entities. When the appended lines outgrow the full set they follow, the
 * file is rewritten from memory (compaction: amortised O(1) per change). Every line carries an HMAC-SHA256 keyed
 * like the snapshot cache (cache.ts) from the gateway's private key; reading stops at the first line that fails
 * it or does not follow the one before (a torn last line after a crash), keeping the versions before it.
 */
import { createHmac, createPrivateKey, hkdfSync, timingSafeEqual } from 'node:crypto';
import { appendFile, mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { EntityChangesMessage } from '../../config/sync-proto.ts';
import { entityToJson } from '../policies/resource-policy/entities.ts';
import type { EntitySet, EntitySets } from '../policies/resource-policy/entity-sets.ts';

const FORMAT = 'gatehouse-entity-cache/1';
/** Entities per line when a set is rewritten from memory. */
const PART = 10_000;
const SET_NAME = /^[A-Za-z0-9_-]{1,128}$/;

export class EntityCacheFile {
  readonly dir: string;
  readonly #logger: Logger;
  #key: Buffer;
  /** Bytes of each set's file: the full set, and what was appended after it. */
  readonly #sizes = new Map<string, { base: number; appended: number }>();
  /** Writes, one at a time, in the order messages were applied. */
  #queue: Promise<unknown> = Promise.resolve();

  constructor(configDir: string, keyPem: string, logger: Logger) {
    this.dir = join(configDir, 'cache', 'entities');
    this.#key = deriveKey(keyPem);
    this.#logger = logger;
  }

  /** Records one applied message (after the writes queued before it); a failure is logged. */
  record(message: EntityChangesMessage, sets: EntitySets): Promise<unknown> {
    return this.#enqueue(() => this.#record(message, sets));
  }

  /** Reads every set's file into `sets`; returns how many sets were restored. Never throws. */
  async load(sets: EntitySets): Promise<number> {
    let names: string[];
    try {
      names = (await readdir(this.dir)).filter((n) => n.endsWith('.log'));
    } catch {
      return 0;
    }
    let restored = 0;
    for (const name of names) {
      const set = name.slice(0, -'.log'.length);
      if (!SET_NAME.test(set)) continue;
      try {
        const text = await readFile(join(this.dir, name), 'utf8');
        const { applied, stopped } = this.#replay(set, text, sets);
        if (applied === 0) {
          sets.get(set).clear();
          this.#logger.warn({ set, reason: stopped }, 'refusing a cached entity set; the control plane sends it whole');
          continue;
        }
        if (stopped !== undefined)
          this.#logger.warn(
            { set, version: sets.get(set).version, reason: stopped },
            'a cached entity set ends early; the control plane sends what follows',
          );
        this.#sizes.set(set, { base: Buffer.byteLength(text), appended: 0 });
        restored++;
      } catch (error) {
        this.#logger.warn({ set, err: error }, 'cannot read a cached entity set');
      }
    }
    return restored;
  }

  /** Uses the key derived from this private key from now on, rewriting every set held under it. */
  rekey(keyPem: string, sets: EntitySets): Promise<unknown> {
    this.#key = deriveKey(keyPem);
    return this.#enqueue(async () => {
      for (const set of sets.values()) if (set.version > 0) await this.#compact(set);
    });
  }

  /** Drops the files of the sets not in `keep` (no snapshot in force names them any more). */
  retain(keep: ReadonlySet<string>): Promise<unknown> {
    return this.#enqueue(async () => {
      let names: string[];
      try {
        names = await readdir(this.dir);
      } catch {
        return;
      }
      for (const name of names) {
        const set = name.replace(/\.log(\.part)?$/, '');
        if (set !== name && !keep.has(set)) {
          await rm(join(this.dir, name), { force: true });
          this.#sizes.delete(set);
        }
      }
    });
  }

  /** Drops every set's file (the gateway was deleted). */
  remove(): Promise<unknown> {
    return this.#enqueue(() => rm(this.dir, { recursive: true, force: true }));
  }

  /** Resolves once the queued writes are done. */
  settled(): Promise<unknown> {
    return this.#queue;
  }

  #enqueue(step: () => Promise<unknown>): Promise<unknown> {
    const run = this.#queue
      .then(step)
      .catch((err: unknown) =>
        this.#logger.error(
          { err, dir: this.dir },
          'cannot write the entity cache; the gateway keeps serving, but a restart would ask for the full sets',
        ),
      );
    this.#queue = run;
    return run;
  }

  async #record(message: EntityChangesMessage, sets: EntitySets): Promise<void> {
    const file = join(this.dir, `${message.set}.log`);
    if (!SET_NAME.test(message.set)) return;
    const line = this.#line(message);
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    if (message.reset) {
      await writeFile(`${file}.part`, line, { mode: 0o600 });
    } else if (message.fromVersion === 0) {
      await appendFile(`${file}.part`, line); // the next part of a full set
    } else {
      await appendFile(file, line);
      const size = this.#sizes.get(message.set) ?? { base: 0, appended: 0 };
      size.appended += Buffer.byteLength(line);
      this.#sizes.set(message.set, size);
      if (size.appended > Math.max(size.base, 1 << 20)) await this.#compact(sets.get(message.set));
      return;
    }
    if (message.more) return;
    await rename(`${file}.part`, file);
    this.#sizes.set(message.set, { base: Buffer.byteLength(line), appended: 0 });
  }

  /** Rewrites a set's file from what is held: its entities in parts, ending at the version held. */
  async #compact(set: EntitySet): Promise<void> {
    const file = join(this.dir, `${set.id}.log`);
    const lines: string[] = [];
    let part: unknown[] = [];
    const flush = (last: boolean) => {
      const body = Buffer.from(JSON.stringify({ upsert: part, remove: [] }));
      lines.push(
        this.#line({
          set: set.id,
          fromVersion: 0,
          toVersion: last ? set.version : 0,
          reset: lines.length === 0,
          more: !last,
          body,
        }),
      );
      part = [];
    };
    for (const entity of set.entities()) {
      part.push(entityToJson(entity));
      if (part.length === PART) flush(false);
    }
    flush(true);
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    await writeFile(`${file}.part`, lines.join(''), { mode: 0o600 });
    await rename(`${file}.part`, file);
    this.#sizes.set(set.id, { base: lines.reduce((n, l) => n + Buffer.byteLength(l), 0), appended: 0 });
  }

  #mac(m: Omit<EntityChangesMessage, 'body'>, body: string): Buffer {
    return createHmac('sha256', this.#key)
      .update(`${FORMAT}\n${m.set}\n${m.fromVersion}\n${m.toVersion}\n${m.reset ? 1 : 0}\n${m.more ? 1 : 0}\n${body}`)
      .digest();
  }

  /** `<mac> <from> <to> <reset> <more> <body>\n`; the body is JSON, which holds no raw line break. */
  #line(m: EntityChangesMessage): string {
    const body = m.body.toString('utf8');
    if (body.includes('\n')) throw new Error('an entity stream body holds a line break');
    const mac = this.#mac(m, body).toString('hex');
    return `${mac} ${m.fromVersion} ${m.toVersion} ${m.reset ? 1 : 0} ${m.more ? 1 : 0} ${body}\n`;
  }

  /** Applies the file's lines in order; stops at the first that fails its MAC or does not apply. */
  #replay(set: string, text: string, sets: EntitySets): { applied: number; stopped: string | undefined } {
    let applied = 0;
    let complete = 0;
    let start = 0;
    while (start < text.length) {
      const end = text.indexOf('\n', start);
      if (end === -1) return { applied: complete, stopped: 'a torn last line' };
      const line = text.slice(start, end);
      start = end + 1;
      const fields = line.split(' ', 5);
      if (fields.length < 5) return { applied: complete, stopped: 'a malformed line' };
      const [macHex, from, to, reset, more] = fields as [string, string, string, string, string];
      const body = line.slice(fields.join(' ').length + 1);
      const message: EntityChangesMessage = {
        set,
        fromVersion: Number(from),
        toVersion: Number(to),
        reset: reset === '1',
        more: more === '1',
        body: Buffer.from(body),
      };
      if (applied === 0 && !message.reset) return { applied: 0, stopped: 'it does not start with a full set' };
      const given = Buffer.from(macHex, 'hex');
      const expected = this.#mac(message, body);
      if (given.length !== expected.length || !timingSafeEqual(given, expected))
        return {
          applied: complete,
          stopped: 'a line failed its integrity check (modified, or written with another gateway key)',
        };
      const result = sets.apply(message);
      if (!result.ok) return { applied: complete, stopped: result.error };
      applied++;
      if (!message.more) complete = applied;
    }
    return { applied: complete, stopped: undefined };
  }
}

/** HKDF-SHA256 of the private key (PKCS#8 DER), for this cache only. */
function deriveKey(keyPem: string): Buffer {
  const der = createPrivateKey(keyPem).export({ type: 'pkcs8', format: 'der' });
  return Buffer.from(hkdfSync('sha256', der, 'gatehouse', 'gatehouse entity cache v1', 32));
}
