import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { networkInterfaces } from 'node:os';
import { after, before, describe, it } from 'node:test';
import { Pool } from 'undici';
import { EgressDeniedError, EgressPolicy } from './egress.ts';

describe('the egress policy', () => {
  it('in mode any refuses only link-local addresses, however they are written', () => {
    const policy = new EgressPolicy({ mode: 'any', denyLinkLocal: true });
    for (const address of [
      '169.254.169.254',
      '169.254.0.1',
      'fe80::1',
      'fe80::1%eth0',
      '::ffff:169.254.169.254',
      '::ffff:a9fe:a9fe',
      '64:ff9b::a9fe:a9fe',
      '64:ff9b::169.254.169.254',
    ]) {
      assert.equal(policy.check(address, 80), 'a link-local address', address);
    }
    for (const address of ['127.0.0.1', '10.0.0.1', '192.168.1.1', '::1', 'fd00::1', '93.184.216.34'])
      assert.equal(policy.check(address, 80), undefined, address);
  });

  it('allows everything in mode any without link-local denial, and then does not restrict at all', () => {
    const policy = new EgressPolicy({ mode: 'any' });
    assert.equal(policy.restricts, false);
    assert.equal(policy.check('169.254.169.254', 80), undefined);
  });

  it('in mode public refuses loopback, private, shared, reserved and NAT64-wrapped private addresses', () => {
    const policy = new EgressPolicy({ mode: 'public' });
    for (const address of [
      '127.0.0.1',
      '127.9.9.9',
      '0.0.0.0',
      '10.1.2.3',
      '172.16.0.1',
      '172.31.255.255',
      '192.168.0.1',
      '100.64.0.1',
      '169.254.169.254',
      '224.0.0.1',
      '255.255.255.255',
      '::',
      '::1',
      'fd12::1',
      'fe80::1',
      '::ffff:127.0.0.1',
      '::ffff:10.0.0.1',
      '64:ff9b::10.0.0.1',
    ]) {
      assert.equal(policy.check(address, 443), 'not a public address', address);
    }
    for (const address of ['93.184.216.34', '1.1.1.1', '172.32.0.1', '2606:4700:4700::1111', '64:ff9b::5db8:d822'])
      assert.equal(policy.check(address, 443), undefined, address);
  });

  it("refuses the control plane's ports on this machine's own addresses, including ports added later", () => {
    const ports = new Set([8081]);
    const policy = new EgressPolicy({ mode: 'any', localPorts: ports });
    const own = Object.values(networkInterfaces())
      .flat()
      .find((a) => a && !a.internal && a.family === 'IPv4')?.address;
    for (const address of [
      '127.0.0.1',
      '127.0.0.2',
      '0.0.0.0',
      '::1',
      '::',
      '::ffff:127.0.0.1',
      ...(own ? [own] : []),
    ]) {
      assert.match(policy.check(address, 8081) ?? '', /own addresses/, address);
    }
    assert.equal(policy.check('127.0.0.1', 9000), undefined, 'another port on loopback is fine in mode any');
    assert.equal(policy.check('93.184.216.34', 8081), undefined, 'the same port elsewhere is fine');
    ports.add(9444);
    assert.match(policy.check('127.0.0.1', 9444) ?? '', /own addresses/);
  });

  it('refuses an IP-literal URL when compiling, and says nothing about host names (checked when resolved)', () => {
    const policy = new EgressPolicy({ mode: 'any', denyLinkLocal: true, localPorts: new Set([8081]) });
    const refused = policy.literalRefusal(new URL('http://169.254.169.254/latest/meta-data'));
    assert.ok(refused instanceof EgressDeniedError);
    assert.equal(refused.code, 'GH_ERR_UPSTREAM_EGRESS_DENIED');
    assert.equal(refused.port, 80);
    assert.ok(policy.literalRefusal(new URL('http://[::1]:8081')));
    assert.equal(policy.literalRefusal(new URL('http://localhost:8081')), undefined);
    assert.equal(policy.literalRefusal(new URL('https://127.0.0.1')), undefined);
  });

  describe('on real sockets', () => {
    let server: Server;
    let port: number;
    let connections = 0;

    before(async () => {
      server = createServer((_req, res) => res.end('ok'));
      server.on('connection', () => connections++);
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      port = (server.address() as AddressInfo).port;
    });
    after(() => new Promise<void>((r) => server.close(() => r())));

    async function get(policy: EgressPolicy, origin: string): Promise<string> {
      const pool = new Pool(origin, { connect: policy.connector(origin, 2000) });
      try {
        const res = await pool.request({ path: '/', method: 'GET' });
        return await res.body.text();
      } finally {
        await pool.close();
      }
    }

    it('connects where the policy allows', async () => {
      assert.equal(await get(new EgressPolicy({ mode: 'any', denyLinkLocal: true }), `http://localhost:${port}`), 'ok');
    });

    it('refuses a host name that resolves to loopback at connect time, before any connection', async () => {
      const before = connections;
      await assert.rejects(
        get(new EgressPolicy({ mode: 'public' }), `http://localhost:${port}`),
        (error: Error & { code?: string }) => {
          assert.ok(error instanceof EgressDeniedError, String(error));
          assert.equal(error.code, 'GH_ERR_UPSTREAM_EGRESS_DENIED');
          assert.match(error.message, /localhost \(127\.0\.0\.1\) port \d+: not a public address/);
          return true;
        },
      );
      assert.equal(connections, before, 'the upstream saw a connection');
    });

    it('refuses an IP literal at connect time too, so a port bound after compilation is covered', async () => {
      const ports = new Set<number>();
      const policy = new EgressPolicy({ mode: 'any', localPorts: ports });
      ports.add(port);
      const before = connections;
      await assert.rejects(get(policy, `http://127.0.0.1:${port}`), EgressDeniedError);
      assert.equal(connections, before);
    });

    it('answers lookups in both shapes net.connect asks for', async () => {
      const lookup = new EgressPolicy({ mode: 'any', denyLinkLocal: true }).lookup(80);
      const one = await new Promise<unknown[]>((r) => lookup('localhost', { family: 4 }, (...args) => r(args)));
      assert.deepEqual(one, [null, '127.0.0.1', 4]);
      const all = await new Promise<unknown[]>((r) =>
        lookup('localhost', { family: 4, all: true }, (...args) => r(args)),
      );
      assert.deepEqual(all, [null, [{ address: '127.0.0.1', family: 4 }]]);
    });
  });
});
