/**
 * Client roles: create and edit by ticking endpoints grouped by collection (with a filter), see which clients use
 * each role; delete is refused while clients use it, naming them.
 */
import { useMemo, useState } from 'preact/hooks';
import { api, ApiError, call } from '../../api/client';
import type { Ok } from '../../api/types';
import { useSession } from '../../session';
import { Confirm, Modal } from '../../ui/dialog';
import { described, Field, Submit } from '../../ui/form';
import { useLoad } from '../../ui/load';
import { Alert, Empty, ErrorState, Loading, PageHeader } from '../../ui/states';
import { DataTable } from '../../ui/table';

type Role = Ok<'listRoles'>['items'][number];
type RoleEndpoint = Role['endpoints'][number];
interface CatalogEntry extends RoleEndpoint {
  permission: string;
}

const endpointKey = (e: RoleEndpoint) => `${e.collection} ${e.method} ${e.path}`;

/** Every endpoint of every collection in the workspace's environments, by collection name (names are workspace-wide). */
function useCatalog() {
  const { workspace, me, can } = useSession();
  return useLoad(async () => {
    if (!can('admin:collections:read')) return new Map<string, CatalogEntry[]>();
    const lists = await Promise.all(
      me.workspace.environments.map((environment) =>
        call(
          api.GET('/api/v1/workspaces/{workspace}/environments/{environment}/collections', {
            params: { path: { workspace, environment } },
          }),
        ),
      ),
    );
    const byCollection = new Map<string, Map<string, CatalogEntry>>();
    for (const list of lists)
      for (const c of list.items) {
        const m = byCollection.get(c.name) ?? new Map<string, CatalogEntry>();
        for (const e of c.endpoints) {
          const entry = { collection: c.name, method: e.method, path: e.path, permission: e.permission };
          m.set(endpointKey(entry), entry);
        }
        byCollection.set(c.name, m);
      }
    return new Map([...byCollection].sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => [k, [...v.values()]]));
  }, [workspace]);
}

export function RolesPage() {
  const { workspace, can } = useSession();
  const [editing, setEditing] = useState<Role | 'new'>();
  const [deleting, setDeleting] = useState<Role>();
  const [stale, setStale] = useState(false);
  const roles = useLoad(
    async () =>
      (await call(api.GET('/api/v1/workspaces/{workspace}/roles', { params: { path: { workspace } } }))).items,
    [workspace],
  );
  const clients = useLoad(async () => {
    if (!can('admin:clients:read')) return [];
    return (await call(api.GET('/api/v1/workspaces/{workspace}/clients', { params: { path: { workspace } } }))).items;
  }, [workspace]);
  const usedBy = (role: string) => (clients.data ?? []).filter((c) => c.role === role).map((c) => c.name);
  const writable = can('admin:roles:write');
  return (
    <>
      <PageHeader
        title="Client roles"
        description="A role lists the endpoints its API clients may call. Tick endpoints; the gateway refuses the rest with 403."
        actions={
          writable && (
            <button type="button" class="btn btn-primary" onClick={() => setEditing('new')}>
              Create role
            </button>
          )
        }
      />
      {roles.state === 'loading' && !roles.data && <Loading what="roles" />}
      {roles.state === 'error' && <ErrorState message={roles.error} retry={roles.reload} />}
      {roles.data && (
        <DataTable
          label="Roles"
          rows={roles.data}
          rowKey={(r) => r.id}
          initialSort={{ key: 'name', dir: 'asc' }}
          empty={<Empty title="No roles yet">Create a role by ticking the endpoints its clients may call.</Empty>}
          columns={[
            { key: 'name', label: 'Name', value: (r) => r.name, render: (r) => <strong>{r.name}</strong> },
            { key: 'description', label: 'Description', value: (r) => r.description ?? '' },
            {
              key: 'grants',
              label: 'Grants',
              value: (r) => r.endpoints.length + r.permissions.length,
              render: (r) =>
                [
                  r.endpoints.length ? `${r.endpoints.length} endpoint(s)` : '',
                  r.permissions.length ? r.permissions.join(', ') : '',
                ]
                  .filter(Boolean)
                  .join(' · ') || '—',
            },
            {
              key: 'clients',
              label: 'Used by',
              value: (r) => usedBy(r.name).join(', '),
              render: (r) => usedBy(r.name).join(', ') || <span class="muted">no clients</span>,
            },
            {
              key: 'actions',
              label: 'Actions',
              render: (r) =>
                writable && (
                  <div class="row-actions">
                    <button
                      type="button"
                      class="btn btn-small"
                      onClick={() => setEditing(r)}
                      aria-label={`Edit ${r.name}`}
                    >
                      Edit
                    </button>
                    <button
                      type="button"
                      class="btn btn-small btn-danger"
                      onClick={() => setDeleting(r)}
                      aria-label={`Delete ${r.name}`}
                    >
                      Delete
                    </button>
                  </div>
                ),
            },
          ]}
        />
      )}
      {editing && (
        <RoleEditor
          role={editing === 'new' ? undefined : editing}
          onClose={() => {
            setEditing(undefined);
            roles.reload();
          }}
        />
      )}
      {deleting &&
        (usedBy(deleting.name).length > 0 ? (
          <Modal title={`Role ${deleting.name} is in use`} onClose={() => setDeleting(undefined)}>
            <Alert>
              It cannot be deleted while API clients use it: {usedBy(deleting.name).join(', ')}. Give those clients
              another role, or delete them, first.
            </Alert>
            <div class="form-actions">
              <button type="button" class="btn" onClick={() => setDeleting(undefined)}>
                Close
              </button>
            </div>
          </Modal>
        ) : (
          <Confirm
            title={`Delete role ${deleting.name}?`}
            confirmLabel="Delete role"
            onClose={() => {
              setDeleting(undefined);
              if (stale) clients.reload();
              setStale(false);
            }}
            onConfirm={async () => {
              try {
                await call(
                  api.DELETE('/api/v1/workspaces/{workspace}/roles/{role}', {
                    params: { path: { workspace, role: deleting.name } },
                  }),
                );
              } catch (e) {
                // A client took the role since the page loaded: the control plane refused, naming it (shown here);
                // the list learns of it when the dialog closes.
                if (e instanceof ApiError && e.code === 'GH_ERR_ADMIN_ROLE_IN_USE') setStale(true);
                throw e;
              }
              roles.reload();
            }}
          >
            <p>
              No client uses it. The role and its {deleting.endpoints.length} endpoint grant(s) are removed. (Should a
              client have taken it meanwhile, the control plane refuses and names it.)
            </p>
          </Confirm>
        ))}
    </>
  );
}

function RoleEditor({ role, onClose }: { role?: Role; onClose: () => void }) {
  const { workspace } = useSession();
  const catalog = useCatalog();
  const [name, setName] = useState(role?.name ?? '');
  const [description, setDescription] = useState(role?.description ?? '');
  const [ticked, setTicked] = useState(() => new Set((role?.endpoints ?? []).map(endpointKey)));
  const [filter, setFilter] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const groups = useMemo(() => {
    const q = filter.trim().toLowerCase();
    return [...(catalog.data ?? new Map<string, CatalogEntry[]>())]
      .map(
        ([collection, eps]) =>
          [collection, eps.filter((e) => !q || `${endpointKey(e)} ${e.permission}`.toLowerCase().includes(q))] as const,
      )
      .filter(([, eps]) => eps.length > 0);
  }, [catalog.data, filter]);
  const toggle = (k: string) => {
    const next = new Set(ticked);
    if (next.has(k)) next.delete(k);
    else next.add(k);
    setTicked(next);
  };
  return (
    <Modal title={role ? `Edit role ${role.name}` : 'Create role'} onClose={onClose} wide>
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          setBusy(true);
          setError(undefined);
          const endpoints = [...(catalog.data?.values() ?? [])]
            .flat()
            .filter((ep) => ticked.has(endpointKey(ep)))
            .map(({ collection, method, path }) => ({ collection, method, path }));
          try {
            if (role)
              await call(
                api.PATCH('/api/v1/workspaces/{workspace}/roles/{role}', {
                  params: { path: { workspace, role: role.name } },
                  body: { description, endpoints },
                }),
              );
            else
              await call(
                api.POST('/api/v1/workspaces/{workspace}/roles', {
                  params: { path: { workspace } },
                  body: { name, description: description || undefined, endpoints },
                }),
              );
            onClose();
          } catch (err) {
            setError((err as Error).message);
            setBusy(false);
          }
        }}
      >
        {error && <Alert>{error}</Alert>}
        <div class="grid-2">
          <Field label="Name" id="role-name" hint="e.g. invoice-reader">
            <input
              {...described('role-name', undefined, true)}
              value={name}
              required
              disabled={!!role}
              onInput={(e) => setName(e.currentTarget.value)}
            />
          </Field>
          <Field label="Description" id="role-description">
            <input
              {...described('role-description')}
              value={description}
              onInput={(e) => setDescription(e.currentTarget.value)}
            />
          </Field>
        </div>
        <fieldset class="endpoint-picker">
          <legend>
            Endpoints its clients may call <span class="muted small">({ticked.size} ticked)</span>
          </legend>
          <label class="filter">
            <span class="sr-only">Filter endpoints</span>
            <input
              type="search"
              placeholder="Filter endpoints…"
              value={filter}
              onInput={(e) => setFilter(e.currentTarget.value)}
            />
          </label>
          {catalog.state === 'loading' && <Loading what="endpoints" />}
          {catalog.state === 'error' && <ErrorState message={catalog.error} retry={catalog.reload} />}
          {catalog.data && catalog.data.size === 0 && (
            <Empty title="No collections yet">Create a collection first; its endpoints appear here to tick.</Empty>
          )}
          {groups.map(([collection, eps]) => (
            <div class="endpoint-group" key={collection}>
              <h3>{collection}</h3>
              {eps.map((ep) => {
                const k = endpointKey(ep);
                return (
                  <label class="check" key={k}>
                    <input type="checkbox" checked={ticked.has(k)} onChange={() => toggle(k)} />
                    <code>{ep.method}</code> <code>{ep.path}</code> <span class="muted small">{ep.permission}</span>
                  </label>
                );
              })}
            </div>
          ))}
        </fieldset>
        <div class="form-actions">
          <button type="button" class="btn" onClick={onClose}>
            Cancel
          </button>
          <Submit busy={busy}>{busy ? 'Saving…' : role ? 'Save role' : 'Create role'}</Submit>
        </div>
      </form>
    </Modal>
  );
}
