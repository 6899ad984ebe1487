/**
 * The one way Gatehouse replaces a file that matters — private keys, the CA key, signing keys, certificates, the
 * cached snapshot, the gateway's config directory — so that a crash or a power loss leaves either the old content
 * or the new one, never a torn or empty file, and a secret is never readable by others, not even for a moment:
 *
 * 1. create a temporary file beside the target with O_EXCL (never an existing file, never through a symlink)
 *    and the final mode from the start (the umask can only narrow it; it is then set to exactly `mode`);
 * 2. write the data, fsync the file, close it (close reports write errors some file systems defer);
 * 3. rename it over the target (atomic within one directory);
 * 4. fsync the directory, so that the rename itself is on disk and survives a power loss.
 *
 * On any failure before the rename the temporary file is removed and the target is untouched; the error names the
 * target and the step that failed. Concurrent writers to one path each use their own temporary file, so the last
 * rename wins with one whole content.
 *
 * Why not write-file-atomic (npm, v8) or atomically (v2), the usual packages: neither fsyncs the directory after
 * the rename (step 4, the point of this helper — without it a power loss can undo the rename); both open the
 * temporary file with 'w' rather than O_EXCL (a file or symlink already at that name is truncated or followed);
 * both ignore some chmod/chown failures (write-file-atomic EPERM/EINVAL when not root, atomically every one), where
 * a key file must fail loudly instead; and they bring graceful-fs/signal-exit or stubborn-fs/when-exit along.
 * What Gatehouse needs fits in this file, over node:fs/promises alone.
 *
 * The calls go through the `node:fs/promises` default export (a plain object) rather than named imports, so that
 * tests can observe them with `mock.method` (a power loss cannot be simulated in a test; the fsync calls can be
 * seen, and made to fail). Nothing of Gatehouse is imported here: this is the ground floor.
 */
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import fs, { type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';

export interface WriteFileAtomicOptions {
  /** Permission bits of the file, in force from the moment it exists. Default 0o600 (owner only). */
  mode?: number;
}

/** The step of an atomic write that failed. */
export type AtomicWriteStep = 'create' | 'write' | 'fsync' | 'close' | 'rename' | 'fsync-directory';

const STEPS: Record<AtomicWriteStep, string> = {
  create: 'creating a temporary file beside it',
  write: 'writing the temporary file',
  fsync: 'flushing the temporary file to disk (fsync)',
  close: 'closing the temporary file',
  rename: 'renaming the temporary file over it',
  'fsync-directory':
    'flushing its directory to disk (fsync); the new content is in place but may not survive a power loss',
};

/** A write that did not complete. `path` is the target; `code` the system error code (EACCES, ENOSPC, …) when there is one. */
export class AtomicWriteError extends Error {
  readonly path: string;
  readonly step: AtomicWriteStep;
  readonly code: string | undefined;

  constructor(path: string, step: AtomicWriteStep, cause: unknown) {
    const code = (cause as NodeJS.ErrnoException | undefined)?.code;
    super(
      `cannot write ${path}: ${STEPS[step]} failed (${code ?? (cause as Error | undefined)?.message ?? String(cause)})`,
      { cause },
    );
    this.name = 'AtomicWriteError';
    this.path = path;
    this.step = step;
    this.code = code;
  }
}

/** File systems that cannot fsync a directory say so with these; the rename is then as durable as they make it. */
const DIRECTORY_SYNC_UNSUPPORTED = new Set(['EINVAL', 'ENOTSUP', 'EOPNOTSUPP']);

/**
 * Replaces `path` with `data` atomically and durably (see the top of this file). The directory must exist.
 * Rejects with an {@link AtomicWriteError}; the target is then unchanged, except after a failed directory fsync.
 *
 * @example await writeFileAtomic(join(dir, 'tls', 'gateway.key'), keyPem, { mode: 0o600 });
 */
export async function writeFileAtomic(
  path: string,
  data: string | Uint8Array,
  options: WriteFileAtomicOptions = {},
): Promise<void> {
  const mode = options.mode ?? 0o600;
  const temp = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  let step: AtomicWriteStep = 'create';
  let handle: FileHandle | undefined;
  let created = false;
  try {
    handle = await fs.open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, mode);
    created = true;
    await handle.chmod(mode); // the umask may have narrowed it; now exactly `mode`, which it never exceeded
    step = 'write';
    await handle.writeFile(data);
    step = 'fsync';
    await handle.sync();
    step = 'close';
    const closing = handle;
    handle = undefined;
    await closing.close();
    step = 'rename';
    await fs.rename(temp, path);
  } catch (error) {
    await handle?.close().catch(() => {});
    // Only a file this call created: with O_EXCL, a name that was taken belongs to someone else.
    if (created) await fs.rm(temp, { force: true }).catch(() => {});
    throw new AtomicWriteError(path, step, error);
  }
  await syncDirectory(path);
}

/**
 * `mkdir -p` that survives a power loss: each directory it creates is an entry in its parent, so the parents of the
 * new directories are flushed too (without this, files written atomically into a new directory could vanish with
 * it). A directory that exists already is left as it is.
 */
export async function makeDirectoryDurable(dir: string, mode = 0o700): Promise<void> {
  const first = await fs.mkdir(dir, { recursive: true, mode });
  if (first === undefined) return;
  for (let d = dir; ; d = dirname(d)) {
    try {
      await syncDirectory(d); // flushes dirname(d), where d's entry is
    } catch (error) {
      // A parent we may write to but not read (mode 0733) cannot be opened to flush it: the new directory is then as
      // durable as the file system makes it, as mkdir alone left it.
      if (!(error instanceof AtomicWriteError && (error.code === 'EACCES' || error.code === 'EPERM'))) throw error;
    }
    if (d === first || dirname(d) === d) break;
  }
}

async function syncDirectory(path: string): Promise<void> {
  if (process.platform === 'win32') return; // a directory cannot be opened there; NTFS journals the rename
  let handle: FileHandle | undefined;
  try {
    handle = await fs.open(dirname(path), constants.O_RDONLY | (constants.O_DIRECTORY ?? 0));
    await handle.sync();
  } catch (error) {
    if (!DIRECTORY_SYNC_UNSUPPORTED.has((error as NodeJS.ErrnoException).code ?? ''))
      throw new AtomicWriteError(path, 'fsync-directory', error);
  } finally {
    await handle?.close().catch(() => {});
  }
}
