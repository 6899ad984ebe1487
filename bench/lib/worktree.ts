/**
 * The previous code, for a baseline in the same run: a detached git worktree of REV in a temporary directory,
 * sharing this checkout's node_modules, removed when done (it never touches this checkout's files or index).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from './processes.ts';

export interface Worktree {
  root: string;
  commit: string;
  remove(): void;
}

export function checkoutWorktree(rev: string): Worktree {
  const root = join(mkdtempSync(join(tmpdir(), 'gatehouse-baseline-')), 'tree');
  execFileSync('git', ['worktree', 'add', '--detach', root, rev], { cwd: ROOT, stdio: 'ignore' });
  symlinkSync(join(ROOT, 'node_modules'), join(root, 'node_modules'));
  const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' }).trim();
  return {
    root,
    commit,
    remove() {
      execFileSync('git', ['worktree', 'remove', '--force', root], { cwd: ROOT, stdio: 'ignore' });
      rmSync(join(root, '..'), { recursive: true, force: true });
    },
  };
}

/** The commit this checkout runs, with `+dirty` when src/ has uncommitted changes. */
export function currentCommit(): string {
  const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
  const dirty =
    execFileSync('git', ['status', '--porcelain', '--', 'src'], { cwd: ROOT, encoding: 'utf8' }).trim() !== '';
  return dirty ? `${commit}+dirty` : commit;
}
