/**
 * Test support: is a real service (PostgreSQL, Redis) there? A busy machine can take seconds to accept a
 * connection, so one short attempt is not an answer: `probeService` retries with exponential back-off until the
 * deadline (30 s by default, `GATEHOUSE_TEST_PROBE_DEADLINE_MS` to change it) and only then declares the service
 * absent. A service that answers costs one attempt; only an absent one costs the whole deadline.
 */
import { setTimeout as sleep } from 'node:timers/promises';

export interface ProbeOptions {
  /** How long to keep trying before declaring the service absent; default 30 000 ms or `GATEHOUSE_TEST_PROBE_DEADLINE_MS`. */
  deadlineMs?: number;
  /** The first pause between attempts; it doubles after each failure up to `maxDelayMs`. Default 100 ms. */
  initialDelayMs?: number;
  /** The longest pause between attempts. Default 2 000 ms. */
  maxDelayMs?: number;
}

/** The deadline of a probe when the caller names none. */
export function defaultProbeDeadlineMs(): number {
  const configured = Number(process.env.GATEHOUSE_TEST_PROBE_DEADLINE_MS);
  return Number.isFinite(configured) && configured >= 0 ? configured : 30_000;
}

/**
 * Calls `attempt` until it resolves or the deadline passes. `attempt` receives how long it may take (its own
 * connection timeout: the time left, at most 10 s) and should connect, ask something trivial and disconnect.
 * Resolves undefined when the service answered, else with why not: the last error, then how many attempts were made
 * on `name` and for how long.
 */
export async function probeService(
  name: string,
  attempt: (timeoutMs: number) => Promise<void>,
  options: ProbeOptions = {},
): Promise<string | undefined> {
  const deadlineMs = options.deadlineMs ?? defaultProbeDeadlineMs();
  const maxDelayMs = options.maxDelayMs ?? 2_000;
  let delayMs = options.initialDelayMs ?? 100;
  const started = Date.now();
  let attempts = 0;
  for (;;) {
    attempts++;
    const left = started + deadlineMs - Date.now();
    try {
      await attempt(Math.max(1_000, Math.min(10_000, left)));
      return undefined;
    } catch (error) {
      const elapsed = Date.now() - started;
      if (elapsed >= deadlineMs) {
        const e = error as NodeJS.ErrnoException;
        const why = e?.message || e?.code || String(error);
        return `${why} (${name} probed ${attempts} time${attempts === 1 ? '' : 's'} in ${(elapsed / 1000).toFixed(1)} s)`;
      }
      await sleep(Math.min(delayMs, deadlineMs - elapsed));
      delayMs = Math.min(maxDelayMs, delayMs * 2);
    }
  }
}
