/**
 * The atomic-write helper on the real file system. A power loss cannot be simulated in a test: what can be checked
 * is that the file and its directory are fsynced, in the right order (the calls are observed with `mock.method` on
 * node:fs/promises and on FileHandle), and that a failure at any step leaves the old content and no temporary file
 * (failures are injected the same way: as root, which CI is, permissions do not make a write fail).
 */
import assert from 'node:assert/strict';
import { constants } from 'node:fs';
import fs from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { after, afterEach, before, describe, it, mock } from 'node:test';
import { AtomicWriteError, makeDirectoryDurable, writeFileAtomic } from './atomic-file.ts';

type HandleCall = 'writeFile' | 'sync' | 'close';

function systemError(code: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: injected`), { code });
}

/**
 * Records the file-system calls the helper makes as `<call> <path>` lines (paths relative to `dir`, the
 * temporary file as `TEMP`), and throws `fail.error` from the call named `fail.call` on `fail.path`. `modes`: the
 * mode of each file when its content started to be written.
 */
function observe(
  dir: string,
  fail?: { call: 'open' | HandleCall | 'rename'; path: string; error: Error },
): { events: string[]; modes: Map<string, number> } {
  const events: string[] = [];
  const modes = new Map<string, number>();
  const name = (path: string) =>
    path === dir ? '.' : /\.\d+\.[0-9a-f]{12}\.tmp$/.test(path) ? 'TEMP' : path.slice(dir.length + 1);
  const failing = (call: string, path: string) => fail !== undefined && fail.call === call && fail.path === name(path);

  const open = fs.open;
  mock.method(fs, 'open', async (path: string, flags: number, mode?: number) => {
    events.push(
      `open ${name(path)}${flags & constants.O_EXCL ? ' O_EXCL' : ''}${mode === undefined ? '' : ` ${mode.toString(8)}`}`,
    );
    if (failing('open', path)) throw fail!.error;
    const handle = await open(path, flags, mode);
    for (const call of ['writeFile', 'sync', 'close'] as const) {
      const original = (handle[call] as (...args: unknown[]) => Promise<void>).bind(handle);
      mock.method(handle, call, async (...args: unknown[]) => {
        events.push(`${call} ${name(path)}`);
        if (call === 'writeFile') modes.set(name(path), (await fs.stat(path)).mode & 0o777);
        if (failing(call, path)) {
          if (call === 'writeFile') await original(String(args[0]).slice(0, 3)); // a torn write
          if (call === 'close') await original();
          throw fail!.error;
        }
        return original(...args);
      });
    }
    return handle;
  });
  const rename = fs.rename;
  mock.method(fs, 'rename', async (from: string, to: string) => {
    events.push(`rename ${name(from)} ${name(to)}`);
    if (failing('rename', from)) throw fail!.error;
    return rename(from, to);
  });
  return { events, modes };
}

describe('writeFileAtomic', () => {
  let root: string;
  let n = 0;
  /** A fresh directory holding `target` with `old` content (mode 0600) when given. */
  const setup = async (old?: string) => {
    const dir = await fs.mkdtemp(join(root, `case-${++n}-`));
    const target = join(dir, 'secret.key');
    if (old !== undefined) await fs.writeFile(target, old, { mode: 0o600 });
    return { dir, target };
  };

  before(async () => {
    root = await fs.mkdtemp(join(tmpdir(), 'gatehouse-atomic-'));
  });
  afterEach(() => mock.restoreAll());
  after(() => fs.rm(root, { recursive: true, force: true }));

  it('replaces the file with the new content, mode 0600 by default, and leaves no temporary file', async () => {
    const { dir, target } = await setup('old key');
    await fs.chmod(target, 0o644);
    await writeFileAtomic(target, 'new key');
    assert.equal(await fs.readFile(target, 'utf8'), 'new key');
    assert.equal((await fs.stat(target)).mode & 0o777, 0o600);
    assert.deepEqual(await fs.readdir(dir), ['secret.key']);

    await writeFileAtomic(join(dir, 'fresh.bin'), new Uint8Array([1, 2, 3]));
    assert.deepEqual([...(await fs.readFile(join(dir, 'fresh.bin')))], [1, 2, 3]);
    assert.deepEqual((await fs.readdir(dir)).sort(), ['fresh.bin', 'secret.key']);
  });

  it('creates the temporary file exclusively with the final mode, so a secret is never readable by others', async () => {
    const { dir, target } = await setup();
    const seen = observe(dir);
    await writeFileAtomic(target, 'key', { mode: 0o600 });
    assert.equal(seen.events[0], 'open TEMP O_EXCL 600');
    assert.equal(seen.modes.get('TEMP'), 0o600, 'the temporary file was 0600 before any content was written');
  });

  it('gives a file exactly the mode asked for, whatever the umask (a certificate stays 0644)', async () => {
    const { dir } = await setup();
    const umask = process.umask(0o077);
    try {
      await writeFileAtomic(join(dir, 'gateway.crt'), 'cert', { mode: 0o644 });
    } finally {
      process.umask(umask);
    }
    assert.equal((await fs.stat(join(dir, 'gateway.crt'))).mode & 0o777, 0o644);
  });

  it('fsyncs the file before the rename and the directory after it', async () => {
    const { dir, target } = await setup('old');
    const seen = observe(dir);
    await writeFileAtomic(target, 'new');
    assert.deepEqual(seen.events, [
      'open TEMP O_EXCL 600',
      'writeFile TEMP',
      'sync TEMP',
      'close TEMP',
      'rename TEMP secret.key',
      `open .`,
      'sync .',
      'close .',
    ]);
  });

  for (const [call, code, step] of [
    ['open', 'EMFILE', 'create'],
    ['writeFile', 'ENOSPC', 'write'],
    ['sync', 'EIO', 'fsync'],
    ['close', 'EIO', 'close'],
    ['rename', 'EXDEV', 'rename'],
  ] as const) {
    it(`keeps the old content and removes the temporary file when ${call} fails (${code}), naming the file and the step`, async () => {
      const { dir, target } = await setup('old key');
      observe(dir, { call, path: 'TEMP', error: systemError(code) });
      const error = await writeFileAtomic(target, 'new key').then(
        () => assert.fail('the write succeeded'),
        (e: unknown) => e,
      );
      mock.restoreAll();
      assert.ok(error instanceof AtomicWriteError);
      assert.equal(error.step, step);
      assert.equal(error.code, code);
      assert.equal(error.path, target);
      assert.ok(error.message.startsWith(`cannot write ${target}: `), error.message);
      assert.match(error.message, new RegExp(`\\(${code}\\)$`));
      assert.equal(await fs.readFile(target, 'utf8'), 'old key');
      assert.equal((await fs.stat(target)).mode & 0o777, 0o600);
      assert.deepEqual(await fs.readdir(dir), ['secret.key']);
    });
  }

  it('fails in a directory that does not exist, creating nothing', async () => {
    const { dir } = await setup();
    const target = join(dir, 'missing', 'x.key');
    await assert.rejects(
      writeFileAtomic(target, 'x'),
      (e: AtomicWriteError) => e.step === 'create' && e.code === 'ENOENT' && e.message.includes(target),
    );
    assert.deepEqual(await fs.readdir(dir), []);
  });

  it('never removes a temporary name it did not create', async () => {
    const { dir, target } = await setup('old');
    // The random temporary name is taken (by another writer, or planted): the exclusive create fails, nothing is removed.
    const taken: string[] = [];
    const open = fs.open;
    mock.method(fs, 'open', async (path: string, flags: number, mode?: number) => {
      if (flags & constants.O_EXCL) {
        await fs.writeFile(path, 'someone else');
        taken.push(path);
      }
      return open(path, flags, mode);
    });
    await assert.rejects(
      writeFileAtomic(target, 'new'),
      (e: AtomicWriteError) => e.step === 'create' && e.code === 'EEXIST',
    );
    mock.restoreAll();
    assert.equal(await fs.readFile(taken[0]!, 'utf8'), 'someone else');
    assert.equal(await fs.readFile(target, 'utf8'), 'old');
    assert.deepEqual((await fs.readdir(dir)).sort(), [basename(taken[0]!), 'secret.key'].sort());
  });

  it('reports a directory that cannot be fsynced, with the new content already in place', async () => {
    const { dir, target } = await setup('old');
    observe(dir, { call: 'sync', path: '.', error: systemError('EIO') });
    await assert.rejects(
      writeFileAtomic(target, 'new'),
      (e: AtomicWriteError) =>
        e.step === 'fsync-directory' && e.code === 'EIO' && /may not survive a power loss/.test(e.message),
    );
    mock.restoreAll();
    assert.equal(await fs.readFile(target, 'utf8'), 'new');
    assert.deepEqual(await fs.readdir(dir), ['secret.key']);
  });

  it('accepts a file system that cannot fsync directories (EINVAL)', async () => {
    const { dir, target } = await setup('old');
    observe(dir, { call: 'sync', path: '.', error: systemError('EINVAL') });
    await writeFileAtomic(target, 'new');
    mock.restoreAll();
    assert.equal(await fs.readFile(target, 'utf8'), 'new');
  });

  it('ends concurrent writers to one path with one of their contents, whole', async () => {
    const { dir, target } = await setup('old');
    const contents = Array.from({ length: 16 }, (_, i) => String.fromCharCode(97 + i).repeat(256 * 1024));
    await Promise.all(contents.map((c) => writeFileAtomic(target, c)));
    const final = await fs.readFile(target, 'utf8');
    assert.ok(contents.includes(final), `the file holds ${final.length} characters that are no writer's whole content`);
    assert.deepEqual(await fs.readdir(dir), [basename(target)]);
    assert.equal(dirname(target), dir);
  });
});

describe('makeDirectoryDurable', () => {
  let root: string;
  before(async () => {
    root = await fs.mkdtemp(join(tmpdir(), 'gatehouse-mkdir-'));
  });
  after(async () => {
    await fs.rm(root, { recursive: true, force: true });
  });
  afterEach(() => mock.restoreAll());

  it('flushes the parent of every directory it creates, deepest first, and nothing when all exist', async () => {
    const seen = observe(root);
    await makeDirectoryDurable(join(root, 'a', 'b', 'c'));
    assert.deepEqual(seen.events, [
      'open a/b',
      'sync a/b',
      'close a/b',
      'open a',
      'sync a',
      'close a',
      'open .',
      'sync .',
      'close .',
    ]);
    assert.equal((await fs.stat(join(root, 'a', 'b', 'c'))).mode & 0o777, 0o700);
    seen.events.length = 0;
    await makeDirectoryDurable(join(root, 'a', 'b'));
    assert.deepEqual(seen.events, [], 'an existing directory: no flush');
    await makeDirectoryDurable(join(root, 'a', 'd'));
    assert.deepEqual(seen.events, ['open a', 'sync a', 'close a']);
  });
});
