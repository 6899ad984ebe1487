/**
 * Admin API tokens: Gatehouse has no token kind of its own for the admin API — an admin token is the token of an API
 * client whose role grants admin API operations (`admin:…` or `*`; the installation admin token printed at first
 * start is one). This section lists those clients, creates one (its token shown once, with a copy button) and
 * revokes one (deletes the client: its token stops working at once), through the client operations.
 */
import { useState } from 'preact/hooks';
import { api, call, serverNow } from '../../api/client';
import type { Ok } from '../../api/types';
import { useSession } from '../../session';
import { Confirm, Modal } from '../../ui/dialog';
import { ago, described, Field, formatTime, Submit } from '../../ui/form';
import { useLoad } from '../../ui/load';
import { Alert, Badge, Empty, ErrorState, Loading } from '../../ui/states';
import { DataTable } from '../../ui/table';
import { TokenModal } from '../clients/page';

type Client = Ok<'listClients'>['items'][number];
type Role = Ok<'listRoles'>['items'][number];

/** The role grants admin API operations (as the control plane reads permission patterns). */
export function grantsAdmin(role: Pick<Role, 'permissions'>): boolean {
  return role.permissions.some((p) => p === '*' || p === 'admin' || p.startsWith('admin:'));
}

export function AdminTokens() {
  const { workspace, can } = useSession();
  const [creating, setCreating] = useState(false);
  const [token, setToken] = useState<{ title: string; token: string }>();
  const [revoking, setRevoking] = useState<Client>();
  const data = useLoad(async () => {
    const path = { path: { workspace } };
    const [roles, clients] = await Promise.all([
      call(api.GET('/api/v1/workspaces/{workspace}/roles', { params: path })),
      call(api.GET('/api/v1/workspaces/{workspace}/clients', { params: path })),
    ]);
    const adminRoles = roles.items.filter(grantsAdmin);
    const names = new Set(adminRoles.map((r) => r.name));
    return { roles: adminRoles, tokens: clients.items.filter((c) => names.has(c.role)) };
  }, [workspace]);
  const writable = can('admin:clients:write');
  return (
    <section class="section" aria-labelledby="admin-tokens">
      <div class="section-head">
        <h2 id="admin-tokens">Admin API tokens</h2>
        {writable && (
          <button type="button" class="btn" onClick={() => setCreating(true)}>
            Create admin token
          </button>
        )}
      </div>
      <p class="muted small">
        Tokens for scripts and the <code>gatehouse</code> CLI: API clients whose role grants admin API operations. A
        token is shown once, when created; revoke one to refuse it at once.
      </p>
      {!data.data && data.state === 'loading' && <Loading what="admin tokens" />}
      {data.state === 'error' && <ErrorState message={data.error} retry={data.reload} />}
      {data.data && (
        <DataTable
          label="Admin API tokens"
          rows={data.data.tokens}
          rowKey={(c) => c.id}
          initialSort={{ key: 'name', dir: 'asc' }}
          empty={<Empty title="No admin tokens">Create one for a script or the CLI.</Empty>}
          columns={[
            {
              key: 'name',
              label: 'Name',
              value: (c) => c.name,
              render: (c) => (
                <>
                  <strong>{c.name}</strong> {c.operator && <Badge tone="info">operator</Badge>}
                  {c.status === 'disabled' && <Badge tone="bad">disabled</Badge>}
                  <div class="muted small">{c.id}</div>
                </>
              ),
            },
            { key: 'role', label: 'Role', value: (c) => c.role },
            {
              key: 'scope',
              label: 'Scope',
              value: (c) => `${c.environments.join(', ')} · ${c.projects.join(', ')}`,
            },
            {
              key: 'used',
              label: 'Last used',
              class: 'nowrap',
              value: (c) => c.lastUsedAt ?? '',
              render: (c) => (c.lastUsedAt ? ago(c.lastUsedAt, serverNow()) : <span class="muted">never</span>),
            },
            {
              key: 'created',
              label: 'Created',
              class: 'nowrap',
              value: (c) => c.createdAt,
              render: (c) => formatTime(c.createdAt),
            },
            {
              key: 'actions',
              label: 'Actions',
              render: (c) =>
                writable && (
                  <button
                    type="button"
                    class="btn btn-small btn-danger"
                    aria-label={`Revoke admin token ${c.name}`}
                    onClick={() => setRevoking(c)}
                  >
                    Revoke
                  </button>
                ),
            },
          ]}
        />
      )}
      {creating && data.data && (
        <CreateAdminToken
          roles={data.data.roles}
          onClose={() => setCreating(false)}
          onCreated={(name, value) => {
            setCreating(false);
            setToken({ title: `Admin token ${name}`, token: value });
            data.reload();
          }}
        />
      )}
      {token && <TokenModal title={token.title} token={token.token} onClose={() => setToken(undefined)} />}
      {revoking && (
        <Confirm
          title={`Revoke admin token ${revoking.name}?`}
          confirmLabel="Revoke token"
          onClose={() => (setRevoking(undefined), data.reload())}
          onConfirm={async () => {
            await call(
              api.DELETE('/api/v1/workspaces/{workspace}/clients/{client}', {
                params: { path: { workspace, client: revoking.id } },
              }),
            );
          }}
        >
          <p>
            API client {revoking.name} ({revoking.id}) is deleted: its token is refused at once, and scripts or CLIs
            using it get 401.
          </p>
        </Confirm>
      )}
    </section>
  );
}

function CreateAdminToken({
  roles,
  onClose,
  onCreated,
}: {
  roles: Role[];
  onClose: () => void;
  onCreated: (name: string, token: string) => void;
}) {
  const { workspace } = useSession();
  const [name, setName] = useState('');
  const [role, setRole] = useState(roles[0]?.name ?? '');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  return (
    <Modal title="Create admin token" onClose={onClose}>
      {roles.length === 0 ? (
        <Alert>No role grants admin API operations: create one (Client roles) with admin permissions first.</Alert>
      ) : (
        <form
          onSubmit={async (e) => {
            e.preventDefault();
            setBusy(true);
            setError(undefined);
            try {
              const r = await call(
                api.POST('/api/v1/workspaces/{workspace}/clients', {
                  params: { path: { workspace } },
                  body: { name, role, environments: ['*'], projects: ['*'] },
                }),
              );
              onCreated(r.client.name, r.token);
            } catch (err) {
              setError((err as Error).message);
              setBusy(false);
            }
          }}
        >
          {error && <Alert>{error}</Alert>}
          <Field label="Token name" id="admin-token-name" hint="What uses it, e.g. ci-deploy.">
            <input
              {...described('admin-token-name', undefined, true)}
              required
              value={name}
              onInput={(e) => setName(e.currentTarget.value)}
            />
          </Field>
          <Field
            label="Role"
            id="admin-token-role"
            hint="Roles that grant admin API operations. The token reaches every environment and project of yours."
          >
            <select
              {...described('admin-token-role', undefined, true)}
              value={role}
              onChange={(e) => setRole(e.currentTarget.value)}
            >
              {roles.map((r) => (
                <option key={r.name} value={r.name}>
                  {r.name} ({r.permissions.join(', ')})
                </option>
              ))}
            </select>
          </Field>
          <div class="form-actions">
            <button type="button" class="btn" onClick={onClose}>
              Cancel
            </button>
            <Submit busy={busy}>{busy ? 'Creating…' : 'Create token'}</Submit>
          </div>
        </form>
      )}
    </Modal>
  );
}
