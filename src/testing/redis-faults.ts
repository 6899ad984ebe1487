/**
 * Redis that misbehaves, on real loopback sockets, for the shared rate-limit store's fault tests:
 *
 * - `startBlackHole()`: accepts connections and never answers a byte.
 * - `startRedisProxy(target)`: a TCP proxy in front of a real Redis that the test switches between `pass`
 *   (forwards both ways), `hang` (keeps every connection open and forwards nothing, as a paused or partitioned
 *   Redis), `slow` (forwards Redis's answers `delayMs` late) and `down` (resets every connection and every new
 *   one, as a Redis that went away). Only the test's own connections are affected, never the shared server.
 * - `startScriptedRedis(reply)`: speaks just enough RESP2 for ioredis to connect, and answers every other command
 *   with what `reply` says: for error replies such as NOSCRIPT, READONLY or OOM that a shared Redis cannot be
 *   made to give without disturbing other tests.
 */
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';

export interface FaultServer {
  /** `redis://127.0.0.1:<port>`. */
  readonly url: string;
  readonly port: number;
  /** Connections accepted so far. */
  readonly accepted: number;
  close(): Promise<void>;
}

/** A loopback server that counts and tracks its connections (and the ones `track` is given), closing them all on `close`. */
interface Served extends FaultServer {
  readonly sockets: Set<Socket>;
}

async function serve(onConnection: (socket: Socket, track: (s: Socket) => void) => void): Promise<Served> {
  const sockets = new Set<Socket>();
  const track = (s: Socket) => {
    sockets.add(s);
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
  };
  let accepted = 0;
  const server = createServer((socket) => {
    accepted++;
    track(socket);
    onConnection(socket, track);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    sockets,
    get accepted() {
      return accepted;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export function startBlackHole(): Promise<FaultServer> {
  return serve((socket) => socket.resume()); // read and drop what the client sends
}

export type ProxyMode = 'pass' | 'hang' | 'slow' | 'down';

export interface RedisProxy extends FaultServer {
  mode: ProxyMode;
  /** How late answers are forwarded in `slow` mode. */
  delayMs: number;
}

export async function startRedisProxy(target: string): Promise<RedisProxy> {
  const { hostname, port: targetPort } = new URL(target);
  const state = { mode: 'pass' as ProxyMode, delayMs: 0 };
  const served = await serve((client, track) => {
    if (state.mode === 'down') {
      client.resetAndDestroy();
      return;
    }
    const upstream = connect(Number(targetPort || 6379), hostname);
    track(upstream);
    const pending: Buffer[] = [];
    client.on('data', (chunk: Buffer) => {
      if (state.mode === 'pass' || state.mode === 'slow') {
        if (upstream.connecting) pending.push(chunk);
        else upstream.write(chunk);
      }
    });
    upstream.on('connect', () => {
      for (const chunk of pending.splice(0)) upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      if (state.mode === 'pass') client.write(chunk);
      else if (state.mode === 'slow') setTimeout(() => client.writable && client.write(chunk), state.delayMs).unref();
    });
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  return {
    url: served.url,
    port: served.port,
    get accepted() {
      return served.accepted;
    },
    close: () => served.close(),
    get mode() {
      return state.mode;
    },
    set mode(mode: ProxyMode) {
      state.mode = mode;
      if (mode === 'down') for (const s of served.sockets) s.resetAndDestroy();
    },
    get delayMs() {
      return state.delayMs;
    },
    set delayMs(ms: number) {
      state.delayMs = ms;
    },
  };
}

/** A RESP2 reply, already encoded (`+OK\r\n`, `-READONLY …\r\n`, `:1\r\n`, …). */
export type RespReply = string;

export const resp = {
  ok: '+OK\r\n',
  error: (message: string): RespReply => `-${message}\r\n`,
  integer: (n: number): RespReply => `:${n}\r\n`,
  bulk: (s: string): RespReply => `$${Buffer.byteLength(s)}\r\n${s}\r\n`,
  array: (items: RespReply[]): RespReply => `*${items.length}\r\n${items.join('')}`,
};

export interface ScriptedRedis extends FaultServer {
  /** Every command received after the handshake, upper-cased name first. */
  readonly commands: string[][];
}

/**
 * A server that completes ioredis's handshake (refuses HELLO so the client speaks RESP2, accepts CLIENT, answers
 * INFO as a master that finished loading, PING, QUIT) and answers everything else with `reply(command)`.
 */
export async function startScriptedRedis(reply: (command: string[]) => RespReply): Promise<ScriptedRedis> {
  const commands: string[][] = [];
  const served = await serve((socket) => {
    let buffer = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      for (;;) {
        const parsed = parseCommand(buffer);
        if (parsed === undefined) return;
        buffer = buffer.subarray(parsed.length);
        const [name = '', ...args] = parsed.command;
        const upper = name.toUpperCase();
        let answer: RespReply;
        if (upper === 'HELLO') answer = resp.error("ERR unknown command 'HELLO'");
        else if (upper === 'CLIENT' || upper === 'SELECT' || upper === 'AUTH') answer = resp.ok;
        else if (upper === 'INFO') answer = resp.bulk('# Server\r\nloading:0\r\nrole:master\r\n');
        else if (upper === 'PING') answer = '+PONG\r\n';
        else if (upper === 'QUIT') answer = resp.ok;
        else {
          commands.push([upper, ...args]);
          answer = reply([upper, ...args]);
        }
        socket.write(answer);
      }
    });
  });
  return {
    url: served.url,
    port: served.port,
    commands,
    get accepted() {
      return served.accepted;
    },
    close: () => served.close(),
  };
}

/** One RESP array of bulk strings from the start of `buffer`, or undefined when it is not complete yet. */
function parseCommand(buffer: Buffer): { command: string[]; length: number } | undefined {
  const line = (from: number) => {
    const end = buffer.indexOf('\r\n', from);
    return end < 0 ? undefined : { text: buffer.toString('latin1', from, end), next: end + 2 };
  };
  const head = line(0);
  if (head === undefined) return undefined;
  if (!head.text.startsWith('*')) throw new Error(`scripted Redis: unexpected ${JSON.stringify(head.text)}`);
  const count = Number(head.text.slice(1));
  const command: string[] = [];
  let at = head.next;
  for (let i = 0; i < count; i++) {
    const size = line(at);
    if (size === undefined) return undefined;
    const n = Number(size.text.slice(1));
    if (buffer.length < size.next + n + 2) return undefined;
    command.push(buffer.toString('utf8', size.next, size.next + n));
    at = size.next + n + 2;
  }
  return { command, length: at };
}
