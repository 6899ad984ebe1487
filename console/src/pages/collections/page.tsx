/** Collections of one environment: the list (target, published version, unpublished changes) and create. */
import { useState } from 'preact/hooks';
import { api, call } from '../../api/client';
import { link, navigate } from '../../router';
import { useSession } from '../../session';
import { Modal } from '../../ui/dialog';
import { described, Field } from '../../ui/form';
import { useLoad } from '../../ui/load';
import { Badge, Empty, ErrorState, Loading, PageHeader } from '../../ui/states';
import { DataTable } from '../../ui/table';
import { CollectionForm } from './form';

export function EnvironmentTabs({ value, onChange }: { value: string; onChange: (env: string) => void }) {
  const { me } = useSession();
  return (
    <div class="tabs" role="tablist" aria-label="Environment">
      {me.workspace.environments.map((env) => (
        <button
          key={env}
          type="button"
          role="tab"
          aria-selected={env === value}
          class={env === value ? 'tab active' : 'tab'}
          onClick={() => onChange(env)}
        >
          {env}
        </button>
      ))}
    </div>
  );
}

export function useEdgeGateways(environment: string) {
  const { workspace, can } = useSession();
  return useLoad(async () => {
    if (!can('admin:gateways:read')) return [];
    const r = await call(api.GET('/api/v1/workspaces/{workspace}/gateways', { params: { path: { workspace } } }));
    return r.items.filter((g) => g.environment === environment).map((g) => g.name);
  }, [environment]);
}

export function useProjects() {
  const { workspace } = useSession();
  return useLoad(
    async () =>
      (await call(api.GET('/api/v1/workspaces/{workspace}/projects', { params: { path: { workspace } } }))).items.map(
        (p) => p.name,
      ),
    [workspace],
  );
}

export function CollectionsPage() {
  const { workspace, me, can } = useSession();
  const [environment, setEnvironment] = useState(
    () => new URLSearchParams(location.search).get('env') ?? me.workspace.devEnvironment,
  );
  const [creating, setCreating] = useState(false);
  const [importing, setImporting] = useState(false);
  const collections = useLoad(
    async () =>
      (
        await call(
          api.GET('/api/v1/workspaces/{workspace}/environments/{environment}/collections', {
            params: { path: { workspace, environment } },
          }),
        )
      ).items,
    [environment],
  );
  const projects = useProjects();
  const gateways = useEdgeGateways(environment);
  return (
    <>
      <PageHeader
        title="Collections"
        description="API collections: the endpoints a gateway serves, each with the permission a client's role must grant. Edit a draft, then publish."
        actions={
          can('admin:collections:write') && (
            <>
              <button type="button" class="btn" onClick={() => setImporting(true)}>
                Import OpenAPI
              </button>
              <button type="button" class="btn btn-primary" onClick={() => setCreating(true)}>
                Create collection
              </button>
            </>
          )
        }
      />
      <EnvironmentTabs value={environment} onChange={setEnvironment} />
      {collections.state === 'loading' && !collections.data && <Loading what="collections" />}
      {collections.state === 'error' && <ErrorState message={collections.error} retry={collections.reload} />}
      {collections.data && (
        <DataTable
          label="Collections"
          rows={collections.data}
          rowKey={(c) => c.id}
          initialSort={{ key: 'name', dir: 'asc' }}
          empty={
            <Empty title={`No collections in ${environment} yet`}>
              Create one with its base path, upstream and endpoints; publish it and the gateway serves it within a
              second.
            </Empty>
          }
          columns={[
            {
              key: 'name',
              label: 'Name',
              value: (c) => c.name,
              render: (c) => <a {...link(`/collections/${environment}/${encodeURIComponent(c.name)}`)}>{c.name}</a>,
            },
            { key: 'base', label: 'Base path', value: (c) => c.basePath },
            { key: 'project', label: 'Project', value: (c) => c.project },
            { key: 'endpoints', label: 'Endpoints', value: (c) => c.endpoints.length },
            {
              key: 'target',
              label: 'Deployed to',
              value: (c) => (c.target?.type === 'edge' ? `edge ${c.target.gateway}` : 'cloud'),
            },
            {
              key: 'version',
              label: 'Published',
              value: (c) => c.publishedVersion ?? 0,
              render: (c) => (
                <>
                  {c.publishedVersion ? `v${c.publishedVersion}` : <Badge tone="warn">never published</Badge>}{' '}
                  {c.publishedVersion && c.unpublishedChanges && <Badge tone="info">draft changes</Badge>}
                </>
              ),
            },
          ]}
        />
      )}
      {importing && (
        <Modal title={`Import OpenAPI in ${environment}`} onClose={() => setImporting(false)}>
          <ImportTarget
            environment={environment}
            names={(collections.data ?? []).map((c) => c.name)}
            onCancel={() => setImporting(false)}
          />
        </Modal>
      )}
      {creating && (
        <Modal title={`Create collection in ${environment}`} onClose={() => setCreating(false)} wide>
          <CollectionForm
            projects={projects.data ?? ['default']}
            gateways={gateways.data ?? []}
            submitLabel="Create draft"
            onCancel={() => setCreating(false)}
            onSubmit={async (body) => {
              const c = await call(
                api.POST('/api/v1/workspaces/{workspace}/environments/{environment}/collections', {
                  params: { path: { workspace, environment } },
                  body,
                }),
              );
              setCreating(false);
              navigate(`/collections/${environment}/${encodeURIComponent(c.name)}`);
            }}
          />
        </Modal>
      )}
    </>
  );
}

/** Which collection an OpenAPI import goes into: an existing one, or a new one the import creates. */
function ImportTarget({
  environment,
  names,
  onCancel,
}: {
  environment: string;
  names: string[];
  onCancel: () => void;
}) {
  // Empty by default: a pre-filled existing name made "Continue" replace that collection's endpoints by accident.
  const [name, setName] = useState('');
  const valid = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(name);
  const exists = names.includes(name);
  return (
    <form
      onSubmit={(e) => {
        e.preventDefault();
        if (valid) navigate(`/collections/${environment}/${encodeURIComponent(name)}/import`);
      }}
    >
      <Field
        label="Collection"
        id="import-target"
        hint={
          exists
            ? `${name} exists: its endpoints are replaced by the document's in a new draft (you see the changes before applying).`
            : 'A new name creates the collection from the document; an existing name replaces its endpoints (as a draft).'
        }
        error={name && !valid ? '1-128 letters, digits, ".", "_" or "-", starting with a letter or digit' : undefined}
      >
        <input
          {...described('import-target', name && !valid ? 'invalid' : undefined, true)}
          list="import-target-names"
          required
          placeholder="new-collection"
          value={name}
          onInput={(e) => setName(e.currentTarget.value)}
        />
        <datalist id="import-target-names">
          {names.map((n) => (
            <option key={n} value={n} />
          ))}
        </datalist>
      </Field>
      <div class="form-actions">
        <button type="button" class="btn" onClick={onCancel}>
          Cancel
        </button>
        <button type="submit" class="btn btn-primary" disabled={!valid}>
          {exists ? `Continue: replace ${name}'s endpoints` : 'Continue'}
        </button>
      </div>
    </form>
  );
}
