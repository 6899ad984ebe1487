/**
 * The CLI loads a command's code only when that command runs: `gatehouse --version` loads next to nothing, and an
 * edge gateway (`gatehouse gateway run --config DIR`), from start to sync to shutdown, never loads control-plane
 * code. Real processes, with a module-load hook (test/module-trace.ts) recording what each one loaded.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { type ControlProcess, startControlPlane } from './control-helpers.ts';
import { createAndBootstrap } from './edge-helpers.ts';
import { onLines, REPO_ROOT, runCli } from './helpers.ts';

const HOOK = join(REPO_ROOT, 'test/module-trace.ts');

/** The repository's own modules (src/…) that a trace file lists, relative to the repository. */
async function ourModules(trace: string): Promise<string[]> {
  const urls = (await readFile(trace, 'utf8')).split('\n').filter((u) => u.startsWith('file:'));
  return urls.map((u) => relative(REPO_ROOT, fileURLToPath(u))).filter((p) => p.startsWith('src/'));
}

describe('the CLI loads only the code of the command that runs', () => {
  let work: string;
  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'gatehouse-lazy-'));
  });
  after(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('gatehouse --version loads the CLI entry point and nothing of the gateway, the control plane or the config schemas', async () => {
    const trace = join(work, 'version.txt');
    const r = await runCli(['--version'], { env: { NODE_OPTIONS: `--import=${HOOK}`, GATEHOUSE_MODULE_TRACE: trace } });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^\d+\.\d+\.\d+/);
    const loaded = await ourModules(trace);
    assert.ok(loaded.includes('src/cli/main.ts'), loaded.join(', '));
    assert.deepEqual(
      loaded.filter((p) => !['src/cli/main.ts', 'src/cli/command.ts', 'src/config/redact-url.ts'].includes(p)),
      [],
    );
  });

  it('gatehouse --help lists every command from the command table, without loading any command or the control plane', async () => {
    const trace = join(work, 'help.txt');
    const r = await runCli(['--help'], { env: { NODE_OPTIONS: `--import=${HOOK}`, GATEHOUSE_MODULE_TRACE: trace } });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^ {2}gateway run +run a gateway: /m);
    assert.match(r.stdout, /^ {2}control start +start the control plane/m);
    assert.match(r.stdout, /^ {2}client create +create an API client/m);
    // The table: the hand-written commands (registry.ts) and the admin API as the CLI's copy describes it
    // (admin/api.json, read by admin/commands.ts), with help and output helpers; no command's own module.
    const loaded = await ourModules(trace);
    assert.deepEqual(
      loaded.filter((p) => !p.startsWith('src/cli/') && p !== 'src/config/redact-url.ts'),
      [],
    );
    assert.deepEqual(
      loaded.filter((p) =>
        /^src\/cli\/(control-start|gateway-run|gateway-bootstrap|collection-apply|demo|admin\/run)\.ts$/.test(p),
      ),
      [],
    );
  });

  describe('an edge gateway', () => {
    let cp: ControlProcess;
    let dir: string;
    before(async () => {
      cp = await startControlPlane();
      dir = join(work, 'edge');
      await createAndBootstrap(cp.api(), 'lazy-1', dir);
    });
    after(async () => {
      await cp?.stop();
    });

    it('gatehouse gateway run, started, synced and stopped, never loads control-plane code', async () => {
      const trace = join(work, 'gateway-run.txt');
      const child = spawn(
        process.execPath,
        [
          join(REPO_ROOT, 'src/cli/main.ts'),
          'gateway',
          'run',
          '--config',
          dir,
          '--port',
          '0',
          '--ops-port',
          '0',
          '--host',
          '127.0.0.1',
        ],
        {
          cwd: REPO_ROOT,
          stdio: ['ignore', 'pipe', 'pipe'],
          env: { ...process.env, NODE_OPTIONS: `--import=${HOOK}`, GATEHOUSE_MODULE_TRACE: trace },
        },
      );
      const kill = setTimeout(() => child.kill('SIGKILL'), 60_000);
      const output: string[] = [];
      const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
      try {
        await new Promise<void>((resolve, reject) => {
          onLines(child, (line) => {
            output.push(line);
            // Synced: the sync client, the snapshot compiler and the cache writer have all run.
            if (line.includes('"config applied from the control plane"')) resolve();
          });
          void exited.then(() => reject(new Error(`the gateway exited early:\n${output.join('\n')}`)));
        });
        child.kill('SIGTERM');
        assert.equal(await exited, 0, output.join('\n'));
      } finally {
        clearTimeout(kill);
        child.kill('SIGKILL');
      }
      const loaded = await ourModules(trace);
      assert.ok(loaded.includes('src/gateway/sync/sync-client.ts'), 'the trace covers the whole run');
      assert.deepEqual(
        loaded.filter((p) => p.startsWith('src/control/')),
        [],
      );
      assert.deepEqual(loaded.filter((p) => p.startsWith('src/cli/')).sort(), [
        'src/cli/command.ts',
        'src/cli/gateway-run.ts',
        'src/cli/logger.ts',
        'src/cli/main.ts',
        // The hand-written commands' table (data; it loads none of them).
        'src/cli/registry.ts',
      ]);
      // Reading its certificates needs no X.509 library (~0.1 s to load): only making a CSR (renewal) loads it.
      assert.deepEqual(
        loaded.filter((p) => p === 'src/gateway/sync/x509.ts' || p === 'src/gateway/sync/bootstrap.ts'),
        [],
      );
      const all = (await readFile(trace, 'utf8')).split('\n');
      assert.deepEqual(
        all.filter((u) => u.includes('/@peculiar/') || u.includes('/reflect-metadata/') || u.includes('/tsyringe/')),
        [],
      );
    });
  });
});
