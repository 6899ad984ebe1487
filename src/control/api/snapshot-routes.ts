/** Admin API: the compiled snapshots gateways serve, for inspection. */
import { z } from 'zod';
import { notFound } from './errors.ts';
import { operation, type Operation } from './operation.ts';

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
    response: SnapshotInfoSchema,
    async handler({ workspace, environment, query, plane }) {
      const target = query.get('target') ?? 'cloud';
      const scope = `${workspace.id}/${environment}/${target}`;
      const record = await plane.store.getLatestSnapshot(scope);
      if (!record) throw notFound(`snapshot ${scope}`);
      return { scope, version: record.version, hash: record.hash, createdAt: record.createdAt, snapshot: JSON.parse(record.body) as unknown };
    },
  }),
];
