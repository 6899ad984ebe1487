import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { ERRORS, renderErrorDocs } from './errors.ts';

describe('the error code table', () => {
  it('matches docs/errors.md (regenerate with `gatehouse docs errors`)', () => {
    const docs = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');
    assert.equal(docs, renderErrorDocs());
  });

  it('names every code GH_ERR_<AREA>_<WHAT> with a 4xx or 5xx status', () => {
    for (const [code, def] of Object.entries(ERRORS)) {
      assert.match(code, /^GH_ERR_[A-Z]+_[A-Z_]+$/);
      assert.ok(def.status >= 400 && def.status < 600, code);
      assert.ok(def.doc.length > 20, `${code} needs a doc line`);
    }
  });
});

describe('the one problem writer', () => {
  it('writes the same shape for every server: extensions before instance, realm on 401, headers kept', async () => {
    const { createServer } = await import('node:http');
    const { sendProblem } = await import('./errors.ts');
    const server = createServer((req, res) => {
      if (req.url === '/admin')
        sendProblem(
          res,
          {
            code: 'GH_ERR_ADMIN_INVALID_BODY',
            detail: 'body.name: required',
            extensions: { errors: [{ path: 'body.name', message: 'required' }] },
          },
          'r1',
          'gatehouse-admin',
        );
      else if (req.url === '/admin-401')
        sendProblem(res, { code: 'GH_ERR_ADMIN_UNAUTHENTICATED' }, 'r2', 'gatehouse-admin');
      else sendProblem(res, { code: 'GH_ERR_RATE_LIMITED', headers: { 'retry-after': '3' } }, 'r3');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    try {
      const admin = await fetch(`${base}/admin`);
      assert.equal(admin.status, 400);
      assert.equal(admin.headers.get('content-type'), 'application/problem+json');
      assert.equal(
        await admin.text(),
        '{"type":"https://gatehouse.dev/docs/errors#gh_err_admin_invalid_body","title":"Invalid request","status":400,"code":"GH_ERR_ADMIN_INVALID_BODY","detail":"body.name: required","errors":[{"path":"body.name","message":"required"}],"instance":"urn:gatehouse:request:r1"}',
      );
      const unauthenticated = await fetch(`${base}/admin-401`);
      assert.equal(unauthenticated.headers.get('www-authenticate'), 'Bearer realm="gatehouse-admin"');
      await unauthenticated.arrayBuffer();
      const limited = await fetch(`${base}/data`);
      assert.equal(limited.status, 429);
      assert.equal(limited.headers.get('retry-after'), '3');
      assert.equal(limited.headers.get('x-request-id'), 'r3');
      await limited.arrayBuffer();
    } finally {
      server.close();
    }
  });

  it("has an internal-error code per server, so a control-plane fault is not reported as the gateway's", () => {
    assert.equal(ERRORS.GH_ERR_ADMIN_INTERNAL.status, 500);
    assert.equal(ERRORS.GH_ERR_BOOTSTRAP_INTERNAL.status, 500);
    assert.equal(ERRORS.GH_ERR_GATEWAY_INTERNAL.status, 500);
  });
});
