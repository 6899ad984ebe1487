/**
 * The API listener over TLS (`server.tls`): a real `gatehouse gateway run` serves HTTPS with a certificate made
 * here for 127.0.0.1, the upstream learns that the client used https (X-Forwarded-Proto and Forwarded), plain HTTP
 * on the TLS port gets no answer, and a certificate file that cannot be read or a key that does not match stops
 * the start with exit code 2 and a one-line message that names the setting and the file.
 */
import assert from 'node:assert/strict';
import { webcrypto } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'node:https';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { ALGORITHM, exportPrivateKey } from '../src/shared/certificates.ts';
import { x509 } from '../src/shared/x509.ts';
import { newKey, startGateway, startUpstream, TOKEN_EXCHANGE, type GatewayProcess, type Upstream } from './helpers.ts';

/** A self-signed server certificate for 127.0.0.1 and its private key, both PEM. */
async function selfSigned(): Promise<{ certPem: string; keyPem: string }> {
  const keys = await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: 'CN=127.0.0.1',
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 3_600_000),
    signingAlgorithm: ALGORITHM,
    keys,
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'ip', value: '127.0.0.1' }])],
  });
  return { certPem: cert.toString('pem'), keyPem: await exportPrivateKey(keys.privateKey) };
}

function httpsGet(
  port: number,
  path: string,
  headers: Record<string, string>,
  ca: string,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers, ca, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error('https request timed out')));
    req.end();
  });
}

describe('the API listener over TLS', () => {
  let upstream: Upstream;
  let gw: GatewayProcess;
  let ca: string;
  let dir: string;
  const { key, hash } = newKey();

  before(async () => {
    upstream = await startUpstream();
    const { certPem, keyPem } = await selfSigned();
    ca = certPem;
    const config = (dir: string) => ({
      server: { tls: { cert: `${dir}/server.crt`, key: `${dir}/server.key` } },
      tokenExchange: TOKEN_EXCHANGE,
      collections: [
        {
          name: 'tls',
          basePath: '/tls',
          upstream: upstream.url,
          project: 'p',
          environment: 'PROD',
          endpoints: [{ method: 'GET', path: '/thing', permission: 'thing:read' }],
        },
      ],
      roles: [{ name: 'reader', permissions: ['thing:read'] }],
      clients: [{ id: 'tls-client', role: 'reader', environments: ['PROD'], projects: ['p'], keys: [{ hash }] }],
    });
    dir = await mkdtemp(join(tmpdir(), 'gatehouse-tls-'));
    await writeFile(`${dir}/server.crt`, certPem);
    await writeFile(`${dir}/server.key`, keyPem, { mode: 0o600 });
    gw = await startGateway(config(dir));
  });
  after(async () => {
    await gw?.stop();
    await upstream?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('serves HTTPS and tells the upstream the client used https', async () => {
    const res = await httpsGet(gw.port, '/tls/thing', { authorization: `Bearer ${key}` }, ca);
    assert.equal(res.status, 200, res.body);
    const seen = upstream.requests.at(-1)!;
    assert.equal(seen.url, '/thing');
    assert.equal(seen.headers['x-forwarded-prefix'], '/tls');
    assert.equal(seen.headers['x-forwarded-proto'], 'https');
    assert.match(String(seen.headers.forwarded), /;proto=https(;|$)/);
    assert.match(String(seen.headers.authorization), /^Bearer eyJ/);
  });

  it('refuses an unauthenticated request over TLS the same way as over HTTP', async () => {
    const res = await httpsGet(gw.port, '/tls/thing', {}, ca);
    assert.equal(res.status, 401);
    assert.equal(JSON.parse(res.body).code, 'GH_ERR_AUTH_MISSING_KEY');
  });

  it('gives plain HTTP on the TLS port no HTTP answer', async () => {
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = connect(gw.port, '127.0.0.1');
      let data = '';
      socket.setEncoding('latin1');
      socket.on('data', (d: string) => (data += d));
      socket.on('close', () => resolve(data));
      socket.on('error', () => resolve(data));
      socket.setTimeout(10_000, () => socket.destroy(new Error('no close')));
      socket.write('GET /tls/thing HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
      socket.on('timeout', () => reject(new Error('the TLS port kept a plain HTTP connection open')));
    });
    assert.doesNotMatch(answer, /^HTTP\/1\.1 200/);
  });

  it('stops at start with exit code 2 and one line naming a certificate file that cannot be read', async () => {
    const missing = '/nonexistent/gatehouse/server.crt';
    await assert.rejects(
      startGateway({ server: { tls: { cert: missing, key: missing } }, tokenExchange: TOKEN_EXCHANGE }),
      (error: Error) => {
        assert.match(error.message, /gateway exited with 2 /);
        assert.ok(
          error.message.includes(`gatehouse: server.tls.cert: cannot read ${missing} (no such file)`),
          error.message,
        );
        assert.doesNotMatch(error.message, /ENOENT|at async/, 'a configuration mistake is one line, not a stack trace');
        return true;
      },
    );
  });

  it('stops at start when the key does not belong to the certificate, without printing the key', async () => {
    const other = await selfSigned();
    await writeFile(`${dir}/other.key`, other.keyPem, { mode: 0o600 });
    await assert.rejects(
      startGateway({
        server: { tls: { cert: `${dir}/server.crt`, key: `${dir}/other.key` } },
        tokenExchange: TOKEN_EXCHANGE,
      }),
      (error: Error) => {
        assert.match(error.message, /gateway exited with 2 /);
        assert.ok(
          error.message.includes(
            `gatehouse: server.tls: cannot serve with the certificate ${dir}/server.crt and the key ${dir}/other.key (`,
          ),
          error.message,
        );
        assert.ok(!error.message.includes('PRIVATE KEY'), 'the key never appears in the message');
        return true;
      },
    );
  });
});
