/**
 * What a running gateway strips, refuses and forwards (docs/security.md), on raw sockets so that nothing
 * normalises the request on its way: rewrite, address and identity headers never reach the upstream; a key in the
 * URL is refused; credentials never reach the upstream, also on a public collection; the client's Host is
 * forwarded only where the gateway vouches for it; request lines of other HTTP versions, CONNECT and TRACE get a
 * problem answer instead of being served or cut.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { REFUSED_METHOD_OVERRIDES, STRIPPED } from '../src/gateway/http/header-rules.ts';
import {
  newKey,
  parseRaw,
  rawRequest,
  startGateway,
  startUpstream,
  TOKEN_EXCHANGE,
  type GatewayProcess,
  type Upstream,
} from './helpers.ts';

const key = newKey();
const LEGACY_KEY = 'legacy-7f3a9c1e5b';
const LEGACY_EMAIL = 'ops@example.com';

interface Sent {
  status: number;
  json: Record<string, unknown> | undefined;
  headers: string;
  /** The upstream's view of the request, when it got there. */
  seen: { url: string; headers: Record<string, string> } | undefined;
}

describe('request hygiene on a running gateway', () => {
  let upstream: Upstream;
  let gw: GatewayProcess;
  let vouching: GatewayProcess;

  const collection = (name: string, basePath: string, extra: Record<string, unknown> = {}) => ({
    name,
    basePath,
    upstream: upstream.url,
    project: 'payments',
    environment: 'PROD',
    endpoints: [
      { method: 'GET', path: '/orgs/{orgId}/invoices', permission: `${name}:read` },
      { method: 'GET', path: '/files/{name}', permission: `${name}:read` },
    ],
    ...extra,
  });
  const config = (server: Record<string, unknown> = {}) => ({
    tokenExchange: TOKEN_EXCHANGE,
    collections: [
      collection('billing', '/billing'),
      collection('status', '/status', { authRequired: false }),
      collection('partner', '/partner', { host: 'partner.example.test' }),
      collection('reports', '/reports', { audience: 'urn:example:reports-api' }),
    ],
    roles: [{ name: 'reader', permissions: ['billing:read', 'partner:read', 'reports:read'] }],
    clients: [
      {
        id: 'reader-client',
        role: 'reader',
        environments: ['PROD'],
        projects: ['payments'],
        keys: [{ hash: key.hash }],
      },
    ],
    legacyClients: [
      {
        id: 'legacy-client',
        role: 'reader',
        environments: ['PROD'],
        projects: ['payments'],
        email: LEGACY_EMAIL,
        keyHash: `sha256:${createHash('sha256').update(LEGACY_KEY).digest('hex')}`,
      },
    ],
    ...(Object.keys(server).length > 0 ? { server } : {}),
  });

  before(async () => {
    upstream = await startUpstream();
    gw = await startGateway(config());
    vouching = await startGateway(
      config({ publicHosts: ['api.example.test', '*.tenant.test', 'edge.example.test:8443'] }),
    );
  });

  after(async () => {
    await gw?.stop();
    await vouching?.stop();
    await upstream?.close();
  });

  /** Sends a raw request; `headers` are written as given (null Host: none). */
  async function send(
    target: string,
    options: {
      method?: string;
      version?: string;
      host?: string | null;
      headers?: [string, string][];
      key?: string | null;
      to?: GatewayProcess;
    } = {},
  ): Promise<Sent> {
    const to = options.to ?? gw;
    const host = options.host === undefined ? `127.0.0.1:${to.port}` : options.host;
    const lines = [`${options.method ?? 'GET'} ${target} ${options.version ?? 'HTTP/1.1'}`];
    if (host !== null) lines.push(`Host: ${host}`);
    const credential = options.key === undefined ? key.key : options.key;
    if (credential !== null) lines.push(`Authorization: Bearer ${credential}`);
    for (const [name, value] of options.headers ?? []) lines.push(`${name}: ${value}`);
    lines.push('Connection: close', '', '');
    const before = upstream.requests.length;
    const res = parseRaw(await rawRequest(to.port, lines.join('\r\n')));
    const seen = upstream.requests.length > before ? upstream.requests.at(-1) : undefined;
    return {
      status: res.status,
      json: res.json,
      headers: res.headers,
      seen: seen && { url: seen.url, headers: seen.headers as Record<string, string> },
    };
  }

  async function refused(sent: Promise<Sent>, status: number, code: string): Promise<Sent> {
    const res = await sent;
    assert.equal(res.status, status, JSON.stringify(res.json));
    assert.equal(res.json?.code, code);
    assert.equal(res.seen, undefined, 'the request reached the upstream');
    return res;
  }

  describe('headers', () => {
    it('never forwards X-Original-URL or X-Rewrite-URL on a granted request', async () => {
      const res = await send('/billing/orgs/acme/invoices', {
        headers: [
          ['X-Original-URL', '/admin/users'],
          ['X-Rewrite-URL', '/admin/users'],
        ],
      });
      assert.equal(res.status, 200);
      assert.equal(res.seen?.url, '/orgs/acme/invoices');
      assert.equal(res.seen?.headers['x-original-url'], undefined);
      assert.equal(res.seen?.headers['x-rewrite-url'], undefined);
    });

    it('strips every listed rewrite, address, identity and hop-by-hop header, and every listed prefix', async () => {
      const sent: [string, string][] = [];
      for (const rule of STRIPPED) {
        for (const name of rule.names)
          if (!['host', 'connection', 'transfer-encoding', 'upgrade', 'te', 'trailer', 'keep-alive'].includes(name))
            sent.push([name, 'attacker']);
        for (const prefix of rule.prefixes ?? []) sent.push([`${prefix}id`, 'attacker']);
      }
      const res = await send('/billing/orgs/acme/invoices', { headers: sent });
      assert.equal(res.status, 200);
      for (const [name] of sent) {
        const value = res.seen?.headers[name];
        assert.ok(value === undefined || !value.includes('attacker'), `${name} reached the upstream as ${value}`);
      }
      // The gateway's own, in their place.
      assert.equal(res.seen?.headers['x-forwarded-for'], '127.0.0.1');
      assert.match(res.seen?.headers.authorization ?? '', /^Bearer ey/);
    });

    it('forwards ordinary headers untouched', async () => {
      const res = await send('/billing/orgs/acme/invoices', {
        headers: [
          ['Accept-Language', 'de'],
          ['X-Tenant-Hint', 'acme'],
          ['X-Originally', 'kept'],
        ],
      });
      assert.equal(res.seen?.headers['accept-language'], 'de');
      assert.equal(res.seen?.headers['x-tenant-hint'], 'acme');
      assert.equal(res.seen?.headers['x-originally'], 'kept');
    });

    for (const name of REFUSED_METHOD_OVERRIDES) {
      it(`refuses the method override ${name}`, async () => {
        await refused(
          send('/billing/orgs/acme/invoices', { headers: [[name, 'DELETE']] }),
          400,
          'GH_ERR_REQUEST_METHOD_OVERRIDE',
        );
      });
    }
  });

  describe('header names spelled with underscores (CGI, WSGI and Rack read _ as -)', () => {
    it('strips rewrite, address, identity and request-id headers in every spelling', async () => {
      const res = await send('/billing/orgs/acme/invoices', {
        headers: [
          ['X_Original_URL', '/admin/users'],
          ['X-Rewrite_URL', '/admin/users'],
          ['X_Forwarded_Host', 'evil.example'],
          ['X_Forwarded_For', '6.6.6.6'],
          ['X_Forwarded_User', 'admin'],
          ['X_Request_Id', 'forged'],
          ['X_Consumer_Username', 'admin'],
          ['x_gatehouse_client', 'admin'],
        ],
      });
      assert.equal(res.status, 200);
      for (const [name, value] of Object.entries(res.seen!.headers)) {
        assert.ok(!name.includes('_'), `${name} reached the upstream`);
        assert.ok(
          !['/admin/users', 'evil.example', 'admin', 'forged'].includes(value) && !value.includes('6.6.6.6'),
          `${name}: ${value}`,
        );
      }
    });

    it('refuses a method override in any spelling', async () => {
      for (const name of ['X_HTTP_Method_Override', 'x-http_method', 'X_Original_Method']) {
        await refused(
          send('/billing/orgs/acme/invoices', { headers: [[name, 'DELETE']] }),
          400,
          'GH_ERR_REQUEST_METHOD_OVERRIDE',
        );
      }
    });

    it('strips an underscore spelling of X-API-Key on an authenticated and on a public collection', async () => {
      const authenticated = await send('/billing/orgs/acme/invoices', { headers: [['X_API_Key', key.key]] });
      assert.equal(authenticated.status, 200);
      assert.ok(!JSON.stringify(authenticated.seen?.headers).includes(key.key));
      const open = await send('/status/orgs/acme/invoices', { key: null, headers: [['X_API_Key', key.key]] });
      assert.equal(open.status, 200);
      assert.ok(!JSON.stringify(open.seen?.headers).includes(key.key));
    });
  });

  describe('method overrides in the query', () => {
    it('refuses a _method parameter, raw or encoded, in any case', async () => {
      for (const query of ['_method=DELETE', 'a=1&_method=DELETE', '%5Fmethod=DELETE', '_METHOD=delete', '_method']) {
        await refused(send(`/billing/orgs/acme/invoices?${query}`), 400, 'GH_ERR_REQUEST_METHOD_OVERRIDE');
      }
    });

    it('still forwards parameters that merely look alike', async () => {
      const res = await send('/billing/orgs/acme/invoices?method=card&payment_method=x&_methods=1');
      assert.equal(res.status, 200);
    });
  });

  describe('paths a backend may read differently', () => {
    for (const [target, code] of [
      ['/billing/files/a%EF%BC%8Fb', 'GH_ERR_REQUEST_ENCODED_SLASH'], // U+FF0F FULLWIDTH SOLIDUS
      ['/billing/files/a%EF%BC%BCb', 'GH_ERR_REQUEST_ENCODED_SLASH'], // U+FF3C FULLWIDTH REVERSE SOLIDUS
      ['/billing/files/report%23.pdf', 'GH_ERR_REQUEST_AMBIGUOUS_SEGMENT'],
      ['/billing/files/report%3F.pdf', 'GH_ERR_REQUEST_AMBIGUOUS_SEGMENT'],
      ['/billing/files/...', 'GH_ERR_REQUEST_AMBIGUOUS_SEGMENT'],
      ['/billing/files/%2E%2E%2E', 'GH_ERR_REQUEST_AMBIGUOUS_SEGMENT'],
      ['/billing/files/%EF%BC%8E%EF%BC%8E', 'GH_ERR_REQUEST_AMBIGUOUS_SEGMENT'], // '..' after NFKC
      ['/billing/files/%EF%BC%9F', 'GH_ERR_REQUEST_AMBIGUOUS_SEGMENT'], // U+FF1F FULLWIDTH QUESTION MARK
      ['/billing/files/%EF%BC%9B', 'GH_ERR_REQUEST_PATH_PARAMETER'], // U+FF1B FULLWIDTH SEMICOLON
    ] as const) {
      it(`refuses ${target} on a granted path with ${code}`, async () => {
        await refused(send(target), 400, code);
      });
    }

    it('still forwards a parameter with ordinary non-ASCII characters', async () => {
      const res = await send('/billing/files/caf%C3%A9-%E6%97%A5.pdf');
      assert.equal(res.status, 200);
      assert.equal(res.seen?.url, '/files/caf%C3%A9-%E6%97%A5.pdf');
    });
  });

  describe('credentials', () => {
    it('refuses a key in the query when the same key is also sent in the header, and never forwards it', async () => {
      const res = await refused(send(`/billing/orgs/acme/invoices?api_key=${key.key}`), 400, 'GH_ERR_AUTH_KEY_IN_URL');
      assert.ok(!JSON.stringify(res.json).includes(key.key), 'the problem echoes the key');
    });

    it('refuses a key in the query alone, percent-encoded, behind other parameters, or in the path', async () => {
      const encoded = key.key.replace('g', '%67').replace('_', '%5F');
      await refused(
        send(`/billing/orgs/acme/invoices?api_key=${key.key}`, { key: null }),
        400,
        'GH_ERR_AUTH_KEY_IN_URL',
      );
      await refused(send(`/billing/orgs/acme/invoices?page=2&token=${encoded}`), 400, 'GH_ERR_AUTH_KEY_IN_URL');
      await refused(send(`/billing/orgs/acme/invoices?q=100%&k=${key.key}`), 400, 'GH_ERR_AUTH_KEY_IN_URL');
      await refused(send(`/billing/files/${key.key}`), 400, 'GH_ERR_AUTH_KEY_IN_URL');
      await refused(send(`/status/orgs/acme/invoices?key=${key.key}`, { key: null }), 400, 'GH_ERR_AUTH_KEY_IN_URL');
      // Encoded twice: the key to a backend that decodes twice, and readable in every log on the way.
      await refused(send(`/billing/orgs/acme/invoices?x=%2567${key.key.slice(1)}`), 400, 'GH_ERR_AUTH_KEY_IN_URL');
      await refused(send(`/billing/orgs/acme/invoices?x=%252567${key.key.slice(1)}`), 400, 'GH_ERR_AUTH_KEY_IN_URL');
    });

    it('forwards neither Authorization, X-API-Key nor the legacy pair when all are sent together', async () => {
      const res = await send('/billing/orgs/acme/invoices', {
        headers: [
          ['X-API-Key', key.key],
          ['X-API-Email', LEGACY_EMAIL],
        ],
      });
      assert.equal(res.status, 200);
      assert.equal(res.seen?.headers['x-api-key'], undefined);
      assert.equal(res.seen?.headers['x-api-email'], undefined);
      assert.ok(!JSON.stringify(res.seen?.headers).includes(key.key));
    });

    it('forwards no legacy pair after authenticating with it', async () => {
      const res = await send('/billing/orgs/acme/invoices', {
        key: null,
        headers: [
          ['X-API-Key', LEGACY_KEY],
          ['X-API-Email', LEGACY_EMAIL],
        ],
      });
      assert.equal(res.status, 200);
      assert.equal(res.seen?.headers['x-api-key'], undefined);
      assert.equal(res.seen?.headers['x-api-email'], undefined);
    });

    it('strips Gatehouse keys and known legacy pairs sent to a public collection, and keeps other Authorization values', async () => {
      const withKey = await send('/status/orgs/acme/invoices', { headers: [['X-API-Key', key.key]] });
      assert.equal(withKey.status, 200);
      assert.equal(withKey.seen?.headers.authorization, undefined);
      assert.equal(withKey.seen?.headers['x-api-key'], undefined);
      const legacy = await send('/status/orgs/acme/invoices', {
        key: null,
        headers: [
          ['X-API-Key', LEGACY_KEY],
          ['X-API-Email', LEGACY_EMAIL],
        ],
      });
      assert.equal(legacy.seen?.headers['x-api-key'], undefined);
      assert.equal(legacy.seen?.headers['x-api-email'], undefined);
      const own = await send('/status/orgs/acme/invoices', {
        key: null,
        headers: [
          ['Authorization', 'Basic dXNlcjpwYXNz'],
          ['X-API-Key', 'backend-own-key'],
        ],
      });
      assert.equal(own.seen?.headers.authorization, 'Basic dXNlcjpwYXNz');
      assert.equal(own.seen?.headers['x-api-key'], 'backend-own-key');
    });
  });

  describe('the audience of the forwarded token', () => {
    const claims = (authorization: string | undefined) =>
      JSON.parse(Buffer.from(authorization!.split('.')[1]!, 'base64url').toString()) as { aud: unknown; iss: string };

    it("is tokenExchange.audience by default, and a collection's own audience where it names one", async () => {
      const billing = await send('/billing/orgs/acme/invoices');
      const reports = await send('/reports/orgs/acme/invoices');
      assert.equal(claims(billing.seen?.headers.authorization).aud, TOKEN_EXCHANGE.audience);
      assert.equal(claims(reports.seen?.headers.authorization).aud, 'urn:example:reports-api');
      // The same key on the same connection gets one token per audience, never the other collection's cached one.
      assert.notEqual(billing.seen?.headers.authorization, reports.seen?.headers.authorization);
      assert.equal(
        claims((await send('/billing/orgs/acme/invoices')).seen?.headers.authorization).aud,
        TOKEN_EXCHANGE.audience,
      );
    });
  });

  describe('the Host the upstream is told about', () => {
    it('forwards no client Host when no public host is configured, however the Host is spelled', async () => {
      const res = await send('/billing/orgs/acme/invoices', { host: 'evil.example' });
      assert.equal(res.status, 200);
      assert.equal(res.seen?.headers['x-forwarded-host'], undefined);
      assert.doesNotMatch(res.seen?.headers.forwarded ?? '', /host=/);
      assert.equal(res.seen?.headers.host, `127.0.0.1:${upstream.port}`);
    });

    it('refuses a Host that is not a public host with 421, without contacting the upstream', async () => {
      await refused(
        send('/billing/orgs/acme/invoices', { host: 'evil.example', to: vouching }),
        421,
        'GH_ERR_REQUEST_UNKNOWN_HOST',
      );
      await refused(
        send('/billing/orgs/acme/invoices', { host: 'tenant.test', to: vouching }),
        421,
        'GH_ERR_REQUEST_UNKNOWN_HOST',
      );
      await refused(
        send('/billing/orgs/acme/invoices', { host: 'edge.example.test:9443', to: vouching }),
        421,
        'GH_ERR_REQUEST_UNKNOWN_HOST',
      );
      await refused(
        send('/billing/orgs/acme/invoices', { host: null, version: 'HTTP/1.0', to: vouching }),
        421,
        'GH_ERR_REQUEST_UNKNOWN_HOST',
      );
    });

    it('refuses a key in the Host, and host names with empty or hyphen-led labels', async () => {
      await refused(
        send('/billing/orgs/acme/invoices', { host: `${key.key.toLowerCase()}.tenant.test`, to: vouching }),
        400,
        'GH_ERR_AUTH_KEY_IN_URL',
      );
      for (const host of ['..tenant.test', '-.tenant.test', 'a..tenant.test', '.tenant.test']) {
        await refused(send('/billing/orgs/acme/invoices', { host, to: vouching }), 400, 'GH_ERR_REQUEST_INVALID_HOST');
      }
    });

    it('forwards a public host, by name with any port, by wildcard, or by name and port', async () => {
      for (const host of ['api.example.test', 'API.Example.Test:8080', 'acme.tenant.test', 'edge.example.test:8443']) {
        const res = await send('/billing/orgs/acme/invoices', { host, to: vouching });
        assert.equal(res.status, 200, host);
        assert.equal(res.seen?.headers['x-forwarded-host'], host);
        assert.match(res.seen?.headers.forwarded ?? '', new RegExp(`;host="${host.replace(/\./g, '\\.')}"`));
      }
    });

    it('forwards the host a collection names, also on a gateway with public hosts', async () => {
      const res = await send('/partner/orgs/acme/invoices', { host: 'partner.example.test', to: vouching });
      assert.equal(res.status, 200);
      assert.equal(res.seen?.headers['x-forwarded-host'], 'partner.example.test');
    });
  });

  describe('request lines and methods', () => {
    for (const version of ['HTTP/0.9', 'HTTP/2.0']) {
      it(`answers a ${version} request line with 505 and does not serve it`, async () => {
        const res = await refused(send('/billing/orgs/acme/invoices', { version }), 505, 'GH_ERR_REQUEST_HTTP_VERSION');
        assert.match(res.headers, /^HTTP\/1\.1 505 /);
      });
    }

    it('still serves HTTP/1.0', async () => {
      const res = await send('/billing/orgs/acme/invoices', { version: 'HTTP/1.0' });
      assert.equal(res.status, 200);
    });

    it('answers CONNECT with 501 problem+json instead of closing the connection', async () => {
      const res = await refused(
        send(`127.0.0.1:${upstream.port}`, { method: 'CONNECT' }),
        501,
        'GH_ERR_REQUEST_METHOD_NOT_SUPPORTED',
      );
      assert.match(res.headers, /content-type: application\/problem\+json/i);
    });

    it('refuses TRACE with 501, on a route and off one', async () => {
      await refused(
        send('/billing/orgs/acme/invoices', { method: 'TRACE' }),
        501,
        'GH_ERR_REQUEST_METHOD_NOT_SUPPORTED',
      );
      await refused(send('/nowhere', { method: 'TRACE' }), 501, 'GH_ERR_REQUEST_METHOD_NOT_SUPPORTED');
    });

    it('keeps serving after all of the above', async () => {
      assert.equal((await send('/billing/orgs/acme/invoices')).status, 200);
    });
  });
});
