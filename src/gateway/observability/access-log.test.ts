import assert from 'node:assert/strict';
import { closeSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import pino from 'pino';
import type { RequestContext } from '../policies/policy.ts';
import { KeyEntry, type Principal } from '../snapshot/compiled.ts';
import { createAccessLog, epochMsDigits, formatMs } from './access-log.ts';
import { LogSink } from './log-sink.ts';

/** The lines an access log writes through a real LogSink into a file. */
function capture(write: (log: NonNullable<ReturnType<typeof createAccessLog>>) => void): Record<string, unknown>[] {
  const file = join(tmpdir(), `gatehouse-access-${process.pid}-${Math.random().toString(36).slice(2)}.log`);
  const fd = openSync(file, 'w');
  const sink = new LogSink({ fd, flushMs: 60_000 });
  const log = createAccessLog(pino({ level: 'info' }, sink))!;
  write(log);
  sink.flushSync();
  closeSync(fd);
  const text = readFileSync(file, 'utf8');
  rmSync(file);
  return text
    .trimEnd()
    .split('\n')
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

function context(key: KeyEntry | undefined): RequestContext {
  return {
    requestId: 'req-1',
    collection: { name: 'orders' },
    endpoint: { template: '/orders/{id}' },
    clientIp: '2001:db8::1',
    principal: key?.principal,
    key,
  } as unknown as RequestContext;
}

describe('the access log', () => {
  it('writes one JSON line per request with id, route, client, key label, status and latency', () => {
    const principal = { id: 'billing-app', kind: 'client' } as Principal;
    const key = new KeyEntry(principal, 'ab'.repeat(32), Infinity, 'label "quoted" \\ ünïcode');
    const lines = capture((log) => {
      log.request(context(key), 'GET', 200, 1.234, undefined);
      log.request(context(key), 'HEAD', 200, 12, undefined);
      log.request(context(undefined), 'GET', 401, 0.5, 'GH_ERR_AUTH_MISSING_KEY');
    });
    assert.equal(lines.length, 3);
    assert.deepEqual(
      { ...lines[0], time: 0, pid: 0 },
      {
        level: 30,
        time: 0,
        pid: 0,
        reqId: 'req-1',
        method: 'GET',
        collection: 'orders',
        route: '/orders/{id}',
        status: 200,
        ms: 1.23,
        clientId: 'billing-app',
        key: 'label "quoted" \\ ünïcode',
        ip: '2001:db8::1',
        msg: 'request',
      },
    );
    assert.equal(lines[1]!.method, 'HEAD', 'the method is part of the cached endpoint segment, per method');
    assert.equal(lines[1]!.ms, 12);
    assert.equal(lines[2]!.code, 'GH_ERR_AUTH_MISSING_KEY');
    assert.equal('clientId' in lines[2]!, false);
    assert.equal(typeof lines[0]!.time, 'number');
  });

  it('writes refusals before routing with their code', () => {
    const [line] = capture((log) =>
      log.event({ reqId: 'r', method: 'GET', status: 404, ms: 0.051, code: 'GH_ERR_ROUTE_NOT_FOUND' }, 'refused'),
    );
    assert.equal(line!.msg, 'refused');
    assert.equal(line!.ms, 0.05);
    assert.equal(line!.code, 'GH_ERR_ROUTE_NOT_FOUND');
  });

  it('formats latency as the JSON number rounded to two decimals', () => {
    for (const ms of [0, 0.004, 0.005, 0.05, 0.25, 0.5, 1, 3.05, 3.5, 3.999, 12, 123.456, 99_999.994, 1e9]) {
      assert.equal(JSON.parse(formatMs(ms)), Math.round(ms * 100) / 100, String(ms));
    }
    assert.equal(formatMs(Number.NaN), 'null');
  });

  it('prints epoch times as String() does, zeros inside included', () => {
    for (const ms of [
      1_796_240_368_123,
      1_796_240_000_001,
      1_796_240_000_000,
      1_000_000,
      999_999,
      0,
      1.5,
      Number.MAX_SAFE_INTEGER,
    ]) {
      assert.equal(epochMsDigits(ms), String(ms));
    }
  });

  it('writes the time of the line', () => {
    const before = Date.now();
    const [line] = capture((log) => log.event({ reqId: 'r', method: 'GET', status: 404, ms: 1 }, 'refused'));
    assert.ok((line!.time as number) >= before && (line!.time as number) <= Date.now(), String(line!.time));
  });
});
