/**
 * The certificate readers of certificates.ts use node:crypto and a small DER walk instead of @peculiar/x509 (so an
 * edge gateway starting from its cache never loads it): they must read exactly what @peculiar/x509 read, for
 * every serial number shape and subject alternative name, or pins and serials would stop matching across a
 * version change.
 */
import assert from 'node:assert/strict';
import { webcrypto } from 'node:crypto';
import { describe, it } from 'node:test';
import { ALGORITHM, caPin, describeCertificate, exportPrivateKey, singleCertificate } from './certificates.ts';
import { x509 } from './x509.ts';

async function certificate(serialNumber: string, uris: string[]): Promise<string> {
  const keys = (await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber,
    name: 'CN=test',
    notBefore: new Date('2026-01-01T00:00:00Z'),
    notAfter: new Date('2027-01-01T00:00:00Z'),
    keys,
    signingAlgorithm: ALGORITHM,
    extensions: uris.length
      ? [new x509.SubjectAlternativeNameExtension(uris.map((value) => ({ type: 'url' as const, value })))]
      : [],
  });
  return cert.toString('pem');
}

describe('certificate readers without @peculiar/x509', () => {
  it('read the pin, serial, URIs, validity and PEM exactly as @peculiar/x509 does', async () => {
    for (const [serial, uris] of [
      ['01', ['spiffe://gatehouse/ws/gw_1']],
      ['7f00aa', []],
      ['80', ['spiffe://gatehouse/a', 'urn:x:y']],
      ['ff11223344556677889900aabbccddeeff', ['spiffe://gatehouse/with%2Cescaped']],
      ['00000005', ['spiffe://gatehouse/b']],
    ] as const) {
      const pem = await certificate(serial, [...uris]);
      const theirs = new x509.X509Certificate(pem);
      const expectedPin = `sha256:${Buffer.from(await webcrypto.subtle.digest('SHA-256', theirs.publicKey.rawData)).toString('hex')}`;
      assert.equal(caPin(pem), expectedPin, serial);
      const described = describeCertificate(pem);
      assert.equal(described.serial, theirs.serialNumber.toLowerCase(), serial);
      assert.deepEqual(described.uris, [...uris], serial);
      assert.equal(described.notBefore.getTime(), theirs.notBefore.getTime());
      assert.equal(described.notAfter.getTime(), theirs.notAfter.getTime());
      const single = singleCertificate(pem);
      assert.ok(single.ok);
      assert.equal(single.pem, x509.PemConverter.encode(theirs.rawData, 'CERTIFICATE'));
    }
  });

  it('still refuses anything but exactly one certificate', async () => {
    const pem = await certificate('02', []);
    assert.equal(singleCertificate(`${pem}\n${pem}`).ok, false);
    assert.equal(singleCertificate('').ok, false);
    const lines = pem.split('\n');
    assert.equal(
      singleCertificate([...lines.slice(0, 2), ...lines.slice(3)].join('\n')).ok,
      false,
      'a line of the certificate missing',
    );
    assert.equal(
      singleCertificate(pem.replace('-----END CERTIFICATE-----', 'AAAA\n-----END CERTIFICATE-----')).ok,
      false,
      'data after the certificate',
    );
    assert.equal(
      singleCertificate(pem.replace('-----BEGIN CERTIFICATE-----', '-----BEGIN CERTIFICATE-----\nnot base64!')).ok,
      false,
    );
  });

  it('write private keys as @peculiar/x509 did', async () => {
    const keys = (await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
    const ours = await exportPrivateKey(keys.privateKey);
    assert.equal(
      ours,
      x509.PemConverter.encode(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey), 'PRIVATE KEY'),
    );
  });
});
