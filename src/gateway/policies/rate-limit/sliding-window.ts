/**
 * The sliding-window counter both rate-limit stores decide with (see `memory-store.ts` for the rule): one key's
 * two fixed-window counts, moved to the window of `now`, and the decision on one more hit. The numbers are kept
 * scaled by the window length so that every comparison is exact in integers.
 */
import type { RateLimitDecision } from '../../../shared/rate-limit-store.ts';

/** One key's state: small, mutable, one shape for all keys. */
export interface Counter {
  /** Start of the current fixed window: a multiple of `windowMs`. */
  start: number;
  windowMs: number;
  /** Allowed hits in the current window (for a shared store: everyone's, as far as this process knows). */
  current: number;
  /** Allowed hits in the window before it. */
  previous: number;
}

/** `limit`, `windowMs` and `cost` come from validated configuration: anything else is a bug. */
export function checkLimit(limit: number, windowMs: number, cost = 1): void {
  if (!(limit >= 1) || !(windowMs >= 1))
    throw new RangeError(`rate limit needs limit >= 1 and windowMs >= 1, got ${limit} per ${windowMs}ms`);
  if (!Number.isInteger(cost) || cost < 1)
    throw new RangeError(`a hit's cost must be a whole number >= 1, got ${cost}`);
}

export function windowStart(windowMs: number, now: number): number {
  return now - (now % windowMs);
}

export function newCounter(windowMs: number, now: number): Counter {
  return { start: windowStart(windowMs, now), windowMs, current: 0, previous: 0 };
}

/**
 * Moves `c` to the window `now` falls in: the current count becomes the previous one when the windows are
 * adjacent, and is forgotten when they are not. A changed `windowMs` starts afresh. A clock stepped back keeps the
 * window it had. Returns whether anything moved.
 */
export function advance(c: Counter, windowMs: number, now: number): boolean {
  const start = windowStart(windowMs, now);
  if (c.windowMs !== windowMs) {
    c.start = start;
    c.windowMs = windowMs;
    c.current = 0;
    c.previous = 0;
    return true;
  }
  if (start <= c.start) return false;
  c.previous = start - c.start === windowMs ? c.current : 0;
  c.current = 0;
  c.start = start;
  return true;
}

/**
 * Decides one hit of weight `cost` on a counter already moved to `now`'s window; an allowed hit is counted `cost`
 * times, a refused one not at all. A cost above the limit never fits: refused, with the delay until the full limit
 * is free again.
 */
export function decide(c: Counter, limit: number, now: number, cost = 1): RateLimitDecision {
  const windowMs = c.windowMs;
  // A clock stepped back keeps the window it had; treat "now" as its start rather than count negative time.
  const elapsed = now > c.start ? now - c.start : 0;
  const left = windowMs - elapsed;
  // Everything scaled by windowMs so the test is exact in integers: previous × left/W + current + 1 ≤ limit.
  const capacity = limit * windowMs;
  const used = c.previous * left + c.current * windowMs;
  const weight = cost * windowMs;

  if (used + weight <= capacity) {
    c.current += cost;
    return {
      allowed: true,
      limit,
      remaining: Math.floor((capacity - used - weight) / windowMs),
      retryAfterMs: 0,
      resetMs: left + windowMs,
    };
  }
  return {
    allowed: false,
    limit,
    remaining: 0,
    retryAfterMs: cost > limit ? Math.max(1, c.current > 0 ? left + windowMs : left) : retryAfter(c, limit, left, cost),
    resetMs: c.current > 0 ? left + windowMs : left,
  };
}

/**
 * Whether a key's hits no longer weigh at `now`, so that dropping it changes nothing: the current window's hits
 * weigh until the end of the next window; with none, the previous window's stop weighing when the current one ends.
 */
export function isSpent(c: Counter, now: number): boolean {
  return now >= c.start + (c.current > 0 ? 2 * c.windowMs : c.windowMs);
}

/**
 * The smallest whole number of ms after which one more hit would be allowed, given that it is refused now. While
 * the current window has room, that is when the previous window's weight has shrunk enough; otherwise it is in the
 * next window, once this window's hits (then the previous ones) weigh little enough.
 */
function retryAfter(c: Counter, limit: number, left: number, cost: number): number {
  const w = c.windowMs;
  const slack = limit - cost - c.current;
  if (slack >= 0 && c.previous > 0) {
    // previous × left' ≤ slack × W  ⇒  left' = ⌊slack × W / previous⌋ (< left, as the hit is refused now).
    const leftNeeded = Math.floor((slack * w) / c.previous);
    if (leftNeeded > 0) return left - leftNeeded;
  }
  // In the next window: current × (W − e) ≤ (limit − cost) × W  ⇒  e = W − ⌊(limit − cost) × W / current⌋.
  const into = c.current > 0 ? Math.max(0, w - Math.floor(((limit - cost) * w) / c.current)) : 0;
  return left + into;
}
