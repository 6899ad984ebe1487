/**
 * Derived credentials (docs/agents.md): the cost of verifying one against verifying an API key, measured in the
 * same run, and the cost and rate of minting one at the token endpoint.
 *
 * Cases (ns/op, best of 7 interleaved runs, cycling through 1,024 distinct credentials over 100,000 keys):
 * - API key: isWellFormedKey + SHA-256 + Map.get (the baseline)
 * - derived, cold: HMAC-SHA256 + JSON.parse + parent Map.get (a credential the verifier has not seen)
 * - derived, warm: DerivedVerifier.resolve on a credential already verified (Map.get by text + expiry + parent)
 * - derived, warm, with 1,000 single revocations in force (500 by id, 500 by agent) that do not match
 * - the whole authenticate policy with each
 * - mint: TokenEndpoint.exchange from an API key (scope, lifetime, agent)
 *
 * Usage: scripts/node bench/derived-verify.ts   (prints numbers only; asserts nothing)
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { generateKey, hashKey, isWellFormedKey } from '../src/shared/api-key.ts';
import { authenticate } from '../src/gateway/policies/authenticate.ts';
import type { RequestContext } from '../src/gateway/policies/policy.ts';
import type { KeyEntry } from '../src/gateway/snapshot/compiled.ts';
import { openSigningKeyStore } from '../src/gateway/tokens/keystore.ts';
import { verifyDerived } from '../src/gateway/tokens/derived.ts';
import { CredentialRevocations } from '../src/gateway/tokens/revocations.ts';
import { DerivedVerifier, TokenEndpoint } from '../src/gateway/tokens/token-endpoint.ts';

const KEYS = 100_000;
const PROBES = 1024;
const ITERATIONS = 200_000;
const RUNS = 7;

const store = await openSigningKeyStore({ algorithm: 'EdDSA', tokenTtlMs: 300_000 });
const principal = {
  id: 'c',
  disabled: false,
  expiresAt: Infinity,
  role: { name: 'r', permissions: ['invoices:*', 'customers:read'], endpointIds: new Set() },
  allowedIps: undefined,
};
const keys = new Map<string, KeyEntry>();
while (keys.size < KEYS - PROBES) {
  const hash = randomBytes(32).toString('hex');
  keys.set(hash, { principal, hash, expiresAt: Infinity } as unknown as KeyEntry);
}
const probes = Array.from({ length: PROBES }, () => generateKey());
for (const p of probes) keys.set(p.hash, { principal, hash: p.hash, expiresAt: Infinity } as unknown as KeyEntry);

const settings = { maxTtlMs: 3_600_000, maxDepth: 3 };
const endpoint = new TokenEndpoint(keys, store, settings, new DerivedVerifier(keys, store));
const form = (key: string) =>
  new URLSearchParams({
    grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
    subject_token: key,
    subject_token_type: 'urn:ietf:params:oauth:token-type:access_token',
    agent_id: 'agent-42',
    agent_session: 'session-1',
    scope: 'invoices:read',
    expires_in: '900',
  });
const derived = probes.map((p) => String(endpoint.exchange(form(p.key), '127.0.0.1').body.access_token));
const signing = store.current();
const warm = new DerivedVerifier(keys, store);
for (const d of derived) warm.resolve(d);
const inAnHour = new Date(Date.now() + 3_600_000).toISOString();
const revocations = new CredentialRevocations(
  Array.from({ length: 1000 }, (_, i) =>
    i % 2 === 0
      ? { id: `r${i}`, client: 'c', credential: randomBytes(16).toString('base64url'), expiresAt: inAnHour }
      : { id: `r${i}`, client: 'c', agent: `agent-${i}`, issuedBefore: inAnHour, expiresAt: inAnHour },
  ),
);
const warmRevoking = new DerivedVerifier(keys, store, Date.now, revocations);
for (const d of derived) warmRevoking.resolve(d);

const apiKeys = probes.map((p) => p.key);
const ctxFor = (credential: string) =>
  ({ req: { headers: { authorization: `Bearer ${credential}` }, socket: {} } }) as unknown as RequestContext & {
    req: IncomingMessage;
  };
const keyContexts = apiKeys.map(ctxFor);
const derivedContexts = derived.map(ctxFor);
const policyOptions = {
  keys,
  legacyKeys: new Map(),
  legacyKeyHeader: 'x-legacy-key',
  legacyEmailHeader: 'x-legacy-email',
};
const keyPolicy = authenticate(policyOptions);
const derivedPolicy = authenticate({ ...policyOptions, derived: warm });
const forms = apiKeys.map(form);

let sink = 0;
const CASES: ReadonlyArray<readonly [string, (i: number) => void]> = [
  [
    'API key: wellFormed + SHA-256 + Map.get (baseline)',
    (i) => {
      const key = apiKeys[i & (PROBES - 1)]!;
      if (isWellFormedKey(key)) sink += keys.get(hashKey(key)) ? 1 : 0;
    },
  ],
  [
    'derived, cold: HMAC + JSON.parse + Map.get',
    (i) => {
      const claims = verifyDerived(derived[i & (PROBES - 1)]!, signing.kid, signing.secret!);
      sink += claims !== undefined && keys.get(claims.p) ? 1 : 0;
    },
  ],
  [
    'derived, warm: DerivedVerifier.resolve',
    (i) => (sink += 'code' in warm.resolve(derived[i & (PROBES - 1)]!) ? 0 : 1),
  ],
  [
    'derived, warm, 1,000 revocations in force',
    (i) => (sink += 'code' in warmRevoking.resolve(derived[i & (PROBES - 1)]!) ? 0 : 1),
  ],
  ['authenticate policy, API key', (i) => (sink += keyPolicy(keyContexts[i & (PROBES - 1)]!) === undefined ? 1 : 0)],
  [
    'authenticate policy, derived credential',
    (i) => (sink += derivedPolicy(derivedContexts[i & (PROBES - 1)]!) === undefined ? 1 : 0),
  ],
];
const MINT: readonly [string, (i: number) => void] = [
  'mint: TokenEndpoint.exchange from an API key',
  (i) => (sink += endpoint.exchange(forms[i & (PROBES - 1)]!, '127.0.0.1').status),
];

const best = new Map<string, number>();
for (let run = 0; run < RUNS; run++) {
  for (const [name, fn] of [...CASES, MINT]) {
    const n = name.startsWith('mint') ? ITERATIONS / 10 : ITERATIONS;
    const t = performance.now();
    for (let i = 0; i < n; i++) fn(i);
    const ns = ((performance.now() - t) * 1e6) / n;
    best.set(name, Math.min(best.get(name) ?? Infinity, ns));
  }
}
const baseline = best.get(CASES[0]![0])!;
const policyBaseline = best.get('authenticate policy, API key')!;
console.log('| Operation | ns/op | × baseline |\n|---|---:|---:|');
for (const [name, ns] of best) {
  const base = name.startsWith('authenticate') ? policyBaseline : baseline;
  console.log(`| ${name} | ${Math.round(ns)} | ${(ns / base).toFixed(2)} |`);
}
console.log(`\nmint rate: ${Math.round(1e9 / best.get(MINT[0])!).toLocaleString('en')} credentials/s on one core`);
if (sink === 42) console.log('');
store.close();
