/**
 * Certificate helpers both sides of the gateway channel use, with @peculiar/x509 over WebCrypto (ECDSA P-256,
 * SHA-256): a gateway makes its key and CSR here; the control plane's CA (src/control/pki/ca.ts) signs them.
 */
// @peculiar/x509 uses tsyringe, which needs the Reflect metadata polyfill loaded first.
import 'reflect-metadata';
import { createHash, createPrivateKey, createPublicKey, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as webcrypto.Crypto);

export { x509 };

export const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

/** `sha256:<hex>` of a certificate's SubjectPublicKeyInfo (PEM or DER). */
export function caPin(certPem: string): string {
  const cert = new x509.X509Certificate(certPem);
  return `sha256:${createHash('sha256').update(Buffer.from(cert.publicKey.rawData)).digest('hex')}`;
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
