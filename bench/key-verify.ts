/**
 * Per-request cost of API-key verification: isWellFormedKey (length, prefix, charset, CRC32) + hashKey (SHA-256)
 * + Map.get on a 1,000,000-entry Map of key hashes, in ns/op, next to an empty function call and
 * crypto.randomUUID() for scale, and the whole authenticate policy on a minimal request context.
 *
 * Usage: scripts/node --expose-gc bench/key-verify.ts [--json]   (prints numbers only; asserts nothing; --expose-gc
 * only makes the Map's heap estimate exact)
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { cpus } from 'node:os';
import { readFileSync } from 'node:fs';
import { generateKey, hashKey, isWellFormedKey } from '../src/shared/api-key.ts';
import { authenticate } from '../src/gateway/policies/authenticate.ts';
import type { RequestContext } from '../src/gateway/policies/policy.ts';
import type { KeyEntry } from '../src/gateway/snapshot/compiled.ts';

const MAP_SIZE = 1_000_000;
const PROBES = 1024; // distinct keys cycled through, so no single key stays hot in every cache
const ITERATIONS = 1_000_000;

const heap0 = process.memoryUsage().heapUsed;
const t0 = performance.now();
const probes = Array.from({ length: PROBES }, () => generateKey());
const principal = { id: 'c', disabled: false, expiresAt: Infinity };
const keys = new Map<string, KeyEntry>();
for (let i = 0; keys.size < MAP_SIZE - PROBES; i++) {
  const hash = randomBytes(32).toString('hex');
  keys.set(hash, { principal, hash, label: `c${i}`, expiresAt: Infinity } as unknown as KeyEntry);
}
for (const p of probes)
  keys.set(p.hash, { principal, hash: p.hash, label: p.id, expiresAt: Infinity } as unknown as KeyEntry);
const buildMs = performance.now() - t0;
if (typeof globalThis.gc === 'function') globalThis.gc();
const mapMb = (process.memoryUsage().heapUsed - heap0) / 1e6;

const probeKeys = probes.map((p) => p.key);
const probeHashes = probes.map((p) => p.hash);
const unknownKeys = Array.from({ length: PROBES }, () => generateKey().key);
// Same length and alphabet, wrong checksum: refused before hashing.
const malformed = probeKeys.map((k) => k.slice(0, -1) + (k.endsWith('A') ? 'B' : 'A'));
const policy = authenticate({
  keys,
  legacyKeys: new Map(),
  legacyKeyHeader: 'x-api-key',
  legacyEmailHeader: 'x-api-email',
});
const contexts = probeKeys.map(
  (k) =>
    ({ req: { headers: { authorization: `Bearer ${k}` } } as unknown as IncomingMessage }) as unknown as RequestContext,
);

let sink = 0;
function empty(s: string): number {
  return s.length;
}

const CASES: ReadonlyArray<readonly [string, (i: number) => void]> = [
  ['empty function call (baseline)', (i) => (sink += empty(probeKeys[i & (PROBES - 1)]!))],
  ['crypto.randomUUID() (for scale)', () => (sink += randomUUID().length)],
  ['isWellFormedKey', (i) => (sink += isWellFormedKey(probeKeys[i & (PROBES - 1)]!) ? 1 : 0)],
  ['hashKey (SHA-256 → hex)', (i) => (sink += hashKey(probeKeys[i & (PROBES - 1)]!).length)],
  ['Map.get on 1M entries (hit)', (i) => (sink += keys.get(probeHashes[i & (PROBES - 1)]!) ? 1 : 0)],
  [
    'verify: wellFormed + hash + get (hit)',
    (i) => {
      const key = probeKeys[i & (PROBES - 1)]!;
      if (isWellFormedKey(key)) sink += keys.get(hashKey(key)) ? 1 : 0;
    },
  ],
  [
    'verify: unknown well-formed key (miss)',
    (i) => {
      const key = unknownKeys[i & (PROBES - 1)]!;
      if (isWellFormedKey(key)) sink += keys.get(hashKey(key)) ? 1 : 2;
    },
  ],
  ['verify: bad checksum (refused early)', (i) => (sink += isWellFormedKey(malformed[i & (PROBES - 1)]!) ? 1 : 0)],
  [
    'authenticate policy (Bearer header, hit)',
    (i) => (sink += policy(contexts[i & (PROBES - 1)]!) === undefined ? 1 : 0),
  ],
];

function run(fn: (i: number) => void, n: number): number {
  const start = process.hrtime.bigint();
  for (let i = 0; i < n; i++) fn(i);
  return Number(process.hrtime.bigint() - start) / n;
}

// Repetitions go round-robin over the cases, so that a slow spell of the machine hits all cases alike.
const REPS = 7;
for (const [, fn] of CASES) run(fn, 100_000); // warm up
const best = CASES.map(() => Infinity);
for (let rep = 0; rep < REPS; rep++) CASES.forEach(([, fn], i) => (best[i] = Math.min(best[i]!, run(fn, ITERATIONS))));
const results = CASES.map(([name], i) => ({ name, nsPerOp: best[i]! }));
if (sink === -1) console.log(sink);

const cpu = /model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? 'unknown CPU';
if (process.argv.includes('--json')) {
  console.log(
    JSON.stringify(
      { node: process.version, cpu, nproc: cpus().length, mapSize: keys.size, buildMs, mapMb, results },
      null,
      2,
    ),
  );
} else {
  console.log(
    `Node ${process.version} · ${cpu} · Map of ${keys.size.toLocaleString('en')} key hashes built in ${buildMs.toFixed(0)} ms, ≈${mapMb.toFixed(0)} MB heap`,
  );
  console.log(
    `best of ${REPS} × 1,000,000 iterations (repetitions interleaved across cases), cycling through 1,024 distinct keys\n`,
  );
  for (const r of results) console.log(`  ${r.name.padEnd(42)} ${r.nsPerOp.toFixed(0).padStart(6)} ns/op`);
}
