/**
 * The data plane's public entry point for code that embeds a gateway: the control plane's cloud gateway and its
 * telemetry. Everything else under src/gateway/ is the gateway's own business; the linter refuses imports of it
 * from src/control/ (eslint.config.js), so that what the control plane relies on is listed here, in one place.
 */
export { createGatewayInstance, type GatewayInstance } from './instance.ts';
export type { NotFoundHint } from './http/server.ts';
export { egressAgent, EgressDeniedError, EgressPolicy, type EgressMode } from './http/egress.ts';
export { explainListenError, ListenError } from './listeners.ts';
export type { CompiledCollection, KeyEntry, RouteTable } from './snapshot/compiled.ts';
export { mergeRouteTables, startCompile, type SnapshotCompilation } from './snapshot/compile.ts';
export { generateSigningKeys, openDistributedKeyStore, type SigningKeyStore } from './tokens/keystore.ts';
export { createMinter } from './tokens/minter.ts';
export { createTelemetryCollector, type TelemetryCollector } from './observability/telemetry.ts';
export {
  type EntityChangesResult,
  EntitySet,
  EntitySets,
  type EntitySetVersion,
} from './policies/resource-policy/entity-sets.ts';
