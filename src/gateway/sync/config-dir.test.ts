import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { defaultConfigDir, gitWorkTree } from './config-dir.ts';

describe("an edge gateway's default config directory", () => {
  it('is per user under XDG_CONFIG_HOME, ~/.config without it, /etc/gatehouse as root, GATEHOUSE_CONFIG_DIR first', () => {
    assert.equal(defaultConfigDir({ XDG_CONFIG_HOME: '/x/cfg' }, 1000, '/home/u'), '/x/cfg/gatehouse/edge-gateway');
    assert.equal(defaultConfigDir({}, 1000, '/home/u'), '/home/u/.config/gatehouse/edge-gateway');
    assert.equal(
      defaultConfigDir({ XDG_CONFIG_HOME: 'rel' }, 1000, '/home/u'),
      '/home/u/.config/gatehouse/edge-gateway',
    );
    assert.equal(defaultConfigDir({ XDG_CONFIG_HOME: '/x/cfg' }, 0, '/root'), '/etc/gatehouse/edge-gateway');
    assert.equal(defaultConfigDir({ GATEHOUSE_CONFIG_DIR: '/etc/edge-gateway' }, 0, '/root'), '/etc/edge-gateway');
  });

  it('finds the git work tree above a directory, made or not yet made (.git as a directory or a file)', async () => {
    const root = await mkdtemp(join(tmpdir(), 'gatehouse-git-'));
    try {
      assert.equal(await gitWorkTree(join(root, 'a', 'b')), undefined);
      await mkdir(join(root, 'repo', '.git'), { recursive: true });
      assert.equal(await gitWorkTree(join(root, 'repo', 'not', 'made')), join(root, 'repo'));
      await mkdir(join(root, 'linked'));
      await writeFile(join(root, 'linked', '.git'), 'gitdir: /elsewhere\n');
      assert.equal(await gitWorkTree(join(root, 'linked', 'gw')), join(root, 'linked'));
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
