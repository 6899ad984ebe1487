/**
 * The control plane's own certificate authority for the gateway channel, with @peculiar/x509 over WebCrypto
 * (ECDSA P-256 / SHA-256). It issues the control plane's server certificate and short-lived gateway client
 * certificates from their CSRs. The CA key lives in the data directory with mode 0600; the CA is pinned by
 * gateways as `sha256:<hex>` of its SubjectPublicKeyInfo, as kubeadm pins its cluster CA.
 */
import { createPublicKey, type KeyObject, randomBytes, webcrypto, X509Certificate } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { ALGORITHM, caPin, exportPrivateKey } from '../../shared/certificates.ts';
import { x509 } from '../../shared/x509.ts';
import { writeFileAtomic } from '../../shared/atomic-file.ts';

export { caPin };
const CA_VALIDITY_MS = 10 * 365 * 86_400_000;
/** A clock skew allowance: certificates start this much in the past. */
const BACKDATE_MS = 5 * 60_000;

export interface IssuedCertificate {
  certPem: string;
  /** Lower-case hex. */
  serial: string;
  notBefore: Date;
  notAfter: Date;
}

export interface GatewaySubject {
  gatewayId: string;
  workspaceId: string;
  environment: string;
}

export interface CertificateAuthority {
  readonly certPem: string;
  /** `sha256:<hex>` of the CA's SubjectPublicKeyInfo. */
  readonly pin: string;
  /** A server certificate for the control plane's TLS endpoints (DNS names and IP addresses). */
  issueServerCertificate(names: readonly string[], validityMs?: number): Promise<{ certPem: string; keyPem: string }>;
  /**
   * Signs a gateway's CSR after checking its self-signature. The certificate carries the gateway's identity as a
   * SPIFFE-style URI SAN (`spiffe://gatehouse/workspace/<ws>/environment/<env>/gateway/<id>`), is for client
   * authentication only, and expires after `validityMs`.
   */
  signGatewayCsr(csrPem: string, subject: GatewaySubject, validityMs: number): Promise<IssuedCertificate>;
}

/** The URI SAN of a gateway certificate. */
export function gatewayUri(subject: GatewaySubject): string {
  return `spiffe://gatehouse/workspace/${subject.workspaceId}/environment/${subject.environment}/gateway/${subject.gatewayId}`;
}

/** Parses a gateway URI SAN back into its parts; undefined when it is not one. */
export function parseGatewayUri(uri: string): GatewaySubject | undefined {
  const m = /^spiffe:\/\/gatehouse\/workspace\/([^/]+)\/environment\/([^/]+)\/gateway\/([^/]+)$/.exec(uri);
  return m ? { workspaceId: m[1]!, environment: m[2]!, gatewayId: m[3]! } : undefined;
}

/** A CA's certificate and private key, PEM (the key PKCS#8). */
export interface CaMaterial {
  certPem: string;
  keyPem: string;
}

/** A new self-signed CA (ECDSA P-256, valid 10 years). */
export async function createCaMaterial(): Promise<CaMaterial> {
  const keys = (await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: 'CN=Gatehouse control plane CA',
    notBefore: new Date(now - BACKDATE_MS),
    notAfter: new Date(now + CA_VALIDITY_MS),
    keys,
    signingAlgorithm: ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPem: cert.toString('pem'), keyPem: await exportPrivateKey(keys.privateKey) };
}

/** The CA files of a data directory (`<dataDir>/pki`) as installations before 0009-replicas kept them. */
export function caFiles(dir: string): { cert: string; key: string } {
  return { cert: join(dir, 'ca.crt'), key: join(dir, 'ca.key') };
}

/** Reads a CA from `dir` (ca.crt, ca.key); undefined when there is none. */
export async function readCaFiles(dir: string): Promise<CaMaterial | undefined> {
  const files = caFiles(dir);
  try {
    return { certPem: await readFile(files.cert, 'utf8'), keyPem: await readFile(files.key, 'utf8') };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`cannot load the control plane CA from ${dir}: ${(error as Error).message}`, { cause: error });
  }
}

/** Loads the CA from `dir` (ca.crt, ca.key), creating it on first use (tests; the control plane keeps it in its store). */
export async function openCertificateAuthority(dir: string): Promise<CertificateAuthority> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  let material = await readCaFiles(dir);
  if (!material) {
    material = await createCaMaterial();
    const files = caFiles(dir);
    // Atomic and durable (fsync of the file and the directory); the key is 0600 from the moment its file exists.
    await writeFileAtomic(files.key, material.keyPem, { mode: 0o600 });
    await writeFileAtomic(files.cert, material.certPem, { mode: 0o644 });
  }
  return certificateAuthority(material);
}

/** The CA of the given certificate and key (checked to belong together). */
export async function certificateAuthority({ certPem, keyPem }: CaMaterial): Promise<CertificateAuthority> {
  let privateKey: webcrypto.CryptoKey;
  try {
    privateKey = await importPrivateKey(keyPem);
  } catch (error) {
    throw new Error(`the control plane CA key cannot be read: ${(error as Error).message}`, { cause: error });
  }
  const spki = (key: KeyObject) => key.export({ type: 'spki', format: 'der' });
  if (!spki(createPublicKey(keyPem)).equals(spki(new X509Certificate(certPem).publicKey)))
    throw new Error('the control plane CA key does not belong to its certificate');
  const caCert = new x509.X509Certificate(certPem);
  const pin = caPin(certPem);

  async function issue(
    publicKey: x509.PublicKey | webcrypto.CryptoKey,
    subject: string,
    validityMs: number,
    extensions: x509.Extension[],
  ): Promise<IssuedCertificate> {
    const now = Date.now();
    const notBefore = new Date(now - BACKDATE_MS);
    const notAfter = new Date(now + validityMs);
    const s = serial();
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: s,
      subject,
      issuer: caCert.subject,
      notBefore,
      notAfter,
      publicKey,
      signingKey: privateKey,
      signingAlgorithm: ALGORITHM,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        await x509.AuthorityKeyIdentifierExtension.create(caCert),
        ...extensions,
      ],
    });
    return { certPem: cert.toString('pem'), serial: cert.serialNumber.toLowerCase(), notBefore, notAfter };
  }

  return {
    certPem,
    pin,
    async issueServerCertificate(names, validityMs = 365 * 86_400_000) {
      const keys = (await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
      const san = new x509.SubjectAlternativeNameExtension(
        names.map((n) => (isIP(n) ? { type: 'ip' as const, value: n } : { type: 'dns' as const, value: n })),
      );
      const { certPem: leaf } = await issue(keys.publicKey, `CN=${names[0] ?? 'gatehouse-control-plane'}`, validityMs, [
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
        san,
      ]);
      return { certPem: leaf, keyPem: await exportPrivateKey(keys.privateKey) };
    },
    async signGatewayCsr(csrPem, subject, validityMs) {
      let csr: x509.Pkcs10CertificateRequest;
      try {
        csr = new x509.Pkcs10CertificateRequest(csrPem);
      } catch {
        throw new CsrError('the certificate signing request is not a valid PEM PKCS#10 request');
      }
      if (!(await csr.verify())) throw new CsrError('the certificate signing request is not signed by its own key');
      const algorithm = csr.publicKey.algorithm as webcrypto.EcKeyAlgorithm;
      if (algorithm.name !== 'ECDSA' || algorithm.namedCurve !== 'P-256')
        throw new CsrError('the certificate signing request must carry an ECDSA P-256 key');
      return issue(csr.publicKey, `CN=gateway ${subject.gatewayId}`, validityMs, [
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
        new x509.SubjectAlternativeNameExtension([{ type: 'url', value: gatewayUri(subject) }]),
      ]);
    },
  };
}

/** A CSR the CA refuses (a caller's mistake, not a fault). */
export class CsrError extends Error {
  override readonly name = 'CsrError';
}

async function importPrivateKey(pem: string): Promise<webcrypto.CryptoKey> {
  const der = x509.PemConverter.decode(pem)[0];
  if (!der) throw new Error('the CA key file holds no PEM key');
  return webcrypto.subtle.importKey('pkcs8', der, ALGORITHM, false, ['sign']);
}

function serial(): string {
  const bytes = randomBytes(16);
  bytes[0]! &= 0x7f; // positive INTEGER
  return bytes.toString('hex');
}
