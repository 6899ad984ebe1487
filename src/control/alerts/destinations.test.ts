/** A destination's webhook call under the control plane's egress policy, against real loopback servers. */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { egressAgent, EgressPolicy } from '../../gateway/index.ts';
import { postSigned } from './destinations.ts';

function listen(): Promise<{ server: Server; port: number; hits: number[] }> {
  const hits: number[] = [];
  const server = createServer((req, res) => {
    hits.push(Date.now());
    req.resume();
    res.statusCode = 204;
    res.end();
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve({ server, port: (server.address() as AddressInfo).port, hits })),
  );
}

describe('alert destinations under the egress policy', () => {
  let control: Awaited<ReturnType<typeof listen>>;
  let receiver: Awaited<ReturnType<typeof listen>>;
  let agent: ReturnType<typeof egressAgent>;

  before(async () => {
    control = await listen(); // stands for one of the control plane's own listeners
    receiver = await listen();
    agent = egressAgent(new EgressPolicy({ mode: 'any', denyLinkLocal: true, localPorts: new Set([control.port]) }));
  });
  after(async () => {
    await agent.close();
    control.server.close();
    receiver.server.close();
  });

  const post = (url: string) =>
    postSigned({ url, secret: 'whsec_test' }, '{}', {
      deliveryId: 'dlv_1',
      now: Date.now(),
      timeoutMs: 2_000,
      dispatcher: agent,
    });

  it("refuses the control plane's own ports, by address and by name, without connecting", async () => {
    for (const host of ['127.0.0.1', 'localhost']) {
      const outcome = await post(`http://${host}:${control.port}/api/v1/workspaces`);
      assert.equal(outcome.ok, false);
      assert.match(
        outcome.error!,
        new RegExp(
          `^not attempted: the egress policy refuses .*port ${control.port}: one of this machine's own addresses, on a port of the control plane \\(the control plane's egress policy, --cloud-egress, applies to alert destinations too\\)$`,
        ),
      );
    }
    assert.equal(control.hits.length, 0, 'nothing reached the control-plane port');
  });

  it('refuses link-local addresses (cloud metadata services)', async () => {
    const outcome = await post('http://169.254.169.254/latest/meta-data/');
    assert.equal(outcome.ok, false);
    assert.match(
      outcome.error!,
      /^not attempted: the egress policy refuses 169\.254\.169\.254 port 80: a link-local address/,
    );
  });

  it('delivers to any other address the policy allows', async () => {
    const outcome = await post(`http://127.0.0.1:${receiver.port}/hook`);
    assert.deepEqual({ ok: outcome.ok, status: outcome.status }, { ok: true, status: 204 });
    assert.equal(receiver.hits.length, 1);
  });
});
