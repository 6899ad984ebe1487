import assert from 'node:assert/strict';
import { closeSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { LogSink } from './log-sink.ts';

describe('the log sink', () => {
  it('writes every line, in order, in batches', async () => {
    const file = join(tmpdir(), `gatehouse-sink-${process.pid}.log`);
    const fd = openSync(file, 'w');
    const sink = new LogSink({ fd, flushMs: 10, maxBatch: 1024 });
    for (let i = 0; i < 5000; i++) sink.write(`{"n":${i}}\n`);
    await sleep(200);
    sink.flushSync();
    closeSync(fd);
    const lines = readFileSync(file, 'utf8').trimEnd().split('\n');
    rmSync(file);
    assert.equal(lines.length, 5000);
    lines.forEach((line, i) => assert.equal(line, `{"n":${i}}`));
  });

  it('keeps multi-byte characters, lines larger than a chunk and the order of everything across reused chunks', async () => {
    const file = join(tmpdir(), `gatehouse-sink-utf8-${process.pid}.log`);
    const fd = openSync(file, 'w');
    const sink = new LogSink({ fd, flushMs: 5, maxBatch: 4096 });
    const expected: string[] = [];
    for (let i = 0; i < 20_000; i++) {
      const line = i % 997 === 0 ? `{"big":"${'ü€😀x'.repeat(1000 + i)}"}` : `{"n":${i},"s":"ä€😀"}`;
      expected.push(line);
      sink.write(`${line}\n`);
      if (i % 5000 === 0) await sleep(20);
    }
    await sleep(300);
    sink.flushSync();
    closeSync(fd);
    const lines = readFileSync(file, 'utf8').trimEnd().split('\n');
    rmSync(file);
    assert.equal(lines.length, expected.length);
    for (let i = 0; i < lines.length; i++) if (lines[i] !== expected[i]) assert.fail(`line ${i} differs`);
    assert.equal(sink.dropped, 0);
  });

  it('writes what is queued synchronously on flushSync (process exit)', () => {
    const file = join(tmpdir(), `gatehouse-sink-sync-${process.pid}.log`);
    const fd = openSync(file, 'w');
    const sink = new LogSink({ fd, flushMs: 60_000 });
    for (let i = 0; i < 100; i++) sink.write(`{"n":${i}}\n`);
    sink.flushSync();
    closeSync(fd);
    const lines = readFileSync(file, 'utf8').trimEnd().split('\n');
    rmSync(file);
    assert.deepEqual(lines, Array.from({ length: 100 }, (_, i) => `{"n":${i}}`));
  });

  it('drops and counts lines past its pending limit instead of growing without bound', () => {
    const sink = new LogSink({ fd: 1, flushMs: 60_000, maxBatch: 1 << 30, maxPending: 100 });
    for (let i = 0; i < 50; i++) sink.write('0123456789\n');
    assert.ok(sink.dropped > 0);
    assert.ok(sink.dropped < 50);
  });
});
