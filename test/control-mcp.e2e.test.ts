/**
 * MCP through the control plane: a collection created with `mcp` through the admin API and published is served as
 * an MCP server by the cloud gateway under its environment's prefix, and the OAuth metadata names that
 * environment's token endpoint (a real `gatehouse control start` process and the SDK's client).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { eventually, startControlPlane, type ControlProcess } from './control-helpers.ts';
import { startUpstream, type Upstream } from './helpers.ts';

const ENV = '/workspaces/default/environments/DEV';

describe('MCP on the cloud gateway', () => {
  let cp: ControlProcess;
  let upstream: Upstream;
  let token: string;
  let client: Client | undefined;
  const others: Client[] = [];

  before(async () => {
    upstream = await startUpstream();
    cp = await startControlPlane();
    const admin = cp.api();
    const created = await admin.post(`${ENV}/collections`, {
      name: 'billing',
      basePath: '/billing',
      upstream: upstream.url,
      project: 'default',
      mcp: { path: '/mcp' },
      endpoints: [
        { method: 'GET', path: '/invoices/{id}', permission: 'invoices:read' },
        { method: 'DELETE', path: '/invoices/{id}', permission: 'invoices:delete' },
      ],
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.deepEqual(created.body.mcp, { enabled: true, path: '/mcp' });
    assert.equal((await admin.post(`${ENV}/collections/billing/publish`)).status, 201);
    assert.equal(
      (await admin.post('/workspaces/default/roles', { name: 'reader', permissions: ['invoices:read'] })).status,
      201,
    );
    const c = await admin.post('/workspaces/default/clients', {
      name: 'reader-app',
      role: 'reader',
      environments: ['DEV'],
      projects: ['default'],
    });
    assert.equal(c.status, 201, JSON.stringify(c.body));
    token = c.body.token as string;
  });
  after(async () => {
    for (const c of others) await c.close();
    await client?.close();
    await cp?.stop();
    await upstream?.close();
  });

  it('serves the published collection under the environment prefix, with the tools the client may call', async () => {
    const url = `${cp.gatewayUrl}/default/dev/billing/mcp`;
    await eventually(
      async () => (await fetch(url, { method: 'POST', body: '{}' })).status === 401,
      10_000,
      'the MCP endpoint is served',
    );
    client = new Client({ name: 'e2e', version: '1.0.0' });
    await client.connect(
      new StreamableHTTPClientTransport(new URL(url), {
        requestInit: { headers: { authorization: `Bearer ${token}` } },
      }),
    );
    assert.deepEqual(
      (await client.listTools()).tools.map((t) => t.name),
      ['get_invoices_id'],
    );
    const result = await client.callTool({ name: 'get_invoices_id', arguments: { id: '7' } });
    assert.equal(result.isError, false, JSON.stringify(result));
    assert.equal((result.structuredContent as { url: string }).url, '/invoices/7');

    const metadata = (await (
      await fetch(`${cp.gatewayUrl}/.well-known/oauth-protected-resource/default/dev/billing/mcp`)
    ).json()) as Record<string, unknown>;
    assert.equal(metadata.resource, url);
    assert.deepEqual(metadata.authorization_servers, [`${cp.gatewayUrl}/default/dev`]);
    const server = (await (
      await fetch(`${cp.gatewayUrl}/.well-known/oauth-authorization-server/default/dev`)
    ).json()) as Record<string, unknown>;
    assert.equal(server.token_endpoint, `${cp.gatewayUrl}/default/dev/oauth2/token`);
  });

  it('creates a collection from an OpenAPI import with mcp on, and its tools take the document’s schemas', async () => {
    const admin = cp.api();
    const imported = await admin.post(`${ENV}/collections/books/openapi`, {
      spec: {
        openapi: '3.1.0',
        info: { title: 'Books', version: '1' },
        paths: {
          '/books/{id}': {
            get: {
              operationId: 'getBook',
              'x-gatehouse-permission': 'invoices:read',
              parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'integer' } }],
              responses: { '200': { description: 'ok' } },
            },
          },
        },
      },
      create: { project: 'default', upstream: upstream.url, mcp: {} },
    });
    assert.equal(imported.status, 200, JSON.stringify(imported.body));
    assert.equal((await admin.post(`${ENV}/collections/books/publish`)).status, 201);
    const url = `${cp.gatewayUrl}/default/dev/books/mcp`;
    await eventually(
      async () => (await fetch(url, { method: 'POST', body: '{}' })).status === 401,
      10_000,
      'the MCP endpoint is served',
    );
    const books = new Client({ name: 'e2e', version: '1.0.0' });
    others.push(books);
    await books.connect(
      new StreamableHTTPClientTransport(new URL(url), {
        requestInit: { headers: { authorization: `Bearer ${token}` } },
      }),
    );
    const { tools } = await books.listTools();
    assert.deepEqual(
      tools.map((t) => t.name),
      ['getBook'],
    );
    assert.deepEqual(tools[0]!.inputSchema.properties, { id: { type: 'integer' } });
    const result = await books.callTool({ name: 'getBook', arguments: { id: 3 } });
    assert.equal((result.structuredContent as { url: string }).url, '/books/3');
  });
});
