/**
 * `gatehouse <noun> <verb>` against a real control plane: the CLI as a user runs it (child processes, exit codes,
 * what is printed) talking to a real `gatehouse control start` process. A token is printed once and never again;
 * what the CLI does is what the admin API then enforces; `collection apply` is idempotent.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer } from 'node:http';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { startControlPlane, type AdminApi, type ControlProcess } from './control-helpers.ts';
import { runCli, type CliResult } from './helpers.ts';

/** A line that looks like a stack frame ("    at fn (file:1:2)"). */
const STACK_FRAME = /^\s+at .+/m;
const TOKEN = /ghk_[A-Za-z0-9]{38}/g;
const DEV = '/workspaces/default/environments/DEV';

function collection(name: string, overrides: Record<string, unknown> = {}) {
  return {
    name,
    basePath: `/${name}`,
    // Durations as a person writes them: the CLI must not mistake the stored milliseconds for a change.
    upstream: { url: `http://127.0.0.1:9/${name}`, connectTimeout: '2s' },
    project: 'default',
    rateLimits: { client: { limit: 100, window: '1m' } },
    endpoints: [{ method: 'GET', path: '/items', permission: `${name}:read` }],
    ...overrides,
  };
}

describe('gatehouse CLI against a control plane', () => {
  let cp: ControlProcess;
  let admin: AdminApi;
  let dir: string;
  /** Runs the CLI with GATEHOUSE_URL and GATEHOUSE_TOKEN of the control plane (override with `env`). */
  let gh: (args: string[], env?: Record<string, string | undefined>) => Promise<CliResult>;
  const me = (token: string) => fetch(`${cp.adminUrl}/api/v1/me`, { headers: { authorization: `Bearer ${token}` } });
  const file = async (name: string, content: unknown) => {
    const path = join(dir, name);
    await writeFile(path, name.endsWith('.json') ? JSON.stringify(content) : stringify(content));
    return path;
  };

  before(async () => {
    cp = await startControlPlane();
    admin = cp.api();
    dir = await mkdtemp(join(tmpdir(), 'gatehouse-cli-control-'));
    gh = (args, env = {}) =>
      runCli(args, {
        env: { GATEHOUSE_URL: cp.adminUrl, GATEHOUSE_TOKEN: cp.token, GATEHOUSE_WORKSPACE: undefined, ...env },
      });
  });
  after(async () => {
    await cp?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  describe('roles and clients', () => {
    let clientId: string;
    let token: string;

    it('role create makes a role that role list shows', async () => {
      const created = await gh([
        'role',
        'create',
        '--name',
        'deployer',
        '--permission',
        'admin:collections:read,admin:clients:read',
        '--permission',
        'orders:read',
        '--description',
        'CI',
      ]);
      assert.equal(created.code, 0, created.stderr);
      assert.match(
        created.stdout,
        /Created role "deployer" \(rol_\w+\) in workspace default with permissions admin:collections:read, admin:clients:read, orders:read/,
      );
      const list = await gh(['role', 'list']);
      assert.equal(list.code, 0, list.stderr);
      assert.match(list.stdout, /^NAME\s+PERMISSIONS\s+ENDPOINTS\s+DESCRIPTION$/m);
      assert.match(list.stdout, /^deployer\s+admin:collections:read,admin:clients:read,orders:read\s+0\s+CI$/m);
    });

    it('client create prints the token once, with the warning to store it now', async () => {
      const { code, stdout, stderr } = await gh([
        'client',
        'create',
        '--name',
        'ci',
        '--role',
        'deployer',
        '--env',
        'DEV,TEST',
        '--project',
        'default',
        '--allow-ip',
        '127.0.0.1/32,::1/128',
        '--user-id',
        'u-1',
      ]);
      assert.equal(code, 0, stderr);
      const tokens = stdout.match(TOKEN) ?? [];
      assert.equal(tokens.length, 1, stdout);
      token = tokens[0]!;
      clientId = /\((cli_\w+)\)/.exec(stdout)![1]!;
      assert.match(stdout, /store it now, it is not shown again/);
      assert.match(stdout, /environments\s+DEV, TEST/);
      assert.match(stdout, /allowed IPs\s+127\.0\.0\.1\/32, ::1\/128/);
    });

    it('client list shows the client but never its token', async () => {
      const { code, stdout, stderr } = await gh(['client', 'list']);
      assert.equal(code, 0, stderr);
      assert.match(stdout, /^ID\s+NAME\s+ROLE\s+ENVIRONMENTS\s+PROJECTS\s+STATUS\s+LAST USED$/m);
      assert.match(
        stdout,
        new RegExp(`^${clientId}\\s+ci\\s+deployer\\s+DEV,TEST\\s+default\\s+active\\s+never$`, 'm'),
      );
      assert.doesNotMatch(stdout, TOKEN);
      const json = await gh(['client', 'list', '--json']);
      assert.equal(json.code, 0, json.stderr);
      const items = JSON.parse(json.stdout) as { id: string; name: string }[];
      assert.ok(Array.isArray(items));
      assert.ok(items.some((c) => c.id === clientId && c.name === 'ci'));
      assert.doesNotMatch(json.stdout, TOKEN);
    });

    it('the printed token authenticates against the admin API, and scopes the CLI to its own rights', async () => {
      const res = await me(token);
      assert.equal(res.status, 200);
      const body = (await res.json()) as { id: string; environments: string[] };
      assert.equal(body.id, clientId);
      assert.deepEqual(body.environments, ['DEV', 'TEST']);
      // The role reads clients but may not create them: the admin API's refusal, exit 2.
      const refused = await gh(
        ['client', 'create', '--name', 'x', '--role', 'deployer', '--env', 'DEV', '--project', 'default'],
        { GATEHOUSE_TOKEN: token },
      );
      assert.equal(refused.code, 2);
      assert.match(refused.stderr, /^gatehouse: this caller's role does not grant admin:clients:write/);
      // --token overrides the environment.
      const list = await gh(['client', 'list', '--token', token], { GATEHOUSE_TOKEN: 'ghk_wrong' });
      assert.equal(list.code, 0, list.stderr);
    });

    it('client regenerate prints a new token; the old one is refused at once and the new one works', async () => {
      const { code, stdout, stderr } = await gh(['client', 'regenerate', clientId]);
      assert.equal(code, 0, stderr);
      const tokens = stdout.match(TOKEN) ?? [];
      assert.equal(tokens.length, 1, stdout);
      assert.notEqual(tokens[0], token);
      assert.match(stdout, /previous token no longer works/);
      assert.match(stdout, /store it now, it is not shown again/);
      assert.equal((await me(token)).status, 401);
      token = tokens[0]!;
      assert.equal((await me(token)).status, 200);
    });

    it('client regenerate --grace-period keeps the old token working, and --json prints {client, token}', async () => {
      const { code, stdout, stderr } = await gh(['client', 'regenerate', clientId, '--grace-period', '1h', '--json']);
      assert.equal(code, 0, stderr);
      const answer = JSON.parse(stdout) as { client: { id: string; keys: { expiresAt?: string }[] }; token: string };
      assert.equal(answer.client.id, clientId);
      assert.match(answer.token, /^ghk_/);
      assert.ok(answer.client.keys.some((k) => k.expiresAt));
      assert.equal((await me(token)).status, 200, 'the old token works during the grace period');
      assert.equal((await me(answer.token)).status, 200);
      token = answer.token;
    });

    it('client delete: every token of the client is refused at once', async () => {
      const { code, stdout, stderr } = await gh(['client', 'delete', clientId]);
      assert.equal(code, 0, stderr);
      assert.match(stdout, new RegExp(`Deleted API client ${clientId}`));
      assert.equal((await me(token)).status, 401);
      const list = await gh(['client', 'list', '--json']);
      assert.ok(!(JSON.parse(list.stdout) as { id: string }[]).some((c) => c.id === clientId));
      const again = await gh(['client', 'delete', clientId]);
      assert.equal(again.code, 2);
      assert.match(again.stderr, /^gatehouse: API client "cli_\w+" not found$/m);
    });

    it('client create --json prints the admin API answer', async () => {
      const { code, stdout, stderr } = await gh([
        'client',
        'create',
        '--name',
        'script',
        '--role',
        'deployer',
        '--env',
        'DEV',
        '--project',
        '*',
        '--json',
      ]);
      assert.equal(code, 0, stderr);
      const answer = JSON.parse(stdout) as { client: { name: string; projects: string[] }; token: string };
      assert.equal(answer.client.name, 'script');
      assert.deepEqual(answer.client.projects, ['*']);
      assert.equal((await me(answer.token)).status, 200);
    });
  });

  describe('mistakes', () => {
    it('a missing flag names the command and the flag, exit 2', async () => {
      const { code, stdout, stderr } = await gh([
        'client',
        'create',
        '--role',
        'deployer',
        '--env',
        'DEV',
        '--project',
        'default',
      ]);
      assert.equal(code, 2);
      assert.equal(stdout, '');
      assert.equal(stderr, 'gatehouse: client create: --name is required\n');
    });

    it('a bad flag value is refused naming the flag and the value, not the body field', async () => {
      const { code, stderr } = await gh([
        'client',
        'create',
        '--name',
        'x',
        '--role',
        'deployer',
        '--env',
        'DEV,prod',
        '--project',
        'default',
      ]);
      assert.equal(code, 2);
      assert.match(
        stderr,
        /^gatehouse: client create: --env: must be an upper-case environment name such as DEV, TEST or PROD \(got "prod"\)$/m,
      );
      const grace = await gh(['client', 'regenerate', 'cli_whatever1', '--grace-period', 'soon']);
      assert.equal(grace.code, 2);
      assert.match(grace.stderr, /^gatehouse: client regenerate: --grace-period: invalid duration "soon"/);
    });

    it('an admin API refusal prints its detail in terms of the flag, exit 2, no stack trace', async () => {
      const { code, stderr } = await gh([
        'client',
        'create',
        '--name',
        'x',
        '--role',
        'nope',
        '--env',
        'DEV',
        '--project',
        'default',
      ]);
      assert.equal(code, 2);
      assert.equal(stderr, 'gatehouse: client create: --role: unknown role "nope"\n');
      const env = await gh(['collection', 'list', '--env', 'STAGING']);
      assert.equal(env.code, 2);
      assert.equal(env.stderr, 'gatehouse: environment "STAGING" not found\n');
    });

    it('a wrong token is refused with the admin API reason, exit 2', async () => {
      const { code, stderr } = await gh(['role', 'list'], { GATEHOUSE_TOKEN: 'not-a-token' });
      assert.equal(code, 2);
      assert.match(stderr, /^gatehouse: the token is malformed/);
      const none = await gh(['role', 'list'], { GATEHOUSE_TOKEN: undefined });
      assert.equal(none.code, 2);
      assert.equal(none.stderr, 'gatehouse: role list: no API client token: set GATEHOUSE_TOKEN (or pass --token)\n');
    });

    it('an unreachable control plane says where it looked and what to start, exit 2', async () => {
      const probe = createServer();
      await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
      const port = (probe.address() as AddressInfo).port;
      await new Promise<void>((r) => probe.close(() => r()));
      const { code, stdout, stderr } = await gh(['client', 'list'], { GATEHOUSE_URL: `http://127.0.0.1:${port}` });
      assert.equal(code, 2);
      assert.equal(stdout, '');
      assert.match(
        stderr,
        new RegExp(
          `^gatehouse: cannot reach the control plane at http://127\\.0\\.0\\.1:${port}: is \`gatehouse control start\` running\\? \\(ECONNREFUSED\\)$`,
          'm',
        ),
      );
      assert.doesNotMatch(stderr, STACK_FRAME);
    });

    it('a control plane failure (5xx) exits 1 with the request id; a server that is not one exits 2', async () => {
      const fake = createHttpServer((req, res) => {
        req.resume();
        if (req.url === '/api/v1/me') {
          const body = JSON.stringify({
            code: 'GH_ERR_GATEWAY_INTERNAL',
            status: 500,
            detail: 'an internal error occurred; it is logged under this request id',
          });
          res.writeHead(500, { 'content-type': 'application/problem+json', 'x-request-id': 'req-1234' }).end(body);
        } else {
          res.writeHead(404, { 'content-type': 'text/html' }).end('<h1>nope</h1>');
        }
      });
      await new Promise<void>((r) => fake.listen(0, '127.0.0.1', r));
      const url = `http://127.0.0.1:${(fake.address() as AddressInfo).port}`;
      try {
        const failed = await gh(['client', 'list'], { GATEHOUSE_URL: url });
        assert.equal(failed.code, 1);
        assert.equal(
          failed.stderr,
          'gatehouse: the control plane failed on GET /api/v1/me: an internal error occurred; it is logged under this request id (request id req-1234)\n',
        );
        const other = await gh(['client', 'list', '--workspace', 'default'], { GATEHOUSE_URL: url });
        assert.equal(other.code, 2);
        assert.equal(
          other.stderr,
          `gatehouse: ${url} answered 404 Not Found to GET /api/v1/workspaces/default/clients: is --url the admin API of a Gatehouse control plane?\n`,
        );
      } finally {
        await new Promise<void>((r) => fake.close(() => r()));
      }
    });

    it('a workspace the token cannot see is "not found"', async () => {
      const { code, stderr } = await gh(['role', 'list', '--workspace', 'elsewhere']);
      assert.equal(code, 2);
      assert.equal(stderr, 'gatehouse: workspace "elsewhere" not found\n');
    });
  });

  describe('collections', () => {
    const versions = async (name: string) =>
      ((await admin.get(`${DEV}/collections/${name}/versions`)).body as { items: unknown[] }).items.length;

    it('collection create makes a draft from a file; collection list shows it', async () => {
      const path = await file('single.json', collection('legacy'));
      const created = await gh(['collection', 'create', '--env', 'DEV', '-f', path]);
      assert.equal(created.code, 0, created.stderr);
      assert.match(
        created.stdout,
        /Created collection "legacy" \(col_\w+\) in DEV of workspace default: a draft until published/,
      );
      const list = await gh(['collection', 'list', '--env', 'DEV']);
      assert.equal(list.code, 0, list.stderr);
      assert.match(list.stdout, /^legacy\s+default\s+\/legacy\s+http:\/\/127\.0\.0\.1:9\/legacy\s+cloud\s+1\s+draft$/m);
      const json = await gh(['collection', 'list', '--env', 'DEV', '--json']);
      assert.deepEqual(
        (JSON.parse(json.stdout) as { name: string }[]).map((c) => c.name),
        ['legacy'],
      );
    });

    it('collection create with a bad file names the file and the field, exit 2', async () => {
      const path = await file('bad-single.yaml', collection('x', { basePath: 'no-slash' }));
      const { code, stderr } = await gh(['collection', 'create', '--env', 'DEV', '-f', path]);
      assert.equal(code, 2);
      assert.equal(
        stderr,
        `gatehouse: ${path}: basePath: must be "/" or literal segments such as "/billing/v1", without a trailing "/"\n`,
      );
    });

    it('collection apply creates and publishes, then a second apply changes nothing', async () => {
      const path = await file('apply.yaml', {
        environment: 'DEV',
        collections: [collection('billing'), collection('orders'), collection('users')],
      });
      const first = await gh(['collection', 'apply', '-f', path]);
      assert.equal(first.code, 0, first.stderr);
      for (const name of ['billing', 'orders', 'users']) {
        assert.match(first.stdout, new RegExp(`^  created ${name}$`, 'm'));
        assert.match(first.stdout, new RegExp(`^  published ${name} v1$`, 'm'));
      }
      assert.match(first.stdout, /^ {2}kept legacy \(not in the file; set prune: true to delete it\)$/m);
      assert.match(first.stdout, /Summary: 3 created, 0 updated, 3 published, 0 deleted, 0 unchanged$/m);

      const second = await gh(['collection', 'apply', '-f', path]);
      assert.equal(second.code, 0, second.stderr);
      assert.match(
        second.stdout,
        /Summary: 0 created, 0 updated, 0 published, 0 deleted, 3 unchanged: nothing to change$/m,
      );
      for (const name of ['billing', 'orders', 'users'])
        assert.match(second.stdout, new RegExp(`^  unchanged ${name}$`, 'm'));
      for (const name of ['billing', 'orders', 'users'])
        assert.equal(await versions(name), 1, `${name} got a new version`);
      const orders = await admin.get(`${DEV}/collections/orders`);
      assert.equal(orders.body.revision, 1, 'the second apply wrote the draft');
    });

    it('collection apply --dry-run shows the plan for an edited file without writing; apply then updates and publishes v2', async () => {
      const edited = collection('orders', {
        endpoints: [...collection('orders').endpoints, { method: 'POST', path: '/items', permission: 'orders:write' }],
      });
      const path = await file('apply-edited.yaml', {
        environment: 'DEV',
        collections: [collection('billing'), edited, collection('users')],
      });

      const human = await gh(['collection', 'apply', '-f', path, '--dry-run']);
      assert.equal(human.code, 0, human.stderr);
      assert.match(human.stdout, /: nothing is written$/m);
      assert.match(human.stdout, /^ {2}would update orders\n {2}would publish orders v2$/m);
      assert.match(human.stdout, /^Summary \(dry run\): 0 created, 1 updated, 1 published, 0 deleted, 2 unchanged$/m);

      const plan = await gh(['collection', 'apply', '-f', path, '--dry-run', '--json']);
      assert.equal(plan.code, 0, plan.stderr);
      assert.deepEqual(JSON.parse(plan.stdout), {
        workspace: 'default',
        environment: 'DEV',
        dryRun: true,
        created: [],
        updated: ['orders'],
        published: [{ name: 'orders', version: 2 }],
        deleted: [],
        unchanged: ['billing', 'users'],
        kept: ['legacy'],
      });
      assert.equal((await admin.get(`${DEV}/collections/orders`)).body.revision, 1, 'the dry run wrote');
      assert.equal(await versions('orders'), 1);

      const applied = await gh(['collection', 'apply', '-f', path]);
      assert.equal(applied.code, 0, applied.stderr);
      assert.match(applied.stdout, /^ {2}updated orders\n {2}published orders v2$/m);
      assert.match(applied.stdout, /Summary: 0 created, 1 updated, 1 published, 0 deleted, 2 unchanged$/m);
      const orders = await admin.get(`${DEV}/collections/orders`);
      assert.equal(orders.body.publishedVersion, 2);
      assert.equal(orders.body.endpoints.length, 2);
    });

    it('collection apply resets a draft edited elsewhere to the file, and prune deletes what the file omits', async () => {
      // Someone edits the draft of billing through the admin API; the file still says the old thing.
      const put = await admin.put(`${DEV}/collections/billing`, collection('billing', { basePath: '/billing-v2' }));
      assert.equal(put.status, 200, JSON.stringify(put.body));
      const path = await file('apply-prune.json', {
        environment: 'DEV',
        prune: true,
        collections: [collection('billing'), collection('users')],
      });
      const { code, stdout, stderr } = await gh(['collection', 'apply', '-f', path, '--json']);
      assert.equal(code, 0, stderr);
      const result = JSON.parse(stdout) as Record<string, unknown>;
      // The draft goes back to the file's content, which equals the published v1: nothing new to publish.
      assert.deepEqual(result.updated, ['billing']);
      assert.deepEqual(result.published, []);
      assert.deepEqual(result.unchanged, ['users']);
      assert.deepEqual((result.deleted as string[]).toSorted(), ['legacy', 'orders']);
      assert.equal((await admin.get(`${DEV}/collections/orders`)).status, 404);
      assert.equal((await admin.get(`${DEV}/collections/billing`)).body.unpublishedChanges, false);
      assert.equal(await versions('billing'), 1);
    });

    it('collection apply with publish: false leaves drafts unpublished', async () => {
      const path = await file('apply-draft.yaml', {
        environment: 'DEV',
        publish: false,
        collections: [collection('billing'), collection('users'), collection('drafts')],
      });
      const { code, stdout, stderr } = await gh(['collection', 'apply', '-f', path]);
      assert.equal(code, 0, stderr);
      assert.match(stdout, /^ {2}created drafts$/m);
      assert.doesNotMatch(stdout, /^ {2}published/m);
      const list = await gh(['collection', 'list', '--env', 'DEV']);
      assert.match(list.stdout, /^drafts\s.*\sdraft$/m);
    });

    it('a bad apply file is refused before any request, naming the file and the field path, exit 2', async () => {
      const path = await file('bad.yaml', {
        environment: 'dev',
        collections: [
          collection('ok'),
          collection('bad', { endpoints: [{ method: 'FETCH', path: '/x', permission: 'x' }] }),
        ],
      });
      const { code, stdout, stderr } = await gh(['collection', 'apply', '-f', path]);
      assert.equal(code, 2);
      assert.equal(stdout, '');
      assert.match(stderr, new RegExp(`^gatehouse: ${path}: environment: must be an upper-case environment name`, 'm'));
      assert.match(stderr, new RegExp(`^${path}: collections\\[1\\]\\.endpoints\\[0\\]\\.method: `, 'm'));
      assert.doesNotMatch(stderr, STACK_FRAME);
      assert.equal((await admin.get(`${DEV}/collections/ok`)).status, 404);

      const dup = await file('dup.yaml', { environment: 'DEV', collections: [collection('ok'), collection('ok')] });
      const twice = await gh(['collection', 'apply', '-f', dup]);
      assert.equal(twice.code, 2);
      assert.equal(
        twice.stderr,
        `gatehouse: ${dup}: collections[1].name: "ok" is listed twice (also collections[0])\n`,
      );

      const noFile = await gh(['collection', 'apply']);
      assert.equal(noFile.code, 2);
      assert.equal(noFile.stderr, 'gatehouse: collection apply: -f FILE is required\n');

      const missing = await gh(['collection', 'apply', '-f', join(dir, 'nope.yaml')]);
      assert.equal(missing.code, 2);
      assert.match(missing.stderr, /nope\.yaml: cannot read the config file \(ENOENT\)/);
    });

    it('an apply the admin API refuses names the collection and the step', async () => {
      // Two collections on one base path: the second create is refused (409).
      const path = await file('clash.yaml', {
        environment: 'DEV',
        collections: [
          collection('billing'),
          collection('users'),
          collection('drafts'),
          collection('clash', { basePath: '/users' }),
        ],
      });
      const { code, stderr } = await gh(['collection', 'apply', '-f', path]);
      assert.equal(code, 2);
      assert.match(
        stderr,
        /^gatehouse: creating collection "clash": body\.basePath: "\/users" is already served by collection "users" on the same gateway$/m,
      );
    });
  });
});
