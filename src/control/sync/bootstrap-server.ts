/**
 * The bootstrap endpoint (HTTPS, JSON): where `gatehouse gateway bootstrap` trades a one-time registration token
 * and a certificate signing request for the gateway's first certificate.
 *
 * - `GET /v1/ca` answers the CA certificate (PEM). It is public: the client trusts nothing it receives until the
 *   CA's pin matches the one in its install command, and then uses that CA as its only trust anchor.
 * - `POST /v1/register` (`RegisterRequestSchema`) checks the token (well-formed, known, unused, unexpired), signs
 *   the CSR, consumes the token and records the certificate in one transaction (of two requests with one token,
 *   exactly one wins), and answers `RegisterResponseSchema`.
 *
 * Refusals are problem+json. Tokens are never logged, not even in part.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { Logger } from 'pino';
import { REGISTRATION_TOKEN_PATTERN, RegisterRequestSchema, type ControlPlaneEndpoints, type RegisterResponse } from '../../config/edge.ts';
import { formatPath } from '../../config/schema.ts';
import { DOCS_BASE, ERRORS } from '../../gateway/http/errors.ts';
import { hashRegistrationToken } from '../gateways.ts';
import { nowIso } from '../ids.ts';
import { CsrError, type CertificateAuthority } from '../pki/ca.ts';
import type { Store } from '../store/store.ts';

/** Gateway certificates are short-lived and renewed over the live channel. */
export const DEFAULT_GATEWAY_CERTIFICATE_VALIDITY_MS = 24 * 3_600_000;
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
  logger: Logger;
  now?: () => number;
  /** Validity of the certificates issued here. Default 24 hours. */
  certificateValidityMs?: number;
}

/** The bootstrap endpoint's refusals (codes of the one error table). */
type ProblemCode = 'GH_ERR_BOOTSTRAP_INVALID_REQUEST' | 'GH_ERR_BOOTSTRAP_TOKEN_REFUSED' | 'GH_ERR_ROUTE_NOT_FOUND' | 'GH_ERR_ROUTE_METHOD_NOT_ALLOWED' | 'GH_ERR_GATEWAY_INTERNAL';

class Refusal extends Error {
  readonly code: ProblemCode;
  /** For the log line: why, in a word. */
  readonly reason: string;
  constructor(code: ProblemCode, detail: string, reason: string) {
    super(detail);
    this.code = code;
    this.reason = reason;
  }
}

const REGENERATE = 'regenerate the install command (`gatehouse gateway install-command <gateway>`, or POST …/gateways/{gateway}/install-command)';

/** An HTTPS server (not yet listening) for the bootstrap endpoint. */
export function createBootstrapServer(options: BootstrapServerOptions): Server {
  const { store, ca, logger, endpoints } = options;
  const now = options.now ?? Date.now;
  const validityMs = options.certificateValidityMs ?? DEFAULT_GATEWAY_CERTIFICATE_VALIDITY_MS;

  return createServer({ cert: options.tls.certPem, key: options.tls.keyPem, minVersion: 'TLSv1.2' }, (req, res) => {
    const requestId = randomUUID();
    const started = performance.now();
    const log: Record<string, unknown> = {};
    handle(req, res, log).then(
      (status) => logger.info({ reqId: requestId, method: req.method, path: req.url, status, ...log, ms: Math.round(performance.now() - started) }, 'bootstrap request'),
      (error: unknown) => {
        if (error instanceof Refusal) {
          const status = problem(res, requestId, error.code, error.message);
          logger.info({ reqId: requestId, method: req.method, path: req.url, status, refused: error.reason, ...log }, 'bootstrap request refused');
          return;
        }
        logger.error({ reqId: requestId, err: error }, 'bootstrap request failed');
        if (!res.headersSent) problem(res, requestId, 'GH_ERR_GATEWAY_INTERNAL', 'an internal error occurred; it is logged under this request id');
        else res.destroy();
      },
    );
  });

  async function handle(req: IncomingMessage, res: ServerResponse, log: Record<string, unknown>): Promise<number> {
    const path = (req.url ?? '/').split('?', 1)[0];
    if (path === '/v1/ca') {
      if (req.method !== 'GET' && req.method !== 'HEAD') throw new Refusal('GH_ERR_ROUTE_METHOD_NOT_ALLOWED', `${req.method} is not allowed on ${path}`, 'method');
      req.resume();
      res.writeHead(200, { 'content-type': 'application/x-pem-file', 'content-length': Buffer.byteLength(ca.certPem), 'cache-control': 'no-store' });
      res.end(req.method === 'HEAD' ? undefined : ca.certPem);
      return 200;
    }
    if (path !== '/v1/register') throw new Refusal('GH_ERR_ROUTE_NOT_FOUND', `no bootstrap route ${path}`, 'route');
    if (req.method !== 'POST') throw new Refusal('GH_ERR_ROUTE_METHOD_NOT_ALLOWED', `${req.method} is not allowed on ${path}`, 'method');

    const parsed = RegisterRequestSchema.safeParse(await readJson(req));
    if (!parsed.success) {
      const detail = parsed.error.issues.map((i) => `body${formatPath(i.path) ? `.${formatPath(i.path)}` : ''}: ${i.message}`).join('; ');
      throw new Refusal('GH_ERR_BOOTSTRAP_INVALID_REQUEST', detail, 'invalid body');
    }
    const { token, csr, hostname } = parsed.data;
    if (hostname !== undefined) log.hostname = hostname;
    if (!REGISTRATION_TOKEN_PATTERN.test(token)) {
      throw new Refusal('GH_ERR_BOOTSTRAP_INVALID_REQUEST', 'body.token: malformed registration token (expected "ghr_" and 32 letters and digits, as in the install command)', 'malformed token');
    }
    const hash = hashRegistrationToken(token);
    const at = now();
    const record = await store.getRegistrationToken(hash);
    if (!record) throw new Refusal('GH_ERR_BOOTSTRAP_TOKEN_REFUSED', `unknown registration token: it was never issued, was replaced by a newer install command, or its gateway was deleted; ${REGENERATE}`, 'unknown token');
    log.gateway = record.gatewayId;
    refuseSpent(record.usedAt, record.expiresAt, at);
    const gateway = await store.getGateway({ id: record.gatewayId });
    const workspace = gateway && (await store.getWorkspace({ id: gateway.workspaceId }));
    if (!gateway || !workspace) throw new Refusal('GH_ERR_BOOTSTRAP_TOKEN_REFUSED', `unknown registration token: its gateway was deleted; ${REGENERATE}`, 'gateway deleted');

    // Sign before consuming: a bad CSR must not burn the token. The certificate leaves only if the token is ours.
    let issued;
    try {
      issued = await ca.signGatewayCsr(csr, { gatewayId: gateway.id, workspaceId: gateway.workspaceId, environment: gateway.environment }, validityMs);
    } catch (error) {
      if (error instanceof CsrError) throw new Refusal('GH_ERR_BOOTSTRAP_INVALID_REQUEST', `body.csr: ${error.message}`, 'bad csr');
      throw error;
    }
    const consumed = await store.transaction(async (tx) => {
      if (!(await tx.consumeRegistrationToken(hash, nowIso(at)))) return false;
      await tx.insertGatewayCertificate({ serial: issued.serial, gatewayId: gateway.id, notBefore: issued.notBefore.toISOString(), notAfter: issued.notAfter.toISOString() });
      return true;
    });
    if (!consumed) {
      // Another request used it a moment ago (or it expired meanwhile): say which.
      const again = await store.getRegistrationToken(hash);
      if (!again) throw new Refusal('GH_ERR_BOOTSTRAP_TOKEN_REFUSED', `unknown registration token: it was replaced by a newer install command meanwhile; ${REGENERATE}`, 'unknown token');
      refuseSpent(again.usedAt ?? nowIso(at), again.expiresAt, at);
    }
    log.serial = issued.serial;
    const answer: RegisterResponse = {
      certificate: issued.certPem,
      ca: ca.certPem,
      gateway: { id: gateway.id, name: gateway.name, workspaceId: workspace.id, workspaceName: workspace.name, environment: gateway.environment, installMethod: gateway.installMethod },
      controlPlane: { ...endpoints },
    };
    const text = JSON.stringify(answer);
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
    res.end(text);
    return 200;
  }
}

function refuseSpent(usedAt: string | undefined, expiresAt: string, now: number): void {
  if (usedAt !== undefined) throw new Refusal('GH_ERR_BOOTSTRAP_TOKEN_REFUSED', `this registration token was already used (at ${usedAt}); ${REGENERATE}`, 'used token');
  if (Date.parse(expiresAt) <= now) throw new Refusal('GH_ERR_BOOTSTRAP_TOKEN_REFUSED', `this registration token expired at ${expiresAt}; ${REGENERATE}`, 'expired token');
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const type = (req.headers['content-type'] ?? '').split(';', 1)[0]!.trim().toLowerCase();
  if (type !== 'application/json') {
    req.resume();
    throw new Refusal('GH_ERR_BOOTSTRAP_INVALID_REQUEST', `send the body as application/json, not ${type || 'an untyped body'}`, 'content type');
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY) throw new Refusal('GH_ERR_BOOTSTRAP_INVALID_REQUEST', `the body exceeds ${MAX_BODY} bytes`, 'too large');
    chunks.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
  } catch {
    throw new Refusal('GH_ERR_BOOTSTRAP_INVALID_REQUEST', 'body: not valid JSON', 'invalid json');
  }
}

function problem(res: ServerResponse, requestId: string, code: ProblemCode, detail: string): number {
  const { status, title } = ERRORS[code];
  const body = JSON.stringify({ type: `${DOCS_BASE}#${code.toLowerCase()}`, title, status, code, detail, instance: `urn:gatehouse:request:${requestId}` });
  res.writeHead(status, { 'content-type': 'application/problem+json', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store', 'x-request-id': requestId });
  res.end(body);
  return status;
}
