/**
 * An open-loop, fixed-rate HTTP/1.1 load generator with sub-millisecond latency resolution (what wrk2 does, in a
 * few lines of Node): request i is due at t0 + i / rate whether or not earlier answers came back; a due request
 * goes out on an idle keep-alive connection, or waits for one (that wait counts in the "intended" latency, i.e.
 * coordinated omission is corrected). Sends happen on a ~1 ms timer, so requests leave in small groups of
 * rate/1000.
 *
 * Why not autocannon's `overallRate`: autocannon spends each connection's per-second budget at full speed at the
 * start of every second, then idles (so a "fixed rate" of 1/5 of the max is a saturating burst for ~1/5 of every
 * second), and its latency histogram has whole-millisecond resolution — too coarse for a 0.5 ms budget.
 *
 * Usage (prints one JSON line): scripts/node bench/lib/paced-load.ts --url URL --rate N --duration S
 *   [--connections C] [--warmup S (default 1, not recorded)] [--header "Name: value"]… [--slow-ms MS (list slow requests)]
 * The response must carry Content-Length (all proxies under test forward the upstream's).
 */
import { connect, type Socket } from 'node:net';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    url: { type: 'string' },
    rate: { type: 'string' },
    duration: { type: 'string' },
    connections: { type: 'string', default: '32' },
    warmup: { type: 'string', default: '1' },
    header: { type: 'string', multiple: true, default: [] },
    'slow-ms': { type: 'string' },
  },
});
/** Diagnosis: report when (s after the measured start) requests slower than this were sent. */
const slowMs = values['slow-ms'] === undefined ? undefined : Number(values['slow-ms']);
const slow: [at: number, ms: number][] = [];
const url = new URL(values.url!);
const rate = Number(values.rate);
const durationS = Number(values.duration);
const connectionCount = Number(values.connections);
if (!(rate > 0 && durationS > 0 && connectionCount > 0))
  throw new Error('--rate, --duration and --connections must be positive');

const REQUEST = Buffer.from(
  `GET ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\n${values.header.map((h) => `${h}\r\n`).join('')}User-Agent: paced-load\r\n\r\n`,
);
/** Requests sent during the warm-up (same rate; their latencies are not recorded): JIT-warms this process. */
const warmupCount = Math.round(rate * Number(values.warmup));
const total = Math.round(rate * durationS);
const interval = 1000 / rate;
const service = new Float64Array(total);
const intended = new Float64Array(total);
let completed = 0;
let answered = 0;
let non2xx = 0;
let socketErrors = 0;
let maxQueue = 0;

interface Conn {
  socket: Socket;
  buf: Buffer | undefined;
  sentAt: number;
  dueAt: number;
  busy: boolean;
}
const idle: Conn[] = [];
const queue: number[] = []; // due times of requests waiting for a connection
let queueHead = 0;

function open(): Promise<Conn> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: url.hostname, port: Number(url.port), noDelay: true });
    const conn: Conn = { socket, buf: undefined, sentAt: 0, dueAt: 0, busy: false };
    socket.once('connect', () => resolve(conn));
    socket.on('data', (chunk: Buffer) => onData(conn, chunk));
    socket.on('error', (error) => {
      socketErrors++;
      reject(error);
    });
    socket.on('close', () => {
      if (finished) return;
      // The server closed a keep-alive connection: count it, replace it.
      if (conn.busy) socketErrors++;
      const i = idle.indexOf(conn);
      if (i >= 0) idle.splice(i, 1);
      open().then(release, () => {});
    });
  });
}

function send(conn: Conn, dueAt: number): void {
  conn.busy = true;
  conn.dueAt = dueAt;
  conn.sentAt = performance.now();
  conn.socket.write(REQUEST);
}

function release(conn: Conn): void {
  if (queueHead < queue.length) {
    send(conn, queue[queueHead++]!);
    if (queueHead > 4096 && queueHead * 2 > queue.length) {
      queue.splice(0, queueHead);
      queueHead = 0;
    }
  } else {
    conn.busy = false;
    idle.push(conn);
  }
}

const HEADER_END = Buffer.from('\r\n\r\n');
function onData(conn: Conn, chunk: Buffer): void {
  let buf = conn.buf === undefined ? chunk : Buffer.concat([conn.buf, chunk]);
  for (;;) {
    const end = buf.indexOf(HEADER_END);
    if (end < 0) break;
    const head = buf.toString('latin1', 0, end);
    const m = /\r\ncontent-length:\s*(\d+)/i.exec(head);
    if (!m) throw new Error(`response without Content-Length:\n${head}`);
    const size = end + 4 + Number(m[1]);
    if (buf.length < size) break;
    const now = performance.now();
    const status = Number(head.slice(9, 12));
    if ((status < 200 || status > 299) && answered >= warmupCount) non2xx++;
    if (answered++ >= warmupCount && completed < total) {
      service[completed] = now - conn.sentAt;
      if (slowMs !== undefined && now - conn.sentAt > slowMs && slow.length < 1000)
        slow.push([
          Math.round(conn.sentAt - t0) / 1000 - warmupCount / rate,
          Math.round((now - conn.sentAt) * 10) / 10,
        ]);
      intended[completed] = now - conn.dueAt;
      completed++;
    }
    buf = buf.subarray(size);
    release(conn);
  }
  conn.buf = buf.length > 0 ? buf : undefined;
}

let finished = false;
const conns = await Promise.all(Array.from({ length: connectionCount }, open));
idle.push(...conns);

const t0 = performance.now() + 5;
let next = 0;
await new Promise<void>((resolve) => {
  const tick = () => {
    const now = performance.now();
    while (next < warmupCount + total && t0 + next * interval <= now) {
      const due = t0 + next * interval;
      next++;
      const conn = idle.pop();
      if (conn) send(conn, due);
      else {
        queue.push(due);
        maxQueue = Math.max(maxQueue, queue.length - queueHead);
      }
    }
    if (next < warmupCount + total) setTimeout(tick, 1);
    else resolve();
  };
  setTimeout(tick, 5);
});
// Let the last answers arrive (bounded).
const drainUntil = performance.now() + 5000;
while (completed < total && performance.now() < drainUntil) await new Promise((r) => setTimeout(r, 10));
const elapsed = (performance.now() - t0) / 1000 - warmupCount / rate;
finished = true;
for (const c of conns) c.socket.destroy();
for (const c of idle) c.socket.destroy();

function stats(values: Float64Array, n: number) {
  const sorted = values.slice(0, n).sort();
  const at = (p: number) => (n === 0 ? NaN : sorted[Math.min(n - 1, Math.ceil((p / 100) * n) - 1)]!);
  let sum = 0;
  for (let i = 0; i < n; i++) sum += sorted[i]!;
  return { p50: at(50), p90: at(90), p99: at(99), p999: at(99.9), max: n ? sorted[n - 1]! : NaN, mean: sum / n };
}
const n = Math.min(completed, total);
const report = JSON.stringify({
  tool: 'paced-load',
  targetRate: rate,
  requested: total,
  completed,
  actualRate: completed / elapsed,
  durationS: elapsed,
  connections: connectionCount,
  non2xx,
  socketErrors,
  maxQueue,
  latencyMs: stats(service, n),
  intendedLatencyMs: stats(intended, n),
  ...(slowMs === undefined ? {} : { slow }),
});
process.stdout.write(`${report}\n`, () => process.exit(0));
