/**
 * Edge-gateway helpers for end-to-end tests and the propagation bench: a real `gatehouse gateway run --config DIR`
 * child process on ephemeral loopback ports, and a gateway created through the admin API and bootstrapped into
 * DIR with the real `gatehouse gateway bootstrap`.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import type { AdminApi } from './control-helpers.ts';
import { onLines, REPO_ROOT, runCli } from './helpers.ts';

const MAIN = join(REPO_ROOT, 'src/cli/main.ts');
const WS = '/workspaces/default';

export interface EdgeProcess {
  url: string;
  opsUrl: string;
  child: ChildProcess;
  output: string[];
  /** The first output line from `from` on that matches. */
  waitFor(pattern: RegExp, timeoutMs?: number, from?: number): Promise<string>;
  stop(): Promise<void>;
}

/** `gatehouse gateway run --config DIR` on ephemeral loopback ports. */
export async function startEdge(dir: string, extraArgs: readonly string[] = []): Promise<EdgeProcess> {
  const child = spawn(
    process.execPath,
    [MAIN, 'gateway', 'run', '--config', dir, '--port', '0', '--ops-port', '0', '--host', '127.0.0.1', ...extraArgs],
    { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const kill = setTimeout(() => child.kill('SIGKILL'), 5 * 60_000);
  kill.unref();
  const output: string[] = [];
  onLines(child, (line) => output.push(line));
  const waitFor = async (pattern: RegExp, timeoutMs = 30_000, from = 0): Promise<string> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const line = output.slice(from).find((l) => pattern.test(l));
      if (line) return line;
      if (child.exitCode !== null)
        throw new Error(`the edge gateway exited with ${child.exitCode} before ${pattern}:\n${output.join('\n')}`);
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${pattern}:\n${output.join('\n')}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  const listening = JSON.parse(await waitFor(/"gateway listening"/)) as { api: string; ops: string };
  return {
    url: `http://${listening.api}`,
    opsUrl: `http://${listening.ops}`,
    child,
    output,
    waitFor,
    async stop() {
      clearTimeout(kill);
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
    },
  };
}

/** Creates gateway `name` (in PROD unless told) and bootstraps `dir` for it with the real command. */
export async function createAndBootstrap(
  admin: AdminApi,
  name: string,
  dir: string,
  environment = 'PROD',
): Promise<string> {
  const created = await admin.post(`${WS}/gateways`, { name, environment, installMethod: 'docker' });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const { install, gateway } = created.body as {
    install: { token: string; caPin: string; bootstrapUrl: string };
    gateway: { id: string };
  };
  const r = await runCli([
    'gateway',
    'bootstrap',
    '-t',
    install.token,
    '--ca-pin',
    install.caPin,
    '--url',
    install.bootstrapUrl,
    '-o',
    dir,
    'standalone',
  ]);
  assert.equal(r.code, 0, r.stderr);
  return gateway.id;
}

/**
 * Publishes the collection `orders` (`GET /orders/items`, permission `orders:read`) in PROD, deployed to edge
 * gateway `gateway`, plus the role `order-reader` and a client holding it; returns the client's token and id.
 */
export async function deployOrders(
  admin: AdminApi,
  upstreamUrl: string,
  gateway: string,
): Promise<{ token: string; clientId: string }> {
  const prod = `${WS}/environments/PROD`;
  const collection = await admin.post(`${prod}/collections`, {
    name: 'orders',
    basePath: '/orders',
    upstream: upstreamUrl,
    project: 'default',
    target: { type: 'edge', gateway },
    endpoints: [{ method: 'GET', path: '/items', permission: 'orders:read' }],
  });
  assert.equal(collection.status, 201, JSON.stringify(collection.body));
  assert.equal((await admin.post(`${prod}/collections/orders/publish`)).status, 201);
  assert.equal((await admin.post(`${WS}/roles`, { name: 'order-reader', permissions: ['orders:read'] })).status, 201);
  const client = await admin.post(`${WS}/clients`, {
    name: 'shop',
    role: 'order-reader',
    environments: ['PROD'],
    projects: ['default'],
  });
  assert.equal(client.status, 201, JSON.stringify(client.body));
  return { token: client.body.token as string, clientId: client.body.client.id as string };
}
