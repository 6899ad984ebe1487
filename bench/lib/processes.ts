/**
 * Child processes for benchmarks: every child is bounded (wrapped in coreutils `timeout`, so it ends by itself
 * even if this process is killed), optionally pinned to a core with `taskset`, and tracked so that an error,
 * SIGINT or SIGTERM in the orchestrator stops it (by its own pid) before we exit.
 */
import { spawn, spawnSync, type ChildProcess, type StdioOptions } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { createServer, type AddressInfo } from 'node:net';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const NODE = resolve(ROOT, 'scripts/node');

export function hasCommand(name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' }).status === 0;
}

const HAS_TIMEOUT = hasCommand('timeout');
export const HAS_TASKSET = hasCommand('taskset');

export interface Bounded {
  readonly name: string;
  readonly proc: ChildProcess;
  /** Resolves when the child has exited (never rejects). */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Last ~8 KB of stderr (and stdout when piped but not consumed), for error messages. */
  tail(): string;
  /** Pid of the actual program (the child of `timeout`), for /proc sampling. */
  programPid(): number | undefined;
  /** SIGTERM (forwarded by `timeout` to the program), then SIGKILL after `graceMs`. */
  stop(graceMs?: number, signal?: NodeJS.Signals): Promise<void>;
}

export interface SpawnOptions {
  /** Core to pin to with taskset (ignored when taskset is missing). */
  core?: number;
  /** Hard upper bound on the child's lifetime, in seconds. */
  maxSeconds: number;
  stdout?: 'pipe' | 'ignore' | number;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

const live = new Set<Bounded>();

export function spawnBounded(name: string, command: string, args: readonly string[], options: SpawnOptions): Bounded {
  let argv = [command, ...args];
  if (options.core !== undefined && HAS_TASKSET) argv = ['taskset', '-c', String(options.core), ...argv];
  // `timeout` forwards TERM/INT to the program and KILLs it 5 s after the deadline.
  if (HAS_TIMEOUT) argv = ['timeout', '--kill-after=5', String(Math.ceil(options.maxSeconds)), ...argv];
  const stdio: StdioOptions = ['ignore', options.stdout ?? 'pipe', 'pipe'];
  const proc = spawn(argv[0]!, argv.slice(1), { stdio, env: options.env ?? process.env, cwd: options.cwd ?? ROOT });
  let tail = '';
  const keep = (chunk: Buffer) => {
    tail = (tail + chunk.toString('utf8')).slice(-8192);
  };
  proc.stderr?.on('data', keep);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    proc.once('exit', (code, signal) => resolve({ code, signal }));
    proc.once('error', (error) => {
      tail += `\nspawn error: ${error.message}`;
      resolve({ code: -1, signal: null });
    });
  });
  const child: Bounded = {
    name,
    proc,
    exited,
    tail: () => tail,
    programPid: () => (HAS_TIMEOUT ? childPid(proc.pid) : proc.pid),
    async stop(graceMs = 5000, signal: NodeJS.Signals = 'SIGTERM') {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill(signal);
        const timer = setTimeout(() => proc.kill('SIGKILL'), graceMs);
        await exited;
        clearTimeout(timer);
      }
      live.delete(child);
    },
  };
  void exited.then(() => live.delete(child));
  live.add(child);
  return child;
}

/** Pid of the (single) child of `pid`, from /proc. */
function childPid(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const first = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/)[0];
    return first ? Number(first) : undefined;
  } catch {
    return undefined;
  }
}

/** Children still running (e.g. to sample a load generator's CPU while it runs). */
export function liveChildren(): readonly Bounded[] {
  return [...live];
}

/** Stops every live child (used on errors and signals). */
export async function stopAll(): Promise<void> {
  await Promise.all([...live].map((c) => c.stop(3000)));
}

let installed = false;
/** Kill children on SIGINT/SIGTERM/uncaught errors and on exit. */
export function installCleanup(): void {
  if (installed) return;
  installed = true;
  const onSignal = (signal: NodeJS.Signals) => {
    process.stderr.write(`\n${signal}: stopping child processes…\n`);
    void stopAll().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  process.on('exit', () => {
    for (const c of live) c.proc.kill('SIGTERM');
  });
}

/** Runs a bounded child to completion and returns its stdout. Rejects on a non-zero exit. */
export async function runToCompletion(
  name: string,
  command: string,
  args: readonly string[],
  options: SpawnOptions,
): Promise<string> {
  const child = spawnBounded(name, command, args, { ...options, stdout: 'pipe' });
  let out = '';
  child.proc.stdout!.on('data', (chunk: Buffer) => {
    out += chunk.toString('utf8');
  });
  const { code, signal } = await child.exited;
  if (code !== 0) throw new Error(`${name} failed (exit ${code ?? signal}):\n${child.tail()}\n${out.slice(-2000)}`);
  return out;
}

/** A port that was free a moment ago (loopback). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export interface HttpAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One GET on a fresh connection. */
export function get(url: string, headers: Record<string, string> = {}, timeoutMs = 2000): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers, agent: false, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

/** Polls `url` until it answers `expect`, the child exits, or `timeoutMs` passes. */
export async function waitForHttp(
  child: Bounded,
  url: string,
  headers: Record<string, string>,
  expect = 200,
  timeoutMs = 30_000,
): Promise<HttpAnswer> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer';
  let exited = false;
  void child.exited.then(() => (exited = true));
  while (Date.now() < deadline) {
    if (exited) throw new Error(`${child.name} exited before it was ready:\n${child.tail()}`);
    try {
      const answer = await get(url, headers);
      if (answer.status === expect) return answer;
      last = `HTTP ${answer.status}: ${answer.body.slice(0, 300)}`;
    } catch (error) {
      last = (error as Error).message;
    }
    await sleep(100);
  }
  throw new Error(`${child.name} not ready after ${timeoutMs} ms (${last}):\n${child.tail()}`);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** utime + stime of a process in seconds (from /proc/PID/stat), or undefined. */
export function cpuSeconds(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[0] is field 3 (state); utime is field 14, stime field 15.
    return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
  } catch {
    return undefined;
  }
}
const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

/** Busy and total jiffies per core from /proc/stat. */
export function coreTimes(): Map<string, { busy: number; total: number }> {
  const out = new Map<string, { busy: number; total: number }>();
  try {
    for (const line of readFileSync('/proc/stat', 'utf8').split('\n')) {
      const m = /^(cpu\d+)\s+(.*)$/.exec(line);
      if (!m) continue;
      const v = m[2]!.split(/\s+/).map(Number);
      const idle = (v[3] ?? 0) + (v[4] ?? 0);
      const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
      out.set(m[1]!, { busy: total - idle, total });
    }
  } catch {
    // not Linux: no core utilisation
  }
  return out;
}

/** Busy share per core between two coreTimes() samples. */
export function coreBusy(
  before: ReturnType<typeof coreTimes>,
  after: ReturnType<typeof coreTimes>,
): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, a] of after) {
    const b = before.get(name);
    if (!b || a.total === b.total) continue;
    out[name] = (a.busy - b.busy) / (a.total - b.total);
  }
  return out;
}

/**
 * The benchmark upstream (`bench/upstream.ts` on `upstreamPort`, core 1, ready) and a standalone gateway running
 * `configFile` on a free loopback port (core 0): what a benchmark of one gateway's request path starts with. The
 * caller waits for the gateway on a URL of its own config.
 */
export async function startUpstreamAndGateway(
  configFile: string,
  upstreamPort: number,
): Promise<{ upstream: Bounded; gateway: Bounded; port: number }> {
  const upstream = spawnBounded('upstream', NODE, ['bench/upstream.ts', '--port', String(upstreamPort)], {
    core: 1,
    maxSeconds: 3600,
  });
  await waitForHttp(upstream, `http://127.0.0.1:${upstreamPort}/__bench/last`, {});
  const port = await freePort();
  const opsPort = await freePort();
  const gateway = spawnBounded(
    'gatehouse',
    NODE,
    [
      'src/cli/main.ts',
      'gateway',
      'run',
      '--config',
      configFile,
      '--port',
      String(port),
      '--ops-port',
      String(opsPort),
      '--host',
      '127.0.0.1',
    ],
    { core: 0, maxSeconds: 3600, stdout: 'ignore' },
  );
  return { upstream, gateway, port };
}
