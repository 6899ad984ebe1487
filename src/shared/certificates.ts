/**
 * Certificate helpers both sides of the gateway channel use (ECDSA P-256, SHA-256): a gateway makes its key and CSR
 * here; the control plane's CA (src/control/pki/ca.ts) signs them. Reading certificates (one PEM certificate, its
 * pin, serial, URIs and validity) uses `node:crypto` and the few DER fields it does not expose, so that an edge
 * gateway starting from its cache never loads @peculiar/x509 (`x509.ts`, ~0.1 s); making a CSR loads it.
 */
import { createHash, createPrivateKey, createPublicKey, webcrypto, X509Certificate } from 'node:crypto';

async function peculiar(): Promise<typeof import('@peculiar/x509')> {
  return (await import('./x509.ts')).x509;
}

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
  return `sha256:${createHash('sha256').update(tbsFields(der).spki).digest('hex')}`;
}

/**
 * The serial number's content bytes and the SubjectPublicKeyInfo element of a DER certificate, read by walking the
 * TBSCertificate's first fields (RFC 5280 §4.1). Hand-written on purpose: `node:crypto` re-encodes the key
 * (`publicKey.export`) and prints the serial without its leading zero byte, while the pin and the serial must be
 * the certificate's own bytes, and loading @peculiar/x509 for two fields would cost the edge its start-up time.
 * The input was parsed by OpenSSL first (`new X509Certificate`), so it is well-formed DER.
 */
function tbsFields(der: Buffer): { serial: Buffer; spki: Buffer } {
  const certificate = derElement(der, 0);
  const tbs = derElement(der, certificate.content);
  let at = tbs.content;
  const first = derElement(der, at);
  if (der[at] === 0xa0) at = first.end; // [0] version
  const serial = derElement(der, at);
  at = serial.end;
  for (let i = 0; i < 4; i++) at = derElement(der, at).end; // signature, issuer, validity, subject
  const spki = derElement(der, at);
  let serialStart = serial.content;
  // The sign byte of a positive serial whose first byte has its high bit set is not part of the number.
  if (serial.end - serialStart > 1 && der[serialStart] === 0x00 && der[serialStart + 1]! > 0x7f) serialStart++;
  return { serial: der.subarray(serialStart, serial.end), spki: der.subarray(at, spki.end) };
}

/** One DER element at `offset`: where its content starts and where the element ends. */
function derElement(der: Buffer, offset: number): { content: number; end: number } {
  let length = der[offset + 1]!;
  let content = offset + 2;
  if (length >= 0x80) {
    const bytes = length & 0x7f;
    if (bytes === 0 || bytes > 4) throw new Error('unsupported DER length');
    length = 0;
    for (let i = 0; i < bytes; i++) length = length * 256 + der[content + i]!;
    content += bytes;
  }
  if (content + length > der.length) throw new Error('truncated DER');
  return { content, end: content + length };
}

const PEM_BLOCK = /^-----BEGIN CERTIFICATE-----\r?\n([A-Za-z0-9+/=\r\n]+?)\r?\n?-----END CERTIFICATE-----\s*$/;

/** PEM text of DER bytes: 64 base64 characters a line, no final newline (as @peculiar/x509 wrote it before). */
function pemOf(der: Uint8Array | ArrayBuffer, label: string): string {
  const base64 = Buffer.from(der instanceof ArrayBuffer ? new Uint8Array(der) : der).toString('base64');
  return `-----BEGIN ${label}-----\n${base64.replace(/.{64}/g, '$&\n').replace(/\n$/, '')}\n-----END ${label}-----`;
}

/**
 * The one certificate of a PEM text, re-encoded, or why the text is not exactly one certificate (`count`: the PEM
 * blocks it holds). A CA travels (`GET /v1/ca`, the register, renew and re-enroll answers) and is stored
 * (`tls/ca.pem`) as exactly one certificate: a pin covers one certificate, while a TLS trust store built from the
 * text would trust every certificate in it — an attacker's CA appended to the real one would pass the pin check and
 * become a trust anchor. The re-encoded PEM holds the certificate's DER and nothing else, so it is what callers trust.
 */
export function singleCertificate(
  text: string,
): { ok: true; pem: string; pin: string; certificate: X509Certificate } | { ok: false; count: number; reason: string } {
  // Every BEGIN line counts, whatever its label or shape: OpenSSL, which builds the trust store, is more lenient
  // than a strict PEM parser, so a block only OpenSSL reads must not go unseen.
  const labels = [...text.matchAll(/-----BEGIN ([^-\r\n]*)/g)].map((m) => m[1]!.trim());
  const count = labels.length;
  if (count === 0) return { ok: false, count, reason: 'holds no PEM certificate' };
  if (count > 1)
    return {
      ok: false,
      count,
      reason: `holds ${count} ${labels.every((l) => l === 'CERTIFICATE') ? 'certificates' : 'PEM blocks'}, not one`,
    };
  const block = PEM_BLOCK.exec(text.trimStart());
  if (block === null) return { ok: false, count, reason: 'holds no readable PEM certificate' };
  const base64 = block[1]!.replace(/\s+/g, '');
  // Strict base64: Node's decoder would stop at '=' padding and ignore what follows.
  if (base64.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(base64))
    return { ok: false, count, reason: 'holds no readable PEM certificate' };
  const der = Buffer.from(base64, 'base64');
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(der);
  } catch {
    return { ok: false, count, reason: 'holds no valid X.509 certificate' };
  }
  if (certificate.raw.length !== der.length) return { ok: false, count, reason: 'holds data after the certificate' };
  return { ok: true, pem: pemOf(der, 'CERTIFICATE'), pin: pinOf(der), certificate };
}

/** A new ECDSA P-256 key pair and a CSR for it: what a gateway sends when bootstrapping or renewing. */
export async function createKeyAndCsr(commonName: string): Promise<{ keyPem: string; csrPem: string }> {
  const x509 = await peculiar();
  const keys = (await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: `CN=${commonName}`,
    keys,
    signingAlgorithm: ALGORITHM,
  });
  return { keyPem: await exportPrivateKey(keys.privateKey), csrPem: csr.toString('pem') };
}

/**
 * A CSR for an existing key (PKCS#8 PEM), signed with it: what a gateway sends to re-enroll, proving that it holds
 * the key of its certificate.
 */
export async function createCsrForKey(keyPem: string, commonName: string): Promise<string> {
  const x509 = await peculiar();
  const key = createPrivateKey(keyPem);
  const privateKey = await webcrypto.subtle.importKey(
    'pkcs8',
    key.export({ type: 'pkcs8', format: 'der' }),
    ALGORITHM,
    false,
    ['sign'],
  );
  const publicKey = await webcrypto.subtle.importKey(
    'spki',
    createPublicKey(key).export({ type: 'spki', format: 'der' }),
    ALGORITHM,
    true,
    ['verify'],
  );
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: `CN=${commonName}`,
    keys: { privateKey, publicKey },
    signingAlgorithm: ALGORITHM,
  });
  return csr.toString('pem');
}

/** The URI SAN, serial and validity of a PEM certificate. */
export function describeCertificate(certPem: string): {
  serial: string;
  uris: string[];
  notBefore: Date;
  notAfter: Date;
} {
  const cert = new X509Certificate(certPem);
  const uris: string[] = [];
  // Node prints the SAN as `URI:…, DNS:…`; a value holding ", " or a quote comes JSON-quoted.
  for (const entry of (cert.subjectAltName ?? '').match(/(?:[A-Za-z ]+):(?:"(?:[^"\\]|\\.)*"|[^,]*)/g) ?? []) {
    const colon = entry.indexOf(':');
    if (entry.slice(0, colon).trim() !== 'URI') continue;
    const value = entry.slice(colon + 1);
    uris.push(value.startsWith('"') ? (JSON.parse(value) as string) : value);
  }
  return {
    serial: tbsFields(cert.raw).serial.toString('hex'),
    uris,
    notBefore: cert.validFromDate,
    notAfter: cert.validToDate,
  };
}

export async function exportPrivateKey(key: webcrypto.CryptoKey): Promise<string> {
  const der = await webcrypto.subtle.exportKey('pkcs8', key);
  return pemOf(der, 'PRIVATE KEY');
}
