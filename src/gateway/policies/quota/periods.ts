/**
 * Calendar periods of quotas: the day or month `now` falls in, in an IANA time zone (UTC by default), as its first
 * and last instant and a name (`2026-12-07`, `2026-12`) that every gateway instance derives alike, so that the
 * name keys the shared counter. A day in a time zone with daylight saving time lasts 23 or 25 hours on the days the
 * clocks change; a period begins at local midnight (or, where midnight does not exist that day, the first instant
 * after it).
 *
 * Computing a period costs a few `Intl` calls; `periodClock` remembers the current one until it ends, so a request
 * pays one comparison.
 */

export type PeriodKind = 'daily' | 'monthly';

export interface Period {
  readonly kind: PeriodKind;
  /** `YYYY-MM-DD` (daily) or `YYYY-MM` (monthly), in the time zone. */
  readonly id: string;
  /** First instant (ms since the epoch), inclusive. */
  readonly start: number;
  /** First instant of the next period (ms since the epoch), exclusive. */
  readonly end: number;
}

const formats = new Map<string, Intl.DateTimeFormat>();

function format(timeZone: string): Intl.DateTimeFormat {
  let f = formats.get(timeZone);
  if (f === undefined) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formats.set(timeZone, f);
  }
  return f;
}

/** The wall-clock fields of `t` in `timeZone`. */
function wall(t: number, timeZone: string): { y: number; m: number; d: number; h: number; min: number; s: number } {
  const out = { y: 0, m: 0, d: 0, h: 0, min: 0, s: 0 };
  for (const p of format(timeZone).formatToParts(t)) {
    if (p.type === 'year') out.y = Number(p.value);
    else if (p.type === 'month') out.m = Number(p.value);
    else if (p.type === 'day') out.d = Number(p.value);
    else if (p.type === 'hour') out.h = Number(p.value);
    else if (p.type === 'minute') out.min = Number(p.value);
    else if (p.type === 'second') out.s = Number(p.value);
  }
  return out;
}

/** The zone's offset from UTC at `t`, in ms (local = UTC + offset). */
function offsetAt(t: number, timeZone: string): number {
  const w = wall(t, timeZone);
  const asUtc = Date.UTC(w.y, w.m - 1, w.d, w.h, w.min, w.s);
  return asUtc - (t - (((t % 1000) + 1000) % 1000));
}

/** The instant of local midnight starting the date `y-m-d` (month 1-12; overflowing days and months roll over). */
function midnight(y: number, m: number, d: number, timeZone: string): number {
  if (timeZone === 'UTC') return Date.UTC(y, m - 1, d);
  const local = Date.UTC(y, m - 1, d);
  // Two passes: the offset at the guess, then at the instant it gives (they differ when a clock change lies
  // between the two). Where midnight does not exist that day, this lands within the hour the clocks skip.
  const first = offsetAt(local, timeZone);
  let t = local - first;
  const second = offsetAt(t, timeZone);
  if (second !== first) t = local - second;
  return t;
}

const pad = (n: number, width = 2) => String(n).padStart(width, '0');

/** The period of `kind` that `now` falls in, in `timeZone` (an IANA name; validated by the config schema). */
export function periodOf(kind: PeriodKind, now: number, timeZone = 'UTC'): Period {
  let w: { y: number; m: number; d: number };
  if (timeZone === 'UTC') {
    const date = new Date(now);
    w = { y: date.getUTCFullYear(), m: date.getUTCMonth() + 1, d: date.getUTCDate() };
  } else w = wall(now, timeZone);
  if (kind === 'daily') {
    return {
      kind,
      id: `${pad(w.y, 4)}-${pad(w.m)}-${pad(w.d)}`,
      start: midnight(w.y, w.m, w.d, timeZone),
      end: midnight(w.y, w.m, w.d + 1, timeZone),
    };
  }
  return {
    kind,
    id: `${pad(w.y, 4)}-${pad(w.m)}`,
    start: midnight(w.y, w.m, 1, timeZone),
    end: midnight(w.y, w.m + 1, 1, timeZone),
  };
}

/** The current period of one kind and time zone, recomputed only when `now` leaves it. */
export function periodClock(kind: PeriodKind, timeZone = 'UTC'): (now: number) => Period {
  let current: Period | undefined;
  return function currentPeriod(now: number): Period {
    if (current === undefined || now >= current.end || now < current.start) current = periodOf(kind, now, timeZone);
    return current;
  };
}
