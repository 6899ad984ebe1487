/**
 * Turns store changes into served configuration. `changed(workspace)` recompiles that workspace's snapshots,
 * records every scope whose content hash changed as its next version (kept for deltas and edge sync), and hands
 * the cloud scopes to the cloud gateway; it resolves once the cloud gateway serves the result, so an admin API
 * call that awaits it returns only when its change is enforced. Calls for one workspace coalesce: a change that
 * arrives while a compile runs triggers exactly one more compile.
 */
import type { Logger } from 'pino';
import { type SigningKeys, type Snapshot, type TokenExchange } from '../config/schema.ts';
import { generateSigningKeys } from '../gateway/index.ts';
import { canonicalJson, encodeSnapshot, snapshotHash } from '../config/snapshot-encoding.ts';
import type { CloudGateway } from './cloud-gateway.ts';
import type { EntityFeed } from './entity-feed.ts';
import { compileWorkspace, type TenantTokenSettings, type WorkspaceState } from './compile/compile.ts';
import { nowIso } from './ids.ts';
import { currentSigningKeys, signingKeysSetting } from './signing-keys.ts';
import type { CollectionVersionRecord, Store, StoreOps } from './store/store.ts';
import { StoreConflictError } from './store/store.ts';

/** Snapshots kept per scope (for deltas to gateways that are a few versions behind). */
const KEEP_SNAPSHOTS = 20;

export interface PublisherOptions {
  store: Store;
  cloud: CloudGateway;
  logger: Logger;
  /** Token-exchange settings of every scope but the issuer, which is each workspace environment's own. */
  tokenExchange: TenantTokenSettings;
  /** The cloud gateway's base URL, which every environment's issuer starts with (see `tenantIssuer`). */
  issuerBase: string;
  /** Relationship data: the cloud gateway's entity sets are brought up to date before a snapshot naming them. */
  entities?: Pick<EntityFeed, 'prepareCloud'>;
  now?: () => number;
}

export interface PublishedScope {
  scope: string;
  version: number;
  hash: string;
  snapshot: Snapshot;
}

export class Publisher {
  readonly #options: PublisherOptions;
  readonly #running = new Map<string, Promise<void>>();
  readonly #pending = new Map<string, Promise<void>>();
  /** Scopes whose snapshot the cloud gateway holds, per workspace. */
  readonly #cloudScopes = new Map<string, Set<string>>();
  /**
   * Per scope, the version this process last handed on (to the cloud gateway or the edge streams). With several
   * replicas, another one may have recorded a version first: it is new here all the same.
   */
  readonly #handedOn = new Map<string, string>();
  readonly #listeners = new Set<(scopes: readonly PublishedScope[]) => void>();

  constructor(options: PublisherOptions) {
    this.#options = options;
  }

  /** Called with the scopes that got a new version (edge sync subscribes here). */
  onPublish(listener: (scopes: readonly PublishedScope[]) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Compiles every workspace (at start). */
  async publishAll(): Promise<void> {
    for (const ws of await this.#options.store.listWorkspaces()) await this.changed(ws.id);
  }

  changed(workspaceId: string): Promise<void> {
    const pending = this.#pending.get(workspaceId);
    if (pending) return pending; // a compile is already queued behind the running one: it will see this change
    const running = this.#running.get(workspaceId);
    if (!running) return this.#start(workspaceId);
    const next = running
      .catch(() => {})
      .then(() => {
        this.#pending.delete(workspaceId);
        return this.#start(workspaceId);
      });
    this.#pending.set(workspaceId, next);
    return next;
  }

  #start(workspaceId: string): Promise<void> {
    const run = this.#publish(workspaceId).finally(() => {
      if (this.#running.get(workspaceId) === run) this.#running.delete(workspaceId);
    });
    this.#running.set(workspaceId, run);
    return run;
  }

  async #publish(workspaceId: string): Promise<void> {
    const { store, logger } = this.#options;
    const now = this.#options.now?.() ?? Date.now();
    const state = await loadState(store, workspaceId, now);
    const previousCloud = this.#cloudScopes.get(workspaceId) ?? new Set<string>();
    const cloudChanges = new Map<string, Snapshot | undefined>();
    const published: PublishedScope[] = [];

    if (state) {
      const edgeGateways: Record<string, string[]> = {};
      for (const g of await store.listGateways(workspaceId)) (edgeGateways[g.environment] ??= []).push(g.name);
      const signingKeys: Record<string, SigningKeys> = {};
      for (const environment of state.workspace.environments)
        signingKeys[environment] = await tenantSigningKeys(
          store,
          workspaceId,
          environment,
          this.#options.tokenExchange.algorithm,
          now,
        );
      const scopes = compileWorkspace(state, {
        tokenExchange: this.#options.tokenExchange,
        issuerBase: this.#options.issuerBase,
        now,
        edgeGateways,
        signingKeys,
      });
      for (const [scope, snapshot] of scopes) {
        const record = await recordSnapshot(store, scope, snapshot, now);
        const versioned = { ...snapshot, version: record.version };
        const handed = `${record.version}#${record.hash}`;
        const isNew = record.created || this.#handedOn.get(scope) !== handed;
        this.#handedOn.set(scope, handed);
        if (isNew) published.push({ scope, version: record.version, hash: record.hash, snapshot: versioned });
        if (scope.endsWith('/cloud') && (isNew || !previousCloud.has(scope))) cloudChanges.set(scope, versioned);
      }
      const cloudNow = new Set([...scopes.keys()].filter((s) => s.endsWith('/cloud')));
      for (const gone of previousCloud) if (!cloudNow.has(gone)) cloudChanges.set(gone, undefined);
      this.#cloudScopes.set(workspaceId, cloudNow);
    } else {
      for (const gone of previousCloud) cloudChanges.set(gone, undefined);
      this.#cloudScopes.delete(workspaceId);
    }

    if (cloudChanges.size) {
      const sets = new Set<string>();
      for (const snapshot of cloudChanges.values())
        for (const set of Object.values(snapshot?.entitySets ?? {})) sets.add(set);
      await this.#options.entities?.prepareCloud(sets);
      const result = await this.#options.cloud.update(cloudChanges);
      if (!result.applied)
        logger.error(
          { workspace: workspaceId, error: result.error },
          'the cloud gateway rejected a compiled snapshot; it keeps the previous one',
        );
      else
        logger.info(
          {
            workspace: workspaceId,
            scopes: [...cloudChanges.keys()],
            versions: published.map((p) => `${p.scope}@${p.version}`),
          },
          'cloud gateway updated',
        );
    }
    for (const listener of this.#listeners) listener(published);
  }
}

/**
 * The token-signing keys of a workspace environment (a tenant): generated once and kept in the store's settings
 * (`signing-keys:<workspace id>/<environment>`), so that every control-plane replica, the cloud gateway and each
 * edge gateway of the environment sign with the same keys. Created in a transaction, so that concurrent replicas
 * agree on one set. A set of another algorithm than the configured one is replaced (tokens it signed stop
 * verifying). Rotation is not done yet: the set is a list so that an old key can stay published after it.
 */
export async function tenantSigningKeys(
  store: Store,
  workspaceId: string,
  environment: string,
  algorithm: TokenExchange['algorithm'],
  now = Date.now(),
): Promise<SigningKeys> {
  const name = signingKeysSetting(workspaceId, environment);
  const usable = (keys: SigningKeys | undefined) =>
    keys && keys.keys.find((k) => k.kid === keys.active)?.alg === algorithm ? keys : undefined;
  return store.transaction(async (tx) => {
    // Keys retired by a rotation are dropped once their tokens have expired.
    const stored = usable((await currentSigningKeys(tx, workspaceId, environment, now)).keys);
    if (stored) return stored;
    const fresh = await generateSigningKeys(algorithm);
    await tx.setSetting(name, JSON.stringify(fresh));
    return fresh;
  });
}

/** Reads everything one workspace's snapshots are made of; undefined when the workspace is gone. */
export async function loadState(
  store: StoreOps,
  workspaceId: string,
  now = Date.now(),
): Promise<WorkspaceState | undefined> {
  const workspace = await store.getWorkspace({ id: workspaceId });
  if (!workspace) return undefined;
  const collections = await store.listCollections(workspaceId);
  const published = new Map<string, CollectionVersionRecord>();
  for (const c of collections) {
    if (!c.publishedVersion) continue;
    const v = await store.getCollectionVersion(c.id, c.publishedVersion);
    if (v) published.set(c.id, v);
  }
  return {
    workspace,
    collections,
    published,
    roles: await store.listRoles(workspaceId),
    clients: await store.listClients(workspaceId),
    keys: await store.listWorkspaceKeys(workspaceId),
    revocations: await store.listDerivedRevocations(workspaceId, { now: nowIso(now) }),
  };
}

/** Stores the snapshot as the scope's next version unless its content equals the newest one. */
async function recordSnapshot(
  store: Store,
  scope: string,
  snapshot: Snapshot,
  now: number,
): Promise<{ version: number; hash: string; created: boolean }> {
  const hash = snapshotHash(snapshot);
  for (let attempt = 0; ; attempt++) {
    const latest = await store.getLatestSnapshot(scope);
    if (latest?.hash === hash) return { version: latest.version, hash, created: false };
    const version = (latest?.version ?? 0) + 1;
    try {
      await store.insertSnapshot({
        scope,
        version,
        hash,
        body: canonicalJson(encodeSnapshot({ ...snapshot, version })),
        createdAt: nowIso(now),
      });
    } catch (error) {
      // Another control-plane replica recorded this version first: look again.
      if (error instanceof StoreConflictError && attempt < 5) continue;
      throw error;
    }
    await store.pruneSnapshots(scope, KEEP_SNAPSHOTS);
    return { version, hash, created: true };
  }
}
