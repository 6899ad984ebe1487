/**
 * The install commands a control plane prints work as printed where they are meant to run: the plain-CLI one and
 * the Helm one's bootstrap are run through a shell, word for word, from the root of this checkout (only the edge's
 * fixed ports become ephemeral ones); the Docker one is checked for what a container would dial and publish.
 * `gateway bootstrap` writes into a per-user config directory by default and refuses a git work tree without --force.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type AdminApi, type ControlProcess, startControlPlane } from './control-helpers.ts';
import { onLines, REPO_ROOT, runCli } from './helpers.ts';

const WS = '/workspaces/default';
/** The ports `npm start` and the image use by default: a printed edge command must not take them on the same host. */
const CONTROL_PLANE_PORTS = ['8080', '8081', '8443', '8444', '9090'];

/** Runs `command` with bash in the checkout's root, as a user pastes it; resolves with exit code and output. */
function sh(
  command: string,
  env: Record<string, string>,
  until?: RegExp,
): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn('bash', ['-c', command], {
      cwd: REPO_ROOT,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const lines: string[] = [];
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    onLines(child, (line) => {
      lines.push(line);
      if (until?.test(line)) child.kill('SIGTERM');
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output: lines.join('\n') });
    });
  });
}

describe('printed install commands and the bootstrap directory', () => {
  let cp: ControlProcess;
  let admin: AdminApi;
  let home: string;
  before(async () => {
    cp = await startControlPlane({ extraArgs: ['--bootstrap-port', '0', '--sync-port', '0'] });
    admin = cp.api();
    home = await mkdtemp(join(tmpdir(), 'gatehouse-home-'));
  });
  after(async () => {
    await cp?.stop();
    await rm(home, { recursive: true, force: true });
  });

  const create = async (name: string, environment: string, installMethod: string) => {
    const r = await admin.post(`${WS}/gateways`, { name, environment, installMethod });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return r.body.install as { command: string; localCommand: string; bootstrapUrl: string };
  };

  it('the plain CLI command bootstraps into the default directory and runs from a checkout, as printed', async () => {
    const install = await create('plain', 'DEV', 'docker');
    const [bootstrap, run] = install.localCommand.split(' && ');
    assert.match(bootstrap!, /^bin\/gatehouse gateway bootstrap /);
    assert.doesNotMatch(install.localCommand, /docker/);
    // The default directory as this user's (tests may run as root, whose default is /etc/gatehouse/edge-gateway:
    // config-dir.test.ts covers the choice); GATEHOUSE_CONFIG_DIR is what the container image sets.
    const env = { HOME: home, GATEHOUSE_CONFIG_DIR: join(home, 'config', 'gatehouse', 'edge-gateway') };
    const booted = await sh(bootstrap!, env);
    assert.equal(booted.code, 0, booted.output);
    const dir = join(home, 'config', 'gatehouse', 'edge-gateway');
    assert.equal((await stat(join(dir, 'tls', 'gateway.key'))).mode & 0o777, 0o600);
    assert.match(booted.output, /Next: \S*gatehouse gateway run$/m, 'the default directory needs no --config');
    // Beside the control plane it keeps off the cloud gateway's port; here the ports become ephemeral ones.
    assert.equal(run, 'bin/gatehouse gateway run --port 8090 --ops-port 9091');
    const ran = await sh(
      `${run!.replace('--port 8090 --ops-port 9091', '--port 0 --ops-port 0')}`,
      env,
      /"config applied from the control plane"/,
    );
    assert.match(ran.output, /"config applied from the control plane"/);
    assert.match(ran.output, /"api":"127\.0\.0\.1:\d+".*"msg":"gateway listening"/, 'loopback unless told otherwise');
  });

  it('the Docker command dials an address a container reaches, and publishes no port of the control plane', async () => {
    const install = await create('boxed', 'TEST', 'docker');
    const url = new URL(install.bootstrapUrl);
    assert.equal(url.hostname, '127.0.0.1', 'this control plane advertises loopback');
    for (const part of install.command.split(' && ')) {
      const words = part.split(' ');
      assert.equal(words[0], 'docker');
      // 127.0.0.1 inside a container is the container itself, unless it shares the host's network.
      assert.ok(words.includes('--network') && words[words.indexOf('--network') + 1] === 'host', part);
      assert.ok(!words.includes('-p'), `no port publishing on the host's network: ${part}`);
      for (const flag of ['--port', '--ops-port'])
        if (words.includes(flag)) assert.ok(!CONTROL_PLANE_PORTS.includes(words[words.indexOf(flag) + 1]!), part);
    }
    assert.match(install.command, / gateway run --config \/etc\/edge-gateway --host 127\.0\.0\.1 --port 8090 /);
  });

  it('the Helm command bootstraps outside the checkout, as printed', async () => {
    const install = await create('charted', 'PROD', 'helm');
    const [bootstrap, helm] = install.command.split(' && ');
    assert.equal(helm, `helm install gatehouse-charted deploy/helm/gatehouse -f "$HOME/gatehouse-charted/values.yaml"`);
    const booted = await sh(bootstrap!, { HOME: home });
    assert.equal(booted.code, 0, booted.output);
    assert.equal((await stat(join(home, 'gatehouse-charted', 'values.yaml'))).mode & 0o777, 0o600);
  });

  it('refuses to write into a git work tree without --force, before spending the token', async () => {
    const repo = await mkdtemp(join(tmpdir(), 'gatehouse-repo-'));
    await mkdir(join(repo, '.git'));
    try {
      const r = await admin.post(`${WS}/environments`, { name: 'QA' });
      assert.equal(r.status, 201);
      const install = await create('repo-gw', 'QA', 'docker');
      const args = install.localCommand.split(' && ')[0]!.split(' ').slice(1, -1);
      const refused = await runCli([...args, '-o', join(repo, 'gw'), 'standalone']);
      assert.equal(refused.code, 2, refused.stderr);
      assert.match(
        refused.stderr,
        new RegExp(
          `gw is inside the git work tree ${repo}: the gateway's private key does not belong in a repository.*--force`,
        ),
      );
      assert.equal(await stat(join(repo, 'gw')).catch(() => undefined), undefined, 'nothing written');
      const forced = await runCli([...args, '-o', join(repo, 'gw'), '--force', 'standalone']);
      assert.equal(forced.code, 0, forced.stderr);
      assert.equal((await stat(join(repo, 'gw', 'tls', 'gateway.key'))).mode & 0o777, 0o600);
    } finally {
      await rm(repo, { recursive: true, force: true });
    }
  });
});
