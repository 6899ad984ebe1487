/**
 * Reloading the config of a running gateway: SIGHUP and file changes swap the compiled config, a bad file is
 * rejected with a message that says what and where while the old config stays in force, and requests in flight
 * finish on the config they started with.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdir, rename, symlink, writeFile } from 'node:fs/promises';
import { request, type IncomingMessage, type ServerResponse } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import {
  metricValue,
  newKey,
  startGateway,
  startUpstream,
  TOKEN_EXCHANGE,
  waitForLine,
  type GatewayProcess,
  type Upstream,
} from './helpers.ts';

const first = newKey();
const second = newKey();
const third = newKey();

const APPLIED = 'gatehouse_config_reloads_total{result="applied"}';
const REJECTED = 'gatehouse_config_reloads_total{result="rejected"}';

interface Options {
  upstream: string;
  clients: { id: string; hash: string; role?: string }[];
  watch: boolean;
}

function config({ upstream, clients, watch }: Options): Record<string, unknown> {
  return {
    server: { watch },
    tokenExchange: TOKEN_EXCHANGE,
    collections: [
      {
        name: 'orders',
        basePath: '/orders',
        upstream,
        project: 'shop',
        environment: 'PROD',
        endpoints: [
          { method: 'GET', path: '/list', permission: 'orders:read' },
          { method: 'GET', path: '/slow', permission: 'orders:read' },
        ],
      },
    ],
    roles: [{ name: 'reader', permissions: ['orders:read'] }],
    clients: clients.map((c) => ({
      id: c.id,
      role: c.role ?? 'reader',
      environments: ['PROD'],
      projects: ['shop'],
      keys: [{ hash: c.hash }],
    })),
  };
}

describe('reloading the config of a running gateway', () => {
  let upstream: Upstream;
  let other: Upstream;
  /** Watch off: only SIGHUP reloads. */
  let gw: GatewayProcess;
  /** Watch on: file changes reload. */
  let watched: GatewayProcess;
  /** Releases the upstream's held /slow responses. */
  const held: ServerResponse[] = [];

  const slow = (req: IncomingMessage, res: ServerResponse) => {
    if (!req.url!.endsWith('/slow')) return false;
    req.resume();
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write('started;');
    held.push(res);
    return true;
  };

  before(async () => {
    upstream = await startUpstream(slow);
    other = await startUpstream();
    gw = await startGateway(
      config({ upstream: upstream.url, clients: [{ id: 'first', hash: first.hash }], watch: false }),
    );
    watched = await startGateway(
      config({ upstream: upstream.url, clients: [{ id: 'first', hash: first.hash }], watch: true }),
    );
  });

  after(async () => {
    for (const res of held) res.destroy();
    await upstream?.close();
    await other?.close();
    await gw?.stop();
    await watched?.stop();
  });

  const status = async (g: GatewayProcess, key: string, path = '/orders/list') => {
    const res = await fetch(`${g.url}${path}`, { headers: { authorization: `Bearer ${key}` } });
    await res.arrayBuffer();
    return res.status;
  };
  const problemCode = async (g: GatewayProcess, key: string) => {
    const res = await fetch(`${g.url}/orders/list`, { headers: { authorization: `Bearer ${key}` } });
    return `${res.status} ${((await res.json()) as { code?: string }).code}`;
  };

  /** Sends SIGHUP and resolves with the first "config applied" or "config rejected" line that follows. */
  async function hup(g: GatewayProcess): Promise<Record<string, unknown>> {
    const from = g.output.length;
    g.child.kill('SIGHUP');
    return JSON.parse(await waitForLine(g, /"config (applied|rejected)/, from)) as Record<string, unknown>;
  }

  it('swaps the config on SIGHUP: a new key starts working and a removed key gets 401', async () => {
    assert.equal(await status(gw, first.key), 200);
    assert.equal(await status(gw, second.key), 401);
    const applied = await metricValue(gw.opsUrl, APPLIED);

    // With watching off, writing the file alone changes nothing. Nothing happening has no event to wait for, so the
    // watching gateway gets the same change at the same time: once it has applied it, a gateway that watched
    // would have too (on a busy machine both are slow alike). Then it is put back for the tests below.
    const fromWatched = watched.output.length;
    await Promise.all([
      gw.writeConfig(config({ upstream: upstream.url, clients: [{ id: 'second', hash: second.hash }], watch: false })),
      watched.writeConfig(
        config({ upstream: upstream.url, clients: [{ id: 'second', hash: second.hash }], watch: true }),
      ),
    ]);
    await waitForLine(watched, /"config applied"/, fromWatched);
    assert.equal(await status(gw, second.key), 401);
    const back = watched.output.length;
    await watched.writeConfig(
      config({ upstream: upstream.url, clients: [{ id: 'first', hash: first.hash }], watch: true }),
    );
    await waitForLine(watched, /"config applied"/, back);

    const line = await hup(gw);
    assert.equal(line.msg, 'config applied', JSON.stringify(line));
    assert.equal(await status(gw, second.key), 200);
    assert.equal(await problemCode(gw, first.key), '401 GH_ERR_AUTH_INVALID_KEY');
    assert.equal(await metricValue(gw.opsUrl, APPLIED), applied + 1);
  });

  it('rejects a file with an unknown role on SIGHUP, saying which file and field, and keeps the old config', async () => {
    const rejected = await metricValue(gw.opsUrl, REJECTED);
    const applied = await metricValue(gw.opsUrl, APPLIED);
    await gw.writeConfig(
      config({ upstream: upstream.url, clients: [{ id: 'third', hash: third.hash, role: 'nobody' }], watch: false }),
    );

    const line = await hup(gw);
    assert.equal(line.level, 50, JSON.stringify(line));
    const msg = String(line.msg);
    assert.match(msg, /^config rejected, the previous config stays in force/);
    assert.ok(msg.includes(gw.configFile), `the message does not name the file: ${msg}`);
    assert.ok(msg.includes('clients[0].role'), `the message does not name the field: ${msg}`);
    assert.ok(msg.includes('unknown role "nobody"'), msg);
    assert.ok(!/\n\s+at /.test(msg), `a stack trace in the message: ${msg}`);

    assert.equal(await status(gw, second.key), 200, 'the old config is no longer in force');
    assert.equal(await status(gw, third.key), 401);
    assert.equal(await metricValue(gw.opsUrl, REJECTED), rejected + 1);
    assert.equal(await metricValue(gw.opsUrl, APPLIED), applied);
  });

  it('rejects a YAML syntax error on SIGHUP with the file, line and column, and keeps the old config', async () => {
    const rejected = await metricValue(gw.opsUrl, REJECTED);
    await writeFile(
      gw.configFile,
      [
        'tokenExchange:',
        '  issuer: https://gatehouse.test',
        '  audience: e2e-api',
        'clients:',
        '  - id: broken',
        '   role: reader',
        '',
      ].join('\n'),
    );

    const line = await hup(gw);
    const msg = String(line.msg);
    assert.equal(line.level, 50, JSON.stringify(line));
    assert.ok(msg.includes(`${gw.configFile}: invalid YAML at line 6, column`), msg);
    assert.equal(await status(gw, second.key), 200, 'the old config is no longer in force');
    assert.equal(await metricValue(gw.opsUrl, REJECTED), rejected + 1);
  });

  it('rejects on SIGHUP a file above 32 MB, an alias to no anchor and an alias bomb, and keeps serving the old config', async () => {
    const rejected = await metricValue(gw.opsUrl, REJECTED);
    const good = stringify(
      config({ upstream: upstream.url, clients: [{ id: 'third', hash: third.hash }], watch: false }),
    );
    let bomb = 'x-a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n';
    for (const [name, previous] of [
      ['b', 'a'],
      ['c', 'b'],
      ['d', 'c'],
      ['e', 'd'],
      ['f', 'e'],
      ['g', 'f'],
      ['h', 'g'],
      ['i', 'h'],
    ])
      bomb += `x-${name}: &${name} [${Array(9).fill(`*${previous}`).join(', ')}]\n`;
    const cases: [string, string][] = [
      [
        `${good}version: "${'x'.repeat(40 * 2 ** 20)}"\n`,
        `${gw.configFile}: the config file is 40 MB, above the 32 MB limit; put large client sets in clientsFile (NDJSON)`,
      ],
      [good.replace('issuer: https://gatehouse.test', 'issuer: *nope'), `${gw.configFile}: invalid YAML at line `],
      [bomb + good, `${gw.configFile}: invalid YAML: its aliases (*name) expand to more than 1000 copies`],
    ];
    for (const [text, expected] of cases) {
      await writeFile(gw.configFile, text);
      const line = await hup(gw);
      const msg = String(line.msg);
      assert.equal(line.level, 50, JSON.stringify(line).slice(0, 500));
      assert.ok(msg.includes(expected), msg.slice(0, 500));
      assert.ok(!/\n\s+at /.test(msg), `a stack trace in the message: ${msg.slice(0, 500)}`);
      assert.equal(await status(gw, second.key), 200, 'the old config is no longer in force');
      assert.equal(await status(gw, third.key), 401);
    }
    assert.equal(await metricValue(gw.opsUrl, REJECTED), rejected + cases.length);
  });

  it('applies a fixed file after a rejected one', async () => {
    await gw.writeConfig(
      config({
        upstream: upstream.url,
        clients: [
          { id: 'second', hash: second.hash },
          { id: 'third', hash: third.hash },
        ],
        watch: false,
      }),
    );
    const line = await hup(gw);
    assert.equal(line.msg, 'config applied', JSON.stringify(line));
    assert.equal(await status(gw, second.key), 200);
    assert.equal(await status(gw, third.key), 200);
  });

  it('picks up a changed file without a signal when watching', async () => {
    assert.equal(await status(watched, first.key), 200);
    const from = watched.output.length;
    await watched.writeConfig(
      config({ upstream: upstream.url, clients: [{ id: 'second', hash: second.hash }], watch: true }),
    );
    await waitForLine(watched, /"config applied"/, from);
    assert.equal(await status(watched, second.key), 200);
    assert.equal(await status(watched, first.key), 401);
  });

  it('rejects a bad file written to a watched path, and the old config stays in force', async () => {
    const rejected = await metricValue(watched.opsUrl, REJECTED);
    const from = watched.output.length;
    await watched.writeConfig(
      config({ upstream: upstream.url, clients: [{ id: 'third', hash: third.hash, role: 'nobody' }], watch: true }),
    );
    const line = await waitForLine(watched, /"config rejected/, from);
    assert.ok(line.includes('clients[0].role'), line);
    assert.equal(await status(watched, second.key), 200);
    assert.equal(await status(watched, third.key), 401);
    assert.ok((await metricValue(watched.opsUrl, REJECTED)) > rejected);
  });

  it('picks up a file replaced by an atomic rename, as editors save it', async () => {
    const from = watched.output.length;
    const temp = `${watched.configFile}.tmp`;
    await writeFile(
      temp,
      stringify({
        ...config({ upstream: upstream.url, clients: [{ id: 'first', hash: first.hash }], watch: true }),
        server: { watch: true, log: { level: 'info' } },
      }),
    );
    await rename(temp, watched.configFile);
    await waitForLine(watched, /"config applied"/, from);
    assert.equal(await status(watched, first.key), 200);
    assert.equal(await status(watched, second.key), 401);
  });

  it('picks up a Kubernetes ConfigMap update (the file is a symlink through a "..data" directory link that is swapped)', async () => {
    // The layout the kubelet makes: gateway.yaml -> ..data/gateway.yaml, ..data -> ..<timestamp>/.
    const dir = watched.dir;
    const version = async (name: string, c: Record<string, unknown>) => {
      await mkdir(join(dir, name));
      await writeFile(
        join(dir, name, 'gateway.yaml'),
        stringify({ ...c, server: { watch: true, log: { level: 'info' } } }),
      );
    };
    await version(
      '..v1',
      config({ upstream: upstream.url, clients: [{ id: 'first', hash: first.hash }], watch: true }),
    );
    await symlink('..v1', join(dir, '..data'));
    await symlink('..data/gateway.yaml', join(dir, 'gateway.yaml.link'));
    await rename(join(dir, 'gateway.yaml.link'), watched.configFile);
    // Same content: nothing to apply, so no event to wait for, and no pause needed: should the watcher's reload of
    // this swap run late, it finds the update below and applies it, which the wait below accepts as well.
    assert.equal(await status(watched, first.key), 200);

    // The update: a new timestamped directory, then "..data" swapped to it by renaming a fresh link over it.
    const from = watched.output.length;
    await version(
      '..v2',
      config({ upstream: upstream.url, clients: [{ id: 'third', hash: third.hash }], watch: true }),
    );
    await symlink('..v2', join(dir, '..data_tmp'));
    await rename(join(dir, '..data_tmp'), join(dir, '..data'));
    await waitForLine(watched, /"config (applied|rejected)/, from);
    assert.equal(await status(watched, third.key), 200);
    assert.equal(await status(watched, first.key), 401);
  });

  it(
    'lets a request in flight during a reload complete with 200, while new requests see the new config',
    { timeout: 15_000 },
    async () => {
      const before = held.length;
      const req = request({
        host: '127.0.0.1',
        port: gw.port,
        path: '/orders/slow',
        agent: false,
        headers: { authorization: `Bearer ${third.key}` },
      });
      req.end();
      const [res] = (await once(req, 'response')) as [IncomingMessage];
      assert.equal(res.statusCode, 200);
      res.setEncoding('utf8');
      let body = '';
      res.on('data', (chunk: string) => (body += chunk));
      const ended = once(res, 'end');
      while (held.length === before) await new Promise((r) => setTimeout(r, 10));

      // The reload removes the caller's key and moves the collection to another upstream: the old pool closes.
      await gw.writeConfig(
        config({ upstream: other.url, clients: [{ id: 'second', hash: second.hash }], watch: false }),
      );
      const line = await hup(gw);
      assert.equal(line.msg, 'config applied', JSON.stringify(line));
      assert.equal(await status(gw, third.key), 401);
      const moved = await fetch(`${gw.url}/orders/list`, { headers: { authorization: `Bearer ${second.key}` } });
      assert.equal(moved.status, 200);
      assert.equal(((await moved.json()) as { url: string }).url, '/list');
      assert.equal(other.requests.length, 1, 'the new upstream did not get the new request');

      held.at(-1)!.end('finished');
      await ended;
      assert.equal(body, 'started;finished');
      assert.equal(res.complete, true);
    },
  );
});
