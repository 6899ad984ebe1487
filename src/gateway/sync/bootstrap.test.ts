/**
 * Bootstrap and re-enrollment against scripted bootstrap endpoints on real loopback sockets (HTTPS with certificates
 * of real CAs): what someone answering in the control plane's place — a network attacker holding its own CA, or a
 * control plane answering something unexpected — can and cannot make a gateway trust.
 */
import assert from 'node:assert/strict';
import fs, { mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it, mock } from 'node:test';
import pino from 'pino';
import { ConfigError } from '../../config/load.ts';
import { type CertificateAuthority, openCertificateAuthority } from '../../control/pki/ca.ts';
import { recordDurableWrites } from '../../testing/durable-writes.ts';
import { BootstrapError, bootstrapGateway, type BootstrapOptions, reenrollGateway } from './bootstrap.ts';
import { caPin, singleCertificate } from '../../shared/certificates.ts';
import { startEdgeGateway } from './edge-runtime.ts';

const SERVER_NAMES = ['gatehouse-control-plane', 'localhost', '127.0.0.1'];
const GATEWAY = {
  id: 'gw_boot1',
  name: 'eu-1',
  workspaceId: 'wsp_boot0000000000000001',
  workspaceName: 'acme',
  environment: 'PROD',
  installMethod: 'docker',
} as const;
const TOKEN = `ghr_${'T'.repeat(32)}`;

interface Seen {
  method: string;
  path: string;
  body: Record<string, unknown> | undefined;
}

/** What the scripted endpoint answers; `register`/`renew` get the request body and answer JSON. */
interface Script {
  tls: { certPem: string; keyPem: string };
  ca: string;
  register?(body: { csr: string; token: string }): Promise<unknown>;
  renew?(body: { csr: string; certificate: string }): Promise<unknown>;
}

/** An HTTPS endpoint that answers as `script` says and records every request it got. */
async function scriptedEndpoint(script: Script): Promise<{ url: string; seen: Seen[]; close(): Promise<void> }> {
  const seen: Seen[] = [];
  const server: Server = createServer({ cert: script.tls.certPem, key: script.tls.keyPem }, (req, res) => {
    void (async () => {
      const body = await readBody(req);
      seen.push({ method: req.method ?? '', path: req.url ?? '', body });
      const answer = (status: number, type: string, text: string) => {
        res.writeHead(status, { 'content-type': type });
        res.end(text);
      };
      if (req.url === '/v1/ca') return answer(200, 'application/x-pem-file', script.ca);
      const handler = req.url === '/v1/register' ? script.register : req.url === '/v1/renew' ? script.renew : undefined;
      if (!handler) return answer(404, 'application/problem+json', '{"detail":"no route"}');
      return answer(200, 'application/json', JSON.stringify(await handler(body as never)));
    })().catch(() => res.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

async function readBody(req: IncomingMessage): Promise<Record<string, unknown> | undefined> {
  const chunks: Buffer[] = [];
  for await (const chunk of req as AsyncIterable<Buffer>) chunks.push(chunk);
  return chunks.length ? (JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>) : undefined;
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

describe('bootstrap trusts exactly the pinned CA', () => {
  let work: string;
  let real: CertificateAuthority;
  let attacker: CertificateAuthority;
  let realTls: { certPem: string; keyPem: string };
  let attackerTls: { certPem: string; keyPem: string };
  const closers: (() => Promise<void>)[] = [];
  /** The real CA followed by the attacker's, as one PEM text (what a TLS trust store would read as two anchors). */
  const both = () => `${real.certPem}\n${attacker.certPem}\n`;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'gatehouse-bootstrap-'));
    real = await openCertificateAuthority(join(work, 'pki-real'));
    attacker = await openCertificateAuthority(join(work, 'pki-attacker'));
    realTls = await real.issueServerCertificate(SERVER_NAMES);
    attackerTls = await attacker.issueServerCertificate(SERVER_NAMES);
  });
  after(async () => {
    for (const close of closers) await close();
    await rm(work, { recursive: true, force: true });
  });

  const endpoint = async (script: Script) => {
    const e = await scriptedEndpoint(script);
    closers.push(e.close);
    return e;
  };
  /** A register answer as the control plane gives it, with the certificate signed by `signer`. */
  const registerAnswer = (signer: CertificateAuthority, ca: string, url: string) => async (body: { csr: string }) => ({
    certificate: (
      await signer.signGatewayCsr(
        body.csr,
        { gatewayId: GATEWAY.id, workspaceId: GATEWAY.workspaceId, environment: GATEWAY.environment },
        3600_000,
      )
    ).certPem,
    ca,
    gateway: GATEWAY,
    controlPlane: {
      bootstrap: url,
      sync: '127.0.0.1:1',
      telemetry: '127.0.0.1:1',
      serverName: 'gatehouse-control-plane',
    },
  });
  const options = (url: string, dir: string): BootstrapOptions => ({
    token: TOKEN,
    caPin: real.pin,
    url,
    dir: join(work, dir),
    mode: 'standalone',
    timeoutMs: 5000,
  });

  it('refuses a CA answer holding the real CA followed by another one, before the token is sent, and writes nothing', async () => {
    // A network attacker answering in the control plane's place: its own TLS certificate, the real CA (which passes
    // the pin) and its own CA after it (which would otherwise become a trust anchor).
    const e = await endpoint({
      tls: attackerTls,
      ca: both(),
      register: registerAnswer(attacker, both(), 'https://attacker.example'),
    });
    const error = await bootstrapGateway(options(e.url, 'two-cas')).then(
      () => assert.fail('bootstrapped against an attacker'),
      (err: unknown) => err,
    );
    assert.ok(error instanceof BootstrapError, String(error));
    assert.equal(error.userMistake, false);
    assert.equal(
      error.message,
      `the control plane at ${e.url} answered GET /v1/ca with a text that holds 2 certificates, not one: a CA is exactly one certificate; refusing to continue`,
    );
    assert.deepEqual(
      e.seen.map((s) => `${s.method} ${s.path}`),
      ['GET /v1/ca'],
      'the token was sent',
    );
    assert.equal(await exists(join(work, 'two-cas')), false, 'the directory was created');
  });

  it('refuses a register answer whose CA is another one, holds an extra certificate, or whose certificate the pinned CA did not sign', async () => {
    const cases: [string, Script['register'], RegExp][] = [
      [
        'other-ca',
        async (body) => ({ ...(await registerAnswer(real, attacker.certPem, 'https://x.example')(body)) }),
        /it came with a CA other than the pinned one/,
      ],
      [
        'extra-ca',
        async (body) => ({ ...(await registerAnswer(real, both(), 'https://x.example')(body)) }),
        /the CA it came with holds 2 certificates, not one/,
      ],
      [
        'foreign-cert',
        registerAnswer(attacker, real.certPem, 'https://x.example'),
        /it is not signed by the pinned CA/,
      ],
      [
        'two-certs',
        async (body) => {
          const answer = await registerAnswer(real, real.certPem, 'https://x.example')(body);
          return { ...answer, certificate: `${answer.certificate}\n${attacker.certPem}\n` };
        },
        /the certificate holds 2 certificates, not one/,
      ],
    ];
    for (const [dir, register, message] of cases) {
      const e = await endpoint({ tls: realTls, ca: real.certPem, register });
      const error = await bootstrapGateway(options(e.url, dir)).then(
        () => assert.fail(`${dir}: bootstrapped`),
        (err: unknown) => err,
      );
      assert.ok(error instanceof BootstrapError, String(error));
      assert.match(error.message, /^the control plane answered a certificate this gateway cannot use: /, dir);
      assert.match(error.message, message, dir);
      assert.equal(await exists(join(work, dir)), false, `${dir}: the directory was created`);
    }
  });

  it('bootstraps against a genuine answer, writing the pinned CA as the one certificate of tls/ca.pem', async () => {
    let url = '';
    const e = await endpoint({
      tls: realTls,
      ca: `${real.certPem}\n`,
      register: (body) => registerAnswer(real, real.certPem, url)(body),
    });
    url = e.url;
    const result = await bootstrapGateway(options(e.url, 'genuine'));
    assert.deepEqual(result.files, ['tls/gateway.key', 'tls/gateway.crt', 'tls/ca.pem', 'gateway.json']);
    const caPem = await readFile(join(work, 'genuine', 'tls', 'ca.pem'), 'utf8');
    assert.equal(caPin(caPem), real.pin);
    const single = singleCertificate(caPem);
    assert.ok(single.ok);
    assert.equal(single.pem, caPem);
    assert.deepEqual(
      e.seen.map((s) => `${s.method} ${s.path}`),
      ['GET /v1/ca', 'POST /v1/register'],
    );
  });

  it('writes every file of the config directory through the atomic-write helper, the key and values.yaml with mode 0600', async () => {
    let url = '';
    const e = await endpoint({
      tls: realTls,
      ca: `${real.certPem}\n`,
      register: (body) => registerAnswer(real, real.certPem, url)(body),
    });
    url = e.url;
    const recorder = recordDurableWrites();
    try {
      await bootstrapGateway({ ...options(e.url, 'durable'), mode: 'helm' });
    } finally {
      recorder.stop();
    }
    const dir = join(work, 'durable');
    const modes = {
      'tls/gateway.key': 0o600,
      'tls/gateway.crt': 0o644,
      'tls/ca.pem': 0o644,
      'values.yaml': 0o600,
      'gateway.json': 0o644,
    };
    assert.deepEqual(
      recorder.writes,
      Object.entries(modes).map(([name, mode]) => ({
        path: join(dir, name),
        mode,
        exclusive: true,
        fileSynced: true,
        directorySynced: true,
      })),
    );
    for (const [name, mode] of Object.entries(modes))
      assert.equal((await stat(join(dir, name))).mode & 0o777, mode, name);
    assert.deepEqual((await readdir(dir)).sort(), ['gateway.json', 'tls', 'values.yaml']);
    assert.deepEqual((await readdir(join(dir, 'tls'))).sort(), ['ca.pem', 'gateway.crt', 'gateway.key']);
  });

  it('a config directory whose writing fails holds no gateway.json, and the error says what failed and what to do', async () => {
    let url = '';
    const e = await endpoint({
      tls: realTls,
      ca: `${real.certPem}\n`,
      register: (body) => registerAnswer(real, real.certPem, url)(body),
    });
    url = e.url;
    const rename = fs.rename;
    mock.method(fs, 'rename', async (from: string, to: string) => {
      if (to.endsWith('gateway.json')) throw Object.assign(new Error('ENOSPC: injected'), { code: 'ENOSPC' });
      return rename(from, to);
    });
    const dir = join(work, 'full-disk');
    try {
      await assert.rejects(bootstrapGateway(options(e.url, 'full-disk')), (error: Error) => {
        assert.ok(error instanceof BootstrapError && !error.userMistake);
        assert.equal(
          error.message,
          `the gateway is registered, but writing its config directory failed: cannot write ${join(dir, 'gateway.json')}: renaming the temporary file over it failed (ENOSPC). Fix that and bootstrap again into ${dir} with a new token (this one is used up)`,
        );
        return true;
      });
    } finally {
      mock.restoreAll();
    }
    assert.deepEqual(await readdir(dir), ['tls']);
  });

  it('an edge gateway whose tls/ca.pem holds two certificates, or another CA than gateway.json pins, refuses to start', async () => {
    const dir = join(work, 'genuine');
    const file = join(dir, 'tls', 'ca.pem');
    const logger = pino({ level: 'silent' });
    /** Starts the gateway, which must refuse with `message`. */
    const refusesToStart = async (message: string) => {
      const outcome = await startEdgeGateway({
        dir,
        logger,
        port: 0,
        host: '127.0.0.1',
        opsPort: 0,
        telemetry: false,
      }).catch((err: unknown) => err);
      if (!(outcome instanceof Error)) {
        await (outcome as { close(): Promise<void> }).close();
        assert.fail('the gateway started');
      }
      assert.ok(outcome instanceof ConfigError, String(outcome));
      assert.equal(outcome.message, message);
    };

    await writeFile(file, both());
    await refusesToStart(
      `${file}: the control plane's CA certificate must be exactly one certificate, and this file holds 2; restore it from the bootstrap (or bootstrap again)`,
    );
    await writeFile(file, attacker.certPem);
    await refusesToStart(
      `${file}: the control plane's CA certificate has the pin ${attacker.pin}, not ${real.pin} (gateway.json); restore it from the bootstrap (or bootstrap again)`,
    );
    await writeFile(file, real.certPem);
  });

  it('re-enrollment trusts only a CA of one certificate, and refuses an answer with another CA or an extra one', async () => {
    const dir = join(work, 'genuine');
    const [certificatePem, keyPem] = await Promise.all(
      ['gateway.crt', 'gateway.key'].map((f) => readFile(join(dir, 'tls', f), 'utf8')),
    );
    const renewWith = (ca: string) => async (body: { csr: string }) => ({
      certificate: (
        await real.signGatewayCsr(
          body.csr,
          { gatewayId: GATEWAY.id, workspaceId: GATEWAY.workspaceId, environment: GATEWAY.environment },
          3600_000,
        )
      ).certPem,
      ca,
    });
    const reenroll = (url: string, caPem = real.certPem) =>
      reenrollGateway({
        url,
        caPem,
        certificatePem: certificatePem!,
        keyPem: keyPem!,
        commonName: 'gateway gw_boot1',
        timeoutMs: 5000,
      });

    // A pinned CA of two certificates is refused before anything is sent.
    const unused = await endpoint({ tls: attackerTls, ca: attacker.certPem, renew: renewWith(attacker.certPem) });
    const twoPinned = await reenroll(unused.url, both());
    assert.deepEqual(twoPinned, {
      ok: false,
      kind: 'failed',
      message: "the control plane's CA certificate (tls/ca.pem) must be exactly one certificate, and it holds 2",
      deleted: false,
    });
    assert.deepEqual(unused.seen, []);

    for (const [ca, message] of [
      [attacker.certPem, /came with a CA other than the pinned one/],
      [both(), /the CA it came with holds 2 certificates, not one/],
    ] as const) {
      const e = await endpoint({ tls: realTls, ca: real.certPem, renew: renewWith(ca) });
      const result = await reenroll(e.url);
      assert.equal(result.ok, false);
      assert.ok(!result.ok && result.kind === 'failed', JSON.stringify(result));
      assert.match(result.message, message);
    }

    const e = await endpoint({ tls: realTls, ca: real.certPem, renew: renewWith(real.certPem) });
    const ok = await reenroll(e.url);
    assert.ok(ok.ok, JSON.stringify(ok));
    assert.equal(ok.caPem, real.certPem);
  });
});
