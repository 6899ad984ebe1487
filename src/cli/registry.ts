/**
 * Every `gatehouse` command: the hand-written ones (they run something locally, or make more than one admin API
 * call), listed here with their summary and examples and loaded only when they run; and one per admin API
 * operation, generated (admin/commands.ts). Help, suggestions and docs/cli.md all read this one list.
 */
import type { AdminCommand } from './admin/commands.ts';
import type { Command } from './command.ts';

export interface LocalCommand {
  kind: 'local';
  name: string;
  /** One line for lists. */
  summary: string;
  examples: string[];
  /** Talks to the admin API (takes --url, --token, --workspace). */
  admin?: boolean;
  /** For Gatehouse's own maintainers (regenerating docs/): listed apart, after the commands users need. */
  maintainer?: boolean;
  load(): Promise<Command>;
}

export type Entry = LocalCommand | { kind: 'admin'; name: string; summary: string; command: AdminCommand };

export const LOCAL_COMMANDS: readonly LocalCommand[] = [
  {
    kind: 'local',
    name: 'control start',
    summary: 'start the control plane: admin API, state store and the embedded cloud gateway',
    examples: [
      'gatehouse control start',
      'DATABASE_URL=postgres://gatehouse@db:5432/gatehouse gatehouse control start --host 0.0.0.0',
    ],
    load: async () => (await import('./control-start.ts')).controlStart,
  },
  {
    kind: 'local',
    name: 'control recover-admin-token',
    summary: 'issue a new installation admin token from the data directory (no network); the old one stops working',
    examples: [
      'gatehouse control recover-admin-token --data-dir ./data',
      'DATABASE_URL=postgres://… gatehouse control recover-admin-token',
    ],
    load: async () => (await import('./recover-admin-token.ts')).recoverAdminToken,
  },
  {
    kind: 'local',
    name: 'control migrate-ca',
    summary: "copy an installation's CA from its data directory into the store (shared by every replica)",
    examples: ['GATEHOUSE_ENCRYPTION_KEY_FILE=/run/secrets/key gatehouse control migrate-ca --data-dir ./data'],
    load: async () => (await import('./control-secrets.ts')).controlMigrateCa,
  },
  {
    kind: 'local',
    name: 'control rotate-key',
    summary: "re-encrypt the store's secrets with the first key of GATEHOUSE_ENCRYPTION_KEY (key rotation)",
    examples: [
      'GATEHOUSE_ENCRYPTION_KEY="$NEW_KEY,$OLD_KEY" gatehouse control rotate-key --database-url "$DATABASE_URL"',
    ],
    load: async () => (await import('./control-secrets.ts')).controlRotateKey,
  },
  {
    kind: 'local',
    name: 'gateway run',
    summary: 'run a gateway: an edge gateway from a bootstrapped directory, or a standalone one from a config file',
    examples: ['gatehouse gateway run --port 8090 --ops-port 9091', 'gatehouse gateway run --config gateway.yaml'],
    load: async () => (await import('./gateway-run.ts')).gatewayRun,
  },
  {
    kind: 'local',
    name: 'gateway bootstrap',
    summary: 'register an edge gateway with a one-time token and write its config directory',
    examples: ['gatehouse gateway bootstrap -t ghr_… --ca-pin sha256:… --url https://127.0.0.1:8443 standalone'],
    load: async () => (await import('./gateway-bootstrap.ts')).gatewayBootstrap,
  },
  {
    kind: 'local',
    name: 'collection apply',
    summary: "make an environment's collections match a file: create, update, publish (and prune)",
    admin: true,
    examples: [
      'gatehouse collection apply -f examples/collections.yaml',
      'gatehouse collection apply -f dev.yaml --dry-run',
    ],
    load: async () => (await import('./collection-apply.ts')).collectionApply,
  },
  {
    kind: 'local',
    name: 'collection import',
    summary: "import an OpenAPI document as a collection's endpoints (--dry-run prints the diff)",
    examples: [
      'gatehouse collection import --env DEV --spec openapi.yaml --dry-run',
      'gatehouse collection import --env DEV --spec openapi.yaml --collection billing',
    ],
    load: async () => (await import('./collection-import.ts')).collectionImport,
  },
  {
    kind: 'local',
    name: 'collection export',
    summary: "export a collection's endpoints and permissions as an OpenAPI 3.1 document",
    examples: ['gatehouse collection export --env DEV --collection billing --out billing.yaml'],
    load: async () => (await import('./collection-export.ts')).collectionExport,
  },
  {
    kind: 'local',
    name: 'policy test',
    summary: "decide one request against a collection's published resource policies; prints the deciding policies",
    examples: [
      'gatehouse policy test --env DEV --collection billing --client cl_… --method GET --path /orgs/acme/invoices/42',
      'gatehouse policy test --env DEV --collection billing --client cl_… --method POST --path /invoices --agent reader-bot',
    ],
    load: async () => (await import('./policy-test.ts')).policyTest,
  },
  {
    kind: 'local',
    name: 'key generate',
    summary: 'print a new API key and the SHA-256 hash to put in the config',
    examples: ['gatehouse key generate', 'gatehouse key generate --json'],
    load: async () => (await import('./key-generate.ts')).keyGenerate,
  },
  {
    kind: 'local',
    name: 'config check',
    summary: 'validate a gateway config file (and its clients file) and exit (2 when invalid)',
    examples: ['gatehouse config check --config examples/gateway.yaml'],
    load: async () => (await import('./config-check.ts')).configCheck,
  },
  {
    kind: 'local',
    name: 'docs errors',
    maintainer: true,
    summary: 'write docs/errors.md from the error code table',
    examples: ['gatehouse docs errors'],
    load: async () => (await import('./docs-errors.ts')).docsErrors,
  },
  {
    kind: 'local',
    name: 'docs admin-api',
    maintainer: true,
    summary: 'write docs/admin-api.md from the admin API operations',
    examples: ['gatehouse docs admin-api'],
    load: async () => (await import('./docs-errors.ts')).docsAdminApi,
  },
  {
    kind: 'local',
    name: 'docs cli',
    maintainer: true,
    summary: "write docs/cli.md and the CLI's copy of the admin API (src/cli/admin/api.json) from the operations",
    examples: ['gatehouse docs cli'],
    load: async () => (await import('./docs-cli.ts')).docsCli,
  },
  {
    kind: 'local',
    name: 'docs openapi',
    maintainer: true,
    summary: "print the admin API's OpenAPI document (or write it with --out FILE)",
    examples: ['gatehouse docs openapi --out console/openapi.json'],
    load: async () => (await import('./docs-errors.ts')).docsOpenApi,
  },
  {
    kind: 'local',
    name: 'user create',
    summary: 'add a console user (web console at /console/) with a generated password, shown once',
    examples: ['gatehouse user create --email ada@example.com --role admin'],
    load: async () => (await import('./user-create.ts')).userCreate,
  },
  {
    kind: 'local',
    name: 'demo upstream',
    summary:
      "run the demo upstream on :9000, trusting JWTs the cloud gateway on :8080 minted for default/DEV (the quickstart's backend)",
    examples: ['gatehouse demo upstream'],
    load: async () => (await import('./demo.ts')).demoUpstream,
  },
  {
    kind: 'local',
    name: 'demo',
    summary: 'run the bundled example: a demo upstream on :9000 and a gateway on :8080 (examples/gateway.yaml)',
    examples: ['gatehouse demo'],
    load: async () => (await import('./demo.ts')).demo,
  },
];

/** Every command: the hand-written ones first where a name is both (none is), then the generated ones. */
export async function allCommands(): Promise<Entry[]> {
  const { adminCommands } = await import('./admin/commands.ts');
  const local = new Set(LOCAL_COMMANDS.map((c) => c.name));
  return [
    ...LOCAL_COMMANDS,
    ...adminCommands()
      .filter((c) => !local.has(c.name))
      .map((command) => ({ kind: 'admin' as const, name: command.name, summary: command.summary, command })),
  ];
}

/** The noun of a command name (`gateway` of `gateway run`; `demo` of `demo`). */
export function nounOf(name: string): string {
  return name.split(' ')[0]!;
}
