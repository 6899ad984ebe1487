/**
 * End-to-end helpers for the control plane: a real `gatehouse control start` child process on ephemeral loopback
 * ports with its own data directory (SQLite) or PostgreSQL schema, and a small admin API client. Everything stops
 * by itself (the caller's `after` hook, and a hard timeout per process).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eventually, waitForValue } from '../src/testing/eventually.ts';
import { onLines, REPO_ROOT } from './helpers.ts';

const MAIN = join(REPO_ROOT, 'src/cli/main.ts');

/** The encryption key of test control planes on PostgreSQL (32 bytes, base64; a test key, never a real one). */
export const TEST_ENCRYPTION_KEY = Buffer.alloc(32, 7).toString('base64');

export interface ControlProcess {
  /** Admin API base, e.g. `http://127.0.0.1:41234` (paths start with /api/v1). */
  adminUrl: string;
  /** Cloud gateway base; a workspace environment's collections live under `/<workspace>/<env lower-case>`. */
  gatewayUrl: string;
  /** The installation admin token printed at first start. */
  token: string;
  dataDir: string;
  child: ChildProcess;
  output: string[];
  /** An admin API client with the installation admin token (or another token). */
  api(token?: string): AdminApi;
  /** SIGTERM, wait for exit; `keepData` leaves the data directory for a restart. */
  stop(options?: { keepData?: boolean }): Promise<void>;
}

export interface AdminResponse {
  status: number;
  body: any; // eslint-disable-line @typescript-eslint/no-explicit-any -- JSON of many shapes; tests assert on it
  headers: Headers;
}

export interface AdminApi {
  get(path: string): Promise<AdminResponse>;
  post(path: string, body?: unknown): Promise<AdminResponse>;
  put(path: string, body: unknown): Promise<AdminResponse>;
  patch(path: string, body: unknown): Promise<AdminResponse>;
  delete(path: string): Promise<AdminResponse>;
}

export function adminApi(
  baseUrl: string,
  token: string | undefined,
  extraHeaders: Record<string, string> = {},
): AdminApi {
  const call = async (method: string, path: string, body?: unknown): Promise<AdminResponse> => {
    const headers: Record<string, string> = { ...extraHeaders };
    if (token) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(`${baseUrl}/api/v1${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: text ? (JSON.parse(text) as unknown) : undefined, headers: res.headers };
  };
  return {
    get: (p) => call('GET', p),
    post: (p, b) => call('POST', p, b ?? {}),
    put: (p, b) => call('PUT', p, b),
    patch: (p, b) => call('PATCH', p, b),
    delete: (p) => call('DELETE', p),
  };
}

export async function startControlPlane(
  options: { databaseUrl?: string; dataDir?: string; extraArgs?: string[]; env?: Record<string, string> } = {},
): Promise<ControlProcess> {
  const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), 'gatehouse-cp-')));
  const args = [
    MAIN,
    'control',
    'start',
    '--data-dir',
    dataDir,
    '--admin-port',
    '0',
    '--gateway-port',
    '0',
    '--ops-port',
    '0',
    '--bootstrap-port',
    '0',
    '--sync-port',
    '0',
    '--host',
    '127.0.0.1',
    ...(options.extraArgs ?? []),
  ];
  // Every admin API response is checked against its operation's schema: a body the schema does not describe is a 500.
  const env: NodeJS.ProcessEnv = { ...process.env, GATEHOUSE_CHECK_RESPONSES: '1', ...options.env };
  delete env.DATABASE_URL;
  if (options.databaseUrl) env.DATABASE_URL = options.databaseUrl;
  // Replicas on PostgreSQL need the key their secrets are sealed with: the same one for every test process.
  if (options.databaseUrl && !env.GATEHOUSE_ENCRYPTION_KEY_FILE) env.GATEHOUSE_ENCRYPTION_KEY ??= TEST_ENCRYPTION_KEY;
  const child = spawn(process.execPath, args, { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'], env });
  const kill = setTimeout(() => child.kill('SIGKILL'), 10 * 60_000);
  kill.unref();
  const output: string[] = [];
  let resolveReady: (v: { admin: string; gateway: string }) => void;
  let rejectReady: (e: Error) => void;
  const ready = new Promise<{ admin: string; gateway: string }>(
    (res, rej) => ((resolveReady = res), (rejectReady = rej)),
  );
  const onLine = (line: string) => {
    output.push(line);
    if (line.includes('"control plane listening"'))
      resolveReady(JSON.parse(line) as { admin: string; gateway: string });
  };
  onLines(child, onLine);
  child.once('exit', (code) =>
    rejectReady(new Error(`control plane exited with ${code} before listening:\n${output.join('\n')}`)),
  );
  const timer = setTimeout(
    () => rejectReady(new Error(`control plane did not start in 60 s:\n${output.join('\n')}`)),
    60_000,
  );
  let addresses: { admin: string; gateway: string };
  try {
    addresses = await ready;
  } catch (error) {
    child.kill('SIGKILL');
    if (!options.dataDir) await rm(dataDir, { recursive: true, force: true });
    throw error;
  } finally {
    clearTimeout(timer);
  }
  // The banner (stderr) follows the log line: wait for it. It is one small write (atomic on a pipe, read as one
  // chunk), so once its "config sync" line is here, so is the admin token it shows on the very first start only.
  const token = await waitForValue(() => {
    if (!output.some((l) => /^\s+config sync\s/.test(l))) return undefined;
    return output.map((l) => /^\s+(ghk_[A-Za-z0-9]+)\s*$/.exec(l)?.[1]).find(Boolean) ?? '';
  }, 60_000).catch(() => undefined); // a busy machine (the suite's parallel files) can take a while to print it
  const adminUrl = `http://${addresses.admin}`;
  return {
    adminUrl,
    gatewayUrl: `http://${addresses.gateway}`,
    token: token ?? '',
    dataDir,
    child,
    output,
    api: (t) => adminApi(adminUrl, t ?? token),
    async stop({ keepData = false } = {}) {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        const hard = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(hard);
      }
      clearTimeout(kill);
      if (!keepData && !options.dataDir) await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** Polls `probe` until it returns true; resolves with the milliseconds it took, rejects after `timeoutMs` (10 s by default). */
export { eventually };
