/**
 * Certificate helpers both sides of the gateway channel use, with @peculiar/x509 over WebCrypto (ECDSA P-256,
 * SHA-256): a gateway makes its key and CSR here; the control plane's CA (src/control/pki/ca.ts) signs them.
 */
// @peculiar/x509 uses tsyringe, which needs the Reflect metadata polyfill loaded first.
import 'reflect-metadata';
import { createHash, createPrivateKey, createPublicKey, webcrypto, X509Certificate } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as webcrypto.Crypto);

export { x509 };

export const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

/**
 * `sha256:<hex>` of the SubjectPublicKeyInfo of the one certificate in `certPem`. Throws when the text is not exactly
 * one PEM certificate (see `singleCertificate`): the pin of a text is only meaningful if it covers all of it.
 */
export function caPin(certPem: string): string {
  const single = singleCertificate(certPem);
  if (!single.ok) throw new Error(`not a single PEM certificate: it ${single.reason}`);
  return single.pin;
}

/** Over the SubjectPublicKeyInfo bytes as the certificate carries them (what `openssl x509 -pubkey` prints). */
function pinOf(der: Buffer): string {
  return `sha256:${createHash('sha256').update(Buffer.from(new x509.X509Certificate(der).publicKey.rawData)).digest('hex')}`;
}

/**
 * The one certificate of a PEM text, re-encoded, or why the text is not exactly one certificate (`count`: the PEM
 * blocks it holds). A CA travels (`GET /v1/ca`, the register, renew and re-enroll answers) and is stored
 * (`tls/ca.pem`) as exactly one certificate: a pin covers one certificate, while a TLS trust store built from the
 * text would trust every certificate in it — an attacker's CA appended to the real one would pass the pin check and
 * become a trust anchor. The re-encoded PEM holds the certificate's DER and nothing else, so it is what callers trust.
 */
export function singleCertificate(text: string): { ok: true; pem: string; pin: string; certificate: X509Certificate } | { ok: false; count: number; reason: string } {
  // Every BEGIN line counts, whatever its label or shape: OpenSSL, which builds the trust store, is more lenient
  // than a strict PEM parser, so a block only OpenSSL reads must not go unseen.
  const labels = [...text.matchAll(/-----BEGIN ([^-\r\n]*)/g)].map((m) => m[1]!.trim());
  const count = labels.length;
  if (count === 0) return { ok: false, count, reason: 'holds no PEM certificate' };
  if (count > 1) return { ok: false, count, reason: `holds ${count} ${labels.every((l) => l === 'CERTIFICATE') ? 'certificates' : 'PEM blocks'}, not one` };
  const blocks = x509.PemConverter.decodeWithHeaders(text);
  if (blocks.length !== 1 || blocks[0]!.type !== 'CERTIFICATE') return { ok: false, count, reason: 'holds no readable PEM certificate' };
  const der = Buffer.from(blocks[0]!.rawData);
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(der);
  } catch {
    return { ok: false, count, reason: 'holds no valid X.509 certificate' };
  }
  if (certificate.raw.length !== der.length) return { ok: false, count, reason: 'holds data after the certificate' };
  return { ok: true, pem: x509.PemConverter.encode(der, 'CERTIFICATE'), pin: pinOf(der), certificate };
}

/** A new ECDSA P-256 key pair and a CSR for it: what a gateway sends when bootstrapping or renewing. */
export async function createKeyAndCsr(commonName: string): Promise<{ keyPem: string; csrPem: string }> {
  const keys = (await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: `CN=${commonName}`, keys, signingAlgorithm: ALGORITHM });
  return { keyPem: await exportPrivateKey(keys.privateKey), csrPem: csr.toString('pem') };
}

/**
 * A CSR for an existing key (PKCS#8 PEM), signed with it: what a gateway sends to re-enroll, proving that it holds
 * the key of its certificate.
 */
export async function createCsrForKey(keyPem: string, commonName: string): Promise<string> {
  const key = createPrivateKey(keyPem);
  const privateKey = await webcrypto.subtle.importKey('pkcs8', key.export({ type: 'pkcs8', format: 'der' }), ALGORITHM, false, ['sign']);
  const publicKey = await webcrypto.subtle.importKey('spki', createPublicKey(key).export({ type: 'spki', format: 'der' }), ALGORITHM, true, ['verify']);
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: `CN=${commonName}`, keys: { privateKey, publicKey }, signingAlgorithm: ALGORITHM });
  return csr.toString('pem');
}

/** The URI SAN, serial and validity of a PEM certificate. */
export function describeCertificate(certPem: string): { serial: string; uris: string[]; notBefore: Date; notAfter: Date } {
  const cert = new x509.X509Certificate(certPem);
  const san = cert.getExtension(x509.SubjectAlternativeNameExtension);
  const uris = san ? san.names.items.filter((n) => n.type === 'url').map((n) => n.value) : [];
  return { serial: cert.serialNumber.toLowerCase(), uris, notBefore: cert.notBefore, notAfter: cert.notAfter };
}

export async function exportPrivateKey(key: webcrypto.CryptoKey): Promise<string> {
  const der = await webcrypto.subtle.exportKey('pkcs8', key);
  return x509.PemConverter.encode(der, 'PRIVATE KEY');
}
