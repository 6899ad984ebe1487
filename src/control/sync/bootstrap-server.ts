/**
 * Length (about 480 lines): the endpoint's two exchanges (register, re-enroll) and the checks each
 * makes, kept beside each other because they must refuse the same things the same way.
 *
 * The bootstrap endpoint (HTTPS, JSON): where `gatehouse gateway bootstrap` trades a one-time registration token
 * and a certificate signing request for the gateway's first certificate.
 *
 * - `GET /v1/ca` answers the CA certificate (PEM). It is public: the client trusts nothing it receives until the
 *   CA's pin matches the one in its install command, and then uses that CA as its only trust anchor.
 * - `POST /v1/register` (`RegisterRequestSchema`) checks the token (well-formed, known, unused, unexpired), signs
 *   the CSR, consumes the token and records the certificate in one transaction (of two requests with one token,
 *   exactly one wins), and answers `RegisterResponseSchema`.
 * - `POST /v1/renew` (`RenewRequestSchema`) re-enrolls a gateway whose certificate expired (an instance down for
 *   longer than its validity, a Kubernetes pod started from the certificate written at bootstrap), by proof of
 *   possession instead of a token: the certificate must be this CA's, recorded, not revoked, of a gateway that still
 *   exists, expired no longer ago than the re-enrollment window, and the CSR must be signed with the certificate's
 *   own key. The new certificate is for that same key: whoever holds it proved it does, and a certificate is useless
 *   to anyone without it (the next renewal over the live channel moves to a new key).
 *
 * Refusals are problem+json. Tokens are never logged, not even in part.
 *
 * Over 400 lines on purpose: one endpoint, whose two flows (enrolment, re-enrolment) share its validation, CA and
 * refusals.
 */
import { randomUUID, X509Certificate } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { Logger } from 'pino';
import {
  REGISTRATION_TOKEN_PATTERN,
  RegisterRequestSchema,
  RenewRequestSchema,
  type ControlPlaneEndpoints,
  type ReplicaEndpoints,
  type RegisterResponse,
  type RenewResponse,
} from '../../config/edge.ts';
import { formatDuration } from '../../config/duration.ts';
import { formatPath } from '../../config/schema.ts';
import { sendProblem } from '../../shared/errors.ts';
import { hashRegistrationToken } from '../gateways.ts';
import { nowIso } from '../ids.ts';
import { describeCertificate } from '../../shared/certificates.ts';
import { x509 } from '../../shared/x509.ts';
import { CsrError, parseGatewayUri, type CertificateAuthority } from '../pki/ca.ts';
import type { Store } from '../store/store.ts';
import { GATEWAY_CERTIFICATE_VALIDITY_MS } from './sync-server.ts';

/** How long after its expiry a gateway certificate may still be traded for a new one at `POST /v1/renew`. */
export const DEFAULT_GATEWAY_REENROLL_WINDOW_MS = 30 * 86_400_000;
const MAX_BODY = 64 * 1024;

export interface BootstrapServerOptions {
  store: Store;
  ca: CertificateAuthority;
  /** The control plane's server certificate and key (PEM), issued by `ca`. */
  tls: { certPem: string; keyPem: string };
  /**
   * What registered gateways are told to dial. Read on every answer, so the caller may fill in the bound ports
   * after listening (port 0).
   */
  endpoints: ControlPlaneEndpoints;
  /** The other control-plane replicas' endpoints, handed to every gateway that registers (failover). */
  alternates?: () => Promise<ReplicaEndpoints[]>;
  logger: Logger;
  now?: () => number;
  /** Validity of the certificates issued here. Default 24 hours. */
  certificateValidityMs?: number;
  /**
   * `POST /v1/renew` accepts a certificate that expired at most this long ago. Default 30 days. A longer window lets
   * instances that were down longer (or pods started from an old Kubernetes Secret) come back by themselves; it
   * also keeps a stolen key and certificate of a gateway that stopped renewing usable that much longer.
   */
  reenrollWindowMs?: number;
}

/** The bootstrap endpoint's refusals (codes of the one error table). */
type ProblemCode =
  | 'GH_ERR_BOOTSTRAP_INVALID_REQUEST'
  | 'GH_ERR_BOOTSTRAP_TOKEN_REFUSED'
  | 'GH_ERR_BOOTSTRAP_CERTIFICATE_REFUSED'
  | 'GH_ERR_ROUTE_NOT_FOUND'
  | 'GH_ERR_ROUTE_METHOD_NOT_ALLOWED'
  | 'GH_ERR_BOOTSTRAP_INTERNAL';

class BootstrapRefusal extends Error {
  readonly code: ProblemCode;
  /** For the log line: why, in a word. */
  readonly reason: string;
  /**
   * `deleted`: the gateway was deleted (its certificates revoked). Said in the problem's `gatewayStatus` member, as
   * the sync channel says it in a trailer, so that the instance deactivates its endpoints and drops its cache.
   */
  readonly gatewayStatus: 'deleted' | undefined;
  constructor(code: ProblemCode, detail: string, reason: string, gatewayStatus?: 'deleted') {
    super(detail);
    this.code = code;
    this.reason = reason;
    this.gatewayStatus = gatewayStatus;
  }
}

const REGENERATE =
  'regenerate the install command (`gatehouse gateway install-command <gateway>`, or POST …/gateways/{gateway}/install-command)';
const BOOTSTRAP_AGAIN =
  'bootstrap the gateway again with a new install command (`gatehouse gateway install-command <gateway>`)';

/** An HTTPS server (not yet listening) for the bootstrap endpoint. */
export function createBootstrapServer(options: BootstrapServerOptions): Server {
  const { store, ca, logger, endpoints } = options;
  const now = options.now ?? Date.now;
  const validityMs = options.certificateValidityMs ?? GATEWAY_CERTIFICATE_VALIDITY_MS;
  const reenrollWindowMs = options.reenrollWindowMs ?? DEFAULT_GATEWAY_REENROLL_WINDOW_MS;
  const caPublicKey = new X509Certificate(ca.certPem).publicKey;

  return createServer({ cert: options.tls.certPem, key: options.tls.keyPem, minVersion: 'TLSv1.2' }, (req, res) => {
    const requestId = randomUUID();
    const started = performance.now();
    const log: Record<string, unknown> = {};
    handle(req, res, log).then(
      (status) =>
        logger.info(
          {
            reqId: requestId,
            method: req.method,
            path: req.url,
            status,
            ...log,
            ms: Math.round(performance.now() - started),
          },
          'bootstrap request',
        ),
      (error: unknown) => {
        if (error instanceof BootstrapRefusal) {
          const status = problem(
            res,
            requestId,
            error.code,
            error.message,
            error.gatewayStatus && { gatewayStatus: error.gatewayStatus },
          );
          logger.info(
            { reqId: requestId, method: req.method, path: req.url, status, refused: error.reason, ...log },
            'bootstrap request refused',
          );
          return;
        }
        logger.error({ reqId: requestId, err: error }, 'bootstrap request failed');
        if (!res.headersSent)
          problem(
            res,
            requestId,
            'GH_ERR_BOOTSTRAP_INTERNAL',
            'an internal error occurred; it is logged under this request id',
          );
        else res.destroy();
      },
    );
  });

  async function handle(req: IncomingMessage, res: ServerResponse, log: Record<string, unknown>): Promise<number> {
    const path = (req.url ?? '/').split('?', 1)[0];
    if (path === '/v1/ca') {
      if (req.method !== 'GET' && req.method !== 'HEAD')
        throw new BootstrapRefusal(
          'GH_ERR_ROUTE_METHOD_NOT_ALLOWED',
          `${req.method} is not allowed on ${path}`,
          'method',
        );
      req.resume();
      res.writeHead(200, {
        'content-type': 'application/x-pem-file',
        'content-length': Buffer.byteLength(ca.certPem),
        'cache-control': 'no-store',
      });
      res.end(req.method === 'HEAD' ? undefined : ca.certPem);
      return 200;
    }
    if (path !== '/v1/register' && path !== '/v1/renew')
      throw new BootstrapRefusal('GH_ERR_ROUTE_NOT_FOUND', `no bootstrap route ${path}`, 'route');
    if (req.method !== 'POST')
      throw new BootstrapRefusal(
        'GH_ERR_ROUTE_METHOD_NOT_ALLOWED',
        `${req.method} is not allowed on ${path}`,
        'method',
      );
    return path === '/v1/register' ? register(req, res, log) : renew(req, res, log);
  }

  async function register(req: IncomingMessage, res: ServerResponse, log: Record<string, unknown>): Promise<number> {
    const parsed = RegisterRequestSchema.safeParse(await readJson(req));
    if (!parsed.success) throw invalidBody(parsed.error.issues);
    const { token, csr, hostname } = parsed.data;
    if (hostname !== undefined) log.hostname = hostname;
    if (!REGISTRATION_TOKEN_PATTERN.test(token)) {
      throw new BootstrapRefusal(
        'GH_ERR_BOOTSTRAP_INVALID_REQUEST',
        'body.token: malformed registration token (expected "ghr_" and 32 letters and digits, as in the install command)',
        'malformed token',
      );
    }
    const hash = hashRegistrationToken(token);
    const at = now();
    const record = await store.getRegistrationToken(hash);
    if (!record)
      throw new BootstrapRefusal(
        'GH_ERR_BOOTSTRAP_TOKEN_REFUSED',
        `unknown registration token: it was never issued, was replaced by a newer install command, or its gateway was deleted; ${REGENERATE}`,
        'unknown token',
      );
    log.gateway = record.gatewayId;
    refuseSpent(record.usedAt, record.expiresAt, at);
    const gateway = await store.getGateway({ id: record.gatewayId });
    const workspace = gateway && (await store.getWorkspace({ id: gateway.workspaceId }));
    if (!gateway || !workspace)
      throw new BootstrapRefusal(
        'GH_ERR_BOOTSTRAP_TOKEN_REFUSED',
        `unknown registration token: its gateway was deleted; ${REGENERATE}`,
        'gateway deleted',
      );

    // Sign before consuming: a bad CSR must not burn the token. The certificate leaves only if the token is ours.
    const issued = await signCsr(ca, csr, gateway, validityMs);
    const consumed = await store.transaction(async (tx) => {
      if (!(await tx.consumeRegistrationToken(hash, nowIso(at)))) return false;
      await tx.insertGatewayCertificate({
        serial: issued.serial,
        gatewayId: gateway.id,
        notBefore: issued.notBefore.toISOString(),
        notAfter: issued.notAfter.toISOString(),
      });
      return true;
    });
    if (!consumed) {
      // Another request used it a moment ago (or it expired meanwhile): say which.
      const again = await store.getRegistrationToken(hash);
      if (!again)
        throw new BootstrapRefusal(
          'GH_ERR_BOOTSTRAP_TOKEN_REFUSED',
          `unknown registration token: it was replaced by a newer install command meanwhile; ${REGENERATE}`,
          'unknown token',
        );
      refuseSpent(again.usedAt ?? nowIso(at), again.expiresAt, at);
    }
    log.serial = issued.serial;
    const alternates =
      (await options.alternates?.().catch((err: unknown) => {
        logger.warn({ err }, 'cannot list the other control-plane replicas; the gateway is told of this one only');
        return [];
      })) ?? [];
    const answer: RegisterResponse = {
      certificate: issued.certPem,
      ca: ca.certPem,
      gateway: {
        id: gateway.id,
        name: gateway.name,
        workspaceId: workspace.id,
        workspaceName: workspace.name,
        environment: gateway.environment,
        installMethod: gateway.installMethod,
      },
      controlPlane: { ...endpoints, ...(alternates.length ? { alternates } : {}) },
    };
    return json(res, answer);
  }

  /**
   * Re-enrollment by proof of possession. The key checks come before any lookup, so that someone holding only a
   * certificate (which is not secret) learns nothing about its gateway.
   */
  async function renew(req: IncomingMessage, res: ServerResponse, log: Record<string, unknown>): Promise<number> {
    const parsed = RenewRequestSchema.safeParse(await readJson(req));
    if (!parsed.success) throw invalidBody(parsed.error.issues);
    const { certificate: certPem, csr: csrPem } = parsed.data;

    let certificate: X509Certificate;
    let described: ReturnType<typeof describeCertificate>;
    try {
      certificate = new X509Certificate(certPem);
      described = describeCertificate(certPem);
    } catch {
      throw new BootstrapRefusal(
        'GH_ERR_BOOTSTRAP_INVALID_REQUEST',
        'body.certificate: not a PEM X.509 certificate',
        'bad certificate',
      );
    }
    log.previous = described.serial;
    if (!certificate.verify(caPublicKey))
      throw new BootstrapRefusal(
        'GH_ERR_BOOTSTRAP_CERTIFICATE_REFUSED',
        `certificate ${described.serial} was not issued by this control plane's CA; ${BOOTSTRAP_AGAIN}`,
        'foreign certificate',
      );
    const subject = described.uris.map(parseGatewayUri).find((s) => s !== undefined);
    if (!subject)
      throw new BootstrapRefusal(
        'GH_ERR_BOOTSTRAP_CERTIFICATE_REFUSED',
        `certificate ${described.serial} names no gateway`,
        'no gateway',
      );
    log.gateway = subject.gatewayId;

    let csr: x509.Pkcs10CertificateRequest;
    try {
      csr = new x509.Pkcs10CertificateRequest(csrPem);
    } catch {
      throw new BootstrapRefusal(
        'GH_ERR_BOOTSTRAP_INVALID_REQUEST',
        'body.csr: the certificate signing request is not a valid PEM PKCS#10 request',
        'bad csr',
      );
    }
    if (!(await csr.verify()))
      throw new BootstrapRefusal(
        'GH_ERR_BOOTSTRAP_INVALID_REQUEST',
        'body.csr: the certificate signing request is not signed by its own key',
        'bad csr',
      );
    // The CSR is signed with the key it carries; that key must be the certificate's: proof of possession.
    if (
      Buffer.compare(
        Buffer.from(csr.publicKey.rawData),
        certificate.publicKey.export({ type: 'spki', format: 'der' }),
      ) !== 0
    ) {
      throw new BootstrapRefusal(
        'GH_ERR_BOOTSTRAP_CERTIFICATE_REFUSED',
        `the certificate signing request is for another key than certificate ${described.serial}: re-enrolling takes a CSR signed with the certificate's own key`,
        'other key',
      );
    }

    const record = await store.getGatewayCertificate(described.serial);
    if (!record || record.gatewayId !== subject.gatewayId) {
      throw new BootstrapRefusal(
        'GH_ERR_BOOTSTRAP_CERTIFICATE_REFUSED',
        `certificate ${described.serial} was not issued by this control plane to gateway ${subject.gatewayId}; ${BOOTSTRAP_AGAIN}`,
        'unknown certificate',
      );
    }
    if (record.revokedAt !== undefined) {
      throw new BootstrapRefusal(
        'GH_ERR_BOOTSTRAP_CERTIFICATE_REFUSED',
        `the certificate of gateway ${subject.gatewayId} was revoked at ${record.revokedAt} (gateway deleted)`,
        'revoked',
        'deleted',
      );
    }
    const gateway = await store.getGateway({ id: subject.gatewayId });
    if (!gateway)
      throw new BootstrapRefusal(
        'GH_ERR_BOOTSTRAP_CERTIFICATE_REFUSED',
        `gateway ${subject.gatewayId} was deleted`,
        'gateway deleted',
        'deleted',
      );
    if (gateway.workspaceId !== subject.workspaceId || gateway.environment !== subject.environment) {
      throw new BootstrapRefusal(
        'GH_ERR_BOOTSTRAP_CERTIFICATE_REFUSED',
        `the certificate names workspace ${subject.workspaceId} environment ${subject.environment}, but gateway ${gateway.id} belongs to workspace ${gateway.workspaceId} environment ${gateway.environment}; ${BOOTSTRAP_AGAIN}`,
        'other scope',
      );
    }
    const at = now();
    const expiredFor = at - Date.parse(record.notAfter);
    if (expiredFor > reenrollWindowMs) {
      throw new BootstrapRefusal(
        'GH_ERR_BOOTSTRAP_CERTIFICATE_REFUSED',
        `the certificate of gateway ${gateway.id} expired at ${record.notAfter}, longer ago than the re-enrollment window (${formatDuration(reenrollWindowMs)}); ${BOOTSTRAP_AGAIN}`,
        'too old',
      );
    }

    const issued = await signCsr(ca, csrPem, gateway, validityMs);
    await store.insertGatewayCertificate({
      serial: issued.serial,
      gatewayId: gateway.id,
      notBefore: issued.notBefore.toISOString(),
      notAfter: issued.notAfter.toISOString(),
    });
    log.serial = issued.serial;
    logger.info(
      {
        gateway: gateway.id,
        serial: issued.serial,
        previous: described.serial,
        expiredAt: record.notAfter,
        notAfter: issued.notAfter.toISOString(),
      },
      're-enrolled a gateway',
    );
    const answer: RenewResponse = { certificate: issued.certPem, ca: ca.certPem };
    return json(res, answer);
  }
}

function invalidBody(issues: readonly { path: readonly PropertyKey[]; message: string }[]): BootstrapRefusal {
  const detail = issues
    .map((i) => `body${formatPath(i.path) ? `.${formatPath(i.path)}` : ''}: ${i.message}`)
    .join('; ');
  return new BootstrapRefusal('GH_ERR_BOOTSTRAP_INVALID_REQUEST', detail, 'invalid body');
}

function json(res: ServerResponse, answer: unknown): number {
  const text = JSON.stringify(answer);
  res.writeHead(200, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  });
  res.end(text);
  return 200;
}

function refuseSpent(usedAt: string | undefined, expiresAt: string, now: number): void {
  if (usedAt !== undefined)
    throw new BootstrapRefusal(
      'GH_ERR_BOOTSTRAP_TOKEN_REFUSED',
      `this registration token was already used (at ${usedAt}); ${REGENERATE}`,
      'used token',
    );
  if (Date.parse(expiresAt) <= now)
    throw new BootstrapRefusal(
      'GH_ERR_BOOTSTRAP_TOKEN_REFUSED',
      `this registration token expired at ${expiresAt}; ${REGENERATE}`,
      'expired token',
    );
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const type = (req.headers['content-type'] ?? '').split(';', 1)[0]!.trim().toLowerCase();
  if (type !== 'application/json') {
    req.resume();
    throw new BootstrapRefusal(
      'GH_ERR_BOOTSTRAP_INVALID_REQUEST',
      `send the body as application/json, not ${type || 'an untyped body'}`,
      'content type',
    );
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY)
      throw new BootstrapRefusal('GH_ERR_BOOTSTRAP_INVALID_REQUEST', `the body exceeds ${MAX_BODY} bytes`, 'too large');
    chunks.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
  } catch {
    throw new BootstrapRefusal('GH_ERR_BOOTSTRAP_INVALID_REQUEST', 'body: not valid JSON', 'invalid json');
  }
}

/** Signs a gateway's CSR for `gateway`; a CSR the CA refuses is the caller's 400, anything else a fault. */
async function signCsr(
  ca: CertificateAuthority,
  csrPem: string,
  gateway: { id: string; workspaceId: string; environment: string },
  validityMs: number,
): Promise<Awaited<ReturnType<CertificateAuthority['signGatewayCsr']>>> {
  try {
    return await ca.signGatewayCsr(
      csrPem,
      { gatewayId: gateway.id, workspaceId: gateway.workspaceId, environment: gateway.environment },
      validityMs,
    );
  } catch (error) {
    if (error instanceof CsrError)
      throw new BootstrapRefusal('GH_ERR_BOOTSTRAP_INVALID_REQUEST', `body.csr: ${error.message}`, 'bad csr');
    throw error;
  }
}

function problem(
  res: ServerResponse,
  requestId: string,
  code: ProblemCode,
  detail: string,
  extensions?: Record<string, string>,
): number {
  return sendProblem(res, { code, detail, ...(extensions && { extensions }) }, requestId);
}
