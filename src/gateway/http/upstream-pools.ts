/**
 * undici connection pools per upstream origin, shared across snapshot versions so a config reload keeps the
 * warm keep-alive connections. Pools no longer referenced after a swap are closed gracefully. With an egress
 * policy, every pool connects through the policy's connector, which checks each address it connects to.
 */
import { Pool } from 'undici';
import type { EgressDeniedError, EgressPolicy } from './egress.ts';

export interface PoolSettings {
  origin: string;
  connections: number;
  connectTimeout: number;
}

export class UpstreamPools {
  #pools = new Map<string, Pool>();
  readonly #egress: EgressPolicy | undefined;

  constructor(egress?: EgressPolicy) {
    this.#egress = egress?.restricts ? egress : undefined;
  }

  /**
   * The refusal of an upstream whose host is an IP literal the egress policy refuses; undefined otherwise (host
   * names are checked when they are resolved, at connect time).
   */
  literalRefusal(url: URL): EgressDeniedError | undefined {
    return this.#egress?.literalRefusal(url);
  }

  get(settings: PoolSettings): Pool {
    const id = `${settings.origin} ${settings.connections} ${settings.connectTimeout}`;
    let pool = this.#pools.get(id);
    if (!pool) {
      pool = new Pool(settings.origin, {
        connections: settings.connections,
        connect: this.#egress
          ? this.#egress.connector(settings.origin, settings.connectTimeout)
          : { timeout: settings.connectTimeout },
        keepAliveTimeout: 30_000,
        keepAliveMaxTimeout: 600_000,
        pipelining: 1,
      });
      this.#pools.set(id, pool);
    }
    return pool;
  }

  /** Closes pools not in `inUse` (in-flight requests finish first). */
  retainOnly(inUse: ReadonlySet<Pool>): void {
    for (const [id, pool] of this.#pools) {
      if (!inUse.has(pool)) {
        this.#pools.delete(id);
        pool.close().catch(() => {});
      }
    }
  }

  async close(): Promise<void> {
    const pools = [...this.#pools.values()];
    this.#pools.clear();
    await Promise.allSettled(pools.map((p) => p.close()));
  }
}
