/**
 * The `gatehouse` command as a user runs it: real child processes, exit codes, and what is printed. User mistakes
 * exit 2 with a message that says what and where, never a stack trace.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isWellFormedKey } from '../src/shared/api-key.ts';
import { REPO_ROOT, runCli } from './helpers.ts';

/** A line that looks like a stack frame ("    at fn (file:1:2)"). */
const STACK_FRAME = /^\s+at .+/m;
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
/** The admin commands' environment: a token, and no control plane or workspace from the caller's shell. */
const ADMIN_ENV = { GATEHOUSE_TOKEN: 'ghc_not-a-real-token', GATEHOUSE_URL: undefined, GATEHOUSE_WORKSPACE: undefined };

/** A node:http server on an ephemeral loopback port that answers every request 200 with `body`. */
async function answering(body: string, contentType: string): Promise<HttpServer> {
  const server = createHttpServer((req, res) => {
    req.resume();
    res.writeHead(200, { 'content-type': contentType });
    res.end(body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return server;
}
const urlOf = (server: Server) => `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

describe('the gatehouse command', { concurrency: 4 }, () => {
  let dir: string;
  let occupied: Server;
  let occupiedPort: number;
  /** A valid config in the temp dir (the example's signing-key file would land in the repository's data/). */
  let valid: string;
  /** Not control planes: one answers 200 "hello", one 200 "{}". */
  let hello: HttpServer;
  let emptyJson: HttpServer;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'gatehouse-cli-'));
    valid = join(dir, 'valid.yaml');
    await writeFile(valid, 'tokenExchange:\n  issuer: https://gatehouse.test\n  audience: e2e-api\n');
    occupied = createServer();
    await new Promise<void>((r) => occupied.listen(0, '127.0.0.1', r));
    occupiedPort = (occupied.address() as AddressInfo).port;
    hello = await answering('hello', 'text/plain');
    emptyJson = await answering('{}', 'application/json');
  });

  after(async () => {
    for (const server of [hello, emptyJson]) server.closeAllConnections();
    await Promise.all([occupied, hello, emptyJson].map((s) => new Promise<void>((r) => s.close(() => r()))));
    await rm(dir, { recursive: true, force: true });
  });

  it('key generate prints a ghk_ key and the sha256 hash of that key', async () => {
    const { code, stdout, stderr } = await runCli(['key', 'generate']);
    assert.equal(code, 0, stderr);
    const key = /^key:\s+(ghk_\S+)$/m.exec(stdout)?.[1];
    const hash = /^hash:\s+sha256:([0-9a-f]{64})$/m.exec(stdout)?.[1];
    assert.ok(key, stdout);
    assert.ok(hash, stdout);
    assert.ok(isWellFormedKey(key), `${key} does not pass its own checksum`);
    assert.equal(hash, sha256(key));
    assert.match(stdout, /shown once/);
  });

  it('key generate prints a new key each time', async () => {
    const [a, b] = await Promise.all([runCli(['key', 'generate', '--json']), runCli(['key', 'generate', '--json'])]);
    assert.notEqual((JSON.parse(a.stdout) as { key: string }).key, (JSON.parse(b.stdout) as { key: string }).key);
  });

  it('key generate --json prints one JSON object with the key and its hash', async () => {
    const { code, stdout, stderr } = await runCli(['key', 'generate', '--json']);
    assert.equal(code, 0, stderr);
    assert.equal(stdout.trim().split('\n').length, 1);
    const out = JSON.parse(stdout) as { key: string; hash: string };
    assert.deepEqual(Object.keys(out).sort(), ['hash', 'key']);
    assert.match(out.key, /^ghk_[A-Za-z0-9]+$/);
    assert.ok(out.key.length >= 4 + 22, 'too short to carry 128 random bits');
    assert.ok(isWellFormedKey(out.key));
    assert.equal(out.hash, `sha256:${sha256(out.key)}`);
  });

  it('config check accepts the bundled example and exits 0', async () => {
    const { code, stdout, stderr } = await runCli([
      'config',
      'check',
      '--config',
      join(REPO_ROOT, 'examples/gateway.yaml'),
    ]);
    assert.equal(code, 0, stderr);
    assert.match(stdout, /examples\/gateway\.yaml: valid \(1 collections, 2 roles, 3 clients, 3 keys\)/);
  });

  it('config check on an invalid file exits 2 and names the file and each field path, without a stack trace', async () => {
    const file = join(dir, 'invalid.yaml');
    await writeFile(
      file,
      [
        'tokenExchange:',
        '  issuer: https://gatehouse.test',
        '  audience: e2e-api',
        'roles:',
        '  - name: reader',
        '    permissions: [orders:read]',
        'clients:',
        '  - id: ok-client',
        '    role: reader',
        '    environments: [PROD]',
        '    projects: [shop]',
        '    keys: [{ hash: "sha256:0000000000000000000000000000000000000000000000000000000000000000" }]',
        '  - id: broken-client',
        '    role: nobody',
        '    environments: [prod]',
        '    projects: [shop]',
        '    keys: [{ hash: "sha256:not-a-hash" }]',
        '',
      ].join('\n'),
    );
    const { code, stdout, stderr } = await runCli(['config', 'check', '--config', file]);
    assert.equal(code, 2, stdout + stderr);
    assert.ok(stderr.includes(file), stderr);
    assert.match(stderr, /clients\[1\]\.role: unknown role "nobody"/);
    assert.match(stderr, /clients\[1\]\.environments\[0\]: /);
    assert.match(stderr, /clients\[1\]\.keys\[0\]\.hash: /);
    assert.doesNotMatch(stderr, /clients\[0\]/);
    assert.doesNotMatch(stderr, STACK_FRAME);
    assert.equal(stdout, '');
  });

  it('config check on a YAML syntax error exits 2 with the file, line and column', async () => {
    const file = join(dir, 'syntax.yaml');
    await writeFile(file, 'tokenExchange:\n  issuer: x\n  audience: [a, b\nroles: []\n');
    const { code, stderr } = await runCli(['config', 'check', '--config', file]);
    assert.equal(code, 2, stderr);
    assert.match(
      stderr,
      new RegExp(`${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: invalid YAML at line \\d+, column \\d+`),
    );
    assert.doesNotMatch(stderr, STACK_FRAME);
  });

  it('config check on invalid JSON exits 2 and names the file', async () => {
    const file = join(dir, 'broken.json');
    await writeFile(file, '{"tokenExchange": {"issuer": "x",}}');
    const { code, stderr } = await runCli(['config', 'check', '--config', file]);
    assert.equal(code, 2, stderr);
    assert.ok(stderr.includes(`${file}: invalid JSON`), stderr);
    assert.doesNotMatch(stderr, STACK_FRAME);
  });

  it('gateway run with a missing config file exits 2 with a clear message', async () => {
    const file = join(dir, 'does-not-exist.yaml');
    const { code, stdout, stderr } = await runCli([
      'gateway',
      'run',
      '--config',
      file,
      '--port',
      '0',
      '--ops-port',
      '0',
    ]);
    assert.equal(code, 2, stdout + stderr);
    assert.equal(stderr.trim(), `gatehouse: ${file}: cannot read the config file (ENOENT)`);
    assert.doesNotMatch(stderr, STACK_FRAME);
  });

  it('gateway run with an invalid config file exits 2 before listening', async () => {
    const file = join(dir, 'run-invalid.yaml');
    await writeFile(
      file,
      'tokenExchange:\n  issuer: x\n  audience: y\nclients:\n  - id: c\n    role: ghost\n    environments: [PROD]\n    projects: [p]\n    keys: [{ hash: "0000000000000000000000000000000000000000000000000000000000000000" }]\n',
    );
    const { code, stdout, stderr } = await runCli([
      'gateway',
      'run',
      '--config',
      file,
      '--port',
      '0',
      '--ops-port',
      '0',
    ]);
    assert.equal(code, 2, stdout + stderr);
    assert.match(stderr, /clients\[0\]\.role: unknown role "ghost"/);
    assert.doesNotMatch(stdout, /gateway listening/);
    assert.doesNotMatch(stderr, STACK_FRAME);
  });

  it('gateway run without --config, and nothing bootstrapped in the default directory, exits 2 saying what to give', async () => {
    const none = join(tmpdir(), `gatehouse-none-${process.pid}`);
    const { code, stderr } = await runCli(['gateway', 'run'], { env: { GATEHOUSE_CONFIG_DIR: none } });
    assert.equal(code, 2);
    assert.match(
      stderr,
      /--config FILE\|DIR is required: a config file, or a directory written by `gatehouse gateway bootstrap`/,
    );
    assert.ok(stderr.includes(`the default, ${none}, holds no gateway.json yet`), stderr);
  });

  it('gateway run with a port that is not a number exits 2', async () => {
    const { code, stderr } = await runCli(['gateway', 'run', '--config', valid, '--port', 'eighty']);
    assert.equal(code, 2);
    assert.match(stderr, /--port must be a whole number from 0 to 65535, got "eighty"/);
  });

  it('gateway run takes only decimal ports: an empty, hex, exponent, padded or too large one exits 2 before listening (more in src/cli/command.test.ts)', async () => {
    const cases: [string, string][] = [
      ['--port', ''],
      ['--port', '0x50'],
      ['--port', ' 80'],
      ['--port', '1e3'],
      ['--ops-port', '65536'],
    ];
    for (const [flag, value] of cases) {
      const other = flag === '--port' ? '--ops-port' : '--port';
      const { code, stdout, stderr } = await runCli([
        'gateway',
        'run',
        '--config',
        valid,
        '--host',
        '127.0.0.1',
        other,
        '0',
        `${flag}=${value}`,
      ]);
      assert.equal(code, 2, `${flag} "${value}":\n${stdout}${stderr}`);
      assert.equal(stderr, `gatehouse: gateway run: ${flag} must be a whole number from 0 to 65535, got "${value}"\n`);
      assert.doesNotMatch(stdout, /gateway listening/);
    }
  });

  it('gateway run with a config file refuses --log-level (the file sets server.log.level) and exits 2', async () => {
    const { code, stdout, stderr } = await runCli([
      'gateway',
      'run',
      '--config',
      valid,
      '--host',
      '127.0.0.1',
      '--port',
      '0',
      '--ops-port',
      '0',
      '--log-level',
      'debug',
    ]);
    assert.equal(code, 2, stdout + stderr);
    assert.equal(
      stderr,
      'gatehouse: gateway run: --log-level applies to edge gateways; a config file sets server.log.level\n',
    );
    assert.doesNotMatch(stdout, /gateway listening/);
  });

  it('gateway run and control start refuse an unknown --log-level with the valid ones, exit 2 and no stack trace', async () => {
    const edge = join(dir, 'edge-log-level');
    await mkdir(edge, { recursive: true });
    await writeFile(join(edge, 'gateway.json'), '{}');
    const levels = 'fatal, error, warn, info, debug, trace, silent';
    for (const [command, args] of [
      ['gateway run', ['gateway', 'run', '--config', edge, '--log-level', 'loud']],
      ['gateway run', ['gateway', 'run', '--config', valid, '--log-level', 'loud']],
      ['control start', ['control', 'start', '--data-dir', join(dir, 'never-created'), '--log-level', 'loud']],
    ] as const) {
      const { code, stdout, stderr } = await runCli([...args]);
      assert.equal(code, 2, `${args.join(' ')}:\n${stdout}${stderr}`);
      assert.equal(stderr, `gatehouse: ${command}: --log-level must be one of ${levels}, got "loud"\n`);
      assert.doesNotMatch(stderr, STACK_FRAME);
    }
  });

  it('gateway run for an edge directory refuses a GATEHOUSE_RATE_LIMIT_REDIS_URL that is not a redis URL, exit 2, without repeating it', async () => {
    const edge = join(dir, 'edge-redis');
    await mkdir(edge, { recursive: true });
    await writeFile(join(edge, 'gateway.json'), '{}');
    const { code, stdout, stderr } = await runCli(['gateway', 'run', '--config', edge], {
      env: { GATEHOUSE_RATE_LIMIT_REDIS_URL: 'http://user:s3cret@cache:6379' },
    });
    assert.equal(code, 2, `${stdout}${stderr}`);
    assert.equal(
      stderr,
      'gatehouse: gateway run: GATEHOUSE_RATE_LIMIT_REDIS_URL must be a redis:// or rediss:// URL with a host, such as redis://127.0.0.1:6379\n',
    );
  });

  it('an admin command pointed at a server that answers 200 "hello" exits 2: not a Gatehouse control plane', async () => {
    const url = urlOf(hello);
    for (const args of [
      ['client', 'list'],
      ['client', 'create', '--name', 'ci', '--role', 'reader', '--env', 'PROD', '--project', 'shop'],
      ['client', 'delete', 'cl_1', '--workspace', 'default'],
    ]) {
      const { code, stdout, stderr } = await runCli([...args, '--url', url], { env: ADMIN_ENV });
      assert.equal(code, 2, `${args.join(' ')}:\n${stdout}${stderr}`);
      const path = args[1] === 'delete' ? 'DELETE /api/v1/workspaces/default/clients/cl_1' : 'GET /api/v1/me';
      assert.equal(
        stderr,
        `gatehouse: ${url}: the answer to ${path} is not a Gatehouse control plane's (not JSON): is --url the admin API of a Gatehouse control plane?\n`,
      );
      assert.equal(stdout, '');
    }
  });

  it('an admin command pointed at a server that answers 200 "{}" exits 2 and names what the answer lacks', async () => {
    const url = urlOf(emptyJson);
    const cases = [
      [
        ['client', 'create', '--name', 'ci', '--role', 'reader', '--env', 'PROD', '--project', 'shop'],
        'GET /api/v1/me',
        'no string workspace.name',
      ],
      [['client', 'list', '--workspace', 'default'], 'GET /api/v1/workspaces/default/clients', 'no list items'],
      [
        [
          'client',
          'create',
          '--name',
          'ci',
          '--role',
          'reader',
          '--env',
          'PROD',
          '--project',
          'shop',
          '--workspace',
          'default',
        ],
        'POST /api/v1/workspaces/default/clients',
        'no string client.id',
      ],
      [
        ['role', 'create', '--name', 'reader', '--workspace', 'default'],
        'POST /api/v1/workspaces/default/roles',
        'no string name',
      ],
      [['gateway', 'list', '--workspace', 'default'], 'GET /api/v1/workspaces/default/gateways', 'no list items'],
    ] as const;
    for (const [args, request, lack] of cases) {
      const { code, stdout, stderr } = await runCli([...args, '--url', url], { env: ADMIN_ENV });
      assert.equal(code, 2, `${args.join(' ')}:\n${stdout}${stderr}`);
      assert.equal(
        stderr,
        `gatehouse: ${url}: the answer to ${request} is not a Gatehouse control plane's (${lack}): is --url the admin API of a Gatehouse control plane?\n`,
      );
      assert.doesNotMatch(stderr, STACK_FRAME);
    }
  });

  it('never prints the password of a control plane URL', async () => {
    const cases = [
      // fetch() refuses a URL with credentials: said as such, not as "cannot reach the control plane".
      [
        [
          'client',
          'create',
          '--name',
          'ci',
          '--role',
          'reader',
          '--env',
          'PROD',
          '--project',
          'shop',
          '--url',
          'http://user:s3cret-pw@127.0.0.1:18999',
        ],
        'client create: --url must not hold a user name or password (the token authenticates), got "http://user:***@127.0.0.1:18999"',
      ],
      [
        ['client', 'list', '--url', 'ftp://user:s3cret-pw@127.0.0.1'],
        'client list: --url must be an http:// or https:// URL such as http://127.0.0.1:8081, got "ftp://user:***@127.0.0.1"',
      ],
      [
        ['client', 'list', '--url', `${urlOf(hello)}/?password=s3cret-pw`],
        `${urlOf(hello)}/?password=***: the answer to GET /api/v1/me is not a Gatehouse control plane's (not JSON): is --url the admin API of a Gatehouse control plane?`,
      ],
      [
        [
          'gateway',
          'bootstrap',
          '-t',
          `ghr_${'a'.repeat(32)}`,
          '--ca-pin',
          `sha256:${'0'.repeat(64)}`,
          '--url',
          'http://user:s3cret-pw@cp.example.com:8443',
          '-o',
          join(dir, 'never-written'),
          'standalone',
        ],
        'gateway bootstrap: --url: must be an https:// URL (got "http://user:***@cp.example.com:8443")',
      ],
    ] as const;
    for (const [args, message] of cases) {
      const { code, stdout, stderr } = await runCli([...args], { env: ADMIN_ENV });
      assert.equal(code, 2, `${args.join(' ')}:\n${stdout}${stderr}`);
      assert.equal(stderr, `gatehouse: ${message}\n`);
      assert.ok(!(stdout + stderr).includes('s3cret-pw'), stdout + stderr);
    }
  });

  it('gateway run on an API port already in use exits with a message naming the address, without a stack trace', async () => {
    const { code, signal, stdout, stderr } = await runCli(
      ['gateway', 'run', '--config', valid, '--host', '127.0.0.1', '--port', String(occupiedPort), '--ops-port', '0'],
      { timeoutMs: 30_000 },
    );
    assert.equal(signal, null, `still running after 30 s:\n${stdout}${stderr}`);
    assert.notEqual(code, 0);
    assert.ok(stderr.includes(`127.0.0.1:${occupiedPort}`), stderr);
    assert.match(stderr, /already in use/i);
    assert.doesNotMatch(stderr, STACK_FRAME);
  });

  it('gateway run on an ops port already in use exits (instead of serving traffic without health checks) with a clear message', async () => {
    const { code, signal, stdout, stderr } = await runCli(
      ['gateway', 'run', '--config', valid, '--host', '127.0.0.1', '--port', '0', '--ops-port', String(occupiedPort)],
      { timeoutMs: 30_000 },
    );
    assert.equal(signal, null, `still running 30 s after failing to listen on the ops port:\n${stdout}${stderr}`);
    assert.notEqual(code, 0);
    assert.ok(stderr.includes(`127.0.0.1:${occupiedPort}`), stderr);
    assert.match(stderr, /already in use/i);
    assert.doesNotMatch(stderr, STACK_FRAME);
  });

  it('an unknown command exits 2 and shows the usage', async () => {
    const { code, stdout, stderr } = await runCli(['frobnicate']);
    assert.equal(code, 2, stdout + stderr);
    assert.match(stderr, /unknown command "frobnicate"/);
    assert.match(stderr, /Usage: gatehouse <command>/);
    assert.doesNotMatch(stderr, STACK_FRAME);
  });

  it('an unknown option exits 2 and names the option and the command', async () => {
    const { code, stderr } = await runCli(['key', 'generate', '--bogus']);
    assert.equal(code, 2);
    assert.match(stderr, /key generate: Unknown option '--bogus'/);
    assert.doesNotMatch(stderr, STACK_FRAME);
  });

  it("--help exits 0 and lists the commands; a command's --help shows its options", async () => {
    const top = await runCli(['--help']);
    assert.equal(top.code, 0);
    for (const command of ['gateway run', 'key generate', 'config check'])
      assert.ok(top.stdout.includes(command), `--help does not list ${command}`);
    const run = await runCli(['gateway', 'run', '--help']);
    assert.equal(run.code, 0);
    assert.match(run.stdout, /^Usage: gatehouse gateway run \[--config FILE\|DIR\]/);
    assert.match(run.stdout, /--ops-port/);
  });

  it('--version prints the package version', async () => {
    const { code, stdout } = await runCli(['--version']);
    assert.equal(code, 0);
    assert.match(stdout.trim(), /^\d+\.\d+\.\d+/);
  });
});
