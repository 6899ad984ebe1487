/**
 * The console's files on the admin port, through real sockets: content types, caching, compression, the SPA
 * fallback, the security headers on every answer, no way out of console/dist, and the page shown when it is missing.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { gunzipSync, brotliDecompressSync } from 'node:zlib';
import { startAdminPlane, type AdminPlane } from '../../testing/admin-plane.ts';
import { CONSOLE_CSP } from './console-static.ts';

interface Raw {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** A request with the path sent exactly as written (fetch would resolve `..` before sending). */
function raw(base: string, path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Raw> {
  const url = new URL(base);
  return new Promise((ok, fail) => {
    const req = request({ host: url.hostname, port: url.port, path, method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => ok({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', fail);
    req.end();
  });
}

const APP_JS = `export const app = ${JSON.stringify('console '.repeat(400))};\n`;
const INDEX =
  '<!doctype html><html><head><script type="module" src="/console/assets/app-3f9a1c.js"></script></head></html>';

function assertSecurityHeaders(res: Raw, what: string) {
  assert.equal(res.headers['content-security-policy'], CONSOLE_CSP, what);
  assert.equal(res.headers['x-content-type-options'], 'nosniff', what);
  assert.equal(res.headers['referrer-policy'], 'no-referrer', what);
  assert.equal(res.headers['x-frame-options'], 'DENY', what);
}

describe('the console on the admin port', () => {
  let tmp = '';
  let cp: AdminPlane;
  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'gatehouse-console-'));
    const dist = join(tmp, 'dist');
    await mkdir(join(dist, 'assets'), { recursive: true });
    await writeFile(join(dist, 'index.html'), INDEX);
    await writeFile(join(dist, 'assets', 'app-3f9a1c.js'), APP_JS);
    await writeFile(join(dist, 'assets', 'app-77aa01.css'), 'body{margin:0}');
    await writeFile(join(dist, 'favicon.svg'), '<svg xmlns="http://www.w3.org/2000/svg"/>');
    await writeFile(join(dist, '.env'), 'SECRET=dot-file');
    // Beside dist: what a path escaping the directory would reach.
    await writeFile(join(tmp, 'secret.txt'), 'TOP SECRET');
    cp = await startAdminPlane({ consoleDir: dist });
  });
  after(async () => {
    await cp?.close();
    await rm(tmp, { recursive: true, force: true });
  });

  it('serves index.html at /console and /console/ (no-cache) and redirects / there', async () => {
    for (const path of ['/console', '/console/']) {
      const res = await raw(cp.base, path);
      assert.equal(res.status, 200, path);
      assert.equal(res.headers['content-type'], 'text/html; charset=utf-8');
      assert.equal(res.headers['cache-control'], 'no-cache');
      assert.equal(res.body.toString(), INDEX);
      assertSecurityHeaders(res, path);
    }
    const root = await raw(cp.base, '/');
    assert.equal(root.status, 302);
    assert.equal(root.headers.location, '/console/');
  });

  it('falls back to index.html for app routes, but answers 404 for a missing file', async () => {
    const route = await raw(cp.base, '/console/gateways/gw_1?tab=instances');
    assert.equal(route.status, 200);
    assert.equal(route.body.toString(), INDEX);
    for (const path of ['/console/assets/app-000000.js', '/console/logo.png']) {
      const missing = await raw(cp.base, path);
      assert.equal(missing.status, 404, path);
      assertSecurityHeaders(missing, path);
    }
  });

  it('serves hashed assets as immutable with their content type, compressed when the client accepts it', async () => {
    const js = await raw(cp.base, '/console/assets/app-3f9a1c.js', { 'accept-encoding': 'gzip' });
    assert.equal(js.status, 200);
    assert.equal(js.headers['content-type'], 'text/javascript; charset=utf-8');
    assert.equal(js.headers['cache-control'], 'public, max-age=31536000, immutable');
    assert.equal(js.headers['content-encoding'], 'gzip');
    assert.equal(js.headers.vary, 'Accept-Encoding');
    assert.ok(js.body.length < APP_JS.length / 4, `gzip made it ${js.body.length} bytes`);
    assert.equal(gunzipSync(js.body).toString(), APP_JS);
    assertSecurityHeaders(js, 'js');

    const br = await raw(cp.base, '/console/assets/app-3f9a1c.js', { 'accept-encoding': 'gzip, deflate, br' });
    assert.equal(br.headers['content-encoding'], 'br');
    assert.equal(brotliDecompressSync(br.body).toString(), APP_JS);
    const identity = await raw(cp.base, '/console/assets/app-3f9a1c.js', { 'accept-encoding': 'br;q=0' });
    assert.equal(identity.headers['content-encoding'], undefined);
    assert.equal(identity.body.toString(), APP_JS);

    const css = await raw(cp.base, '/console/assets/app-77aa01.css');
    assert.equal(css.headers['content-type'], 'text/css; charset=utf-8');
    const svg = await raw(cp.base, '/console/favicon.svg');
    assert.equal(svg.headers['content-type'], 'image/svg+xml');
    assert.equal(svg.headers['cache-control'], 'no-cache');
    // Revalidation: the same ETag gets a 304 without a body.
    const etag = String((await raw(cp.base, '/console/')).headers.etag);
    const again = await raw(cp.base, '/console/', { 'if-none-match': etag });
    assert.equal(again.status, 304);
    assert.equal(again.body.length, 0);
  });

  it('never serves a file outside console/dist, however the path is encoded', async () => {
    for (const path of [
      '/console/../secret.txt',
      '/console/%2e%2e/secret.txt',
      '/console/%2E%2E/secret.txt',
      '/console/..%2fsecret.txt',
      '/console/assets/..%2F..%2Fsecret.txt',
      '/console/..%5csecret.txt',
      '/console/..\\secret.txt',
      '/console/%252e%252e/secret.txt',
      '/console/assets/%2e%2e/%2e%2e/secret.txt',
      '/console/.env',
      '/console/%2eenv',
      '/console/%00/index.html',
      '/console/%zz',
    ]) {
      const res = await raw(cp.base, path);
      assert.ok(res.status === 400 || res.status === 404, `${path}: ${res.status}`);
      assert.equal(res.body.toString().includes('SECRET'), false, path);
      assertSecurityHeaders(res, path);
    }
  });

  it('accepts only GET and HEAD', async () => {
    const post = await raw(cp.base, '/console/', {}, 'POST');
    assert.equal(post.status, 405);
    assert.equal(post.headers.allow, 'GET, HEAD');
    const head = await raw(cp.base, '/console/', {}, 'HEAD');
    assert.equal(head.status, 200);
    assert.equal(head.body.length, 0);
  });
});

describe('the console when it was not built', () => {
  it('answers a page without script that says how to build it', async () => {
    const tmp = await mkdtemp(join(tmpdir(), 'gatehouse-console-'));
    const cp = await startAdminPlane({ consoleDir: join(tmp, 'missing') });
    try {
      const res = await raw(cp.base, '/console/');
      assert.equal(res.status, 503);
      assert.equal(res.headers['content-type'], 'text/html; charset=utf-8');
      assert.match(res.body.toString(), /npm run console:build/);
      assert.equal(/<script/i.test(res.body.toString()), false);
      assertSecurityHeaders(res, 'not built');
      // The admin API itself still answers.
      assert.equal((await raw(cp.base, '/api/v1/me')).status, 401);
    } finally {
      await cp.close();
      await rm(tmp, { recursive: true, force: true });
    }
  });
});
