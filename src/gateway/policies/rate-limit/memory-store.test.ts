import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { describe, it, mock } from 'node:test';
import { setTimeout } from 'node:timers/promises';
import { promisify } from 'node:util';
import { createMemoryStore } from './memory-store.ts';
import { rateLimitStoreContract } from './store-contract.ts';

rateLimitStoreContract('memory', () => createMemoryStore());

const T = 3_600_000 * 470_000;
const MINUTE = 60_000;

describe('memory rate-limit store', () => {
  it('drops keys whose hits no longer weigh and keeps the others on sweep', () => {
    const store = createMemoryStore();
    try {
      store.hit('idle', 10, MINUTE, T);
      store.hit('recent', 10, MINUTE, T + MINUTE + 1);
      store.hit('short', 10, 1_000, T + MINUTE);
      assert.equal(store.size, 3);

      // "short" counted in [T+60s, T+61s) and stops weighing at T+62s; "idle" counted in [T, T+1min) and stops
      // weighing at T+2min; "recent" weighs until T+3min.
      assert.equal(store.sweep(T + 62_000 - 1), 0);
      assert.equal(store.sweep(T + 62_000), 1);
      assert.equal(store.sweep(T + 2 * MINUTE - 1), 0);
      assert.equal(store.sweep(T + 2 * MINUTE), 1);
      assert.equal(store.size, 1);
      assert.equal(store.hit('recent', 10, MINUTE, T + 2 * MINUTE).remaining, 8, 'the kept key keeps its count');
    } finally {
      store.close();
    }
  });

  it('sweeps on its own timer', () => {
    mock.timers.enable({ apis: ['setInterval', 'Date'], now: T });
    const store = createMemoryStore({ sweepIntervalMs: 10_000 });
    try {
      for (let i = 0; i < 1000; i++) store.hit(`key-${i}`, 5, 1_000, T);
      mock.timers.tick(10_000);
      assert.equal(store.size, 0);
    } finally {
      store.close();
      mock.timers.reset();
    }
  });

  it('sweeps more keys than it examines per turn of the event loop', async () => {
    const store = createMemoryStore({ sweepIntervalMs: 5 });
    try {
      for (let i = 0; i < 12_000; i++) store.hit(`key-${i}`, 5, 1_000, T);
      store.hit('active', 5, 1_000);
      const deadline = Date.now() + 5_000;
      while (store.size > 1 && Date.now() < deadline) await setTimeout(5);
      assert.equal(store.size, 1);
      assert.equal(store.hit('active', 5, 1_000).allowed, true);
    } finally {
      store.close();
    }
  });

  it('stops sweeping once closed', () => {
    mock.timers.enable({ apis: ['setInterval', 'Date'], now: T });
    const store = createMemoryStore({ sweepIntervalMs: 10_000 });
    try {
      store.close();
      store.hit('k', 5, 1_000, T);
      mock.timers.tick(60_000);
      assert.equal(store.size, 1);
    } finally {
      mock.timers.reset();
    }
  });

  it('never tracks more than maxKeys, dropping the keys idle longest first', () => {
    const store = createMemoryStore({ maxKeys: 128 });
    try {
      for (let i = 0; i < 128; i++) store.hit(`old-${i}`, 5, MINUTE, T);
      // "old-0" rolls into a new window, which makes it the most recently active key.
      store.hit('old-0', 5, MINUTE, T + MINUTE);
      for (let i = 0; i < 1000; i++) {
        store.hit(`new-${i}`, 5, MINUTE, T + MINUTE);
        assert.ok(store.size <= 128, `size ${store.size}`);
      }
      // The old keys went first, in the order they were last active.
      assert.equal(store.hit('old-1', 5, MINUTE, T + MINUTE).remaining, 4, 'old-1 was dropped and starts afresh');
    } finally {
      store.close();
    }
  });

  it('keeps a key that rolled into a new window over keys that did not', () => {
    const store = createMemoryStore({ maxKeys: 64 });
    try {
      for (let i = 0; i < 64; i++) store.hit(`k-${i}`, 5, MINUTE, T);
      store.hit('k-0', 5, MINUTE, T + MINUTE);
      store.hit('k-0', 5, MINUTE, T + MINUTE);
      store.hit('newcomer', 5, MINUTE, T + MINUTE); // evicts one key (ceil(64 / 64)): the front of the order
      assert.equal(store.size, 64);
      assert.equal(store.hit('k-0', 5, MINUTE, T + MINUTE).remaining, 1, 'k-0 kept its two hits of this window');
    } finally {
      store.close();
    }
  });

  it('does not keep the process alive', async () => {
    const url = new URL('./memory-store.ts', import.meta.url).href;
    const script = `import { createMemoryStore } from ${JSON.stringify(url)}; createMemoryStore({ sweepIntervalMs: 50 }).hit('k', 1, 1000);`;
    const started = Date.now();
    await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], { timeout: 10_000 });
    assert.ok(Date.now() - started < 10_000);
  });

  it('refuses a limit or window below 1 as a bug', () => {
    const store = createMemoryStore();
    try {
      assert.throws(() => store.hit('k', 0, MINUTE), RangeError);
      assert.throws(() => store.hit('k', 5, 0), RangeError);
      assert.throws(() => store.hit('k', Number.NaN, MINUTE), RangeError);
    } finally {
      store.close();
    }
  });

  it('refuses invalid options', () => {
    assert.throws(() => createMemoryStore({ maxKeys: 0 }), RangeError);
    assert.throws(() => createMemoryStore({ sweepIntervalMs: 0 }), RangeError);
  });
});
