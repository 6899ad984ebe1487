/**
 * The delivery loop shared by the alert webhook and the alert destinations: one run at a time over what is due,
 * a call during a run waits for exactly one more run, and `close` aborts attempts in flight and waits for the end.
 */

/** Retries back off exponentially from `retryBaseMs`, at most 5 minutes. */
export const MAX_RETRY_DELAY_MS = 5 * 60_000;

/** The delay before attempt `attempts + 1`: doubling from `retryBaseMs`, capped, with ±20 % jitter. */
export function retryDelayMs(retryBaseMs: number, attempts: number): number {
  return Math.min(retryBaseMs * 2 ** (attempts - 1), MAX_RETRY_DELAY_MS) * (0.8 + Math.random() * 0.4);
}

export interface DeliveryLoop {
  /** Runs once over what is due (one run at a time: a call during a run waits for one more run). */
  deliver(): Promise<void>;
  /** Aborts attempts in flight and waits for the run to end. */
  close(): Promise<void>;
}

/**
 * Runs `run` on demand, one run at a time. `run` gets the signal that `close` aborts and should stop early on it;
 * a run that rejects is logged through `onError`, never rethrown.
 */
export function createDeliveryLoop(
  run: (signal: AbortSignal) => Promise<void>,
  onError: (err: unknown) => void,
): DeliveryLoop {
  const closing = new AbortController();
  let running: Promise<void> | undefined;
  let again: Promise<void> | undefined;

  function start(): Promise<void> {
    const p = run(closing.signal)
      .catch(onError)
      .finally(() => {
        if (running === p) running = undefined;
      });
    running = p;
    return p;
  }

  return {
    deliver() {
      if (closing.signal.aborted) return Promise.resolve();
      if (again) return again;
      if (!running) return start();
      again = running.then(() => {
        again = undefined;
        return start();
      });
      return again;
    },
    async close() {
      closing.abort();
      await again;
      await running;
    },
  };
}
