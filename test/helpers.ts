/**
 * End-to-end helpers: a real upstream on an ephemeral loopback port, and a real `gatehouse gateway run` child
 * process on ephemeral ports. Everything stops by itself (test `after` hooks, and a hard timeout per process).
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import {
  createServer,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { generateKey } from '../src/shared/api-key.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const MAIN = join(ROOT, 'src/cli/main.ts');

export interface SeenRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
}

export interface Upstream {
  url: string;
  port: number;
  server: Server;
  requests: SeenRequest[];
  close(): Promise<void>;
}

/** An upstream that records each request and answers JSON `{method, url, headers}` unless `handler` answers. */
export async function startUpstream(
  handler?: (req: IncomingMessage, res: ServerResponse) => boolean | void,
): Promise<Upstream> {
  const requests: SeenRequest[] = [];
  const server = createServer((req, res) => {
    requests.push({ method: req.method!, url: req.url!, headers: req.headers });
    if (handler?.(req, res)) return;
    req.resume();
    const body = JSON.stringify({ method: req.method, url: req.url, headers: req.headers });
    res.writeHead(200, { 'content-type': 'application/json', 'x-upstream': 'yes', connection: 'keep-alive' });
    res.end(body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    server,
    requests,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

export interface GatewayProcess {
  url: string;
  opsUrl: string;
  port: number;
  configFile: string;
  dir: string;
  child: ChildProcess;
  /** Every stdout/stderr line so far. */
  output: string[];
  /** Resolves with the first output line matching `pattern` (waits up to `timeoutMs`, 30 s by default). */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<string>;
  /** Rewrites the config file (YAML). */
  writeConfig(config: unknown): Promise<void>;
  stop(): Promise<void>;
}

/** Starts `gatehouse gateway run` on a YAML config written to a fresh temp dir. */
export async function startGateway(
  config: Record<string, unknown>,
  options: { extraArgs?: string[]; format?: 'yaml' | 'json' } = {},
): Promise<GatewayProcess> {
  const dir = await mkdtemp(join(tmpdir(), 'gatehouse-e2e-'));
  const configFile = join(dir, options.format === 'json' ? 'gateway.json' : 'gateway.yaml');
  const write = (c: unknown) => writeFile(configFile, options.format === 'json' ? JSON.stringify(c) : stringify(c));
  await write(withServer(config));
  const child = spawn(
    process.execPath,
    [
      MAIN,
      'gateway',
      'run',
      '--config',
      configFile,
      '--port',
      '0',
      '--ops-port',
      '0',
      '--host',
      '127.0.0.1',
      ...(options.extraArgs ?? []),
    ],
    {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const kill = setTimeout(() => child.kill('SIGKILL'), 10 * 60_000);
  kill.unref();
  const output: string[] = [];
  const waiters: { pattern: RegExp; resolve: (line: string) => void }[] = [];
  const onLine = (line: string) => {
    output.push(line);
    for (const w of waiters.slice()) {
      if (w.pattern.test(line)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(line);
      }
    }
  };
  onLines(child, onLine);
  const waitFor = (pattern: RegExp, timeoutMs = 30_000) => {
    const seen = output.find((l) => pattern.test(l));
    if (seen) return Promise.resolve(seen);
    return new Promise<string>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`timed out waiting for ${pattern} in gateway output:\n${output.join('\n')}`)),
        timeoutMs,
      );
      waiters.push({ pattern, resolve: (l) => (clearTimeout(timer), resolve(l)) });
      child.once(
        'exit',
        (code) => (
          clearTimeout(timer),
          reject(new Error(`gateway exited with ${code} before ${pattern}:\n${output.join('\n')}`))
        ),
      );
    });
  };
  let listening: { api: string; ops: string };
  try {
    listening = JSON.parse(await waitFor(/"gateway listening"/)) as { api: string; ops: string };
  } catch (error) {
    clearTimeout(kill);
    child.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
  const port = Number(listening.api.split(':').pop());
  return {
    url: `http://127.0.0.1:${port}`,
    opsUrl: `http://127.0.0.1:${listening.ops.split(':').pop()}`,
    port,
    configFile,
    dir,
    child,
    output,
    waitFor,
    writeConfig: (c) => write(withServer(c as Record<string, unknown>)),
    async stop() {
      clearTimeout(kill);
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}

function withServer(config: Record<string, unknown>): Record<string, unknown> {
  const server = (config.server ?? {}) as Record<string, unknown>;
  return { ...config, server: { log: { level: 'info' }, ...server } };
}

/** A fresh key and the config entry for it. */
/** Calls `onLine` with every line the child writes to stdout or stderr. */
export function onLines(child: ChildProcess, onLine: (line: string) => void): void {
  for (const stream of [child.stdout!, child.stderr!]) {
    let buffer = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      buffer += chunk;
      let nl;
      while ((nl = buffer.indexOf('\n')) !== -1) {
        onLine(buffer.slice(0, nl));
        buffer = buffer.slice(nl + 1);
      }
    });
  }
}

export function newKey(): { key: string; hash: string } {
  const { key, hash } = generateKey();
  return { key, hash: `sha256:${hash}` };
}

/** Sends `raw` on a fresh TCP connection and resolves with the whole response text (connection: close). */
export function rawRequest(port: number, raw: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let data = '';
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => (data += d));
    socket.on('end', () => resolve(data));
    socket.on('error', reject);
    socket.setTimeout(10_000, () => socket.destroy(new Error('raw request timed out')));
    socket.write(raw);
  });
}

/** Status code and parsed problem body of a raw HTTP response. */
export function parseRaw(response: string): {
  status: number;
  headers: string;
  body: string;
  json: Record<string, unknown> | undefined;
} {
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(response)?.[1]);
  const split = response.indexOf('\r\n\r\n');
  const headers = response.slice(0, split);
  const body = response.slice(split + 4);
  let json: Record<string, unknown> | undefined;
  try {
    json = JSON.parse(body) as Record<string, unknown>;
  } catch {
    json = undefined;
  }
  return { status, headers, body, json };
}

export const TOKEN_EXCHANGE = { issuer: 'https://gatehouse.test', audience: 'e2e-api', ttl: '5m', algorithm: 'EdDSA' };

/** Resident set size of a live process in bytes, from /proc/<pid>/status (Linux). */
export async function rssBytes(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = /^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1];
  if (kb === undefined) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(kb) * 1024;
}

/** The value of one sample (e.g. `gatehouse_config_reloads_total{result="rejected"}`) on the ops /metrics page; 0 when absent. */
export async function metricValue(opsUrl: string, sample: string): Promise<number> {
  const text = await (await fetch(`${opsUrl}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${sample} `));
  return line === undefined ? 0 : Number(line.slice(sample.length + 1));
}

/** Resolves with the first output line matching `pattern` at index `from` or later (default: lines yet to come). */
export async function waitForLine(
  gw: GatewayProcess,
  pattern: RegExp,
  from = gw.output.length,
  timeoutMs = 30_000,
): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const line = gw.output.slice(from).find((l) => pattern.test(l));
    if (line !== undefined) return line;
    if (gw.child.exitCode !== null)
      throw new Error(`gateway exited with ${gw.child.exitCode} before ${pattern}:\n${gw.output.join('\n')}`);
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${pattern} in gateway output:\n${gw.output.slice(from).join('\n')}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs `gatehouse ARGS…` (src/cli/main.ts) to completion, as a user would; killed after `timeoutMs`. `env` adds to (or, with undefined, removes from) the environment. */
export function runCli(
  args: string[],
  options: { timeoutMs?: number; env?: Record<string, string | undefined> } = {},
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const env = options.env ? { ...process.env, ...options.env } : process.env;
    const child = spawn(process.execPath, [MAIN, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** The repository root (for paths such as examples/gateway.yaml). */
export const REPO_ROOT = ROOT;

/**
 * Asserts a problem+json refusal: status, content type, stable code, request id in body and header, the RFC 9457
 * members and nothing internal (addresses, error codes of the runtime, stack traces).
 */
export async function expectProblem(res: Response, status: number, code: string): Promise<Record<string, unknown>> {
  const text = await res.text();
  assert.equal(res.status, status, text);
  assert.equal(res.headers.get('content-type'), 'application/problem+json');
  const body = JSON.parse(text) as Record<string, unknown>;
  assert.equal(body.code, code);
  assert.equal(body.status, status);
  assert.match(String(body.instance), /^urn:gatehouse:request:[0-9a-f]{12}[0-9a-z]{8}$/);
  assert.equal(res.headers.get('x-request-id'), String(body.instance).split(':').pop());
  // `requiredPermission`: the permission a 403 for an endpoint names (unless the collection hides it).
  if ('requiredPermission' in body) {
    assert.equal(code, 'GH_ERR_AUTH_FORBIDDEN_ENDPOINT');
    assert.equal(typeof body.requiredPermission, 'string');
  }
  // A quota refusal says which quota, how much of it is used and when it resets (GH_ERR_QUOTA_EXHAUSTED only).
  const quotaMembers = ['quota', 'limit', 'used', 'period', 'resetsAt'];
  if (code === 'GH_ERR_QUOTA_EXHAUSTED') for (const m of quotaMembers) assert.ok(m in body, `${m} missing`);
  assert.deepEqual(
    Object.keys(body).filter(
      (k) =>
        k !== 'detail' &&
        k !== 'requiredPermission' &&
        !(code === 'GH_ERR_QUOTA_EXHAUSTED' && quotaMembers.includes(k)),
    ),
    ['type', 'title', 'status', 'code', 'instance'],
  );
  // A stack frame reads "at fn (file:line)"; the words "that" or "at once" in a detail are no leak.
  assert.doesNotMatch(
    text,
    /127\.0\.0\.1|ECONNREFUSED|UND_ERR|Error|\bat [\w.<>]+ \(|\bat file:/,
    'internal details leaked',
  );
  return body;
}
