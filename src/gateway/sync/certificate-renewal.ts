/**
 * Keeping an edge gateway's certificate valid. It is renewed over the live channel, with a new key, when
 * `renewAfter` of its lifetime has passed, and the channel is rebuilt with it — no restart.
 *
 * A certificate that has expired, or expires within a minute, is not dialled with: the TLS handshake would fail.
 * The gateway re-enrolls at the bootstrap endpoint instead (`reenrollGateway`: a CSR signed with the certificate's
 * key proves it holds it), serving from its cache meanwhile and retrying with the channel's jittered backoff while
 * the control plane is unreachable. That is how an instance that was down longer than the certificate's validity,
 * or a Kubernetes pod started from the certificate in its Secret, comes back by itself.
 */
import type { Logger } from 'pino';
import { type EdgeIdentity, replicaEndpoints } from '../../config/edge.ts';
import { createKeyAndCsr, singleCertificate } from '../../shared/certificates.ts';
import { type ReconnectBackoff, reconnectCeiling } from './backoff.ts';
import { writeFileAtomic } from './cache.ts';
import { checkCertificate, type EdgeCredentials, type EdgeFiles, nearExpiry } from './edge-credentials.ts';
import type { SyncClient } from './sync-client.ts';
import type { ReenrollmentProgress } from './sync-loop.ts';

export interface CertificateRenewalDeps {
  identity: EdgeIdentity;
  files: EdgeFiles;
  /** Replaced here when the certificate is renewed or re-enrolled. */
  credentials: EdgeCredentials;
  logger: Logger;
  /** Renew when this fraction of the certificate's lifetime has passed. */
  renewAfter: number;
  /** Between re-enrollment attempts, as between connection attempts. */
  backoff: ReconnectBackoff;
  /** Since when the gateway runs: the backoff's cap grows with the time without a connection. */
  startedAt: number;
  /** Re-enroll before connecting for the first time (the certificate is about to expire or has). */
  reenrollFirst: boolean;
  /** The sync client, once started. */
  client(): SyncClient | undefined;
  /** Starts the sync client (after a re-enrollment that came first). */
  connect(): void;
  /** The key was renewed: the fallback cache is written again under it. */
  rekeyCache(keyPem: string): Promise<void>;
  /** Re-enrollment progressed (for the readiness check). */
  onProgress(): void;
  /** The control plane says this gateway was deleted. */
  deactivate(reason: string): void;
  deactivated(): boolean;
  closing(): boolean;
}

export class CertificateRenewal {
  readonly #d: CertificateRenewalDeps;
  #timer: NodeJS.Timeout | undefined;
  /** Failed re-enrollment attempts in a row, and why the last one failed. */
  #attempts = 0;
  #error: string | undefined;

  constructor(deps: CertificateRenewalDeps) {
    this.#d = deps;
  }

  progress(): ReenrollmentProgress {
    return { first: this.#d.reenrollFirst, attempts: this.#attempts, error: this.#error };
  }

  /** Renews (or re-enrolls) after `delayMs`, or when `renewAfter` of the certificate's lifetime has passed. */
  schedule(delayMs?: number): void {
    if (this.#d.closing()) return;
    const { certificate, issuedAt } = this.#d.credentials;
    const lifetime = certificate.notAfter.getTime() - issuedAt;
    const due = issuedAt + lifetime * this.#d.renewAfter - Date.now();
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => void this.#renew(), Math.min(Math.max(0, delayMs ?? due), 2 ** 31 - 1));
    this.#timer.unref();
  }

  stop(): void {
    clearTimeout(this.#timer);
  }

  /**
   * Over the live channel with a new key while there is time; at the bootstrap endpoint with the same key once the
   * certificate is about to expire and the channel is down (or refused the renewal).
   */
  async #renew(): Promise<void> {
    const { credentials, logger } = this.#d;
    if (this.#d.deactivated() || this.#d.closing()) return;
    if (!nearExpiry(credentials) || this.#d.client()?.state().connected) {
      try {
        await this.#renewOverChannel();
        return;
      } catch (error) {
        if (!nearExpiry(credentials)) {
          const left = credentials.certificate.notAfter.getTime() - Date.now();
          const retry = Math.min(60_000, Math.max(1000, left / 10));
          logger.warn(
            { err: error, notAfter: credentials.certificate.notAfter.toISOString(), retryInMs: retry },
            'certificate renewal failed; retrying',
          );
          this.schedule(retry);
          return;
        }
        logger.warn(
          { err: error, notAfter: credentials.certificate.notAfter.toISOString() },
          'certificate renewal over the live channel failed and the certificate is about to expire; re-enrolling with the control plane',
        );
      }
    }
    await this.#reenroll();
  }

  async #renewOverChannel(): Promise<void> {
    const { identity, files, credentials, logger } = this.#d;
    const client = this.#d.client();
    if (!client) throw new Error('not connected to the control plane');
    const { keyPem, csrPem } = await createKeyAndCsr(`gateway ${identity.gatewayId}`);
    const response = await client.renewCertificate(csrPem);
    // The CA is pinned for good: an answer naming another one (or more than one) is refused, not adopted.
    if (response.caPem) {
      const ca = singleCertificate(response.caPem);
      if (!ca.ok)
        throw new Error(`the CA of the control plane's renewal answer ${ca.reason}; the certificate is not renewed`);
      if (ca.pem !== credentials.pems.caPem)
        throw new Error(
          'the control plane answered the renewal with another CA than the pinned one (tls/ca.pem); the certificate is not renewed',
        );
    }
    const renewed = singleCertificate(response.certificatePem);
    if (!renewed.ok) throw new Error(`the renewed certificate ${renewed.reason}`);
    const next = { caPem: credentials.pems.caPem, certPem: renewed.pem, keyPem };
    const described = checkCertificate(next, identity, 'the renewed certificate');
    // The key first: a certificate without its key would be useless, a key without its certificate is unused.
    await writeFileAtomic(files.key, keyPem, 0o600);
    await writeFileAtomic(files.cert, next.certPem, 0o600);
    credentials.pems = next;
    await this.#d.rekeyCache(keyPem);
    credentials.certificate = described;
    credentials.issuedAt = Math.min(Date.now(), described.notAfter.getTime());
    logger.info(
      { serial: described.serial, notAfter: described.notAfter.toISOString() },
      'renewed the gateway certificate; reconnecting with it',
    );
    client.reconnect();
    this.schedule();
  }

  /**
   * Trades the certificate for a new one for the same key at the bootstrap endpoint, trusting only the pinned CA.
   * Unreachable: retried with the channel's jittered backoff. Refused: retried every 15–30 s (an operator may fix
   * the cause, e.g. a clock). Deleted: the endpoints are deactivated, as when the channel says so.
   */
  async #reenroll(): Promise<void> {
    const { identity, files, credentials, logger, backoff } = this.#d;
    // Loaded only when needed: bootstrap.ts brings @peculiar/x509, which a start from the cache never needs.
    const { reenrollGateway } = await import('./bootstrap.ts');
    const { pems } = credentials;
    // With several control-plane replicas, each attempt goes to the next one's bootstrap endpoint.
    const replicas = replicaEndpoints(identity.controlPlane);
    const bootstrapUrl = replicas[this.#attempts % replicas.length]!.bootstrap;
    const result = await reenrollGateway({
      url: bootstrapUrl,
      caPem: pems.caPem,
      certificatePem: pems.certPem,
      keyPem: pems.keyPem,
      commonName: `gateway ${identity.gatewayId}`,
    }).catch(
      (error: unknown) =>
        ({
          ok: false,
          kind: 'failed',
          message: `cannot re-enroll: ${(error as Error).message}`,
          deleted: false,
        }) as const,
    );
    if (this.#d.deactivated() || this.#d.closing()) return;
    let failure: { kind: 'unreachable' | 'refused' | 'failed'; message: string };
    if (result.ok) {
      try {
        const next = { ...credentials.pems, certPem: result.certificatePem };
        const described = checkCertificate(next, identity, 'the re-enrolled certificate');
        if (described.notAfter.getTime() <= Date.now())
          throw new Error(
            `the re-enrolled certificate expired already (at ${described.notAfter.toISOString()}): is this machine's clock right?`,
          );
        await writeFileAtomic(files.cert, next.certPem, 0o600);
        credentials.pems = next;
        credentials.certificate = described;
        credentials.issuedAt = Math.min(Date.now(), described.notAfter.getTime());
        this.#attempts = 0;
        this.#error = undefined;
        this.#d.onProgress();
        logger.info(
          { serial: described.serial, notAfter: described.notAfter.toISOString() },
          're-enrolled with the control plane; connecting with the new certificate',
        );
        const client = this.#d.client();
        if (client) client.reconnect();
        else this.#d.connect();
        this.schedule();
        return;
      } catch (error) {
        failure = { kind: 'failed', message: (error as Error).message };
      }
    } else if (result.deleted) {
      this.#error = result.message;
      this.#d.deactivate(result.message);
      return;
    } else {
      failure = result;
    }
    this.#attempts++;
    this.#error = failure.message;
    this.#d.onProgress();
    const fields = {
      attempt: this.#attempts,
      bootstrap: bootstrapUrl,
      notAfter: credentials.certificate.notAfter.toISOString(),
      reason: failure.message,
    };
    if (failure.kind === 'refused') {
      const delay = Math.round(backoff.maxMs * (0.5 + Math.random() / 2));
      logger.error(
        { ...fields, retryInMs: delay },
        'the control plane refuses to re-enroll this gateway; bootstrap it again with a new token (serving the last good snapshot meanwhile)',
      );
      this.schedule(delay);
      return;
    }
    const delay = Math.round(Math.random() * reconnectCeiling(backoff, this.#attempts, Date.now() - this.#d.startedAt));
    const log = this.#attempts > 1 ? logger.debug.bind(logger) : logger.warn.bind(logger);
    log(
      { ...fields, retryInMs: delay },
      'cannot re-enroll with the control plane yet; serving the last good snapshot and retrying',
    );
    this.schedule(delay);
  }
}
