import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { z } from 'zod';
import { buildOpenApi } from '../../control/api/openapi.ts';
import { type Operation, operation } from '../../control/api/operation.ts';
import { OPERATIONS } from '../../control/api/operations.ts';
import { parse, suggest } from '../command.ts';
import { optionsOf } from './run.ts';
import { renderCliDocs, renderManifest } from '../docs-cli.ts';
import { adminHelp, adminUsage, topHelp } from '../help.ts';
import { LOCAL_COMMANDS } from '../registry.ts';
import { adminCommandOf, adminCommands, inFlags, nounAndVerb } from './commands.ts';
import { buildManifest, type ApiManifest } from './manifest.ts';
import { HIDDEN, OVERRIDES } from './overrides.ts';

const read = (path: string) => readFile(new URL(`../../../${path}`, import.meta.url), 'utf8');
const manifestOf = (ops: readonly Operation[]) =>
  buildManifest(buildOpenApi(ops, '0') as Parameters<typeof buildManifest>[0]);

describe('the CLI covers the admin API', () => {
  it('every admin operation has a command, or a reason in HIDDEN why not', () => {
    const names = new Map(adminCommands().map((c) => [c.operation.id, c.name]));
    const missing = OPERATIONS.filter((op) => !names.has(op.id) && HIDDEN[op.id] === undefined).map((op) => op.id);
    assert.deepEqual(
      missing,
      [],
      'operations without a command: run `gatehouse docs cli` (src/cli/admin/api.json is the CLI’s copy of the operations)',
    );
  });

  it('src/cli/admin/api.json is what the operations give (regenerate with `gatehouse docs cli`)', async () => {
    assert.ok(
      (await read('src/cli/admin/api.json')) === (await renderManifest()),
      'api.json drifted: run `gatehouse docs cli`',
    );
  });

  it('docs/cli.md is generated from the command table (regenerate with `gatehouse docs cli`)', async () => {
    const manifest = JSON.parse(await read('src/cli/admin/api.json')) as ApiManifest;
    assert.ok(
      (await read('docs/cli.md')) === (await renderCliDocs(manifest)),
      'docs/cli.md drifted: run `gatehouse docs cli`',
    );
  });

  it('names every command once, hand-written and generated alike, and every flag once per command', () => {
    const names = [...LOCAL_COMMANDS.map((c) => c.name), ...adminCommands().map((c) => c.name)];
    assert.deepEqual(
      names.filter((n, i) => names.indexOf(n) !== i),
      [],
    );
    for (const c of adminCommands()) {
      const flags = c.flags.map((f) => f.name);
      assert.equal(new Set(flags).size, flags.length, `${c.name}: ${flags.join(' ')}`);
      for (const f of flags) assert.ok(!['url', 'token', 'workspace', 'output', 'json', 'help'].includes(f), c.name);
    }
  });

  it('gives every command a summary and at least one example that runs that very command', () => {
    for (const c of [...LOCAL_COMMANDS, ...adminCommands()]) {
      assert.ok(c.summary.length > 10 && !c.summary.includes('\n'), c.name);
      assert.ok(c.examples.length > 0, `${c.name} has no example`);
      for (const e of c.examples) assert.ok(e.includes(`gatehouse ${c.name}`), `${c.name}: ${e}`);
    }
  });

  it('reads as words: no broken singulars, analytics under one noun, no duplicate of a hand-written command', () => {
    assert.deepEqual(nounAndVerb('getAnalyticsSeries'), { noun: 'analytics-series', verb: 'get' });
    assert.deepEqual(nounAndVerb('listPolicies'), { noun: 'policy', verb: 'list' });
    const names = adminCommands().map((c) => c.name);
    for (const name of ['analytics series', 'analytics top-clients', 'analytics top-agents', 'analytics top-refusals'])
      assert.ok(names.includes(name), name);
    assert.deepEqual(
      names.filter((n) => /sery|top-client get|collection-open-api|collection-permission/.test(n)),
      [],
    );
    const ids = new Set(adminCommands().map((c) => c.operation.id));
    assert.ok(!ids.has('importCollectionOpenApi') && !ids.has('exportCollectionOpenApi'));
    assert.ok(LOCAL_COMMANDS.some((c) => c.name === 'collection import'));
  });

  it('speaks in flags, not query syntax, and says who may call it once', () => {
    for (const c of adminCommands()) {
      for (const [, field] of c.summary.matchAll(/`\?([A-Za-z]+)=/g))
        assert.ok(!c.flags.some((f) => f.to === 'query' && f.field === field), `${c.name}: ${c.summary}`);
      assert.doesNotMatch(c.summary, /Needs admin:/, c.name);
    }
    const revoke = adminCommands().find((c) => c.name === 'agent-credential revoke')!;
    assert.equal(revoke.permission, 'admin:clients:write, or the caller is the client itself (its own key)');
    const help = adminHelp(revoke);
    assert.equal(help.match(/admin:clients:write/g)?.length, 1, help);
    assert.doesNotMatch(help, /any caller/);
    const series = adminCommands().find((c) => c.name === 'analytics series')!;
    assert.match(series.summary, /--bucket/);
    assert.equal(
      inFlags('`?from=` `?version=N` `?other=`', [
        { name: 'from', kind: 'string', required: false, help: '', to: 'query', field: 'from' },
        { name: 'query-version', kind: 'integer', required: false, help: '', to: 'query', field: 'version' },
      ]),
      '`--from` `--query-version N` `?other=`',
    );
  });

  it("lists the docs commands apart, under a maintainer heading after the users' commands", () => {
    const text = topHelp([
      ...LOCAL_COMMANDS.map((c) => c),
      ...adminCommands().map((command) => ({
        kind: 'admin' as const,
        name: command.name,
        summary: command.summary,
        command,
      })),
    ]);
    const [users, maintainers] = text.split(/Maintainer commands[^\n]*\n/);
    assert.ok(maintainers, text);
    assert.doesNotMatch(users!, /docs cli/);
    assert.match(maintainers!, /^ {2}docs cli /m);
    assert.match(users!, /^ {2}collection import /m);
  });

  it('gives examples that parse: known flags, and as many arguments as the command takes', () => {
    for (const c of adminCommands())
      for (const example of c.examples) {
        // The command line itself: after `gatehouse <noun> <verb>`, up to a redirection or the end of `$(…)`.
        const line = example.slice(example.indexOf(`gatehouse ${c.name}`) + `gatehouse ${c.name}`.length);
        const words = [...line.split(/ [<|]|\)/)[0]!.matchAll(/'([^']*)'|"([^"]*)"|(\S+)/g)].map(
          (m) => m[1] ?? m[2] ?? m[3]!,
        );
        const { positionals } = parse(c.name, words, optionsOf(c), true);
        const least = c.positionals.filter((p) => p.required).length;
        assert.ok(positionals.length >= least && positionals.length <= c.positionals.length, `${c.name}: ${example}`);
      }
  });

  it('has no override or hidden entry for an operation that does not exist', () => {
    const ids = new Set(OPERATIONS.map((o) => o.id));
    assert.deepEqual(
      [...Object.keys(OVERRIDES), ...Object.keys(HIDDEN)].filter((id) => !ids.has(id)),
      [],
    );
  });

  it('keeps the command names and flags the README, docs and tests use', () => {
    const byName = new Map(adminCommands().map((c) => [c.name, c]));
    const usage = (name: string) => adminUsage(byName.get(name)!);
    assert.equal(
      usage('client create'),
      'client create --name NAME --role ROLE --env ENV[,ENV] --project PROJECT[,PROJECT] [options]',
    );
    assert.equal(usage('client regenerate'), 'client regenerate ID [options]');
    assert.equal(usage('role create'), 'role create --name NAME [options]');
    assert.equal(usage('collection list'), 'collection list --env ENV [options]');
    assert.equal(usage('gateway rename'), 'gateway rename NAME NEW-NAME [options]');
    assert.ok(byName.get('client create')!.flags.some((f) => f.name === 'allow-ip' && f.kind === 'list'));
    assert.ok(byName.get('role create')!.flags.some((f) => f.name === 'permission' && f.kind === 'list'));
    assert.ok(byName.get('collection create')!.flags.some((f) => f.name === 'file' && f.short === 'f'));
    assert.ok(byName.get('collection list')!.flags.some((f) => f.name === 'project' && f.to === 'query'));
    assert.ok(byName.get('gateway create')!.flags.some((f) => f.name === 'install-method' && f.choices?.length === 2));
  });

  it('takes the query flags from the OpenAPI document, under the names they always had', () => {
    const byName = new Map(adminCommands().map((c) => [c.name, c]));
    const query = (name: string) =>
      byName
        .get(name)!
        .flags.filter((f) => f.to === 'query')
        .map((f) => `${f.name}:${f.kind}`);
    assert.deepEqual(query('collection list'), ['project:string']);
    assert.deepEqual(query('snapshot get'), ['target:string']);
    assert.deepEqual(query('telemetry get'), ['since:string', 'gateway:string']);
    assert.deepEqual(query('security-event list'), ['since:string', 'gateway:string', 'limit:integer']);
    assert.deepEqual(query('access-event list'), ['gateway:string', 'limit:integer']);
    assert.deepEqual(query('alert list'), ['open:boolean', 'limit:integer', 'before:string']);
    assert.deepEqual(query('role delete'), ['force:boolean']);
    const series = [...byName.values()].find((c) => c.operation.id === 'getAnalyticsSeries');
    assert.ok(series!.flags.some((f) => f.name === 'group-by' && f.field === 'groupBy' && f.choices?.length === 6));
  });
});

describe('a new operation gets a command without code', () => {
  const op = operation({
    id: 'createAuditExport',
    method: 'POST',
    path: '/api/v1/workspaces/{workspace}/environments/{environment}/audit-exports/{stream}',
    summary: 'Export the audit log of an environment',
    tag: 'Audit',
    permission: 'admin:audit:write',
    body: z.strictObject({
      format: z.enum(['ndjson', 'csv']),
      since: z.union([z.number().positive(), z.string()]).optional(),
      limit: z.int().positive().optional(),
      gzip: z.boolean().default(false),
      fields: z.array(z.string()).optional(),
      filter: z.object({ actor: z.string() }).optional(),
    }),
    response: z.object({ id: z.string(), rows: z.int() }),
    handler: async () => ({}),
  });
  const [api] = manifestOf([op]).operations;
  const command = adminCommandOf(api!, {});

  it('names it by its id, takes path parameters as arguments and body fields as typed flags', () => {
    assert.equal(command.name, 'audit-export create');
    assert.equal(command.summary, 'export the audit log of an environment');
    assert.deepEqual(
      command.positionals.map((p) => [p.display, p.to]),
      [['STREAM', 'param']],
    );
    assert.deepEqual(
      command.flags.map((f) => [f.name, f.kind, f.required, f.to]),
      [
        ['env', 'string', true, 'param'],
        ['format', 'string', true, 'body'],
        ['since', 'number-or-string', false, 'body'],
        ['limit', 'integer', false, 'body'],
        ['gzip', 'boolean', false, 'body'],
        ['fields', 'list', false, 'body'],
        ['filter', 'structured', false, 'body'],
        ['file', 'string', false, 'file'],
      ],
    );
    assert.deepEqual(command.flags[1]!.choices, ['ndjson', 'csv']);
    assert.equal(adminUsage(command), 'audit-export create STREAM --env ENV --format ndjson|csv [options]');
    assert.deepEqual(command.examples, ['gatehouse audit-export create STREAM --env DEV --format ndjson|csv']);
    assert.deepEqual(api!.expect, { id: 'string', rows: 'number' });
  });

  it('takes the query parameters the OpenAPI document describes as flags', () => {
    const doc = {
      paths: {
        '/api/v1/workspaces/{workspace}/audit-events': {
          get: {
            operationId: 'listAuditEvents',
            summary: 'List audit events',
            tags: ['Audit'],
            'x-gatehouse-permission': 'admin:audit:read',
            parameters: [
              { name: 'workspace', in: 'path', required: true, schema: { type: 'string' } },
              { name: 'actor', in: 'query', schema: { type: 'string' }, description: 'only this actor' },
              { name: 'limit', in: 'query', schema: { type: 'integer' } },
              { name: 'kind', in: 'query', schema: { type: 'string', enum: ['create', 'delete'] } },
            ],
            responses: {
              '200': {
                content: {
                  'application/json': {
                    schema: { type: 'object', properties: { items: { type: 'array' } }, required: ['items'] },
                  },
                },
              },
            },
          },
        },
      },
    };
    const [listed] = buildManifest(doc).operations;
    const c = adminCommandOf(listed!, {});
    assert.equal(c.name, 'audit-event list');
    assert.deepEqual(
      c.flags.map((f) => [f.name, f.kind, f.to, f.help]),
      [
        ['actor', 'string', 'query', 'only this actor'],
        ['limit', 'integer', 'query', 'the limit query parameter'],
        ['kind', 'string', 'query', 'the kind query parameter'],
      ],
    );
    assert.deepEqual(c.flags[2]!.choices, ['create', 'delete']);
    assert.equal(listed!.list, true);
  });

  it('derives nouns and verbs from operation ids', () => {
    assert.deepEqual(nounAndVerb('listClients'), { noun: 'client', verb: 'list' });
    assert.deepEqual(nounAndVerb('rotateSigningKeys'), { noun: 'signing-key', verb: 'rotate' });
    assert.deepEqual(nounAndVerb('listPolicies'), { noun: 'policy', verb: 'list' });
    assert.deepEqual(nounAndVerb('importOpenApiDocument'), { noun: 'open-api-document', verb: 'import' });
  });
});

describe('suggest', () => {
  it('answers the nearest name of a mistyped one, and nothing when none is near', () => {
    assert.equal(suggest('--projet', ['--env', '--project', '--url']), '--project');
    assert.equal(suggest('client lst', ['client list', 'client get']), 'client list');
    assert.equal(suggest('colection', ['client', 'collection']), 'collection');
    assert.equal(suggest('--proj', ['--project', '--env']), '--project');
    assert.equal(suggest('frobnicate', ['client', 'collection', 'role']), undefined);
    assert.equal(suggest('--x', ['--env']), undefined);
  });
});
