/** Settings: workspaces, environments, projects, console users and their roles, signing-key rotation. */
import { useState } from 'preact/hooks';
import { api, call } from '../../api/client';
import { useSession } from '../../session';
import { Confirm, Modal } from '../../ui/dialog';
import { formatTime } from '../../ui/form';
import { FormActions, SelectField, TextField, useSubmit } from '../../ui/fields';
import { useLoad } from '../../ui/load';
import { Alert, Badge, Empty, ErrorState, Loading, PageHeader } from '../../ui/states';
import { DataTable } from '../../ui/table';
import { EnvironmentTabs } from '../collections/page';
import { AdminTokens } from './admin-tokens';

/** A one-field create form in a modal (environment, project…). */
function NameDialog({
  title,
  label,
  hint,
  onSubmit,
  onClose,
}: {
  title: string;
  label: string;
  hint: string;
  onSubmit: (name: string) => Promise<void>;
  onClose: () => void;
}) {
  const [name, setName] = useState('');
  const { busy, error, submit } = useSubmit(async () => {
    await onSubmit(name);
    onClose();
  });
  return (
    <Modal title={title} onClose={onClose}>
      <form onSubmit={submit}>
        {error && <Alert>{error}</Alert>}
        <TextField label={label} id="name-dialog" hint={hint} required value={name} onValue={setName} />
        <FormActions busy={busy} onCancel={onClose}>
          Create
        </FormActions>
      </form>
    </Modal>
  );
}

export function SettingsPage() {
  const { can } = useSession();
  return (
    <>
      <PageHeader
        title="Settings"
        description="The workspace, its environments and projects, console users, signing keys and admin API tokens."
      />
      <Workspaces />
      <Projects />
      {can('admin:collaborators:read') && <Users />}
      <SigningKeys />
      {can('admin:clients:read') && can('admin:roles:read') && <AdminTokens />}
    </>
  );
}

function Workspaces() {
  const { workspace, me, can } = useSession();
  const [adding, setAdding] = useState(false);
  const workspaces = useLoad(async () => (await call(api.GET('/api/v1/workspaces'))).items, []);
  return (
    <section class="section">
      <div class="section-head">
        <h2>Workspace and environments</h2>
        {can('admin:workspaces:write') && (
          <button type="button" class="btn" onClick={() => setAdding(true)}>
            Add environment
          </button>
        )}
      </div>
      <p>
        Workspace <strong>{workspace}</strong>: environments{' '}
        {me.workspace.environments.map((e) => (
          <Badge key={e} tone={e === me.workspace.devEnvironment ? 'info' : 'neutral'}>
            {e}
            {e === me.workspace.devEnvironment ? ' (development)' : ''}
          </Badge>
        ))}
      </p>
      {workspaces.state === 'error' && <ErrorState message={workspaces.error} retry={workspaces.reload} />}
      {workspaces.data && workspaces.data.length > 1 && (
        <DataTable
          label="Workspaces"
          rows={workspaces.data}
          rowKey={(w) => w.id}
          empty={null}
          columns={[
            { key: 'name', label: 'Name', value: (w) => w.name },
            { key: 'envs', label: 'Environments', value: (w) => w.environments.join(', ') },
            {
              key: 'created',
              label: 'Created',
              class: 'nowrap',
              value: (w) => w.createdAt,
              render: (w) => formatTime(w.createdAt),
            },
          ]}
        />
      )}
      {adding && (
        <NameDialog
          title="Add environment"
          label="Environment name"
          hint="Upper case, e.g. STAGING. Clients and collections are scoped to environments."
          onClose={() => setAdding(false)}
          onSubmit={async (name) => {
            await call(
              api.POST('/api/v1/workspaces/{workspace}/environments', {
                params: { path: { workspace } },
                body: { name },
              }),
            );
            location.reload();
          }}
        />
      )}
    </section>
  );
}

function Projects() {
  const { workspace, can } = useSession();
  const [adding, setAdding] = useState(false);
  const [deleting, setDeleting] = useState<string>();
  const projects = useLoad(
    async () =>
      (await call(api.GET('/api/v1/workspaces/{workspace}/projects', { params: { path: { workspace } } }))).items,
    [workspace],
  );
  const writable = can('admin:projects:write');
  return (
    <section class="section">
      <div class="section-head">
        <h2>Projects</h2>
        {writable && (
          <button type="button" class="btn" onClick={() => setAdding(true)}>
            Create project
          </button>
        )}
      </div>
      {!projects.data && projects.state === 'loading' && <Loading what="projects" />}
      {projects.state === 'error' && <ErrorState message={projects.error} retry={projects.reload} />}
      {projects.data && (
        <DataTable
          label="Projects"
          rows={projects.data}
          rowKey={(p) => p.name}
          empty={<Empty title="No projects" />}
          columns={[
            { key: 'name', label: 'Name', value: (p) => p.name },
            { key: 'description', label: 'Description', value: (p) => p.description ?? '' },
            {
              key: 'created',
              label: 'Created',
              class: 'nowrap',
              value: (p) => p.createdAt,
              render: (p) => formatTime(p.createdAt),
            },
            {
              key: 'actions',
              label: 'Actions',
              render: (p) =>
                writable && (
                  <button
                    type="button"
                    class="btn btn-small btn-danger"
                    aria-label={`Delete project ${p.name}`}
                    onClick={() => setDeleting(p.name)}
                  >
                    Delete
                  </button>
                ),
            },
          ]}
        />
      )}
      {adding && (
        <NameDialog
          title="Create project"
          label="Project name"
          hint="Collections belong to a project; clients are scoped to projects."
          onClose={() => (setAdding(false), projects.reload())}
          onSubmit={async (name) => {
            await call(
              api.POST('/api/v1/workspaces/{workspace}/projects', { params: { path: { workspace } }, body: { name } }),
            );
          }}
        />
      )}
      {deleting && (
        <Confirm
          title={`Delete project ${deleting}?`}
          confirmLabel="Delete project"
          onClose={() => (setDeleting(undefined), projects.reload())}
          onConfirm={async () => {
            await call(
              api.DELETE('/api/v1/workspaces/{workspace}/projects/{project}', {
                params: { path: { workspace, project: deleting } },
              }),
            );
          }}
        >
          <p>The project is removed. The control plane refuses this while collections still belong to it.</p>
        </Confirm>
      )}
    </section>
  );
}

function Users() {
  const { workspace, me, can } = useSession();
  const environment = me.workspace.devEnvironment;
  const path = { workspace, environment };
  const [adding, setAdding] = useState(false);
  const [removing, setRemoving] = useState<{ id: string; email: string }>();
  const users = useLoad(
    async () =>
      (
        await call(
          api.GET('/api/v1/workspaces/{workspace}/environments/{environment}/collaborators', { params: { path } }),
        )
      ).items,
    [workspace],
  );
  const roles = useLoad(
    async () =>
      (await call(api.GET('/api/v1/workspaces/{workspace}/user-roles', { params: { path: { workspace } } }))).items,
    [workspace],
  );
  const writable = can('admin:collaborators:write');
  return (
    <section class="section">
      <div class="section-head">
        <h2>Console users</h2>
        {writable && (
          <button type="button" class="btn" onClick={() => setAdding(true)}>
            Add user
          </button>
        )}
      </div>
      {!users.data && users.state === 'loading' && <Loading what="users" />}
      {users.state === 'error' && <ErrorState message={users.error} retry={users.reload} />}
      {users.data && (
        <DataTable
          label="Console users"
          rows={users.data}
          rowKey={(u) => u.id}
          empty={<Empty title="No console users" />}
          columns={[
            { key: 'email', label: 'Email', value: (u) => u.email },
            { key: 'name', label: 'Name', value: (u) => u.name ?? '' },
            { key: 'role', label: 'Role', value: (u) => u.role },
            {
              key: 'privileges',
              label: 'Privileges',
              value: (u) =>
                u.role === 'admin'
                  ? 'everything'
                  : (roles.data?.find((r) => r.name === u.role)?.privileges.join(', ') ?? ''),
            },
            {
              key: 'actions',
              label: 'Actions',
              render: (u) =>
                writable &&
                u.id !== me.id && (
                  <button
                    type="button"
                    class="btn btn-small btn-danger"
                    aria-label={`Remove ${u.email}`}
                    onClick={() => setRemoving(u)}
                  >
                    Remove
                  </button>
                ),
            },
          ]}
        />
      )}
      {adding && (
        <AddUser
          roles={roles.data?.map((r) => r.name) ?? ['admin']}
          onClose={() => (setAdding(false), users.reload())}
        />
      )}
      {removing && (
        <Confirm
          title={`Remove ${removing.email}?`}
          confirmLabel="Remove user"
          onClose={() => (setRemoving(undefined), users.reload())}
          onConfirm={async () => {
            await call(
              api.DELETE('/api/v1/workspaces/{workspace}/environments/{environment}/collaborators/{user}', {
                params: { path: { ...path, user: removing.id } },
              }),
            );
          }}
        >
          <p>The user can no longer sign in, and their open sessions end at once.</p>
        </Confirm>
      )}
    </section>
  );
}

function AddUser({ roles, onClose }: { roles: string[]; onClose: () => void }) {
  const { workspace, me } = useSession();
  const [email, setEmail] = useState('');
  const [role, setRole] = useState(roles[0] ?? 'admin');
  const [password, setPassword] = useState('');
  const { busy, error, submit } = useSubmit(async () => {
    await call(
      api.POST('/api/v1/workspaces/{workspace}/environments/{environment}/collaborators', {
        params: { path: { workspace, environment: me.workspace.devEnvironment } },
        body: { email, role, password },
      }),
    );
    onClose();
  });
  return (
    <Modal title="Add console user" onClose={onClose}>
      <form onSubmit={submit}>
        {error && <Alert>{error}</Alert>}
        <TextField label="Email" id="user-email" type="email" required value={email} onValue={setEmail} />
        <SelectField label="Role" id="user-role" value={role} onValue={setRole} options={roles} />
        <TextField
          label="Initial password"
          id="user-password"
          hint="At least 12 characters; share it with the user over a safe channel."
          type="password"
          autoComplete="new-password"
          minLength={12}
          required
          value={password}
          onValue={setPassword}
        />
        <FormActions busy={busy} onCancel={onClose}>
          Add user
        </FormActions>
      </form>
    </Modal>
  );
}

function SigningKeys() {
  const { workspace, me, can } = useSession();
  const [environment, setEnvironment] = useState(me.workspace.devEnvironment);
  const [rotating, setRotating] = useState(false);
  const path = { workspace, environment };
  const keys = useLoad(
    () => call(api.GET('/api/v1/workspaces/{workspace}/environments/{environment}/signing-keys', { params: { path } })),
    [environment],
  );
  return (
    <section class="section">
      <div class="section-head">
        <h2>Signing keys</h2>
        {can('admin:workspaces:write') && (
          <button type="button" class="btn" onClick={() => setRotating(true)}>
            Rotate {environment} keys
          </button>
        )}
      </div>
      <EnvironmentTabs value={environment} onChange={setEnvironment} />
      {!keys.data && keys.state === 'loading' && <Loading what="signing keys" />}
      {keys.state === 'error' && <ErrorState message={keys.error} retry={keys.reload} />}
      {keys.data && (
        <DataTable
          label="Signing keys"
          rows={keys.data.keys}
          rowKey={(k) => k.kid}
          empty={<Empty title="No signing keys" />}
          columns={[
            { key: 'kid', label: 'Key id', value: (k) => k.kid, render: (k) => <code>{k.kid}</code> },
            { key: 'alg', label: 'Algorithm', value: (k) => k.alg },
            {
              key: 'state',
              label: 'State',
              value: (k) => (k.kid === keys.data!.active ? 'active' : 'retiring'),
              render: (k) =>
                k.kid === keys.data!.active ? (
                  <Badge tone="good">active</Badge>
                ) : (
                  <Badge>retires {formatTime(k.retiresAt)}</Badge>
                ),
            },
          ]}
        />
      )}
      {rotating && (
        <Confirm
          title={`Rotate the signing keys of ${environment}?`}
          confirmLabel="Rotate keys"
          onClose={() => (setRotating(false), keys.reload())}
          onConfirm={async () => {
            await call(
              api.POST('/api/v1/workspaces/{workspace}/environments/{environment}/signing-keys/rotate', {
                params: { path },
              }),
            );
          }}
        >
          <p>
            A new key signs every token from now on. The current key stays published in the JWKS until the tokens it
            signed have expired, so backends keep accepting them.
          </p>
        </Confirm>
      )}
    </section>
  );
}
