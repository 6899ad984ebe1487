/**
 * The probe of a real service: it keeps trying with back-off until the deadline, so a service that is slow to come
 * up on a busy machine is found, and only one that never answers is declared absent — with why.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, createServer, type AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { defaultProbeDeadlineMs, probeService } from './probe.ts';

/** Connects to a loopback port and hangs up; rejects with the connection error. */
async function tcpAttempt(port: number, timeoutMs: number): Promise<void> {
  const socket = connect({ port, host: '127.0.0.1', timeout: timeoutMs });
  try {
    await once(socket, 'connect');
  } finally {
    socket.destroy();
  }
}

async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  server.close();
  await once(server, 'close');
  return port;
}

describe('probeService', () => {
  it('answers at the first attempt when the service is there', async () => {
    const server = createServer((s) => s.destroy()).listen(0, '127.0.0.1');
    await once(server, 'listening');
    let attempts = 0;
    try {
      const why = await probeService(
        'TCP',
        (timeoutMs) => (attempts++, tcpAttempt((server.address() as AddressInfo).port, timeoutMs)),
        { deadlineMs: 5_000 },
      );
      assert.equal(why, undefined);
      assert.equal(attempts, 1);
    } finally {
      server.close();
    }
  });

  it('finds a service that starts listening only after a few seconds (a busy machine), instead of declaring it absent', async () => {
    const port = await freePort();
    const server = createServer((s) => s.destroy());
    // The service comes up late: this timer is the scenario, not a wait for the code under test.
    const late = sleep(2_000).then(() => server.listen(port, '127.0.0.1'));
    let attempts = 0;
    try {
      const why = await probeService('TCP', (timeoutMs) => (attempts++, tcpAttempt(port, timeoutMs)), {
        deadlineMs: 30_000,
      });
      assert.equal(why, undefined);
      assert.ok(attempts > 1, `${attempts} attempts`);
    } finally {
      await late;
      server.close();
    }
  });

  it('declares a service that never answers absent after the deadline, with the last error and how long it tried', async () => {
    const port = await freePort();
    const times: number[] = [];
    const started = Date.now();
    const why = await probeService(
      'TCP',
      (timeoutMs) => (times.push(Date.now() - started), tcpAttempt(port, timeoutMs)),
      { deadlineMs: 1_500, initialDelayMs: 100 },
    );
    const elapsed = Date.now() - started;
    assert.match(why ?? '', /ECONNREFUSED.*\(TCP probed \d+ times in \d+\.\d s\)$/);
    assert.ok(elapsed < 1_500 + 1_000, `gave up after ${elapsed} ms`);
    assert.ok(times.length >= 3, `${times.length} attempts`);
    // The pauses grow (the last one is cut short by the deadline, so it is left out).
    const gaps = times.slice(1, -1).map((t, i) => t - times[i]!);
    assert.ok(
      gaps.every((gap, i) => i === 0 || gap >= gaps[i - 1]!),
      `the pauses grow: ${gaps.join(', ')} ms`,
    );
  });

  it('takes its default deadline from GATEHOUSE_TEST_PROBE_DEADLINE_MS, else 30 s', () => {
    const saved = process.env.GATEHOUSE_TEST_PROBE_DEADLINE_MS;
    try {
      delete process.env.GATEHOUSE_TEST_PROBE_DEADLINE_MS;
      assert.equal(defaultProbeDeadlineMs(), 30_000);
      process.env.GATEHOUSE_TEST_PROBE_DEADLINE_MS = '2000';
      assert.equal(defaultProbeDeadlineMs(), 2_000);
      process.env.GATEHOUSE_TEST_PROBE_DEADLINE_MS = 'soon';
      assert.equal(defaultProbeDeadlineMs(), 30_000);
    } finally {
      if (saved === undefined) delete process.env.GATEHOUSE_TEST_PROBE_DEADLINE_MS;
      else process.env.GATEHOUSE_TEST_PROBE_DEADLINE_MS = saved;
    }
  });
});
