/**
 * The generated admin commands as a user runs them (child processes against a real `gatehouse control start`):
 * help at every level with an example, suggestions for mistypes, exit codes, `--output json` for every command that
 * only reads, the commands the hand-written CLI lacked (publish and roll back, deployment target, disable and
 * enable a client, update and delete a role), and the local recovery of a lost installation admin token.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { adminCommands } from '../src/cli/admin/commands.ts';
import { LOCAL_COMMANDS } from '../src/cli/registry.ts';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { probePostgres, TEST_DATABASE_URL } from '../src/testing/postgres.ts';
import { eventually, startControlPlane, type ControlProcess } from './control-helpers.ts';
import { REPO_ROOT, runCli, startUpstream, type CliResult, type Upstream } from './helpers.ts';

const STACK_FRAME = /^\s+at .+/m;
const TOKEN = /ghk_[A-Za-z0-9]{38}/g;

/** Runs `jobs` at most `width` at a time (each job spawns a process; the machine is shared). */
async function pool<T>(jobs: (() => Promise<T>)[], width = 4): Promise<T[]> {
  const results: T[] = new Array(jobs.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < jobs.length) {
        const i = next++;
        results[i] = await jobs[i]!();
      }
    }),
  );
  return results;
}

/**
 * Runs `gatehouse ARGS…` on a pseudo-terminal (util-linux `script`), as a person at a terminal would; standard
 * output and error arrive together. Undefined where `script` is missing.
 */
function onTerminal(args: string[], env: Record<string, string | undefined> = {}): Promise<string> | undefined {
  if (!existsSync('/usr/bin/script')) return undefined;
  const quote = (a: string) => `'${a.replace(/'/g, "'\\''")}'`;
  const command = [process.execPath, join(REPO_ROOT, 'src/cli/main.ts'), ...args].map(quote).join(' ');
  const vars = { ...process.env, CI: undefined, NO_COLOR: undefined, FORCE_COLOR: undefined, ...env };
  return new Promise((resolve, reject) =>
    execFile(
      '/usr/bin/script',
      ['-qec', command, '/dev/null'],
      { env: vars, cwd: REPO_ROOT, timeout: 60_000 },
      (error, stdout) =>
        error && error.code !== 0 && typeof error.code !== 'number' ? reject(error) : resolve(stdout),
    ),
  );
}

const names = [...LOCAL_COMMANDS.map((c) => c.name), ...adminCommands().map((c) => c.name)];
const nouns = [...new Set(names.map((n) => n.split(' ')[0]!))];

/**
 * util-linux script(1) gives the CLI a pseudo-terminal (Debian's bsdutils, essential, so always there). Without it
 * the terminal-only output cannot be checked: a skip on a developer's machine, a failure under CI.
 */
function noTerminal(t: { skip(message: string): void }): void {
  const why = 'no util-linux script(1) for a pseudo-terminal (apt-get install bsdutils)';
  if (process.env.CI) throw new Error(why);
  t.skip(why);
}

describe('gatehouse help', () => {
  // Every command's help is checked in-process (src/cli/help.test.ts); here each noun and one command of each,
  // through the real entry point.
  it('every noun answers `gatehouse <noun> --help` with its commands, and a command of it its --help with an example', async () => {
    const jobs = nouns.flatMap((noun) => {
      const first = names.find((n) => n.split(' ')[0] === noun && n.includes(' ')) ?? noun;
      return [() => runCli([noun, '--help']), () => runCli([...first.split(' '), '--help'])];
    });
    const results = await pool(jobs);
    nouns.forEach((noun, i) => {
      const [nounHelp, commandHelp] = [results[2 * i]!, results[2 * i + 1]!];
      assert.equal(nounHelp.code, 0, `${noun}: ${nounHelp.stderr}`);
      for (const name of names.filter((n) => n.split(' ')[0] === noun))
        assert.ok(nounHelp.stdout.includes(name), `${noun} --help lacks ${name}:\n${nounHelp.stdout}`);
      assert.equal(commandHelp.code, 0, commandHelp.stderr);
      assert.match(commandHelp.stdout, /^Usage: gatehouse /);
      assert.match(commandHelp.stdout, /^Examples:\n {2}.*gatehouse /m, `${noun}: no example`);
      assert.match(commandHelp.stdout, /^Exit codes: 0 done; 1 failure/m);
    });
    const helpNoun = await runCli(['help', 'client']);
    assert.equal(helpNoun.code, 0);
    assert.equal(helpNoun.stdout, results[nouns.indexOf('client') * 2]!.stdout);
  });

  it('`gatehouse help <noun> <verb>` is the command’s --help', async () => {
    const [a, b] = await Promise.all([runCli(['help', 'client', 'create']), runCli(['client', 'create', '-h'])]);
    assert.equal(a.code, 0);
    assert.equal(a.stdout, b.stdout);
    assert.match(a.stdout, /--env ENV\[,ENV\] +environments/);
  });

  it('a mistyped command or option is answered with the nearest one, exit 2', async () => {
    const cases: [string[], RegExp][] = [
      [['client', 'lst'], /^gatehouse: unknown command "client lst": did you mean "client list"\?$/m],
      [['colection', 'list'], /^gatehouse: unknown command "colection list": did you mean "collection list"\?$/m],
      [['gatway'], /^gatehouse: unknown command "gatway": did you mean "gateway"\?$/m],
      [
        ['collection', 'list', '--env', 'DEV', '--projet', 'x'],
        /^gatehouse: collection list: Unknown option '--projet': did you mean --project\?$/m,
      ],
      [
        ['gateway', 'run', '--confg', 'x.yaml'],
        /^gatehouse: gateway run: Unknown option '--confg': did you mean --config\?$/m,
      ],
      [
        ['client', 'update', 'cli_x', '--status', 'disabeld'],
        /^gatehouse: client update: --status: must be one of active, disabled; did you mean disabled\? \(got "disabeld"\)$/m,
      ],
    ];
    const results = await pool(
      cases.map(
        ([args]) =>
          () =>
            runCli(args, { env: { GATEHOUSE_TOKEN: 'ghk_x' } }),
      ),
    );
    cases.forEach(([args, expected], i) => {
      const r = results[i]!;
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, expected);
      assert.doesNotMatch(r.stderr, STACK_FRAME);
    });
  });

  it('colours headings only on a terminal, and not with NO_COLOR', async (t) => {
    const tty = onTerminal(['client', 'create', '--help']);
    if (!tty) return noTerminal(t);
    assert.ok((await tty).includes('\x1b[1mOptions:'), 'no bold heading on a terminal');
    assert.ok(
      !(await onTerminal(['client', 'create', '--help'], { NO_COLOR: '1' }))!.includes('\x1b['),
      'colour with NO_COLOR',
    );
    const piped = await runCli(['client', 'create', '--help'], {
      env: { NO_COLOR: undefined, FORCE_COLOR: undefined },
    });
    assert.ok(!piped.stdout.includes('\x1b['), 'colour into a pipe');
  });

  it('a noun without a verb says which commands it has, exit 2', async () => {
    const r = await runCli(['role']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^gatehouse: role: which command\?/);
    assert.match(r.stderr, /^ {2}role update +change a client role/m);
  });
});

describe('generated admin commands against a control plane', () => {
  let cp: ControlProcess;
  let dir: string;
  let gh: (args: string[], env?: Record<string, string | undefined>) => Promise<CliResult>;
  const ok = async (args: string[]) => {
    const r = await gh(args);
    assert.equal(r.code, 0, `${args.join(' ')}:\n${r.stdout}${r.stderr}`);
    return r.stdout;
  };

  before(async () => {
    cp = await startControlPlane();
    dir = await mkdtemp(join(tmpdir(), 'gatehouse-cli-admin-'));
    gh = (args, env = {}) =>
      runCli(args, {
        env: {
          GATEHOUSE_URL: cp.adminUrl,
          GATEHOUSE_TOKEN: cp.token,
          GATEHOUSE_WORKSPACE: undefined,
          NO_COLOR: '1',
          ...env,
        },
      });
  });
  after(async () => {
    await cp?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('every command that only reads prints JSON with --output json, and a table or lines by default', async () => {
    const readers = adminCommands().filter(
      (c) => c.operation.method === 'GET' && c.positionals.every((p) => !p.required),
    );
    assert.ok(readers.length >= 12, readers.map((c) => c.name).join(', '));
    const args = (c: (typeof readers)[number]) => [
      ...c.name.split(' '),
      ...(c.flags.some((f) => f.name === 'env') ? ['--env', 'DEV'] : []),
    ];
    const json = await pool(readers.map((c) => () => gh([...args(c), '--output', 'json'])));
    readers.forEach((c, i) => {
      assert.equal(json[i]!.code, 0, `${c.name}: ${json[i]!.stderr}`);
      const value = JSON.parse(json[i]!.stdout) as unknown;
      if (c.operation.list) assert.ok(Array.isArray(value), `${c.name} --output json is not the items array`);
    });
    // The default is for people (a few of them: each run is a process on a shared machine).
    const some = readers.filter((c) =>
      ['auth whoami', 'workspace list', 'project list', 'signing-key list', 'alert list'].includes(c.name),
    );
    const human = await pool(some.map((c) => () => gh(args(c))));
    some.forEach((c, i) => {
      assert.equal(human[i]!.code, 0, `${c.name}: ${human[i]!.stderr}`);
      assert.throws(() => JSON.parse(human[i]!.stdout), `${c.name} prints JSON by default`);
    });
    assert.match(human[some.findIndex((c) => c.name === 'workspace list')]!.stdout, /^ID +NAME +ENVIRONMENTS/m);
    const bad = await gh(['role', 'list', '--output', 'yaml']);
    assert.equal(bad.code, 2);
    assert.equal(bad.stderr, 'gatehouse: role list: --output must be table or json, got "yaml"\n');
  });

  it('role update and role delete, and a refusal in terms of the flag that was typed', async () => {
    await ok(['role', 'create', '--name', 'reader', '--permission', 'orders:read']);
    assert.match(
      await ok(['role', 'update', 'reader', '--permission', 'orders:read,orders:write']),
      /^Updated role "reader" \(rol_\w+\) in workspace default with permissions orders:read, orders:write$/m,
    );
    const refused = await gh(['role', 'update', 'reader', '--permission', 'orders:read,bad perm']);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /^gatehouse: role update: --permission: .+ \(got "bad perm"\)$/m);
    assert.match(await ok(['role', 'delete', 'reader']), /^Deleted role "reader"\.$/m);
    const gone = await gh(['role', 'get', 'reader']);
    assert.equal(gone.code, 2);
    assert.match(gone.stderr, /not found/);
  });

  it('client update disables and enables a client; its token is refused in between', async () => {
    await ok(['role', 'create', '--name', 'viewer', '--permission', 'admin:roles:read']);
    const created = await ok([
      'client',
      'create',
      '--name',
      'app',
      '--role',
      'viewer',
      '--env',
      'DEV',
      '--project',
      '*',
    ]);
    const token = created.match(TOKEN)![0];
    const id = /\((cli_\w+)\)/.exec(created)![1]!;
    assert.equal((await gh(['role', 'list'], { GATEHOUSE_TOKEN: token })).code, 0);
    assert.match(await ok(['client', 'update', id, '--status', 'disabled']), /^ {2}status +disabled$/m);
    const refused = await gh(['role', 'list'], { GATEHOUSE_TOKEN: token });
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /the API client is disabled/);
    await ok(['client', 'update', id, '--status', 'active']);
    assert.equal((await gh(['role', 'list'], { GATEHOUSE_TOKEN: token })).code, 0);
    const json = JSON.parse(await ok(['client', 'get', id, '-o', 'json'])) as { status: string };
    assert.equal(json.status, 'active');
    // By name as well as by id, as the help says (ID: the client, name or id).
    const byName = JSON.parse(await ok(['client', 'get', 'app', '-o', 'json'])) as { id: string };
    assert.equal(byName.id, id);
    assert.match(await ok(['agent-credential', 'revocations', 'app']), /^(?!.*not found)/);
  });

  it('collection publish, roll back with --version, a deployment target set by flag, shown by collection list', async () => {
    const file = join(dir, 'shop.yaml');
    const spec = (path: string) => ({
      name: 'shop',
      basePath: '/shop',
      upstream: 'http://127.0.0.1:9/shop',
      project: 'default',
      endpoints: [{ method: 'GET', path, permission: 'shop:read' }],
    });
    await writeFile(file, stringify(spec('/v1')));
    await ok(['collection', 'create', '--env', 'DEV', '-f', file]);
    assert.match(await ok(['collection', 'publish', 'shop', '--env', 'DEV']), /^version +1$/m);
    await writeFile(file, stringify(spec('/v2')));
    assert.match(
      await ok(['collection', 'update', 'shop', '--env', 'DEV', '-f', file]),
      /^Updated collection "shop" \(col_\w+\) in DEV of workspace default: the draft changed/m,
    );
    await ok(['collection', 'publish', 'shop', '--env', 'DEV']);
    const versions = await ok(['collection', 'versions', 'shop', '--env', 'DEV']);
    assert.match(versions, /^VERSION +PUBLISHED AT +TARGET$/m);
    assert.match(versions, /^v2 /m);
    const rollback = JSON.parse(
      await ok(['collection', 'publish', 'shop', '--env', 'DEV', '--version', '1', '--json']),
    ) as {
      spec: { endpoints: { path: string }[] };
    };
    assert.equal(rollback.spec.endpoints[0]!.path, '/v1');

    await ok(['gateway', 'create', '--name', 'edge-a', '--env', 'DEV']);
    await ok(['collection', 'update', 'shop', '--env', 'DEV', '-f', file, '--target', '{type: edge, gateway: edge-a}']);
    await ok(['collection', 'publish', 'shop', '--env', 'DEV']);
    const list = await ok(['collection', 'list', '--env', 'DEV']);
    assert.match(list, /^NAME +PROJECT +BASE PATH +UPSTREAM +TARGET +ENDPOINTS +PUBLISHED$/m);
    assert.match(list, /^shop +default +\/shop +http:\/\/127\.0\.0\.1:9\/shop +edge:edge-a +1 +v\d+$/m);
    const badTarget = await gh(['collection', 'update', 'shop', '--env', 'DEV', '-f', file, '--target', '{type: edge']);
    assert.equal(badTarget.code, 2);
    assert.match(badTarget.stderr, /^gatehouse: collection update: --target: must be JSON or YAML/m);
    assert.match(await ok(['collection', 'delete', 'shop', '--env', 'DEV']), /^Deleted collection "shop"\.$/m);
  });

  it('a secret field given as "-" is read from standard input, never from the command line', async () => {
    const password = `pw-${randomBytes(8).toString('hex')}`;
    const child = spawn(
      process.execPath,
      [
        join(REPO_ROOT, 'src/cli/main.ts'),
        'user',
        'add',
        '--env',
        'DEV',
        '--email',
        'ana@example.com',
        '--role',
        'admin',
        '--password',
        '-',
      ],
      { cwd: REPO_ROOT, env: { ...process.env, GATEHOUSE_URL: cp.adminUrl, GATEHOUSE_TOKEN: cp.token }, stdio: 'pipe' },
    );
    child.stdin.end(`${password}\n`);
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    assert.equal(code, 0, err);
    assert.ok(!out.includes(password));
    // The password is the one read: it logs in.
    const login = await fetch(`${cp.adminUrl}/api/v1/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ workspace: 'default', email: 'ana@example.com', password }),
    });
    assert.equal(login.status, 200, await login.text());
  });

  it('collection apply shows progress on a terminal only', async (t) => {
    const file = join(dir, 'progress.yaml');
    const collection = (name: string) => ({
      name,
      basePath: `/${name}`,
      upstream: `http://127.0.0.1:9/${name}`,
      project: 'default',
      endpoints: [{ method: 'GET', path: '/x', permission: `${name}:read` }],
    });
    await writeFile(file, stringify({ environment: 'DEV', collections: [collection('p1'), collection('p2')] }));
    const env = { GATEHOUSE_URL: cp.adminUrl, GATEHOUSE_TOKEN: cp.token, GATEHOUSE_WORKSPACE: undefined };
    const tty = onTerminal(['collection', 'apply', '-f', file, '--dry-run'], env);
    if (!tty) return noTerminal(t);
    const shown = await tty;
    assert.match(shown, /\[1\/2\] p1/);
    assert.match(shown, /\[2\/2\] p2/);
    assert.match(shown, /^Summary \(dry run\): 2 created/m);
    const piped = await gh(['collection', 'apply', '-f', file, '--dry-run']);
    assert.equal(piped.code, 0, piped.stderr);
    assert.equal(piped.stderr, '');
  });

  it('a required flag, a wrong number of arguments and a bad number are refused before any request, exit 2', async () => {
    const cases: [string[], string][] = [
      [['collection', 'publish', 'x'], 'gatehouse: collection publish: --env is required\n'],
      [
        ['collection', 'publish', 'x', '--env', 'DEV', '--version', 'two'],
        'gatehouse: collection publish: --version: must be a whole number (got "two")\n',
      ],
      [
        ['client', 'delete'],
        "gatehouse: client delete: expected ID, got 0 argument(s). Run 'gatehouse client delete --help'\n",
      ],
    ];
    // An unreachable URL: nothing may be sent.
    const results = await pool(
      cases.map(
        ([args]) =>
          () =>
            gh(args, { GATEHOUSE_URL: 'http://127.0.0.1:9' }),
      ),
    );
    cases.forEach(([args, stderr], i) => {
      assert.equal(results[i]!.code, 2, args.join(' '));
      assert.equal(results[i]!.stderr, stderr);
    });
  });
});

describe('gatehouse control recover-admin-token', () => {
  let cp: ControlProcess;
  before(async () => {
    cp = await startControlPlane();
  });
  after(async () => {
    await cp?.stop();
  });

  it('issues a new installation admin token from the data directory; the old one is refused; only its hash is stored', async () => {
    const old = cp.token;
    assert.equal((await cp.api(old).get('/me')).status, 200);
    // No network: no URL and no token are given, and none of the control plane's ports is needed.
    const r = await runCli(['control', 'recover-admin-token', '--data-dir', cp.dataDir], {
      env: { GATEHOUSE_URL: undefined, GATEHOUSE_TOKEN: undefined, DATABASE_URL: undefined },
    });
    assert.equal(r.code, 0, r.stderr);
    const tokens = [...new Set(r.stdout.match(TOKEN))];
    assert.equal(tokens.length, 1, r.stdout);
    const token = tokens[0]!;
    assert.notEqual(token, old);
    assert.match(r.stdout, /its 1 earlier token\(s\) no longer work/);
    assert.match(r.stdout, /store it now, it is not shown again/);
    assert.equal((await cp.api(old).get('/me')).status, 401, 'the old token still works');
    const me = await cp.api(token).get('/me');
    assert.equal(me.status, 200);
    assert.equal((me.body as { operator: boolean; permissions: string[] }).operator, true);
    // The database files hold the token's SHA-256, never the token.
    const { createHash } = await import('node:crypto');
    const hash = createHash('sha256').update(token).digest('hex');
    let stored = '';
    for (const f of await readdir(cp.dataDir, { withFileTypes: true }))
      if (f.isFile()) stored += (await readFile(join(cp.dataDir, f.name))).toString('latin1');
    assert.ok(!stored.includes(token), 'the token is stored in the clear');
    assert.ok(stored.includes(hash), 'the hash of the new token is not where the control plane reads it');
  });

  it('refuses a directory without a control plane database, creating nothing, exit 2', async () => {
    const empty = await mkdtemp(join(tmpdir(), 'gatehouse-norecover-'));
    try {
      const r = await runCli(['control', 'recover-admin-token', '--data-dir', empty], {
        env: { DATABASE_URL: undefined },
      });
      assert.equal(r.code, 2);
      assert.match(
        r.stderr,
        /^gatehouse: control recover-admin-token: no control plane database in .+ \(gatehouse\.db not found\)/,
      );
      assert.deepEqual(await readdir(empty), []);
    } finally {
      await rm(empty, { recursive: true, force: true });
    }
  });
});

const unreachable = await probePostgres(TEST_DATABASE_URL);

describe(
  'gatehouse control recover-admin-token on PostgreSQL, with the control plane running',
  { skip: unreachable === undefined ? false : `PostgreSQL not reachable (${unreachable})` },
  () => {
    const schema = `gh_recover_${process.pid}_${randomBytes(4).toString('hex')}`;
    const url = `${TEST_DATABASE_URL}?options=${encodeURIComponent(`-c search_path=${schema}`)}`;
    let cp: ControlProcess;
    let upstream: Upstream;
    before(async () => {
      const client = new pg.Client({ connectionString: TEST_DATABASE_URL });
      await client.connect();
      await client.query(`CREATE SCHEMA ${schema}`).finally(() => client.end());
      upstream = await startUpstream();
      cp = await startControlPlane({ databaseUrl: url });
    });
    after(async () => {
      await cp?.stop();
      await upstream?.close();
      const client = new pg.Client({ connectionString: TEST_DATABASE_URL });
      await client.connect();
      await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).finally(() => client.end());
    });

    it('the old token is refused by the admin API at once and by the cloud gateway within seconds', async () => {
      const admin = cp.api();
      const dev = '/workspaces/default/environments/DEV';
      const created = await admin.post(`${dev}/collections`, {
        name: 'orders',
        basePath: '/orders',
        upstream: upstream.url,
        project: 'default',
        endpoints: [{ method: 'GET', path: '/list', permission: 'orders:read' }],
      });
      assert.equal(created.status, 201);
      assert.equal((await admin.post(`${dev}/collections/orders/publish`)).status, 201);
      const call = async (token: string) =>
        (await fetch(`${cp.gatewayUrl}/default/dev/orders/list`, { headers: { authorization: `Bearer ${token}` } }))
          .status;
      // The installation admin client's role grants "*": its token calls APIs through the gateway too.
      assert.equal(await call(cp.token), 200);

      const r = await runCli(['control', 'recover-admin-token', '--json'], {
        env: { DATABASE_URL: url, GATEHOUSE_URL: undefined, GATEHOUSE_TOKEN: undefined },
      });
      assert.equal(r.code, 0, r.stderr);
      const recovered = JSON.parse(r.stdout) as { token: string; revokedKeys: number };
      assert.equal(recovered.revokedKeys, 1);
      assert.equal((await cp.api(cp.token).get('/me')).status, 401);
      assert.equal((await cp.api(recovered.token).get('/me')).status, 200);
      await eventually(async () => (await call(cp.token)) === 401, 10_000, 'the gateway refuses the old token');
      assert.equal(await call(recovered.token), 200);
    });
  },
);
