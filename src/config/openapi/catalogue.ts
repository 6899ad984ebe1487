/** The permission catalogue of a collection: every permission its endpoints use, with the operations behind it. */
import type { Endpoint } from '../schema.ts';
import type { PermissionCatalogue } from './api.ts';

export function permissionCatalogue(endpoints: readonly Endpoint[]): PermissionCatalogue {
  const byPermission = new Map<string, PermissionCatalogue['items'][number]['operations']>();
  const add = (permission: string, e: Endpoint, together: string[] | undefined) => {
    let list = byPermission.get(permission);
    if (!list) byPermission.set(permission, (list = []));
    list.push({
      method: e.method,
      path: e.path,
      ...(e.operationId !== undefined ? { operationId: e.operationId } : {}),
      ...(e.summary !== undefined ? { summary: e.summary } : {}),
      ...(together && together.length > 0 ? { together } : {}),
      ...(e.public ? { public: true } : {}),
    });
  };
  for (const e of endpoints) {
    if (!e.permissionSets) add(e.permission, e, undefined);
    else
      for (const set of e.permissionSets)
        for (const p of set)
          add(
            p,
            e,
            set.filter((o) => o !== p),
          );
  }
  return {
    items: [...byPermission.keys()]
      .sort()
      .map((permission) => ({ permission, operations: byPermission.get(permission)! })),
  };
}
