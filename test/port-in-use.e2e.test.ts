/**
 * A port in use stops `gatehouse demo` (`npm run demo`), `gatehouse control start` (`npm start`), `gatehouse demo
 * upstream` and `gatehouse gateway run` with one line that names the port and the flag that changes it, exit code
 * 2, and nothing left running: the process exits by itself (no listener the command opened first keeps it alive),
 * and the ports it opened before the failure are free again.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { REPO_ROOT, runCli, type CliResult } from './helpers.ts';

/** Holds a loopback port for the test: the port some other program uses. */
async function holdPort(): Promise<{ port: number; server: Server }> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as { port: number }).port, server };
}

/** The command exits by itself (runCli kills it after 90 s: a half-started process would show as SIGKILL). */
function assertOneLine(r: CliResult, expected: string): void {
  assert.equal(r.signal, null, `the command kept running:\n${r.stderr}`);
  assert.equal(r.code, 2, r.stderr);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line, no stack trace:\n${r.stderr}`);
  assert.equal(lines[0], `gatehouse: ${expected}`);
}

describe('a port in use', () => {
  let held: { port: number; server: Server };
  let dataDir: string;
  before(async () => {
    held = await holdPort();
    dataDir = await mkdtemp(join(tmpdir(), 'gatehouse-port-'));
  });
  after(async () => {
    held.server.close();
    await rm(dataDir, { recursive: true, force: true });
  });
  const demo = (args: string[]) =>
    runCli(['demo', '--config', join(REPO_ROOT, 'examples/gateway.yaml'), ...args], { timeoutMs: 90_000 });

  it('stops the demo when the gateway port is taken, after freeing the upstream port it had opened', async () => {
    const upstream = await holdPort();
    upstream.server.close(); // a port that was free a moment ago: the demo's upstream takes it first
    const r = await demo(['--port', String(held.port), '--ops-port', '0', '--upstream-port', String(upstream.port)]);
    assertOneLine(
      r,
      `127.0.0.1:${held.port} (API traffic) is already in use: stop what holds it, or choose another port with --port N (npm run demo -- --port N)`,
    );
    // …and the upstream's port is free again.
    const again = createServer();
    await new Promise<void>((resolve, reject) => {
      again.once('error', reject);
      again.listen(upstream.port, '127.0.0.1', resolve);
    });
    again.close();
  });

  it('stops the demo when the upstream port is taken', async () => {
    const r = await demo(['--port', '0', '--ops-port', '0', '--upstream-port', String(held.port)]);
    assertOneLine(
      r,
      `127.0.0.1:${held.port} (the demo upstream) is already in use: stop what holds it, or choose another port with --upstream-port N (npm run demo -- --upstream-port N)`,
    );
  });

  it('stops the demo when the ops port is taken', async () => {
    const r = await demo(['--port', '0', '--ops-port', String(held.port), '--upstream-port', '0']);
    assertOneLine(
      r,
      `127.0.0.1:${held.port} (ops traffic) is already in use: stop what holds it, or choose another port with --ops-port N (npm run demo -- --ops-port N)`,
    );
  });

  it('stops `demo upstream` naming its --port', async () => {
    const r = await runCli(['demo', 'upstream', '--port', String(held.port)], { timeoutMs: 90_000 });
    assertOneLine(
      r,
      `127.0.0.1:${held.port} (the demo upstream) is already in use: stop what holds it, or choose another port with --port N`,
    );
  });

  const control = (flag: string) => {
    const ports = ['--admin-port', '--gateway-port', '--ops-port', '--bootstrap-port', '--sync-port'].flatMap((f) => [
      f,
      f === flag ? String(held.port) : '0',
    ]);
    return runCli(['control', 'start', '--data-dir', dataDir, '--host', '127.0.0.1', ...ports], {
      timeoutMs: 90_000,
    });
  };

  for (const [flag, what] of [
    ['--admin-port', 'admin API'],
    ['--gateway-port', 'API traffic'],
    ['--ops-port', 'ops traffic'],
    ['--bootstrap-port', 'bootstrap endpoint for edge gateways'],
    ['--sync-port', 'config sync for edge gateways'],
  ] as const) {
    it(`stops the control plane (npm start) when ${flag} is taken`, async () => {
      const r = await control(flag);
      // The first start prints nothing else before its listeners are up (the banner follows them).
      assertOneLine(
        r,
        `127.0.0.1:${held.port} (${what}) is already in use: stop what holds it, or choose another port with ${flag} N (npm start -- ${flag} N)`,
      );
    });
  }
});
