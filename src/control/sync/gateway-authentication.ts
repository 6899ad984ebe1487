/**
 * Which gateway a call on the channel comes from, from its client certificate. TLS already refuses certificates
 * the control plane's CA did not sign; on top of that the certificate's serial must be one the store recorded for
 * the gateway its URI SAN names, not revoked and not expired, and that gateway must still exist in the same
 * workspace and environment.
 *
 * A stream authenticated once is checked again (`revalidate`) once it is registered, and before every telemetry
 * batch is stored: a deletion may land in between.
 */
import { Metadata, status } from '@grpc/grpc-js';
import { GATEWAY_STATUS_TRAILER } from '../../config/sync-proto.ts';
import { describeCertificate } from '../../shared/certificates.ts';
import { x509 } from '../../shared/x509.ts';
import { parseGatewayUri } from '../pki/ca.ts';
import type { GatewayRecord, Store } from '../store/store.ts';

/**
 * Why the control plane denies a call on the sync channel (the gRPC status it ends with); `deleted` when the
 * gateway no longer exists (its edge instances then stop serving).
 */
export type SyncDenial = { code: status; message: string; deleted?: boolean };

/** A call whose client certificate names an existing gateway, and the certificate's serial. */
export type AuthenticatedGateway = { gateway: GatewayRecord; serial: string };

/** What a gRPC call tells of its TLS peer. */
export interface PeerCall {
  getAuthContext(): { sslPeerCertificate?: { raw?: Buffer } } | null;
}

export interface GatewayAuthenticator {
  /** The gateway the call's client certificate names, or why the call is denied. */
  authenticate(call: PeerCall): Promise<AuthenticatedGateway | SyncDenial>;
  /**
   * Why an authenticated stream must end now (its certificate was revoked or its gateway deleted since), or
   * undefined when it may go on. Two primary-key lookups: cheap enough for every telemetry batch.
   */
  revalidate(auth: AuthenticatedGateway): Promise<SyncDenial | undefined>;
}

export function createGatewayAuthenticator(store: Store, now: () => number): GatewayAuthenticator {
  return {
    async authenticate(call) {
      const raw = call.getAuthContext()?.sslPeerCertificate?.raw;
      if (!raw || raw.length === 0)
        return {
          code: status.UNAUTHENTICATED,
          message: 'a client certificate issued by this control plane is required',
        };
      let described: ReturnType<typeof describeCertificate>;
      try {
        described = describeCertificate(x509.PemConverter.encode(Uint8Array.from(raw), 'CERTIFICATE'));
      } catch {
        return { code: status.UNAUTHENTICATED, message: 'the client certificate cannot be read' };
      }
      const subject = described.uris.map(parseGatewayUri).find((s) => s !== undefined);
      if (!subject) return { code: status.UNAUTHENTICATED, message: 'the client certificate names no gateway' };
      const record = await store.getGatewayCertificate(described.serial);
      if (!record || record.gatewayId !== subject.gatewayId) {
        return {
          code: status.UNAUTHENTICATED,
          message: `certificate ${described.serial} was not issued by this control plane to gateway ${subject.gatewayId}`,
        };
      }
      if (record.revokedAt)
        return {
          code: status.PERMISSION_DENIED,
          message: `the certificate of gateway ${subject.gatewayId} was revoked at ${record.revokedAt} (gateway deleted)`,
          deleted: true,
        };
      if (Date.parse(record.notAfter) <= now()) {
        return {
          code: status.UNAUTHENTICATED,
          message: `the certificate of gateway ${subject.gatewayId} expired at ${record.notAfter}: it re-enrolls at the bootstrap endpoint (POST /v1/renew), within the re-enrollment window`,
        };
      }
      const gateway = await store.getGateway({ id: subject.gatewayId });
      if (!gateway)
        return { code: status.PERMISSION_DENIED, message: `gateway ${subject.gatewayId} was deleted`, deleted: true };
      if (gateway.workspaceId !== subject.workspaceId || gateway.environment !== subject.environment) {
        return {
          code: status.PERMISSION_DENIED,
          message: `the certificate names workspace ${subject.workspaceId} environment ${subject.environment}, but gateway ${gateway.id} belongs to workspace ${gateway.workspaceId} environment ${gateway.environment}`,
        };
      }
      return { gateway, serial: described.serial };
    },

    async revalidate(auth) {
      const id = auth.gateway.id;
      const record = await store.getGatewayCertificate(auth.serial);
      if (!record || record.revokedAt)
        return {
          code: status.PERMISSION_DENIED,
          message: `the certificate of gateway ${id} was revoked${record?.revokedAt ? ` at ${record.revokedAt}` : ''} (gateway deleted)`,
          deleted: true,
        };
      if (!(await store.getGateway({ id })))
        return { code: status.PERMISSION_DENIED, message: `gateway ${id} was deleted`, deleted: true };
      return undefined;
    },
  };
}

/** The trailers a call ends with: `deleted` tells the gateway that it was deleted (`GATEWAY_STATUS_TRAILER`). */
export function denialTrailers(deleted = false): Metadata {
  const metadata = new Metadata();
  if (deleted) metadata.set(GATEWAY_STATUS_TRAILER, 'deleted');
  return metadata;
}
