/**
 * Test support: records the files written through `writeFileAtomic` (src/shared/atomic-file.ts) while it runs,
 * by observing its calls on node:fs/promises with `mock.method` — so that a caller's test can say "this file was
 * written through the helper, with this mode, and it and its directory were fsynced". Code that writes a file
 * any other way leaves no record. (A power loss cannot be simulated; the fsync calls can be seen.)
 */
import { constants } from 'node:fs';
import fs, { type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { mock } from 'node:test';

export interface DurableWrite {
  /** The target. */
  path: string;
  /** The mode the temporary file was created with. */
  mode: number | undefined;
  /** Created with O_EXCL (never an existing file). */
  exclusive: boolean;
  /** The temporary file was fsynced before the rename. */
  fileSynced: boolean;
  /** The directory was fsynced after the rename. */
  directorySynced: boolean;
}

/** Starts recording; `stop()` restores node:fs/promises. */
export function recordDurableWrites(): { writes: DurableWrite[]; stop(): void } {
  const writes: DurableWrite[] = [];
  const temps = new Map<string, { mode: number | undefined; exclusive: boolean; synced: boolean }>();
  const open = fs.open;
  const rename = fs.rename;
  const mocks = [
    mock.method(fs, 'open', async (path: string, flags: number, mode?: number) => {
      const handle = await open(path, flags, mode);
      if (typeof flags === 'number' && flags & constants.O_CREAT) {
        const temp = { mode, exclusive: (flags & constants.O_EXCL) !== 0, synced: false };
        temps.set(path, temp);
        onSync(handle, () => (temp.synced = true));
      } else {
        onSync(handle, () => {
          for (const w of writes) if (dirname(w.path) === path) w.directorySynced = true;
        });
      }
      return handle;
    }),
    mock.method(fs, 'rename', async (from: string, to: string) => {
      await rename(from, to);
      const temp = temps.get(from);
      if (temp)
        writes.push({
          path: to,
          mode: temp.mode,
          exclusive: temp.exclusive,
          fileSynced: temp.synced,
          directorySynced: false,
        });
    }),
  ];
  return {
    writes,
    stop() {
      for (const m of mocks) m.mock.restore();
    },
  };
}

function onSync(handle: FileHandle, then: () => void): void {
  const sync = handle.sync.bind(handle);
  handle.sync = async () => {
    await sync();
    then();
  };
}
