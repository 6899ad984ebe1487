#!/usr/bin/env node
/**
 * The `gatehouse` command: `gatehouse <noun> <verb> [options]`. User mistakes (bad arguments, bad config) print
 * what and where and exit 2; bugs print a stack trace and exit 1.
 *
 * A command's code is loaded only when that command runs (a dynamic import per command): `gatehouse --version`
 * loads nothing else, and `gatehouse gateway run` never loads the control plane. Compiled modules are kept in
 * Node's compile cache (`module.enableCompileCache`), so that the second start of a command compiles nothing.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { enableCompileCache } from 'node:module';
import { type Command, UsageError } from './command.ts';

/** Before any of our modules loads; a cache directory that cannot be written only costs the speed-up. */
enableCompileCache();

/**
 * Node switches its AsyncContextFrame (read by process.nextTick, timers and the tick queue) from the inactive to
 * the active implementation the first time AsyncLocalStorage is read, by changing the class's prototype. Done
 * here, before anything runs; left to whatever library first reads it during the first request, the optimised
 * nextTick and processTicksAndRejections call the generic LoadIC for it: +7.7k instructions per proxied request
 * (bench/instructions.ts: 159.8k before the lazy command loading, 167.5k after, 161.5k with this line).
 */
void AsyncLocalStorage;

interface Entry {
  /** One line for `gatehouse --help`; the command's usage is in its module. */
  summary: string;
  load(): Promise<Command>;
}

const COMMANDS: Record<string, Entry> = {
  'control start': {
    summary: 'start the control plane: admin API, state store and the embedded cloud gateway',
    load: async () => (await import('./control-start.ts')).controlStart,
  },
  'gateway run': {
    summary: 'run a gateway: an edge gateway from a bootstrapped directory, or a standalone one from a config file',
    load: async () => (await import('./gateway-run.ts')).gatewayRun,
  },
  'gateway bootstrap': {
    summary: 'register an edge gateway with a one-time token and write its config directory',
    load: async () => (await import('./gateway-bootstrap.ts')).gatewayBootstrap,
  },
  'gateway create': {
    summary: 'create the edge gateway of an environment; prints its install command (one-time token) once',
    load: async () => (await import('./gateway-manage.ts')).gatewayCreate,
  },
  'gateway list': {
    summary: 'list edge gateways: instances online, versions, update availability, last synced',
    load: async () => (await import('./gateway-manage.ts')).gatewayList,
  },
  'gateway rename': {
    summary: 'rename an edge gateway; collections deployed to it follow',
    load: async () => (await import('./gateway-manage.ts')).gatewayRename,
  },
  'gateway delete': {
    summary: 'delete an edge gateway: its certificates are revoked and its instances disconnected at once',
    load: async () => (await import('./gateway-manage.ts')).gatewayDelete,
  },
  'gateway install-command': {
    summary: 'issue a new install command for an edge gateway (a fresh one-time token); its unused tokens stop working',
    load: async () => (await import('./gateway-manage.ts')).gatewayInstallCommand,
  },
  'policy test': {
    summary: "decide one request against a collection's published resource policies; prints the deciding policies",
    load: async () => (await import('./policy-test.ts')).policyTest,
  },
  'key generate': {
    summary: 'print a new API key and the SHA-256 hash to put in the config',
    load: async () => (await import('./key-generate.ts')).keyGenerate,
  },
  'client create': {
    summary: 'create an API client of the admin API and gateways; prints its token once',
    load: async () => (await import('./client-create.ts')).clientCreate,
  },
  'client list': {
    summary: "list the workspace's API clients (never their tokens)",
    load: async () => (await import('./client-list.ts')).clientList,
  },
  'client regenerate': {
    summary: 'issue a new token for an API client; the old one stops working at once or after --grace-period',
    load: async () => (await import('./client-regenerate.ts')).clientRegenerate,
  },
  'client delete': {
    summary: 'delete an API client; its tokens stop working at once',
    load: async () => (await import('./client-delete.ts')).clientDelete,
  },
  'role create': {
    summary: 'create a client role: admin API and endpoint permissions',
    load: async () => (await import('./role-create.ts')).roleCreate,
  },
  'role list': {
    summary: "list the workspace's client roles",
    load: async () => (await import('./role-list.ts')).roleList,
  },
  'collection create': {
    summary: 'create an API collection (a draft) in an environment from a YAML or JSON file',
    load: async () => (await import('./collection-create.ts')).collectionCreate,
  },
  'collection list': {
    summary: "list an environment's API collections",
    load: async () => (await import('./collection-list.ts')).collectionList,
  },
  'collection apply': {
    summary: "make an environment's collections match a file: create, update, publish (and prune)",
    load: async () => (await import('./collection-apply.ts')).collectionApply,
  },
  'config check': {
    summary: 'validate a gateway config file (and its clients file) and exit (2 when invalid)',
    load: async () => (await import('./config-check.ts')).configCheck,
  },
  'docs errors': {
    summary: 'write docs/errors.md from the error code table',
    load: async () => (await import('./docs-errors.ts')).docsErrors,
  },
  'docs admin-api': {
    summary: 'write docs/admin-api.md from the admin API operations',
    load: async () => (await import('./docs-errors.ts')).docsAdminApi,
  },
  'demo upstream': {
    summary:
      "run the demo upstream on :9000, trusting JWTs the cloud gateway on :8080 minted for default/DEV (the quickstart's backend)",
    load: async () => (await import('./demo.ts')).demoUpstream,
  },
  demo: {
    summary: 'run the bundled example: a demo upstream on :9000 and a gateway on :8080 (examples/gateway.yaml)',
    load: async () => (await import('./demo.ts')).demo,
  },
};

const HELP = `gatehouse — API gateway

Usage: gatehouse <command> [options]

Commands:
${Object.entries(COMMANDS)
  .map(([name, c]) => `  ${name.padEnd(16)} ${c.summary}`)
  .join('\n')}

Run 'gatehouse <command> --help' for a command's options.`;

async function main(argv: string[]): Promise<number> {
  if (argv.length === 0 || argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') {
    console.log(HELP);
    return 0;
  }
  if (argv[0] === '--version') {
    const pkg = await import('../../package.json', { with: { type: 'json' } });
    console.log(pkg.default.version);
    return 0;
  }
  const two = argv.slice(0, 2).join(' ');
  const name = COMMANDS[two] ? two : COMMANDS[argv[0]!] ? argv[0]! : undefined;
  if (!name) throw new UsageError(`unknown command "${argv.slice(0, 2).join(' ')}"\n\n${HELP}`);
  const entry = COMMANDS[name]!;
  const command = await entry.load();
  const rest = argv.slice(name.split(' ').length);
  if (rest.includes('--help') || rest.includes('-h')) {
    console.log(`Usage: gatehouse ${name} ${command.usage}\n\n${entry.summary}`);
    return 0;
  }
  return command.run(rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code !== 0) process.exitCode = code;
  },
  async (error: unknown) => {
    // Loaded here: only commands that read configuration load the config module.
    const { ConfigError } = await import('../config/load.ts');
    if (error instanceof UsageError || error instanceof ConfigError) {
      console.error(`gatehouse: ${error.message}`);
      process.exitCode = 2;
    } else {
      console.error(error);
      process.exitCode = 1;
    }
  },
);
