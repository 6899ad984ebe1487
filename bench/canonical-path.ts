/**
 * Micro-benchmark of canonicalize(): ns/op for the fast path (plain ASCII target) and the full parser (escapes,
 * dot segments). Run by hand: `scripts/node bench/canonical-path.ts`. Prints numbers only; asserts nothing.
 */
import { canonicalize } from '../src/gateway/http/canonical-path.ts';

const CASES: ReadonlyArray<readonly [name: string, target: string, host: string | undefined]> = [
  ['plain path', '/api/v1/users/12345/orders', undefined],
  ['plain path + query', '/api/v1/users/12345/orders?limit=10&cursor=abc%3D', undefined],
  ['path with escapes', '/api/v1/users/%7Ejohn/caf%C3%A9/a%3ab/%41%42', undefined],
  ['path with dot segments', '/api/v1/./users/../users//12345/orders/', undefined],
  ['absolute-form', 'http://api.example.com/api/v1/users/12345', 'api.example.com'],
];

const ITERATIONS = 2_000_000;
let sink = 0;

function run(target: string, host: string | undefined, n: number): number {
  const start = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    const r = canonicalize(target, host);
    if (r.ok) sink += r.value.path.length;
  }
  return Number(process.hrtime.bigint() - start) / n;
}

for (const [name, target, host] of CASES) {
  run(target, host, 200_000); // warm up
  const best = Math.min(run(target, host, ITERATIONS), run(target, host, ITERATIONS), run(target, host, ITERATIONS));
  console.log(`${name.padEnd(24)} ${best.toFixed(1).padStart(7)} ns/op   ${target}`);
}
if (sink === -1) console.log(sink);
