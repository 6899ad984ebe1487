/**
 * Child of bench/config-load.ts: loads a gateway config in a fresh process and prints one JSON line.
 *
 *   gateway FILE  startGateway() on ports 0, exactly as `gatehouse gateway run` does, timed from process start
 *                 until it is listening; peak RSS (maxRSS) at that point, and (with --expose-gc) what stays
 *                 resident after a full GC.
 *   phases FILE   the same work step by step, with time and peak RSS after each step. A config with all
 *                 clients inline: read the file, JSON.parse, zod validation (GatewayFileSchema), compileSnapshot.
 *                 A config with a clients file: read and validate the config file, then three passes over the
 *                 clients file: split + JSON.parse only (the floor of any line loader); what `config check` does
 *                 (validation and cross-checks with the loader's own sets); the real path (validation and checks
 *                 streamed into compileSnapshot, whose key index is also the duplicate check).
 */
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { PerformanceObserver, type PerformanceEntry } from 'node:perf_hooks';
import { resolve } from 'node:path';
import pino from 'pino';
import { clientsFilePath, readClientsFile } from '../../src/config/clients-file.ts';
import { parseGatewayFile } from '../../src/config/load.ts';
import { GatewayFileSchema } from '../../src/config/schema.ts';
import { UpstreamPools } from '../../src/gateway/http/upstream-pools.ts';
import { createMemoryStore } from '../../src/gateway/policies/rate-limit/memory-store.ts';
import { startGateway, toSnapshot } from '../../src/gateway/runtime.ts';
import { compileSnapshot, startCompile } from '../../src/gateway/snapshot/compile.ts';
import { openSigningKeyStore } from '../../src/gateway/tokens/keystore.ts';
import { createMinter } from '../../src/gateway/tokens/minter.ts';

const [mode, file] = process.argv.slice(2);
// GC pauses, attributed to steps afterwards by their start time (entries arrive asynchronously).
const gcEntries: PerformanceEntry[] = [];
new PerformanceObserver((list) => void gcEntries.push(...list.getEntries())).observe({ entryTypes: ['gc'] });
const gcBetween = (from: number, to: number) =>
  gcEntries.filter((e) => e.startTime >= from && e.startTime < to).reduce((a, e) => a + e.duration, 0);
const tick = () => new Promise((resolve) => setImmediate(resolve));
if ((mode !== 'gateway' && mode !== 'phases') || !file) {
  console.error('usage: config-load-child.ts gateway|phases FILE');
  process.exit(2);
}

const mb = (bytes: number) => Math.round((bytes / 1024 / 1024) * 10) / 10;
/** Peak resident set size of this process so far, MB. */
const peakRss = () => mb(process.resourceUsage().maxRSS * 1024);
const memory = () => {
  const m = process.memoryUsage();
  return { rssMb: mb(m.rss), peakRssMb: peakRss(), heapUsedMb: mb(m.heapUsed), externalMb: mb(m.external) };
};

if (mode === 'gateway') {
  const atStart = performance.now(); // ms since this process started (module loading already done)
  const logger = pino({ level: 'info' }, pino.destination({ dest: '/dev/null', sync: false }));
  const runtime = await startGateway({ configFile: file, logger, port: 0, opsPort: 0, host: '127.0.0.1' });
  const listeningMs = performance.now();
  await tick();
  const gcMs = gcBetween(atStart, listeningMs);
  const memAtListening = memory();
  let settled: ReturnType<typeof memory> | undefined;
  if (typeof globalThis.gc === 'function') {
    globalThis.gc();
    settled = memory();
  }
  await runtime.close();
  logger.flush();
  process.stdout.write(
    `${JSON.stringify({
      mode,
      modulesLoadedMs: atStart,
      listeningSinceProcessStartMs: listeningMs,
      startGatewayMs: listeningMs - atStart,
      gcMs,
      atListening: memAtListening,
      afterGc: settled,
    })}\n`,
    () => process.exit(0),
  );
} else {
  const steps: {
    step: string;
    ms: number;
    gcMs?: number;
    from: number;
    to: number;
    peakRssMb: number;
    rssMb: number;
    heapUsedMb: number;
  }[] = [];
  let t = 0; // performance.now() counts from process start: the first step is Node start-up + module loading
  const step = (name: string) => {
    const now = performance.now();
    const m = memory();
    steps.push({
      step: name,
      ms: now - t,
      from: t,
      to: now,
      peakRssMb: m.peakRssMb,
      rssMb: m.rssMb,
      heapUsedMb: m.heapUsedMb,
    });
    t = performance.now();
  };
  step('node start + module loading');
  const text = await readFile(resolve(file), 'utf8');
  step('read file (utf8)');
  const data: unknown = JSON.parse(text);
  step('JSON.parse');
  const result = GatewayFileSchema.safeParse(data);
  if (!result.success) throw new Error(`invalid config: ${result.error.message.slice(0, 500)}`);
  step('zod validation (GatewayFileSchema)');
  const config = result.data;
  const keys = await openSigningKeyStore({
    algorithm: config.tokenExchange.algorithm,
    tokenTtlMs: config.tokenExchange.ttl,
  });
  const minter = createMinter({
    issuer: config.tokenExchange.issuer,
    audience: config.tokenExchange.audience,
    ttlMs: config.tokenExchange.ttl,
    claims: config.tokenExchange.claims,
    keys,
  });
  const pools = new UpstreamPools();
  const rateLimitStore = createMemoryStore();
  step('signing keys, minter, pools');
  const deps = { pools, rateLimitStore, minter, onTokenError: () => {} };
  const clientsFile = clientsFilePath(resolve(file), config);
  let keyCount: number;
  let breakdown: { step: string; ms: number }[] | undefined;
  if (clientsFile) {
    parseGatewayFile(text, file); // what the gateway does with the config file itself (result unused)
    step('config file: parse + validate again');
    const lines = await parseLinesOnly(clientsFile);
    step(`clients file: split + JSON.parse only (${lines} lines)`);
    await readClientsFile(clientsFile, config);
    step('clients file: as config check (no compile)');
    const compilation = startCompile(toSnapshot(config));
    await readClientsFile(clientsFile, config, compilation);
    const table = compilation.finish(deps);
    step('clients file: real path (into compile)');
    keyCount = table.keys.size;
    const [parse, , real] = steps.slice(-3).map((s) => s.ms) as [number, number, number];
    breakdown = [
      { step: 'read + split + JSON.parse', ms: parse },
      { step: 'validation, checks, key index', ms: real - parse },
    ];
  } else {
    const table = compileSnapshot(toSnapshot(config), deps);
    step('compileSnapshot');
    keyCount = table.keys.size;
  }
  await tick();
  for (const s of steps) s.gcMs = gcBetween(s.from, s.to);
  await pools.close();
  rateLimitStore.close();
  keys.close();
  process.stdout.write(
    `${JSON.stringify({ mode, keys: keyCount, textMb: mb(Buffer.byteLength(text)), steps, breakdown })}\n`,
    () => process.exit(0),
  );
}

/** Reads an NDJSON file in 1 MB chunks and JSON.parses every line, nothing else: the floor of any line loader. */
async function parseLinesOnly(path: string): Promise<number> {
  let rest = '';
  let lines = 0;
  for await (const chunk of createReadStream(path, {
    highWaterMark: 1 << 20,
    encoding: 'utf8',
  }) as AsyncIterable<string>) {
    const text = rest + chunk;
    let start = 0;
    for (let end = text.indexOf('\n'); end >= 0; end = text.indexOf('\n', start)) {
      if (end > start) JSON.parse(text.slice(start, end));
      lines++;
      start = end + 1;
    }
    rest = text.slice(start);
  }
  if (rest.trim()) JSON.parse(rest);
  return lines;
}
