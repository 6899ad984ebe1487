/**
 * A collection served as an MCP server, end to end on real sockets: a `gatehouse gateway run` process, a real
 * upstream on loopback, and the SDK's own client (`Client` + `StreamableHTTPClientTransport`) connecting with an
 * API key and with a derived credential minted at the gateway's token endpoint.
 */
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { newKey, startGateway, startUpstream, TOKEN_EXCHANGE, type GatewayProcess, type Upstream } from './helpers.ts';

const GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS = 'urn:ietf:params:oauth:token-type:access_token';

const reader = newKey();
const writer = newKey();
const limited = newKey();

/** A small OpenAPI document: operationIds, a summary, a query parameter and a JSON body. */
const SPEC = {
  openapi: '3.1.0',
  info: { title: 'Books', version: '1' },
  paths: {
    '/books': {
      get: {
        operationId: 'listBooks',
        summary: 'List the books',
        'x-gatehouse-permission': 'books:read',
        parameters: [{ name: 'author', in: 'query', schema: { type: 'string' } }],
        responses: { '200': { description: 'ok' } },
      },
      post: {
        operationId: 'add.book',
        summary: 'Add a book',
        'x-gatehouse-permission': 'books:write',
        requestBody: {
          required: true,
          content: { 'application/json': { schema: { $ref: '#/components/schemas/Book' } } },
        },
        responses: { '201': { description: 'created' } },
      },
    },
  },
  components: {
    schemas: { Book: { type: 'object', required: ['title'], properties: { title: { type: 'string' } } } },
  },
};

function config(upstream: Upstream, specFile: string) {
  const client = (id: string, role: string, key: { hash: string }, extra: Record<string, unknown> = {}) => ({
    id,
    role,
    environments: ['PROD'],
    projects: ['payments'],
    keys: [{ hash: key.hash }],
    ...extra,
  });
  return {
    tokenExchange: { ...TOKEN_EXCHANGE, derived: { maxTtl: '1h', maxDepth: 2 } },
    collections: [
      {
        name: 'billing',
        basePath: '/billing',
        upstream: upstream.url,
        project: 'payments',
        environment: 'PROD',
        mcp: { instructions: 'Invoices of the organizations.' },
        endpoints: [
          { method: 'GET', path: '/orgs/{orgId}/invoices', permission: 'invoices:read', summary: 'List invoices' },
          { method: 'POST', path: '/orgs/{orgId}/invoices', permission: 'invoices:write' },
          { method: 'GET', path: '/customers', permission: 'customers:read' },
        ],
      },
      {
        name: 'books',
        basePath: '/books-api',
        upstream: upstream.url,
        project: 'payments',
        environment: 'PROD',
        mcp: { path: '/agents/mcp' },
        validateRequests: true,
        openapi: specFile,
      },
      {
        name: 'slow',
        basePath: '/slow',
        upstream: upstream.url,
        project: 'payments',
        environment: 'PROD',
        concurrency: { key: { max: 1 } },
        mcp: {},
        endpoints: [{ method: 'GET', path: '/report', permission: 'invoices:read' }],
      },
      {
        name: 'orgs',
        basePath: '/orgs',
        upstream: upstream.url,
        project: 'payments',
        environment: 'PROD',
        mcp: {},
        endpoints: [
          {
            method: 'GET',
            path: '/{orgId}/profile',
            permission: 'orgs:read',
            resource: { type: 'Org', param: 'orgId' },
          },
        ],
        policies: {
          cedar:
            'permit (principal, action == Action::"orgs:read", resource is Org) when { principal has org && resource == principal.org };',
        },
      },
      {
        name: 'status',
        basePath: '/status',
        upstream: upstream.url,
        project: 'payments',
        environment: 'PROD',
        authRequired: false,
        mcp: { name: 'status-page' },
        endpoints: [{ method: 'GET', path: '/health', permission: 'status:read' }],
      },
      {
        name: 'plain',
        basePath: '/plain',
        upstream: upstream.url,
        project: 'payments',
        environment: 'PROD',
        endpoints: [{ method: 'GET', path: '/x', permission: 'invoices:read' }],
      },
    ],
    roles: [
      { name: 'reader', permissions: ['invoices:read', 'books:read'] },
      { name: 'writer', permissions: ['invoices:*', 'customers:read', 'books:*', 'orgs:read'] },
    ],
    clients: [
      client('reader-client', 'reader', reader),
      client('writer-client', 'writer', writer, { orgId: 'acme' }),
      client('limited-client', 'reader', limited, { rateLimits: { key: { limit: 2, window: '1m' } } }),
    ],
  };
}

async function connect(url: string, credential: string | undefined): Promise<Client> {
  const client = new Client({ name: 'e2e-agent', version: '1.0.0' });
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    requestInit: { headers: credential === undefined ? {} : { authorization: `Bearer ${credential}` } },
  });
  await client.connect(transport);
  return client;
}

type ToolResult = Awaited<ReturnType<Client['callTool']>>;
const textOf = (result: ToolResult) => (result.content as { type: string; text: string }[])[0]!.text;

describe('a collection served as an MCP server', () => {
  let upstream: Upstream;
  let gw: GatewayProcess;
  const clients: Client[] = [];
  /** Requests to the slow collection's /report wait here until released. */
  const held: (() => void)[] = [];
  let arrived: (() => void) | undefined;
  /** Called when a held request's connection closes before it was answered. */
  let abandoned: (() => void) | undefined;

  before(async () => {
    upstream = await startUpstream((req, res) => {
      if (req.url !== '/report') return false;
      req.resume();
      held.push(() => res.writeHead(200, { 'content-type': 'text/plain' }).end('report'));
      res.once('close', () => {
        if (!res.writableEnded) abandoned?.();
      });
      arrived?.();
      return true;
    });
    const dir = await mkdtemp(join(tmpdir(), 'gatehouse-mcp-'));
    const specFile = join(dir, 'books.json');
    await writeFile(specFile, JSON.stringify(SPEC));
    gw = await startGateway(config(upstream, specFile));
  });
  after(async () => {
    for (const c of clients) await c.close();
    await gw?.stop();
    await upstream?.close();
  });
  const open = async (path: string, credential: string | undefined) => {
    const c = await connect(`${gw.url}${path}`, credential);
    clients.push(c);
    return c;
  };

  it('lists only the tools the API key may call, and a call goes through the gateway to the upstream', async () => {
    const client = await open('/billing/mcp', reader.key);
    assert.equal(client.getServerVersion()?.name, 'billing');
    assert.equal(client.getInstructions(), 'Invoices of the organizations.');
    const { tools } = await client.listTools();
    assert.deepEqual(
      tools.map((t) => t.name),
      ['get_orgs_orgId_invoices'],
    );
    const tool = tools[0]!;
    assert.equal(tool.title, 'List invoices');
    assert.match(tool.description!, /GET \/billing\/orgs\/\{orgId\}\/invoices/);
    assert.deepEqual(tool.inputSchema.required, ['orgId']);
    assert.equal(tool.annotations?.readOnlyHint, true);

    const before = upstream.requests.length;
    const result = await client.callTool({
      name: 'get_orgs_orgId_invoices',
      arguments: { orgId: 'acme', query: { status: 'open', tag: ['a', 'b'] } },
    });
    assert.equal(result.isError, false, textOf(result));
    const seen = JSON.parse(textOf(result)) as { method: string; url: string; headers: Record<string, string> };
    assert.equal(seen.method, 'GET');
    assert.equal(seen.url, '/orgs/acme/invoices?status=open&tag=a&tag=b');
    // The upstream gets the gateway's JWT, never the key, and none of the MCP transport's headers.
    assert.match(seen.headers.authorization!, /^Bearer eyJ/);
    assert.equal(seen.headers['mcp-protocol-version'], undefined);
    assert.equal(upstream.requests.length, before + 1);
    assert.deepEqual(result.structuredContent, seen);
    assert.equal((result._meta as Record<string, unknown>)['gatehouse.dev/status'], 200);
  });

  it('refuses a tool the role does not grant, as the plain request would be', async () => {
    const client = await open('/billing/mcp', reader.key);
    const before = upstream.requests.length;
    const result = await client.callTool({ name: 'get_customers', arguments: {} });
    assert.equal(result.isError, true);
    const problem = JSON.parse(textOf(result)) as Record<string, unknown>;
    assert.equal(problem.code, 'GH_ERR_AUTH_FORBIDDEN_ENDPOINT');
    assert.equal(problem.status, 403);
    assert.equal(upstream.requests.length, before, 'a refused call never reaches the upstream');
    // A name that is no tool at all is a protocol error.
    await assert.rejects(client.callTool({ name: 'no_such_tool', arguments: {} }), /Unknown tool/);
  });

  it('gives a derived credential only its narrowed tools, and its pins hold on calls', async () => {
    const form = new URLSearchParams({
      grant_type: GRANT,
      subject_token: writer.key,
      subject_token_type: ACCESS,
      agent_id: 'invoice-assistant',
      agent_session: 'chat-1',
      scope: 'invoices:read',
      resource_pin: 'orgId=acme',
    });
    const minted = (await (await fetch(`${gw.url}/oauth2/token`, { method: 'POST', body: form })).json()) as {
      access_token: string;
    };
    const writerTools = (await (await open('/billing/mcp', writer.key)).listTools()).tools.map((t) => t.name);
    assert.deepEqual(writerTools, ['get_orgs_orgId_invoices', 'post_orgs_orgId_invoices', 'get_customers']);

    const agent = await open('/billing/mcp', minted.access_token);
    const { tools } = await agent.listTools();
    assert.deepEqual(
      tools.map((t) => t.name),
      ['get_orgs_orgId_invoices'],
    );
    const ok = await agent.callTool({ name: 'get_orgs_orgId_invoices', arguments: { orgId: 'acme' } });
    assert.equal(ok.isError, false, textOf(ok));
    const seen = JSON.parse(textOf(ok)) as { headers: Record<string, string> };
    const claims = JSON.parse(
      Buffer.from(seen.headers.authorization!.split('.')[1]!, 'base64url').toString(),
    ) as Record<string, unknown>;
    assert.deepEqual(claims.act, { sub: 'invoice-assistant', session: 'chat-1' });

    const pinned = await agent.callTool({ name: 'get_orgs_orgId_invoices', arguments: { orgId: 'globex' } });
    assert.equal(pinned.isError, true);
    assert.equal((JSON.parse(textOf(pinned)) as { code: string }).code, 'GH_ERR_DERIVED_FORBIDDEN');
    const wider = await agent.callTool({ name: 'post_orgs_orgId_invoices', arguments: { orgId: 'acme', body: {} } });
    assert.equal((JSON.parse(textOf(wider)) as { code: string }).code, 'GH_ERR_DERIVED_FORBIDDEN');
  });

  it('refuses a call over the rate limit with the limit error and when to retry', async () => {
    const client = await open('/billing/mcp', limited.key);
    const call = () => client.callTool({ name: 'get_orgs_orgId_invoices', arguments: { orgId: 'acme' } });
    assert.equal((await call()).isError, false);
    assert.equal((await call()).isError, false);
    const refused = await call();
    assert.equal(refused.isError, true);
    const meta = refused._meta as Record<string, unknown>;
    assert.equal(meta['gatehouse.dev/code'], 'GH_ERR_RATE_LIMITED');
    assert.equal(meta['gatehouse.dev/status'], 429);
    assert.ok(Number(meta['gatehouse.dev/retryAfter']) >= 1);
  });

  it(
    'holds a concurrency cap across tool calls, and a finished call gives its slot back',
    { timeout: 15_000 },
    async () => {
      const client = await open('/slow/mcp', reader.key);
      const call = () => client.callTool({ name: 'get_report', arguments: {} });
      const first = call();
      await new Promise<void>((resolve) => (arrived = resolve));
      const second = await call();
      assert.equal(second.isError, true);
      assert.equal((second._meta as Record<string, unknown>)['gatehouse.dev/code'], 'GH_ERR_CONCURRENCY_LIMITED');
      held.shift()!();
      assert.equal(textOf(await first), 'report');
      const third = call();
      await new Promise<void>((resolve) => (arrived = resolve));
      held.shift()!();
      const result = await third;
      assert.equal(result.isError, false, textOf(result));
      assert.equal(result.structuredContent, undefined, 'a text answer is only text');
    },
  );

  it(
    'abandons the upstream request of a call whose MCP client went away, and frees its slot',
    { timeout: 20_000 },
    async () => {
      const stop = new AbortController();
      const sent = fetch(`${gw.url}/slow/mcp`, {
        method: 'POST',
        signal: stop.signal,
        headers: {
          authorization: `Bearer ${reader.key}`,
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
        },
        body: JSON.stringify({
          jsonrpc: '2.0',
          id: 1,
          method: 'tools/call',
          params: { name: 'get_report', arguments: {} },
        }),
      }).catch(() => undefined);
      await new Promise<void>((resolve) => (arrived = resolve));
      const upstreamGone = new Promise<void>((resolve) => (abandoned = resolve));
      stop.abort();
      await sent;
      await upstreamGone;
      held.shift();
      const client = await open('/slow/mcp', reader.key);
      const next = client.callTool({ name: 'get_report', arguments: {} });
      await new Promise<void>((resolve) => (arrived = resolve));
      held.shift()!();
      assert.equal(textOf(await next), 'report');
    },
  );

  it('applies the collection’s resource policies (Cedar) to each call', async () => {
    const client = await open('/orgs/mcp', writer.key);
    const own = await client.callTool({ name: 'get_orgId_profile', arguments: { orgId: 'acme' } });
    assert.equal(own.isError, false, textOf(own));
    const other = await client.callTool({ name: 'get_orgId_profile', arguments: { orgId: 'globex' } });
    assert.equal(other.isError, true);
    assert.equal((JSON.parse(textOf(other)) as { code: string }).code, 'GH_ERR_AUTH_FORBIDDEN_RESOURCE');
  });

  it('names tools after the OpenAPI operations, with their schemas, and sends the body as JSON', async () => {
    const client = await open('/books-api/agents/mcp', writer.key);
    const { tools } = await client.listTools();
    assert.deepEqual(
      tools.map((t) => t.name),
      ['listBooks', 'add_book'],
    );
    const list = tools[0]!;
    assert.equal(list.title, 'List the books');
    assert.deepEqual(list.inputSchema.properties, { author: { type: 'string' } });
    const add = tools[1]!;
    assert.deepEqual(add.inputSchema.required, ['body']);
    assert.deepEqual((add.inputSchema.properties as Record<string, unknown>).body, { $ref: '#/$defs/Book' });
    assert.deepEqual((add.inputSchema as Record<string, unknown>).$defs, { Book: SPEC.components.schemas.Book });

    const listed = await client.callTool({ name: 'listBooks', arguments: { author: 'Le Guin' } });
    assert.equal((JSON.parse(textOf(listed)) as { url: string }).url, '/books?author=Le%20Guin');
    const added = await client.callTool({ name: 'add_book', arguments: { body: { title: 'Earthsea' } } });
    assert.equal(added.isError, false, textOf(added));
    const seen = upstream.requests.at(-1)!;
    assert.equal(seen.method, 'POST');
    assert.equal(seen.headers['content-type'], 'application/json');
    await assert.rejects(client.callTool({ name: 'add_book', arguments: {} }), /"body" is required/);
    // The endpoint's request validation is in its chain: an invalid body is refused before the upstream.
    const count = upstream.requests.length;
    const invalid = await client.callTool({ name: 'add_book', arguments: { body: { pages: 3 } } });
    assert.equal(invalid.isError, true);
    assert.equal((JSON.parse(textOf(invalid)) as { code: string }).code, 'GH_ERR_REQUEST_VALIDATION');
    assert.equal(upstream.requests.length, count);
  });

  it('serves a public collection to anyone, every tool listed, no credential forwarded', async () => {
    const client = await open('/status/mcp', undefined);
    assert.equal(client.getServerVersion()?.name, 'status-page');
    assert.deepEqual(
      (await client.listTools()).tools.map((t) => t.name),
      ['get_health'],
    );
    const result = await client.callTool({ name: 'get_health', arguments: {} });
    assert.equal(result.isError, false, textOf(result));
    assert.equal((JSON.parse(textOf(result)) as { url: string }).url, '/health');
    const keyed = await open('/status/mcp', reader.key);
    const seen = JSON.parse(textOf(await keyed.callTool({ name: 'get_health', arguments: {} }))) as {
      headers: Record<string, string>;
    };
    assert.equal(seen.headers.authorization, undefined, 'a key sent to a public collection is not forwarded');
  });

  it('answers 401 with the RFC 9728 metadata URL, and serves that metadata pointing at the token endpoint', async () => {
    const res = await fetch(`${gw.url}/billing/mcp`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
    });
    assert.equal(res.status, 401);
    const challenge = res.headers.get('www-authenticate')!;
    const metadataUrl = `${gw.url}/.well-known/oauth-protected-resource/billing/mcp`;
    assert.match(challenge, /^Bearer /);
    assert.ok(challenge.includes(`resource_metadata="${metadataUrl}"`), challenge);
    assert.equal(((await res.json()) as { code: string }).code, 'GH_ERR_AUTH_MISSING_KEY');

    const bad = await fetch(`${gw.url}/billing/mcp`, {
      method: 'POST',
      headers: { authorization: 'Bearer ghk_nope', 'content-type': 'application/json' },
      body: '{}',
    });
    assert.equal(bad.status, 401);
    assert.match(bad.headers.get('www-authenticate')!, /error="invalid_token"/);

    const meta = await fetch(metadataUrl);
    assert.equal(meta.status, 200);
    const document = (await meta.json()) as Record<string, unknown>;
    assert.equal(document.resource, `${gw.url}/billing/mcp`);
    assert.deepEqual(document.authorization_servers, [gw.url]);
    assert.deepEqual(document.bearer_methods_supported, ['header']);

    const as = (await (await fetch(`${gw.url}/.well-known/oauth-authorization-server`)).json()) as Record<
      string,
      unknown
    >;
    assert.equal(as.issuer, gw.url);
    assert.equal(as.token_endpoint, `${gw.url}/oauth2/token`);
    assert.deepEqual(as.grant_types_supported, [GRANT]);

    // A collection that does not opt in has neither an MCP endpoint nor metadata.
    assert.equal((await fetch(`${gw.url}/.well-known/oauth-protected-resource/plain/mcp`)).status, 404);
    assert.equal((await fetch(`${gw.url}/plain/mcp`, { method: 'POST', body: '{}' })).status, 404);
    // Stateless: no stream to GET.
    const get = await fetch(`${gw.url}/billing/mcp`, { headers: { authorization: `Bearer ${reader.key}` } });
    assert.equal(get.status, 405);
    assert.equal(get.headers.get('allow'), 'POST');
  });
});
