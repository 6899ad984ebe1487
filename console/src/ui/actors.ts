/**
 * Display names of actors (API clients and console users) by id, the way the audit log shows them: the name the
 * audit entry recorded when the actor made a change (`installation admin`, `ada@example.com`). Pages that only have
 * an id (a collection version's `publishedBy`) look up that actor's latest audit entry; without the audit-read
 * permission, or for an id the log has no entry of, the id itself is shown.
 */
import { api, call } from '../api/client';
import { useSession } from '../session';
import { useLoad } from './load';

export function useActorNames(ids: readonly string[]): ReadonlyMap<string, string> {
  const { workspace, can } = useSession();
  const distinct = [...new Set(ids)].sort();
  const allowed = can('admin:audit:read');
  const names = useLoad(async () => {
    const found = new Map<string, string>();
    if (!allowed) return found;
    await Promise.all(
      distinct.map(async (actor) => {
        const r = await call(
          api.GET('/api/v1/workspaces/{workspace}/audit-log', {
            params: { path: { workspace }, query: { actor, limit: 1 } },
          }),
        ).catch(() => undefined);
        const name = r?.items[0]?.actor.name;
        if (name) found.set(actor, name);
      }),
    );
    return found;
  }, [workspace, allowed, distinct.join(',')]);
  return names.data ?? new Map();
}
