import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { caPin, createKeyAndCsr, describeCertificate } from '../../shared/certificates.ts';
import { recordDurableWrites } from '../../testing/durable-writes.ts';
import { CsrError, gatewayUri, openCertificateAuthority, parseGatewayUri } from './ca.ts';

describe('control plane certificate authority', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'gatehouse-ca-'));
  after(() => rm(dir, { recursive: true, force: true }));
  const ca = await openCertificateAuthority(dir);
  const subject = { gatewayId: 'gw_1', workspaceId: 'wsp_1', environment: 'PROD' };

  it('keeps its private key with mode 0600 and loads the same CA again', async () => {
    assert.equal((await stat(join(dir, 'ca.key'))).mode & 0o777, 0o600);
    const again = await openCertificateAuthority(dir);
    assert.equal(again.certPem, ca.certPem);
    assert.equal(again.pin, ca.pin);
    assert.match(ca.pin, /^sha256:[0-9a-f]{64}$/);
    assert.equal(caPin(ca.certPem), ca.pin);
  });

  it('writes a new CA key (0600) and certificate (0644) through the atomic-write helper, fsyncing files and directory', async () => {
    const fresh = join(dir, 'fresh');
    const recorder = recordDurableWrites();
    try {
      await openCertificateAuthority(fresh);
    } finally {
      recorder.stop();
    }
    assert.deepEqual(recorder.writes, [
      { path: join(fresh, 'ca.key'), mode: 0o600, exclusive: true, fileSynced: true, directorySynced: true },
      { path: join(fresh, 'ca.crt'), mode: 0o644, exclusive: true, fileSynced: true, directorySynced: true },
    ]);
    assert.equal((await stat(join(fresh, 'ca.key'))).mode & 0o777, 0o600);
    assert.equal((await stat(join(fresh, 'ca.crt'))).mode & 0o777, 0o644);
  });

  it('signs a gateway CSR into a short-lived client certificate that chains to the CA', async () => {
    const { csrPem } = await createKeyAndCsr('gw_1');
    const issued = await ca.signGatewayCsr(csrPem, subject, 3600_000);
    const cert = new X509Certificate(issued.certPem);
    assert.ok(cert.verify(new X509Certificate(ca.certPem).publicKey));
    assert.ok(cert.checkIssued(new X509Certificate(ca.certPem)));
    assert.equal(cert.ca, false);
    assert.ok(issued.notAfter.getTime() - Date.now() <= 3600_000);
    const described = describeCertificate(issued.certPem);
    assert.equal(described.serial, issued.serial);
    assert.deepEqual(described.uris, [gatewayUri(subject)]);
    assert.deepEqual(parseGatewayUri(described.uris[0]!), subject);
    assert.deepEqual(cert.keyUsage, ['1.3.6.1.5.5.7.3.2']);
  });

  it('refuses a CSR that is garbage or not signed by its own key', async () => {
    await assert.rejects(ca.signGatewayCsr('not a csr', subject, 1000), CsrError);
    const { csrPem } = await createKeyAndCsr('x');
    const tampered = csrPem.replace(/[A-Za-z](?=[A-Za-z0-9+/=]*\n-----END)/, (c) => (c === 'A' ? 'B' : 'A'));
    await assert.rejects(ca.signGatewayCsr(tampered, subject, 1000), CsrError);
  });

  it('issues a server certificate for names and IP addresses', async () => {
    const { certPem, keyPem } = await ca.issueServerCertificate(['gatehouse-control-plane', 'localhost', '127.0.0.1']);
    const cert = new X509Certificate(certPem);
    assert.match(cert.subjectAltName!, /DNS:gatehouse-control-plane/);
    assert.match(cert.subjectAltName!, /IP Address:127\.0\.0\.1/);
    assert.match(keyPem, /BEGIN PRIVATE KEY/);
    assert.equal(cert.checkHost('localhost'), 'localhost');
  });
});
