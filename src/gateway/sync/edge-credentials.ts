/**
 * An edge gateway's identity and credentials, as `gatehouse gateway bootstrap` wrote them to the config directory:
 * gateway.json, the pinned CA (tls/ca.pem), the gateway's certificate and key. Everything is read with node:crypto
 * and checked before use — a start from the cache loads no X.509 library. A file that is missing or wrong is a
 * ConfigError naming the file and what to do.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { type EdgeIdentity, EdgeIdentitySchema } from '../../config/edge.ts';
import { ConfigError } from '../../config/load.ts';
import { formatIssues } from '../../config/schema.ts';
import { describeCertificate, singleCertificate } from '../../shared/certificates.ts';
import type { SyncCredentials } from './sync-client.ts';

/**
 * A certificate closer to its expiry than this (or than a tenth of its lifetime, when that is shorter) is not
 * dialled with: the gateway re-enrolls first.
 */
export const REENROLL_MARGIN_MS = 60_000;

/** The files of a config directory. */
export function edgeFiles(dir: string) {
  return {
    identity: join(dir, 'gateway.json'),
    ca: join(dir, 'tls', 'ca.pem'),
    cert: join(dir, 'tls', 'gateway.crt'),
    key: join(dir, 'tls', 'gateway.key'),
    signingKeys: join(dir, 'signing-keys.json'),
    replicas: join(dir, 'replicas.json'),
  };
}

export type EdgeFiles = ReturnType<typeof edgeFiles>;

/** Reads and validates DIR/gateway.json; a ConfigError names the file and the field. */
export async function readEdgeIdentity(dir: string): Promise<EdgeIdentity> {
  const file = edgeFiles(dir).identity;
  const text = await readText(file, 'the gateway identity');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(`${file}: not valid JSON (${(error as Error).message})`);
  }
  const result = EdgeIdentitySchema.safeParse(json);
  if (!result.success) throw new ConfigError(`${file}: invalid gateway identity:\n${formatIssues(result.error)}`);
  return result.data;
}

/** What the gateway's certificate says (serial, validity, URIs). */
export type CertificateInfo = ReturnType<typeof describeCertificate>;

/**
 * The credentials in use, replaced by renewal and re-enrollment (certificate-renewal.ts). The sync channel reads
 * `pems` at every connection attempt.
 */
export interface EdgeCredentials {
  pems: SyncCredentials;
  certificate: CertificateInfo;
  /**
   * When the certificate's lifetime began for renewal purposes: issuance, not `notBefore`, which the CA back-dates
   * for clock skew (a short-lived certificate would otherwise look two-thirds used the moment it arrives). The
   * file's modification time stands for issuance; a renewed certificate starts now.
   */
  issuedAt: number;
}

/** Reads the pinned CA, the certificate and the key, and checks that they belong together and to this gateway. */
export async function readEdgeCredentials(files: EdgeFiles, identity: EdgeIdentity): Promise<EdgeCredentials> {
  const pems = {
    caPem: await readPinnedCa(files.ca, identity),
    certPem: await readText(files.cert, "the gateway's certificate"),
    keyPem: await readText(files.key, "the gateway's private key"),
  };
  const certificate = checkCertificate(pems, identity, files.cert);
  return { pems, certificate, issuedAt: Math.max(certificate.notBefore.getTime(), (await stat(files.cert)).mtimeMs) };
}

/** Whether the certificate is too close to its expiry to dial with (see `REENROLL_MARGIN_MS`). */
export function nearExpiry(credentials: EdgeCredentials): boolean {
  const notAfter = credentials.certificate.notAfter.getTime();
  return notAfter - Date.now() <= Math.max(0, Math.min(REENROLL_MARGIN_MS, (notAfter - credentials.issuedAt) / 10));
}

/** Checks that the certificate names this gateway, is signed by the CA, and belongs to the key. */
export function checkCertificate(pems: SyncCredentials, identity: EdgeIdentity, what: string): CertificateInfo {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(pems.certPem);
  } catch {
    throw new ConfigError(`${what}: not a PEM certificate`);
  }
  if (!cert.verify(new X509Certificate(pems.caPem).publicKey))
    throw new ConfigError(`${what}: not issued by the control plane's CA (tls/ca.pem)`);
  if (!cert.checkPrivateKey(createPrivateKey(pems.keyPem)))
    throw new ConfigError(`${what}: does not belong to the private key (tls/gateway.key)`);
  const described = describeCertificate(pems.certPem);
  const uri = `spiffe://gatehouse/workspace/${identity.workspaceId}/environment/${identity.environment}/gateway/${identity.gatewayId}`;
  if (!described.uris.includes(uri))
    throw new ConfigError(
      `${what}: issued to ${described.uris.join(', ') || 'no gateway'}, not to gateway ${identity.gatewayId} (gateway.json)`,
    );
  return described;
}

/**
 * DIR/tls/ca.pem, the only trust anchor of the channel and of re-enrollment: exactly one certificate, whose pin is
 * the one gateway.json recorded at bootstrap. Returns it re-encoded (that certificate and nothing else).
 */
async function readPinnedCa(file: string, identity: EdgeIdentity): Promise<string> {
  const ca = singleCertificate(await readText(file, "the control plane's CA certificate"));
  const restore = 'restore it from the bootstrap (or bootstrap again)';
  if (!ca.ok)
    throw new ConfigError(
      `${file}: the control plane's CA certificate must be exactly one certificate, and this file ${ca.count > 1 ? `holds ${ca.count}` : ca.reason}; ${restore}`,
    );
  if (ca.pin !== identity.caPin)
    throw new ConfigError(
      `${file}: the control plane's CA certificate has the pin ${ca.pin}, not ${identity.caPin} (gateway.json); ${restore}`,
    );
  return ca.pem;
}

async function readText(file: string, what: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new ConfigError(
      `${file}: cannot read ${what} (${code ?? 'error'})${code === 'ENOENT' ? ': is this a directory written by `gatehouse gateway bootstrap`?' : ''}`,
    );
  }
}
