/**
 * Rotation of a workspace environment's token-signing keys. The control plane owns them (one set per workspace
 * environment, in the store's settings, shared by the cloud gateway and every edge instance of the environment).
 * Rotating makes a new key active at once; the previous keys stay published in the JWKS until every token they
 * signed has expired (token lifetime + one minute of clock skew), then a later compile drops them.
 */
import { type SigningKeys, SigningKeysSchema, type TokenExchange } from '../config/schema.ts';
import { generateSigningKeys } from '../gateway/index.ts';
import { nowIso } from './ids.ts';
import type { StoreOps } from './store/store.ts';

const SKEW_MS = 60_000;
const MAX_KEYS = 16;

export function signingKeysSetting(workspaceId: string, environment: string): string {
  return `signing-keys:${workspaceId}/${environment}`;
}

/** kid → when the key stops being published (ISO), for the keys that are no longer active. */
function retiringSetting(workspaceId: string, environment: string): string {
  return `signing-keys-retiring:${workspaceId}/${environment}`;
}

function parse(text: string | undefined): SigningKeys | undefined {
  if (text === undefined) return undefined;
  try {
    const parsed = SigningKeysSchema.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

function parseRetiring(text: string | undefined): Record<string, string> {
  try {
    const value = text === undefined ? {} : (JSON.parse(text) as unknown);
    return value && typeof value === 'object' ? (value as Record<string, string>) : {};
  } catch {
    return {};
  }
}

export interface RotationResult {
  active: string;
  /** Keys still published, with when each stops being published (absent for the active one). */
  keys: { kid: string; alg: string; retiresAt?: string }[];
}

/** Makes a new key active; the old ones stay published until their tokens have expired. Call inside a transaction. */
export async function rotateSigningKeys(
  tx: StoreOps,
  workspaceId: string,
  environment: string,
  settings: Pick<TokenExchange, 'algorithm' | 'ttl'>,
  now: number,
): Promise<RotationResult> {
  const current = parse(await tx.getSetting(signingKeysSetting(workspaceId, environment)));
  const retiring = parseRetiring(await tx.getSetting(retiringSetting(workspaceId, environment)));
  const fresh = await generateSigningKeys(settings.algorithm);
  const until = nowIso(now + settings.ttl + SKEW_MS);
  const kept = (current?.keys ?? []).filter(
    (k) => k.kid === current?.active || (retiring[k.kid] !== undefined && Date.parse(retiring[k.kid]!) > now),
  );
  if (current) retiring[current.active] = until;
  const keys = [...fresh.keys, ...kept].slice(0, MAX_KEYS);
  const next: SigningKeys = { active: fresh.active, keys };
  const published = Object.fromEntries(Object.entries(retiring).filter(([kid]) => keys.some((k) => k.kid === kid)));
  await tx.setSetting(signingKeysSetting(workspaceId, environment), JSON.stringify(next));
  await tx.setSetting(retiringSetting(workspaceId, environment), JSON.stringify(published));
  return describe(next, published);
}

/** The keys in force, without the ones whose tokens have all expired (dropped from the store too). */
export async function currentSigningKeys(
  tx: StoreOps,
  workspaceId: string,
  environment: string,
  now: number,
): Promise<{ keys: SigningKeys | undefined; retiring: Record<string, string> }> {
  const keys = parse(await tx.getSetting(signingKeysSetting(workspaceId, environment)));
  const retiring = parseRetiring(await tx.getSetting(retiringSetting(workspaceId, environment)));
  if (!keys) return { keys, retiring };
  const live = keys.keys.filter(
    (k) => k.kid === keys.active || retiring[k.kid] === undefined || Date.parse(retiring[k.kid]!) > now,
  );
  if (live.length === keys.keys.length) return { keys, retiring };
  const next = { active: keys.active, keys: live };
  const published = Object.fromEntries(Object.entries(retiring).filter(([kid]) => live.some((k) => k.kid === kid)));
  await tx.setSetting(signingKeysSetting(workspaceId, environment), JSON.stringify(next));
  await tx.setSetting(retiringSetting(workspaceId, environment), JSON.stringify(published));
  return { keys: next, retiring: published };
}

export function describe(keys: SigningKeys, retiring: Record<string, string>): RotationResult {
  return {
    active: keys.active,
    keys: keys.keys.map((k) => ({
      kid: k.kid,
      alg: k.alg,
      ...(k.kid !== keys.active && retiring[k.kid] ? { retiresAt: retiring[k.kid] } : {}),
    })),
  };
}
