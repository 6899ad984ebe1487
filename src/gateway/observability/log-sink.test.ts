import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, constants, openSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { eventually } from '../../testing/eventually.ts';
import { LogSink } from './log-sink.ts';

describe('the log sink', () => {
  it('writes every line, in order, in batches', async () => {
    const file = join(tmpdir(), `gatehouse-sink-${process.pid}.log`);
    const fd = openSync(file, 'w');
    const sink = new LogSink({ fd, flushMs: 10, maxBatch: 1024 });
    let bytes = 0;
    for (let i = 0; i < 5000; i++) {
      sink.write(`{"n":${i}}\n`);
      bytes += Buffer.byteLength(`{"n":${i}}\n`);
    }
    // The batches are written in the background: wait until all of them landed (flushSync would race a write in flight).
    await eventually(() => statSync(file).size === bytes, 10_000, 'every batch written');
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
      // Let the flush timer run between bursts, so chunks are written and reused while lines keep coming.
      if (i % 5000 === 0) await sleep(20);
    }
    const bytes = expected.reduce((sum, line) => sum + Buffer.byteLength(`${line}\n`), 0);
    // Wait until the background writes landed (flushSync would race a write in flight).
    await eventually(() => statSync(file).size === bytes, 10_000, 'every chunk written');
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
    assert.deepEqual(
      lines,
      Array.from({ length: 100 }, (_, i) => `{"n":${i}}`),
    );
  });

  it('holds a bounded number of chunk buffers while its output is stuck (a pipe nobody reads)', async () => {
    const fifo = join(tmpdir(), `gatehouse-sink-fifo-${process.pid}`);
    execFileSync('mkfifo', [fifo]);
    // Read-write and non-blocking: the open does not wait for a reader, and once the pipe's buffer is full every
    // write fails with EAGAIN, like a stdout whose log collector stopped reading.
    const fd = openSync(fifo, constants.O_RDWR | constants.O_NONBLOCK);
    const sink = new LogSink({ fd, flushMs: 5, maxPending: 1 << 30 });
    const before = process.memoryUsage().arrayBuffers;
    for (let tick = 0; tick < 60; tick++) {
      for (let i = 0; i < 40; i++) sink.write(`{"tick":${tick},"i":${i},"pad":"${'x'.repeat(100)}"}\n`);
      // A tick of the flush timer between bursts: the scenario, not a wait; fewer ticks on a busy machine only mean
      // fewer writes attempted, which the bound holds for as well.
      await sleep(5);
    }
    const grown = process.memoryUsage().arrayBuffers - before;
    sink.flushSync = () => {}; // nothing can be written at the end either
    closeSync(fd);
    rmSync(fifo, { force: true });
    // 60 ticks of ~5 KB each: with a new 256 KiB chunk per tick this grew by ~15 MB.
    assert.ok(grown < 3 * 1024 * 1024, `array buffers grew by ${grown} bytes`);
  });

  it('drops and counts lines past its pending limit instead of growing without bound', () => {
    const sink = new LogSink({ fd: 1, flushMs: 60_000, maxBatch: 1 << 30, maxPending: 100 });
    for (let i = 0; i < 50; i++) sink.write('0123456789\n');
    assert.ok(sink.dropped > 0);
    assert.ok(sink.dropped < 50);
  });
});
