/**
 * The contract between the control plane and edge gateways outside gRPC: the bootstrap exchange (HTTPS, JSON:
 * register, and re-enroll with an expired certificate) and the gateway's config directory, which `gatehouse
 * gateway bootstrap` writes and `gatehouse gateway run --config DIR` reads.
 *
 * ```
 * DIR/
 *   gateway.json        EdgeIdentitySchema: who this gateway is and where its control plane is
 *   replicas.json       LearnedReplicasSchema: the control-plane replicas it was last told of (written by the gateway)
 *   tls/ca.pem          the control plane's CA certificate (trust anchor of the channel)
 *   tls/gateway.crt     this gateway's certificate (short-lived; renewed over the live channel)
 *   tls/gateway.key     its private key, mode 0600
 *   cache/snapshot.json the last applied snapshot with an integrity MAC (fallback mode)
 *   values.yaml         helm mode only: values for deploy/helm/gatehouse
 * ```
 */
import { z } from 'zod';
import { EnvironmentSchema, NameSchema } from './schema.ts';

/** `sha256:<64 hex>` of the CA certificate's SubjectPublicKeyInfo (DER), as kubeadm pins its CA. */
export const CaPinSchema = z
  .string()
  .regex(/^sha256:[0-9a-f]{64}$/, 'must be "sha256:" followed by 64 lower-case hex digits');

/** `host:port` of a gRPC endpoint. */
export const GrpcEndpointSchema = z
  .string()
  .regex(/^(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, 'must be host:port');

/** Where one control-plane replica is reached. */
export const ReplicaEndpointsSchema = z.strictObject({
  /** HTTPS base URL of the bootstrap endpoint (registration, and re-enrollment of an expired certificate). */
  bootstrap: z.url({ protocol: /^https$/ }),
  /** gRPC endpoint of config sync. */
  sync: GrpcEndpointSchema,
  /** gRPC endpoint of telemetry (may equal `sync`). */
  telemetry: GrpcEndpointSchema,
});
export type ReplicaEndpoints = z.output<typeof ReplicaEndpointsSchema>;

export const ControlPlaneEndpointsSchema = ReplicaEndpointsSchema.extend({
  /** The name the control plane's server certificate carries (TLS server name). */
  serverName: z.string().min(1).default('gatehouse-control-plane'),
  /**
   * The other control-plane replicas (high availability): an edge gateway that loses the replica it is connected
   * to dials the next one in turn. Absent with a single replica (or one address that load-balances, such as a DNS
   * name resolving to every replica).
   */
  alternates: z.array(ReplicaEndpointsSchema).max(32).optional(),
});
export type ControlPlaneEndpoints = z.output<typeof ControlPlaneEndpointsSchema>;

/** Every replica of an identity's control plane, the one it was bootstrapped through first. */
export function replicaEndpoints(endpoints: ControlPlaneEndpoints): ReplicaEndpoints[] {
  const all = [
    { bootstrap: endpoints.bootstrap, sync: endpoints.sync, telemetry: endpoints.telemetry },
    ...(endpoints.alternates ?? []),
  ];
  return all.filter((e, i) => all.findIndex((o) => o.sync === e.sync) === i);
}

/**
 * DIR/replicas.json: the control-plane replicas that were up when the control plane last told this gateway (over
 * the sync stream). Read at start-up, they replace `controlPlane.alternates` of gateway.json, so that a replica added
 * after the bootstrap is a failover target, and one removed since is not dialled any more.
 */
export const LearnedReplicasSchema = z.strictObject({
  learnedAt: z.iso.datetime({ offset: true }),
  replicas: z.array(ReplicaEndpointsSchema).min(1).max(32),
});
export type LearnedReplicas = z.output<typeof LearnedReplicasSchema>;

/**
 * The endpoints to use: those of gateway.json, with the alternates replaced by the replicas learned since (the
 * configured primary stays first: it may be a load balancer or a DNS name that no replica advertises).
 */
export function withLearnedReplicas(
  endpoints: ControlPlaneEndpoints,
  learned: readonly ReplicaEndpoints[],
): ControlPlaneEndpoints {
  if (!learned.length) return endpoints;
  return { ...endpoints, alternates: learned.filter((r) => r.sync !== endpoints.sync).slice(0, 32) };
}

/** DIR/gateway.json */
export const EdgeIdentitySchema = z.strictObject({
  gatewayId: z.string().min(1),
  gatewayName: NameSchema,
  workspaceId: z.string().min(1),
  workspaceName: NameSchema,
  environment: EnvironmentSchema,
  installMethod: z.enum(['docker', 'helm']),
  caPin: CaPinSchema,
  controlPlane: ControlPlaneEndpointsSchema,
  bootstrappedAt: z.iso.datetime({ offset: true }),
});
export type EdgeIdentity = z.output<typeof EdgeIdentitySchema>;

/** POST {bootstrap}/v1/register */
export const RegisterRequestSchema = z.strictObject({
  token: z.string().min(1).max(256),
  /** PEM PKCS#10 certificate signing request for the gateway's new key. */
  csr: z.string().min(1).max(16_384),
  hostname: z.string().max(256).optional(),
});

export const RegisterResponseSchema = z.strictObject({
  certificate: z.string(),
  ca: z.string(),
  gateway: z.strictObject({
    id: z.string(),
    name: NameSchema,
    workspaceId: z.string(),
    workspaceName: NameSchema,
    environment: EnvironmentSchema,
    installMethod: z.enum(['docker', 'helm']),
  }),
  controlPlane: ControlPlaneEndpointsSchema,
});
export type RegisterResponse = z.output<typeof RegisterResponseSchema>;

/**
 * POST {bootstrap}/v1/renew: re-enrollment of a gateway whose certificate expired (an instance that was down, a
 * Kubernetes pod started from the certificate written at bootstrap). The CSR must be for the certificate's own key
 * and signed with it: proof of possession of that key, which stands in for the registration token.
 */
export const RenewRequestSchema = z.strictObject({
  /** PEM: the gateway's certificate (typically expired), issued by the control plane's CA. */
  certificate: z.string().min(1).max(16_384),
  /** PEM PKCS#10 certificate signing request for the same key as `certificate`. */
  csr: z.string().min(1).max(16_384),
});

export const RenewResponseSchema = RegisterResponseSchema.pick({ certificate: true, ca: true });
export type RenewResponse = z.output<typeof RenewResponseSchema>;

/** Registration tokens: `ghr_` + 32 base62 characters; one use, valid 5 minutes. */
export const REGISTRATION_TOKEN_PATTERN = /^ghr_[A-Za-z0-9]{32}$/;
export const REGISTRATION_TOKEN_TTL_MS = 5 * 60_000;
