/**
 * autocannon, run in its own process (so it can be pinned like wrk), printing one JSON line in the shape the
 * orchestrator reads. The fallback when wrk is not installed, and the optional fixed-rate tool
 * (`overallRate`; see paced-load.ts for its caveats). Latencies from autocannon are whole milliseconds.
 *
 * Usage: scripts/node bench/lib/autocannon-run.ts --url URL --duration S [--connections C] [--rate N]
 *   [--header "Name: value"]…
 */
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';

const { values } = parseArgs({
  options: {
    url: { type: 'string' },
    duration: { type: 'string' },
    connections: { type: 'string', default: '64' },
    rate: { type: 'string' },
    header: { type: 'string', multiple: true, default: [] },
  },
});
const headers: Record<string, string> = {};
for (const h of values.header) {
  const i = h.indexOf(':');
  headers[h.slice(0, i).trim()] = h.slice(i + 1).trim();
}
const result = await autocannon({
  url: values.url!,
  duration: Number(values.duration),
  connections: Number(values.connections),
  headers,
  ...(values.rate ? { overallRate: Number(values.rate) } : {}),
});
const ok = result['2xx'];
const report = JSON.stringify({
  tool: 'autocannon',
  requests: ok,
  rps: ok / result.duration,
  durationS: result.duration,
  non2xx: result.non2xx,
  errors: result.errors,
  timeouts: result.timeouts,
  latencyMs: {
    p50: result.latency.p50,
    p90: result.latency.p90,
    p99: result.latency.p99,
    p999: result.latency.p99_9,
    max: result.latency.max,
    mean: result.latency.average,
  },
});
process.stdout.write(`${report}\n`, () => process.exit(0));
