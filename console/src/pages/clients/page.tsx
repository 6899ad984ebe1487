/**
 * API clients: the list (role, environments, projects, IP ranges, status, legacy), create with inline CIDR
 * validation, the token shown once in a modal with a copy button, regenerate (with a grace period), disable and
 * enable, delete.
 */
import { useState } from 'preact/hooks';
import { api, call, serverNow } from '../../api/client';
import type { Ok } from '../../api/types';
import { useSession } from '../../session';
import { Confirm, Modal } from '../../ui/dialog';
import { ago, CopyButton, described, Field, formatDate, formatTime } from '../../ui/form';
import { useLoad } from '../../ui/load';
import { Alert, Badge, Empty, ErrorState, Loading, PageHeader } from '../../ui/states';
import { DataTable } from '../../ui/table';
import { ClientForm } from './form';

type Client = Ok<'listClients'>['items'][number];

export function TokenModal({ title, token, onClose }: { title: string; token: string; onClose: () => void }) {
  return (
    <Modal title={title} onClose={onClose}>
      <Alert kind="info">
        Copy this token now: it is shown <strong>once</strong>. Gatehouse keeps only its SHA-256 and cannot show it
        again.
      </Alert>
      <div class="token-row">
        <code class="token" data-testid="client-token">
          {token}
        </code>
        <CopyButton text={token} label="Copy token" />
      </div>
      <div class="form-actions">
        <button type="button" class="btn btn-primary" onClick={onClose}>
          I have copied it
        </button>
      </div>
    </Modal>
  );
}

const GRACE = [
  { value: '', label: 'None: the old token stops working at once' },
  { value: '1h', label: '1 hour' },
  { value: '24h', label: '24 hours' },
];

export function ClientsPage() {
  const { workspace, can } = useSession();
  const [creating, setCreating] = useState(false);
  const [token, setToken] = useState<{ title: string; token: string }>();
  const [action, setAction] = useState<{ kind: 'regenerate' | 'delete' | 'disable' | 'enable'; client: Client }>();
  const [grace, setGrace] = useState('');
  const clients = useLoad(
    async () =>
      (await call(api.GET('/api/v1/workspaces/{workspace}/clients', { params: { path: { workspace } } }))).items,
    [workspace],
  );
  const writable = can('admin:clients:write');
  const path = (c: Client) => ({ workspace, client: c.id });
  return (
    <>
      <PageHeader
        title="API clients"
        description="Each client has a token (an API key) that the gateway verifies, scoped to environments, projects and IP ranges."
        actions={
          writable && (
            <button type="button" class="btn btn-primary" onClick={() => setCreating(true)}>
              Create client
            </button>
          )
        }
      />
      {clients.state === 'loading' && !clients.data && <Loading what="API clients" />}
      {clients.state === 'error' && <ErrorState message={clients.error} retry={clients.reload} />}
      {clients.data && (
        <DataTable
          label="API clients"
          rows={clients.data}
          rowKey={(c) => c.id}
          initialSort={{ key: 'name', dir: 'asc' }}
          empty={<Empty title="No API clients yet">Create one: its token is shown once, to copy into your app.</Empty>}
          columns={[
            {
              key: 'name',
              label: 'Name',
              value: (c) => c.name,
              render: (c) => (
                <>
                  <strong>{c.name}</strong> {c.kind === 'legacy' && <Badge tone="warn">legacy</Badge>}
                  {c.operator && <Badge tone="info">operator</Badge>}
                  <div class="muted small id">{c.id}</div>
                </>
              ),
            },
            { key: 'role', label: 'Role', value: (c) => c.role },
            { key: 'envs', label: 'Environments', value: (c) => c.environments.join(', ') },
            { key: 'projects', label: 'Projects', value: (c) => c.projects.join(', ') },
            {
              key: 'ips',
              label: 'IP ranges',
              value: (c) => (c.allowedIps ?? []).join(', '),
              render: (c) => (c.allowedIps ?? []).join(', ') || 'any',
            },
            {
              key: 'status',
              label: 'Status',
              value: (c) => c.status ?? 'active',
              render: (c) => <Badge tone={c.status === 'disabled' ? 'bad' : 'good'}>{c.status ?? 'active'}</Badge>,
            },
            {
              key: 'used',
              label: 'Last used',
              class: 'nowrap',
              value: (c) => c.lastUsedAt ?? '',
              render: (c) =>
                c.lastUsedAt ? (
                  <time dateTime={c.lastUsedAt} title={formatTime(c.lastUsedAt)}>
                    {ago(c.lastUsedAt, serverNow())}
                  </time>
                ) : (
                  <span class="muted" title="No request through a gateway reported yet">
                    never
                  </span>
                ),
            },
            {
              key: 'created',
              label: 'Created',
              class: 'nowrap',
              value: (c) => c.createdAt,
              render: (c) => formatDate(c.createdAt),
            },
            {
              key: 'actions',
              label: 'Actions',
              render: (c) =>
                writable && (
                  <div class="row-actions stack">
                    <button
                      type="button"
                      class="btn btn-small"
                      aria-label={`Regenerate token of ${c.name}`}
                      onClick={() => setAction({ kind: 'regenerate', client: c })}
                    >
                      Regenerate
                    </button>
                    <button
                      type="button"
                      class="btn btn-small"
                      aria-label={`${c.status === 'disabled' ? 'Enable' : 'Disable'} ${c.name}`}
                      onClick={() => setAction({ kind: c.status === 'disabled' ? 'enable' : 'disable', client: c })}
                    >
                      {c.status === 'disabled' ? 'Enable' : 'Disable'}
                    </button>
                    <button
                      type="button"
                      class="btn btn-small btn-danger"
                      aria-label={`Delete ${c.name}`}
                      onClick={() => setAction({ kind: 'delete', client: c })}
                    >
                      Delete
                    </button>
                  </div>
                ),
            },
          ]}
        />
      )}
      {creating && (
        <Modal title="Create API client" onClose={() => setCreating(false)} wide>
          <ClientForm
            onCancel={() => setCreating(false)}
            onCreated={(r) => {
              setCreating(false);
              setToken({ title: `Token of ${r.client.name}`, token: r.token });
              clients.reload();
            }}
          />
        </Modal>
      )}
      {token && <TokenModal title={token.title} token={token.token} onClose={() => setToken(undefined)} />}
      {action?.kind === 'regenerate' && (
        <Confirm
          title={`Regenerate the token of ${action.client.name}?`}
          confirmLabel="Regenerate token"
          onClose={() => setAction(undefined)}
          onConfirm={async () => {
            const r = await call(
              api.POST('/api/v1/workspaces/{workspace}/clients/{client}/regenerate', {
                params: { path: path(action.client) },
                body: grace ? { gracePeriod: grace } : {},
              }),
            );
            setToken({ title: `New token of ${r.client.name}`, token: r.token });
            clients.reload();
          }}
        >
          <p>
            A new token is issued and shown once.{' '}
            {grace
              ? `The old token keeps working for ${grace}, then is refused.`
              : 'The old token is refused at once (401).'}
          </p>
          <Field label="Grace period for the old token" id="grace">
            <select {...described('grace')} value={grace} onChange={(e) => setGrace(e.currentTarget.value)}>
              {GRACE.map((g) => (
                <option key={g.value} value={g.value}>
                  {g.label}
                </option>
              ))}
            </select>
          </Field>
        </Confirm>
      )}
      {(action?.kind === 'disable' || action?.kind === 'enable') && (
        <Confirm
          title={`${action.kind === 'disable' ? 'Disable' : 'Enable'} ${action.client.name}?`}
          confirmLabel={action.kind === 'disable' ? 'Disable client' : 'Enable client'}
          danger={action.kind === 'disable'}
          onClose={() => setAction(undefined)}
          onConfirm={async () => {
            await call(
              api.PATCH('/api/v1/workspaces/{workspace}/clients/{client}', {
                params: { path: path(action.client) },
                body: { status: action.kind === 'disable' ? 'disabled' : 'active' },
              }),
            );
            clients.reload();
          }}
        >
          <p>
            {action.kind === 'disable'
              ? 'Its token is refused by every gateway within a second, until you enable it again. Nothing is deleted.'
              : 'Its token works again on every gateway within a second.'}
          </p>
        </Confirm>
      )}
      {action?.kind === 'delete' && (
        <Confirm
          title={`Delete ${action.client.name}?`}
          confirmLabel="Delete client"
          onClose={() => setAction(undefined)}
          onConfirm={async () => {
            await call(
              api.DELETE('/api/v1/workspaces/{workspace}/clients/{client}', { params: { path: path(action.client) } }),
            );
            clients.reload();
          }}
        >
          <p>Its token is refused by every gateway within a second and the client cannot be restored.</p>
        </Confirm>
      )}
    </>
  );
}
