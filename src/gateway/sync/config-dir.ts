/**
 * Where an edge gateway's config directory (its identity, certificate and private key) lives when no directory is
 * named: never the current directory, which is often a repository.
 *
 * - `$GATEHOUSE_CONFIG_DIR` when set: the container image sets `/etc/edge-gateway`;
 * - as root, `/etc/gatehouse/edge-gateway` (the system's configuration);
 * - otherwise `$XDG_CONFIG_HOME/gatehouse/edge-gateway` (`~/.config/gatehouse/edge-gateway` by default), per user.
 *
 * A directory inside a git work tree is refused unless forced: a private key committed by accident is a leaked key.
 */
import { stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';

/** The config directory inside the container image (deploy/Dockerfile sets GATEHOUSE_CONFIG_DIR to it). */
export const CONTAINER_CONFIG_DIR = '/etc/edge-gateway';

/** The default config directory for this user and environment (see the module comment). */
export function defaultConfigDir(
  env: NodeJS.ProcessEnv = process.env,
  uid: number | undefined = process.getuid?.(),
  home: string = homedir(),
): string {
  if (env.GATEHOUSE_CONFIG_DIR) return resolve(env.GATEHOUSE_CONFIG_DIR);
  if (uid === 0) return '/etc/gatehouse/edge-gateway';
  // XDG: a relative XDG_CONFIG_HOME is invalid and ignored.
  const xdg = env.XDG_CONFIG_HOME && isAbsolute(env.XDG_CONFIG_HOME) ? env.XDG_CONFIG_HOME : join(home, '.config');
  return join(xdg, 'gatehouse', 'edge-gateway');
}

/** The root of the git work tree that holds `dir` (or would hold it, for a directory not made yet), if any. */
export async function gitWorkTree(dir: string): Promise<string | undefined> {
  let current = resolve(dir);
  for (;;) {
    // `.git` is a directory in a clone and a file in a linked work tree or a submodule.
    if (await stat(join(current, '.git')).catch(() => undefined)) return current;
    const parent = dirname(current);
    if (parent === current) return undefined;
    current = parent;
  }
}
