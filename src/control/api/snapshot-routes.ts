/** Admin API: the compiled snapshots gateways serve, for inspection. */
import { z } from 'zod';
import { AdminError, notFound } from './errors.ts';
import { operation, type Operation } from './operation.ts';
import { scopedToAll } from './scope.ts';

export const SnapshotInfoSchema = z.object({
  scope: z.string(),
  version: z.int(),
  hash: z.string(),
  createdAt: z.string(),
  snapshot: z.unknown(),
});

export const snapshotOperations: Operation[] = [
  operation({
    id: 'getSnapshot',
    method: 'GET',
    path: '/api/v1/workspaces/{workspace}/environments/{environment}/snapshot',
    summary: 'The snapshot a gateway of this environment serves (`?target=cloud` or `edge:<gateway>`)',
    tag: 'Snapshots',
    permission: 'admin:snapshots:read',
    query: z.object({
      target: z
        .string()
        .regex(/^(cloud|edge:.+)$/, { error: 'must be "cloud" or "edge:<gateway name>"' })
        .optional()
        .describe('The snapshot of `cloud` (default) or of `edge:<gateway name>`'),
    }),
    response: SnapshotInfoSchema,
    async handler({ caller, workspace, environment, query, plane }) {
      // A snapshot holds every project's collections and every client: only callers scoped to all see it.
      if (!scopedToAll(caller)) {
        throw new AdminError(
          'GH_ERR_ADMIN_OUT_OF_SCOPE',
          'a snapshot spans every project of the environment: only callers scoped to all environments and projects ("*") read it',
        );
      }
      const target = query.get('target') ?? 'cloud';
      const scope = `${workspace.id}/${environment}/${target}`;
      const record = await plane.store.getLatestSnapshot(scope);
      if (!record) throw notFound(`snapshot ${scope}`);
      return {
        scope,
        version: record.version,
        hash: record.hash,
        createdAt: record.createdAt,
        snapshot: redactKeys(JSON.parse(record.body) as Record<string, unknown>),
      };
    },
  }),
];

/**
 * Key hashes stay in the store: a legacy key is user-chosen, so its SHA-256 could be guessed offline. Private
 * signing keys never leave it: each `privateJwk` is shown as its public part (`kty`, `crv`, `x`, `y`).
 */
function redactKeys(snapshot: Record<string, unknown>): Record<string, unknown> {
  const clients = (snapshot.clients as { keys?: { hash: string }[] }[] | undefined)?.map((c) => ({
    ...c,
    keys: c.keys?.map((k) => ({ ...k, hash: 'redacted' })),
  }));
  const legacyClients = (snapshot.legacyClients as { keyHash?: string }[] | undefined)?.map((c) => ({
    ...c,
    keyHash: 'redacted',
  }));
  const distributed = snapshot.signingKeys as
    { active: string; keys: { privateJwk: Record<string, unknown> }[] } | undefined;
  const signingKeys = distributed && {
    ...distributed,
    keys: distributed.keys.map(({ privateJwk, ...k }) => ({
      ...k,
      publicJwk: { kty: privateJwk.kty, crv: privateJwk.crv, x: privateJwk.x, y: privateJwk.y },
    })),
  };
  return {
    ...snapshot,
    ...(clients ? { clients } : {}),
    ...(legacyClients ? { legacyClients } : {}),
    ...(signingKeys ? { signingKeys } : {}),
  };
}
