/**
 * Length (about 460 lines formatted): the steps below, in order, each with the refusal that names what to do.
 *
 * `gatehouse gateway bootstrap`: turns a one-time registration token into a gateway's config directory.
 *
 * 1. Refuse a directory that is already bootstrapped (it holds gateway.json), before anything else.
 * 2. Make the gateway's key pair and a CSR.
 * 3. Fetch the control plane's CA *without* trusting the connection, and compare its pin with the expected one
 *    (from the install command), as kubeadm does with its CA hash. The answer must be exactly one certificate: the
 *    pin covers one, and a second one would become a trust anchor unchecked. A mismatch stops here: nothing is
 *    written and the token is not sent.
 * 4. Register over a connection whose only trust anchor is that pinned CA, re-encoded (server name
 *    `gatehouse-control-plane`). The answer's certificate must be for our key and signed by the pinned CA, and the
 *    CA it comes with must be the pinned one.
 * 5. Write the directory: the TLS files first, `gateway.json` last, so that gateway.json marks a complete
 *    directory. The key (and in helm mode values.yaml, which holds it) is created with mode 0600, directories 0700.
 *    Each file is written atomically and durably (src/shared/atomic-file.ts), so a power loss cannot leave a
 *    gateway.json beside a torn or missing key.
 *
 * The token is sent to the control plane and nowhere else: it is never printed, logged or written.
 *
 * `reenrollGateway` is the way back for a gateway whose certificate expired (see certificate-renewal.ts): the same
 * endpoint and trust, with proof of possession of the certificate's key instead of a token.
 *
 * Over 400 lines on purpose: the two ways in (a token, re-enrolment with an expired certificate) and the directory,
 * TLS and HTTP steps they share.
 */
import type { X509Certificate } from 'node:crypto';
import { constants } from 'node:fs';
import { access, chmod, readdir, stat } from 'node:fs/promises';
import { request } from 'node:https';
import { hostname as osHostname } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { stringify } from 'yaml';
import {
  EdgeIdentitySchema,
  RegisterResponseSchema,
  RenewResponseSchema,
  type EdgeIdentity,
  type RegisterResponse,
  type RenewResponse,
} from '../../config/edge.ts';
import { makeDirectoryDurable, writeFileAtomic } from '../../shared/atomic-file.ts';
import { createCsrForKey, createKeyAndCsr, describeCertificate, singleCertificate } from '../../shared/certificates.ts';
import { x509 } from '../../shared/x509.ts';

/** The TLS server name the control plane's certificate carries for the edge endpoints. */
export const CONTROL_PLANE_SERVER_NAME = 'gatehouse-control-plane';

export interface BootstrapOptions {
  /** The one-time registration token (`ghr_…`). */
  token: string;
  /** `sha256:<hex>` of the control plane CA's public key, from the install command. */
  caPin: string;
  /** The bootstrap endpoint, e.g. `https://cp.example.com:8443`. */
  url: string;
  /** The config directory to write. */
  dir: string;
  /** `helm` also writes `values.yaml` for deploy/helm/gatehouse. */
  mode: 'standalone' | 'helm';
  /** Sent to the control plane for its records. Default: this machine's host name. */
  hostname?: string;
  /** Per request. Default 30 s. */
  timeoutMs?: number;
  now?: () => number;
}

export interface BootstrapResult {
  dir: string;
  identity: EdgeIdentity;
  /** The files written, relative to `dir`. */
  files: string[];
  certificate: { serial: string; notAfter: Date };
}

/**
 * Bootstrapping failed. `userMistake`: something the caller fixes (a used or expired token, a bootstrapped
 * directory, an unreachable URL); otherwise the control plane misbehaved or could not be trusted.
 */
export class BootstrapError extends Error {
  override readonly name = 'BootstrapError';
  readonly userMistake: boolean;
  constructor(message: string, userMistake: boolean) {
    super(message);
    this.userMistake = userMistake;
  }
}

export const IDENTITY_FILE = 'gateway.json';
export const TLS_FILES = { ca: 'tls/ca.pem', certificate: 'tls/gateway.crt', key: 'tls/gateway.key' } as const;
export const HELM_VALUES_FILE = 'values.yaml';

export async function bootstrapGateway(options: BootstrapOptions): Promise<BootstrapResult> {
  const dir = resolve(options.dir);
  const now = options.now ?? Date.now;
  const timeoutMs = options.timeoutMs ?? 30_000;
  const base = new URL(options.url);
  const where = base.origin;
  await checkDirectory(dir);

  const { keyPem, csrPem } = await createKeyAndCsr('gatehouse edge gateway');

  // Step 1: the CA, over a connection not trusted yet. Only its pin decides whether we go on, and the pin covers
  // one certificate: a text with more is refused, and only the one certificate, re-encoded, is trusted from here on.
  const caAnswer = await send(new URL('/v1/ca', base), { method: 'GET', insecure: true, timeoutMs }, where);
  if (caAnswer.status !== 200)
    throw new BootstrapError(
      `${where} answered ${caAnswer.status} to GET /v1/ca: is --url the bootstrap endpoint of a Gatehouse control plane?`,
      true,
    );
  const ca = singleCertificate(caAnswer.text);
  if (!ca.ok && ca.count > 1) {
    throw new BootstrapError(
      `the control plane at ${where} answered GET /v1/ca with a text that ${ca.reason}: a CA is exactly one certificate; refusing to continue`,
      false,
    );
  }
  if (!ca.ok)
    throw new BootstrapError(
      `${where} did not answer a CA certificate on GET /v1/ca: is --url the bootstrap endpoint of a Gatehouse control plane?`,
      true,
    );
  if (ca.pin !== options.caPin) {
    throw new BootstrapError(
      `the control plane at ${where} presented a CA whose pin is ${ca.pin}, not the expected ${options.caPin}: refusing to continue`,
      false,
    );
  }
  const caPem = ca.pem;

  // Step 2: register, trusting only the pinned CA.
  const body = JSON.stringify({ token: options.token, csr: csrPem, hostname: options.hostname ?? osHostname() });
  const answer = await send(new URL('/v1/register', base), { method: 'POST', body, ca: caPem, timeoutMs }, where);
  if (answer.status >= 400 && answer.status < 500)
    throw new BootstrapError(
      `the control plane refused the registration: ${problemDetail(answer.text) ?? `${answer.status}`}`,
      true,
    );
  if (answer.status !== 200)
    throw new BootstrapError(
      `the control plane failed to register the gateway: ${problemDetail(answer.text) ?? `${answer.status}`}`,
      false,
    );
  let registered: RegisterResponse;
  try {
    registered = RegisterResponseSchema.parse(JSON.parse(answer.text));
  } catch (error) {
    throw new BootstrapError(
      `the control plane's registration answer is not what this version expects (${(error as Error).message.split('\n', 1)[0]}): is it the same Gatehouse version?`,
      false,
    );
  }
  const certificatePem = checkCertificate(registered, csrPem, ca);

  const g = registered.gateway;
  const identity = EdgeIdentitySchema.parse({
    gatewayId: g.id,
    gatewayName: g.name,
    workspaceId: g.workspaceId,
    workspaceName: g.workspaceName,
    environment: g.environment,
    installMethod: g.installMethod,
    caPin: options.caPin,
    controlPlane: registered.controlPlane,
    bootstrappedAt: new Date(now()).toISOString(),
  } satisfies EdgeIdentity);

  // Step 3: the directory. gateway.json last: it marks a complete directory.
  const files: string[] = [];
  const write = async (name: string, content: string, mode: number) => {
    await writeFileAtomic(join(dir, name), content, { mode });
    files.push(name);
  };
  try {
    await makeDirectory(dir);
    await makeDirectory(join(dir, 'tls'));
    await write(TLS_FILES.key, keyPem, 0o600);
    await write(TLS_FILES.certificate, certificatePem, 0o644);
    await write(TLS_FILES.ca, caPem, 0o644);
    if (options.mode === 'helm')
      await write(
        HELM_VALUES_FILE,
        helmValues(identity, { ca: caPem, certificate: certificatePem, key: keyPem }),
        0o600,
      );
    await write(IDENTITY_FILE, `${JSON.stringify(identity, null, 2)}\n`, 0o644);
  } catch (error) {
    // A full disk or an I/O error, not a bug: say what failed and the way out (the token is spent).
    throw new BootstrapError(
      `the gateway is registered, but writing its config directory failed: ${(error as Error).message}. Fix that and bootstrap again into ${dir} with a new token (this one is used up)`,
      false,
    );
  }
  const described = describeCertificate(certificatePem);
  return { dir, identity, files, certificate: { serial: described.serial, notAfter: described.notAfter } };
}

export interface ReenrollOptions {
  /** The bootstrap endpoint (`controlPlane.bootstrap` of gateway.json). */
  url: string;
  /** The pinned CA (DIR/tls/ca.pem), exactly one certificate: the only trust anchor of the connection. */
  caPem: string;
  /** The gateway's certificate (expired, or about to) and its key. */
  certificatePem: string;
  keyPem: string;
  commonName: string;
  /** Default 30 s. */
  timeoutMs?: number;
}

/**
 * What re-enrolling came to. `unreachable`: no answer from a control plane of the pinned CA (try again later);
 * `refused`: the control plane said no (`deleted` when the gateway was deleted); `failed`: it answered something
 * else (a fault, or another version).
 */
export type ReenrollResult =
  | { ok: true; certificatePem: string; caPem: string }
  | { ok: false; kind: 'unreachable' | 'refused' | 'failed'; message: string; deleted: boolean };

/**
 * Trades a certificate that expired (or is about to) for a new one for the same key at `POST /v1/renew`, proving
 * possession of the key with a CSR signed by it. The connection trusts only the pinned CA, and the answer must come
 * with that same CA. Never throws for what the network or the control plane does: the caller decides when to try
 * again. (The caller checks the certificate itself: that it names the gateway, chains to the CA, matches the key.)
 */
export async function reenrollGateway(options: ReenrollOptions): Promise<ReenrollResult> {
  const where = new URL(options.url).origin;
  const pinned = singleCertificate(options.caPem);
  if (!pinned.ok) {
    return {
      ok: false,
      kind: 'failed',
      message: `the control plane's CA certificate (tls/ca.pem) must be exactly one certificate, and it ${pinned.count > 1 ? `holds ${pinned.count}` : pinned.reason}`,
      deleted: false,
    };
  }
  const csr = await createCsrForKey(options.keyPem, options.commonName);
  const body = JSON.stringify({ certificate: options.certificatePem, csr });
  let answer: Answer;
  try {
    answer = await send(
      new URL('/v1/renew', options.url),
      { method: 'POST', body, ca: pinned.pem, timeoutMs: options.timeoutMs ?? 30_000 },
      where,
    );
  } catch (error) {
    return { ok: false, kind: 'unreachable', message: (error as Error).message, deleted: false };
  }
  if (answer.status >= 400 && answer.status < 500) {
    const problem = parseProblem(answer.text);
    return {
      ok: false,
      kind: 'refused',
      message: problem?.detail ?? `${where} answered ${answer.status}`,
      deleted: problem?.gatewayStatus === 'deleted',
    };
  }
  if (answer.status !== 200)
    return {
      ok: false,
      kind: 'failed',
      message: `the control plane failed to re-enroll the gateway: ${parseProblem(answer.text)?.detail ?? `${answer.status}`}`,
      deleted: false,
    };
  let renewed: RenewResponse;
  try {
    renewed = RenewResponseSchema.parse(JSON.parse(answer.text));
  } catch (error) {
    return {
      ok: false,
      kind: 'failed',
      message: `the control plane's re-enrollment answer is not what this version expects (${(error as Error).message.split('\n', 1)[0]})`,
      deleted: false,
    };
  }
  const unusable = (problem: string): ReenrollResult => ({
    ok: false,
    kind: 'failed',
    message: `the control plane answered a certificate this gateway cannot use: ${problem}`,
    deleted: false,
  });
  const certificate = singleCertificate(renewed.certificate);
  if (!certificate.ok) return unusable(`the certificate ${certificate.reason}`);
  const problem = sameCa(renewed.ca, pinned.pem);
  if (problem !== undefined) return unusable(problem);
  return { ok: true, certificatePem: certificate.pem, caPem: pinned.pem };
}

/** Refuses a directory that is bootstrapped already, is no directory, or cannot be written — before the token is spent. */
async function checkDirectory(dir: string): Promise<void> {
  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOTDIR') throw new BootstrapError(`${dir} exists and is not a directory`, true);
    if (code !== 'ENOENT') throw new BootstrapError(`cannot read ${dir}: ${(error as Error).message}`, true);
    // It will be created: its nearest existing ancestor must be a writable directory.
    let ancestor = dirname(dir);
    for (;;) {
      const found = await stat(ancestor).catch(() => undefined);
      if (found) {
        if (!found.isDirectory())
          throw new BootstrapError(`cannot create ${dir}: ${ancestor} is not a directory`, true);
        break;
      }
      if (dirname(ancestor) === ancestor) break;
      ancestor = dirname(ancestor);
    }
    await access(ancestor, constants.W_OK).catch(() => {
      throw new BootstrapError(`cannot create ${dir}: ${ancestor} is not writable`, true);
    });
    return;
  }
  if (entries.includes(IDENTITY_FILE))
    throw new BootstrapError(
      `${dir} is already bootstrapped (it holds ${IDENTITY_FILE}); delete ${dir} to bootstrap again with a new token`,
      true,
    );
  await access(dir, constants.W_OK).catch(() => {
    throw new BootstrapError(`cannot write to ${dir}`, true);
  });
}

/**
 * The certificate must be one certificate, for our key, signed by the pinned CA, name a gateway, and come with the
 * pinned CA (exactly it, nothing more). Returns the certificate re-encoded: what is written.
 */
function checkCertificate(
  registered: RegisterResponse,
  csrPem: string,
  ca: { pem: string; certificate: X509Certificate },
): string {
  try {
    const single = singleCertificate(registered.certificate);
    if (!single.ok) throw new Error(`the certificate ${single.reason}`);
    const certificate = new x509.X509Certificate(single.pem);
    const csr = new x509.Pkcs10CertificateRequest(csrPem);
    if (Buffer.compare(Buffer.from(certificate.publicKey.rawData), Buffer.from(csr.publicKey.rawData)) !== 0)
      throw new Error('it is not for the key this gateway generated');
    if (!single.certificate.checkIssued(ca.certificate) || !single.certificate.verify(ca.certificate.publicKey))
      throw new Error('it is not signed by the pinned CA');
    if (!describeCertificate(single.pem).uris.some((u) => u.startsWith('spiffe://gatehouse/')))
      throw new Error('it names no gateway');
    const problem = sameCa(registered.ca, ca.pem);
    if (problem !== undefined) throw new Error(problem);
    return single.pem;
  } catch (error) {
    throw new BootstrapError(
      `the control plane answered a certificate this gateway cannot use: ${(error as Error).message}`,
      false,
    );
  }
}

/** Why the CA an answer came with is not exactly the pinned one; undefined when it is. */
function sameCa(answered: string, pinnedPem: string): string | undefined {
  const ca = singleCertificate(answered);
  if (!ca.ok) return `the CA it came with ${ca.reason}`;
  if (ca.pem !== pinnedPem) return 'it came with a CA other than the pinned one';
  return undefined;
}

/** values.yaml for deploy/helm/gatehouse: the identity and the TLS files, which the chart turns into a Secret. */
function helmValues(identity: EdgeIdentity, tls: { ca: string; certificate: string; key: string }): string {
  const header = [
    `# Values for the Gatehouse Helm chart (deploy/helm/gatehouse), written by \`gatehouse gateway bootstrap\` for the`,
    `# edge gateway "${identity.gatewayName}" (workspace ${identity.workspaceName}, environment ${identity.environment}).`,
    "# It holds the gateway's private key: keep it as secret as the key itself.",
    '#   helm install RELEASE deploy/helm/gatehouse -f values.yaml',
    '',
  ].join('\n');
  return header + stringify({ gateway: { identity, tls } }, { lineWidth: 0 });
}

async function makeDirectory(dir: string): Promise<void> {
  await makeDirectoryDurable(dir, 0o700);
  // An existing directory (e.g. a container volume) is tightened too, where we may.
  await chmod(dir, 0o700).catch((error: unknown) => {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') throw error;
  });
}

interface Answer {
  status: number;
  text: string;
}

/** One HTTPS request. `insecure` accepts any server certificate (the CA fetch only); otherwise `ca` is the only trust anchor. */
function send(
  url: URL,
  init: { method: string; body?: string; ca?: string; insecure?: boolean; timeoutMs: number },
  where: string,
): Promise<Answer> {
  return new Promise((resolvePromise, reject) => {
    const req = request(
      url,
      {
        method: init.method,
        agent: false,
        timeout: init.timeoutMs,
        headers: {
          accept: 'application/json, application/x-pem-file',
          ...(init.body !== undefined
            ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(init.body) }
            : {}),
        },
        ...(init.insecure
          ? { rejectUnauthorized: false }
          : { ca: init.ca, servername: CONTROL_PLANE_SERVER_NAME, rejectUnauthorized: true }),
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > 1024 * 1024) req.destroy(new Error('the answer exceeds 1 MiB'));
          else chunks.push(chunk);
        });
        res.on('end', () =>
          resolvePromise({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }),
        );
        res.on('error', reject);
      },
    );
    req.on('timeout', () =>
      req.destroy(Object.assign(new Error(`no answer within ${init.timeoutMs / 1000} s`), { code: 'ETIMEDOUT' })),
    );
    req.on('error', (error: NodeJS.ErrnoException) => reject(connectionError(error, where, init.insecure === true)));
    req.end(init.body);
  });
}

function connectionError(error: NodeJS.ErrnoException, where: string, insecure: boolean): BootstrapError {
  const code = error.code ?? '';
  if (
    !insecure &&
    (code.startsWith('ERR_TLS_') ||
      code.includes('CERT') ||
      code.includes('SIGNATURE') ||
      code === 'SELF_SIGNED_CERT_IN_CHAIN' ||
      code === 'UNABLE_TO_VERIFY_LEAF_SIGNATURE')
  ) {
    return new BootstrapError(
      `the control plane at ${where} did not prove it holds a certificate of the pinned CA (${code}: ${error.message}): refusing to continue`,
      false,
    );
  }
  return new BootstrapError(
    `cannot reach the control plane's bootstrap endpoint at ${where}: ${code || error.message}${code && error.message && !error.message.includes(code) ? ` (${error.message})` : ''}`,
    true,
  );
}

function problemDetail(text: string): string | undefined {
  return parseProblem(text)?.detail;
}

function parseProblem(text: string): { detail?: string; gatewayStatus?: string } | undefined {
  try {
    const { detail, gatewayStatus } = JSON.parse(text) as { detail?: unknown; gatewayStatus?: unknown };
    return {
      ...(typeof detail === 'string' ? { detail } : {}),
      ...(typeof gatewayStatus === 'string' ? { gatewayStatus } : {}),
    };
  } catch {
    return undefined;
  }
}
