import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { periodClock, periodOf } from './periods.ts';

const iso = (t: number) => new Date(t).toISOString();

describe('calendar periods of quotas', () => {
  it('gives the UTC day and month a moment falls in', () => {
    const now = Date.parse('2026-12-07T13:45:10.123Z');
    const day = periodOf('daily', now);
    assert.deepEqual(
      [day.id, iso(day.start), iso(day.end)],
      ['2026-12-07', '2026-12-07T00:00:00.000Z', '2026-12-08T00:00:00.000Z'],
    );
    const month = periodOf('monthly', now);
    assert.deepEqual(
      [month.id, iso(month.start), iso(month.end)],
      ['2026-12', '2026-12-01T00:00:00.000Z', '2027-01-01T00:00:00.000Z'],
    );
  });

  it('puts midnight itself in the day it starts, and the last millisecond in the day before', () => {
    const midnight = Date.parse('2027-03-01T00:00:00Z');
    assert.equal(periodOf('daily', midnight).id, '2027-03-01');
    assert.equal(periodOf('daily', midnight - 1).id, '2027-02-28');
    assert.equal(periodOf('monthly', midnight - 1).id, '2027-02');
    assert.equal(periodOf('monthly', midnight - 1).end, midnight);
  });

  it('follows a time zone: a Berlin day starts at 23:00 UTC in winter and 22:00 UTC in summer', () => {
    const winter = periodOf('daily', Date.parse('2026-12-07T23:30:00Z'), 'Europe/Berlin');
    assert.deepEqual(
      [winter.id, iso(winter.start), iso(winter.end)],
      ['2026-12-08', '2026-12-07T23:00:00.000Z', '2026-12-08T23:00:00.000Z'],
    );
    const summer = periodOf('daily', Date.parse('2026-07-01T12:00:00Z'), 'Europe/Berlin');
    assert.equal(iso(summer.start), '2026-06-30T22:00:00.000Z');
  });

  it('gives the day the clocks change its 23 or 25 hours', () => {
    const spring = periodOf('daily', Date.parse('2026-03-29T12:00:00Z'), 'Europe/Berlin');
    assert.equal(spring.end - spring.start, 23 * 3_600_000);
    const autumn = periodOf('daily', Date.parse('2026-11-01T12:00:00Z'), 'America/New_York');
    assert.deepEqual([autumn.id, autumn.end - autumn.start], ['2026-11-01', 25 * 3_600_000]);
    assert.equal(iso(autumn.start), '2026-11-01T04:00:00.000Z');
  });

  it('gives a month in a time zone west of UTC, across a year end', () => {
    const m = periodOf('monthly', Date.parse('2027-01-01T03:00:00Z'), 'America/Los_Angeles');
    assert.deepEqual(
      [m.id, iso(m.start), iso(m.end)],
      ['2026-12', '2026-12-01T08:00:00.000Z', '2027-01-01T08:00:00.000Z'],
    );
  });

  it('remembers the current period until it ends', () => {
    const clock = periodClock('daily', 'Asia/Kolkata');
    const a = clock(Date.parse('2026-12-07T10:00:00Z'));
    assert.equal(clock(Date.parse('2026-12-07T18:29:59.999Z')), a);
    const b = clock(Date.parse('2026-12-07T18:30:00Z'));
    assert.equal(b.id, '2026-12-08');
    assert.notEqual(b, a);
  });
});
