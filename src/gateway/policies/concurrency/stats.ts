/**
 * Per-client concurrency figures for the metrics (`gatehouse_concurrency_in_flight`, `…_refused_total`,
 * `…_queued`, `…_queued_total`): plain numbers the policy updates, read by prom-client at scrape time (label
 * children re-hash their labels on every update, which the request path should not pay for).
 */
export interface ClientConcurrency {
  inFlight: number;
  refused: number;
  queued: number;
  queuedTotal: number;
}

export class ConcurrencyStats {
  readonly byClient = new Map<string, ClientConcurrency>();

  of(clientId: string): ClientConcurrency {
    let c = this.byClient.get(clientId);
    if (c === undefined) {
      c = { inFlight: 0, refused: 0, queued: 0, queuedTotal: 0 };
      this.byClient.set(clientId, c);
    }
    return c;
  }
}

/** The process's figures (one metrics registry per process reads them). */
export const concurrencyStats = new ConcurrencyStats();
