/**
 * The canonical-path rules end to end on real sockets (docs/canonical-path.md): every ambiguous form is refused
 * with 400 problem+json before it can reach the upstream, and every accepted form reaches the upstream as the one
 * canonical path. Requests go out on raw sockets because fetch would normalise the target first.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
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

/** A header's value in a raw response head (first occurrence, case-insensitive name). */
function header(head: string, name: string): string | undefined {
  for (const line of head.split('\r\n').slice(1)) {
    const colon = line.indexOf(':');
    if (line.slice(0, colon).toLowerCase() === name) return line.slice(colon + 1).trim();
  }
  return undefined;
}

describe('canonical path on a running gateway', () => {
  let upstream: Upstream;
  let gw: GatewayProcess;

  before(async () => {
    upstream = await startUpstream();
    const collection = (
      name: string,
      basePath: string,
      upstreamPath: string,
      endpoints: { method: string; path: string }[],
    ) => ({
      name,
      basePath,
      upstream: `${upstream.url}${upstreamPath}`,
      project: 'payments',
      environment: 'PROD',
      endpoints: endpoints.map((e) => ({ ...e, permission: `${name}:call` })),
    });
    gw = await startGateway({
      tokenExchange: TOKEN_EXCHANGE,
      collections: [
        collection('billing', '/billing', '/api', [
          { method: 'GET', path: '/orgs/{orgId}/invoices' },
          { method: 'DELETE', path: '/orgs/{orgId}/invoices' },
          { method: 'GET', path: '/files/{name}' },
        ]),
        collection('admin', '/admin', '/internal', [{ method: 'GET', path: '/x' }]),
        collection('v1', '/api/v1', '/one', [{ method: 'GET', path: '/users' }]),
        collection('v2', '/api/v2', '/two', [{ method: 'GET', path: '/users' }]),
      ],
      // The client may call everything, so a refusal below is the canonical path's doing, never authorization's.
      roles: [{ name: 'everything', permissions: ['*'] }],
      clients: [
        {
          id: 'all-access',
          role: 'everything',
          environments: ['PROD'],
          projects: ['payments'],
          keys: [{ hash: key.hash }],
        },
      ],
    });
  });

  after(async () => {
    await gw?.stop();
    await upstream?.close();
  });

  /** Sends `method target` on a raw socket with the key, Host (unless `host` is null) and `headers`. */
  async function send(
    target: string,
    options: { method?: string; host?: string | null; headers?: Record<string, string> } = {},
  ) {
    const host = options.host === undefined ? `127.0.0.1:${gw.port}` : options.host;
    const lines = [`${options.method ?? 'GET'} ${target} HTTP/1.1`];
    if (host !== null) lines.push(`Host: ${host}`);
    lines.push(`Authorization: Bearer ${key.key}`);
    for (const [name, value] of Object.entries(options.headers ?? {})) lines.push(`${name}: ${value}`);
    lines.push('Connection: close', '', '');
    return parseRaw(await rawRequest(gw.port, lines.join('\r\n')));
  }

  /** Asserts that `target` is refused with 400 and `code`, and that the upstream never saw it. */
  async function refused(target: string, code: string, options: Parameters<typeof send>[1] = {}): Promise<void> {
    const before = upstream.requests.length;
    const res = await send(target, options);
    assert.equal(res.status, 400, `${target}: ${res.body}`);
    assert.equal(header(res.headers, 'content-type'), 'application/problem+json', target);
    assert.equal(res.json?.code, code, target);
    assert.equal(res.json?.status, 400, target);
    assert.match(String(res.json?.instance), /^urn:gatehouse:request:[0-9a-f]{12}[0-9a-z]{8}$/);
    assert.equal(upstream.requests.length, before, `${target} reached the upstream`);
  }

  /** Asserts that `target` is answered by the upstream, which received exactly `forwarded`. */
  async function forwarded(target: string, expected: string, options: Parameters<typeof send>[1] = {}): Promise<void> {
    const before = upstream.requests.length;
    const res = await send(target, options);
    assert.equal(res.status, 200, `${target}: ${res.body}`);
    assert.equal(header(res.headers, 'x-upstream'), 'yes');
    assert.equal(upstream.requests.length, before + 1, `${target} did not reach the upstream exactly once`);
    assert.equal(upstream.requests.at(-1)!.url, expected, target);
  }

  it('forwards a plain path unchanged, as a baseline for the refusals below', async () => {
    await forwarded('/billing/orgs/acme/invoices?page=2', '/api/orgs/acme/invoices?page=2');
    await forwarded('/admin/x', '/internal/x');
  });

  it('refuses an encoded slash %2F with GH_ERR_REQUEST_ENCODED_SLASH', async () => {
    await refused('/billing/orgs/acme%2F..%2F..%2Fadmin/invoices', 'GH_ERR_REQUEST_ENCODED_SLASH');
  });

  it('refuses a lower-case encoded slash %2f with GH_ERR_REQUEST_ENCODED_SLASH', async () => {
    await refused('/billing/files/a%2fb', 'GH_ERR_REQUEST_ENCODED_SLASH');
  });

  it('refuses an encoded backslash %5C with GH_ERR_REQUEST_ENCODED_SLASH', async () => {
    await refused('/billing/files/a%5Cb', 'GH_ERR_REQUEST_ENCODED_SLASH');
    await refused('/billing/files/a%5cb', 'GH_ERR_REQUEST_ENCODED_SLASH');
  });

  it('refuses a raw backslash with GH_ERR_REQUEST_ENCODED_SLASH', async () => {
    await refused('/billing\\..\\admin/x', 'GH_ERR_REQUEST_ENCODED_SLASH');
    await refused('/billing/files/a\\b', 'GH_ERR_REQUEST_ENCODED_SLASH');
  });

  it('refuses double encoding %252F with GH_ERR_REQUEST_DOUBLE_ENCODING', async () => {
    await refused('/billing/files/a%252Fb', 'GH_ERR_REQUEST_DOUBLE_ENCODING');
  });

  it('refuses double encoding spelled with escapes, %25%32%46, with GH_ERR_REQUEST_DOUBLE_ENCODING', async () => {
    await refused('/billing/files/a%25%32%46b', 'GH_ERR_REQUEST_DOUBLE_ENCODING');
  });

  it('refuses NUL as %00 with GH_ERR_REQUEST_CONTROL_CHARACTER', async () => {
    await refused('/billing/files/a%00.json', 'GH_ERR_REQUEST_CONTROL_CHARACTER');
  });

  it('refuses a line feed %0A in the path with GH_ERR_REQUEST_CONTROL_CHARACTER', async () => {
    await refused('/billing/files/a%0Ab', 'GH_ERR_REQUEST_CONTROL_CHARACTER');
    await refused('/billing/files/a%0d%0aSet-Cookie:x', 'GH_ERR_REQUEST_CONTROL_CHARACTER');
  });

  it('refuses DEL %7F in the path with GH_ERR_REQUEST_CONTROL_CHARACTER', async () => {
    await refused('/billing/files/a%7Fb', 'GH_ERR_REQUEST_CONTROL_CHARACTER');
  });

  it('refuses a raw ";" path parameter with GH_ERR_REQUEST_PATH_PARAMETER', async () => {
    await refused('/billing/orgs/acme;jsessionid=1/invoices', 'GH_ERR_REQUEST_PATH_PARAMETER');
    await refused('/billing/..;/admin/x', 'GH_ERR_REQUEST_PATH_PARAMETER');
  });

  it('refuses an encoded ";" (%3B) path parameter with GH_ERR_REQUEST_PATH_PARAMETER', async () => {
    await refused('/billing/orgs/acme%3Bx=1/invoices', 'GH_ERR_REQUEST_PATH_PARAMETER');
    await refused('/billing/orgs/acme%3bx=1/invoices', 'GH_ERR_REQUEST_PATH_PARAMETER');
  });

  it('refuses ".." climbing out of a collection into another one instead of routing it there', async () => {
    // /billing/../admin/x canonicalizes to /admin/x, which the key may call; the intent was to climb out of /billing.
    await refused('/billing/../admin/x', 'GH_ERR_REQUEST_PATH_TRAVERSAL');
    await refused('/billing/orgs/../../admin/x', 'GH_ERR_REQUEST_PATH_TRAVERSAL');
    await refused('/api/v1/../v2/users', 'GH_ERR_REQUEST_PATH_TRAVERSAL');
  });

  it('refuses encoded dot segments %2e%2e climbing out of a collection', async () => {
    await refused('/billing/%2e%2e/admin/x', 'GH_ERR_REQUEST_PATH_TRAVERSAL');
    await refused('/billing/.%2E/admin/x', 'GH_ERR_REQUEST_PATH_TRAVERSAL');
    await refused('/billing/%2E./admin/x', 'GH_ERR_REQUEST_PATH_TRAVERSAL');
  });

  it('refuses ".." above the root with GH_ERR_REQUEST_PATH_TRAVERSAL', async () => {
    await refused('/..', 'GH_ERR_REQUEST_PATH_TRAVERSAL');
    await refused('/../admin/x', 'GH_ERR_REQUEST_PATH_TRAVERSAL');
    await refused('/billing/../../billing/orgs/acme/invoices', 'GH_ERR_REQUEST_PATH_TRAVERSAL');
    await refused('/%2e%2e/admin/x', 'GH_ERR_REQUEST_PATH_TRAVERSAL');
  });

  it('refuses an absolute-form target whose authority disagrees with Host', async () => {
    await refused('http://admin.internal/billing/orgs/acme/invoices', 'GH_ERR_REQUEST_HOST_MISMATCH');
    await refused(
      `http://127.0.0.1:${gw.port + 1 === 65536 ? 1 : gw.port + 1}/billing/orgs/acme/invoices`,
      'GH_ERR_REQUEST_HOST_MISMATCH',
    );
    await refused('http://127.0.0.1/billing/orgs/acme/invoices', 'GH_ERR_REQUEST_HOST_MISMATCH');
  });

  it('accepts an absolute-form target that agrees with Host and forwards its path', async () => {
    await forwarded(`http://127.0.0.1:${gw.port}/billing/orgs/acme/invoices?x=1`, '/api/orgs/acme/invoices?x=1');
    await forwarded(`HTTP://127.0.0.1:${gw.port}/billing/./orgs/acme/invoices`, '/api/orgs/acme/invoices');
  });

  it('refuses the asterisk form with GH_ERR_REQUEST_MALFORMED_TARGET', async () => {
    await refused('*', 'GH_ERR_REQUEST_MALFORMED_TARGET', { method: 'OPTIONS' });
    await refused('*', 'GH_ERR_REQUEST_MALFORMED_TARGET');
  });

  for (const name of ['X-HTTP-Method-Override', 'X-HTTP-Method', 'X-Method-Override']) {
    it(`refuses the method-override header ${name} with GH_ERR_REQUEST_METHOD_OVERRIDE`, async () => {
      // The key may DELETE too: the refusal is about the header, not about what it asks for.
      await refused('/billing/orgs/acme/invoices', 'GH_ERR_REQUEST_METHOD_OVERRIDE', { headers: { [name]: 'DELETE' } });
      await refused('/billing/orgs/acme/invoices', 'GH_ERR_REQUEST_METHOD_OVERRIDE', {
        method: 'POST',
        headers: { [name.toLowerCase()]: 'GET', 'Content-Length': '0' },
      });
    });
  }

  it('merges empty segments "//" and forwards the canonical path', async () => {
    await forwarded('/billing//orgs///acme/invoices', '/api/orgs/acme/invoices');
    await forwarded('//billing/orgs/acme//invoices?a=b//c', '/api/orgs/acme/invoices?a=b//c');
  });

  it('removes "." segments and forwards the canonical path', async () => {
    await forwarded('/billing/./orgs/./acme/invoices', '/api/orgs/acme/invoices');
    await forwarded('/billing/%2e/orgs/acme/%2E/invoices', '/api/orgs/acme/invoices');
  });

  it('resolves ".." that stays inside the collection and forwards the canonical path', async () => {
    await forwarded('/billing/orgs/x/../acme/invoices', '/api/orgs/acme/invoices');
    await forwarded('/billing/orgs/x/y/%2e%2e/../acme/invoices', '/api/orgs/acme/invoices');
  });

  it('decodes escapes of unreserved characters such as %41 before matching and forwarding', async () => {
    await forwarded('/billing/orgs/%41cme/invoices', '/api/orgs/Acme/invoices');
    await forwarded('/%62illing/orgs/acme/%69nvoices', '/api/orgs/acme/invoices');
    await forwarded('/billing/files/%7Euser%2D1%5F%2E', '/api/files/~user-1_.');
  });

  it('keeps escapes of reserved and non-ASCII characters encoded, with upper-case hex', async () => {
    await forwarded('/billing/files/a%3ab%40c%2c', '/api/files/a%3Ab%40c%2C');
    await forwarded('/billing/files/%e2%82%ac', '/api/files/%E2%82%AC');
  });

  it('forwards the query as sent, where %2F, %25xx and ";" are fine', async () => {
    await forwarded('/billing/orgs/acme/invoices?path=a%2fb&d=%252F;x', '/api/orgs/acme/invoices?path=a%2fb&d=%252F;x');
  });

  it('still refuses a control character in the query', async () => {
    await refused('/billing/orgs/acme/invoices?q=%00', 'GH_ERR_REQUEST_CONTROL_CHARACTER');
  });

  it('kept every refused request away from the upstream', () => {
    assert.ok(upstream.requests.length > 0);
    for (const seen of upstream.requests) {
      const path = seen.url.split('?')[0]!;
      assert.match(path, /^\/(?:api|internal)\//);
      assert.doesNotMatch(path, /\/\.{1,2}(?:\/|$)|\/\/|%2f|%5c|\\|;|%[01][0-9a-f]|%7f|%25[0-9a-f]{2}|%2e/i);
    }
  });
});
