/**
 * Test support: wait for something observable instead of sleeping a fixed time. `eventually` polls a condition
 * until it holds or a deadline passes. Deadlines are generous (10 s by default) because they only cost time when a
 * test fails; a busy machine (CI, a 2-core box running the suite in parallel) must not turn a slow pass into a
 * failure. Where a test asserts a latency (say "within a second"), it should assert on the milliseconds
 * `eventually` resolves with, not rely on the deadline.
 */
import { setTimeout as sleep } from 'node:timers/promises';

/** The deadline of `eventually` when the caller names none. */
export const DEFAULT_DEADLINE_MS = 10_000;

/**
 * Polls `condition` every `intervalMs` (10 ms) until it returns true; resolves with the milliseconds it took.
 * Rejects after `timeoutMs` with `what` did not hold, or with the error the condition threw on its last call.
 */
export async function eventually(
  condition: () => boolean | Promise<boolean>,
  timeoutMs = DEFAULT_DEADLINE_MS,
  what = 'condition',
  intervalMs = 10,
): Promise<number> {
  const started = Date.now();
  await poll(async () => ((await condition()) ? true : undefined), timeoutMs, `${what} did not hold`, intervalMs);
  return Date.now() - started;
}

/**
 * Polls `read` until it returns something other than undefined; resolves with that value. Rejects after
 * `timeoutMs` with `what` did not appear.
 */
export function waitForValue<T>(
  read: () => T | undefined | Promise<T | undefined>,
  timeoutMs = DEFAULT_DEADLINE_MS,
  what = 'value',
  intervalMs = 10,
): Promise<T> {
  return poll(read, timeoutMs, `${what} did not appear`, intervalMs);
}

/** Calls `read` every `intervalMs` until it returns a value; rejects with `failure` after `timeoutMs`. */
async function poll<T>(
  read: () => T | undefined | Promise<T | undefined>,
  timeoutMs: number,
  failure: string,
  intervalMs: number,
): Promise<T> {
  const started = Date.now();
  for (;;) {
    const value = await read();
    if (value !== undefined) return value;
    if (Date.now() - started > timeoutMs) throw new Error(`${failure} within ${timeoutMs} ms`);
    await sleep(intervalMs);
  }
}
