/** A gateway's detail: its instances, rename, the reinstall command (a fresh token), delete. */
import { useState } from 'preact/hooks';
import { api, call } from '../../api/client';
import { link, navigate } from '../../router';
import { useSession } from '../../session';
import { Confirm, Modal } from '../../ui/dialog';
import { ago, formatTime } from '../../ui/form';
import { FormActions, TextField, useSubmit } from '../../ui/fields';
import { useLoad } from '../../ui/load';
import { Alert, Badge, Empty, ErrorState, Loading, PageHeader } from '../../ui/states';
import { DataTable } from '../../ui/table';
import { InstallStep, type GatewayWithInstall } from './install';
import { ConfigSync, gatewayStatus, UpdateBadge } from './page';

export function GatewayDetailPage({ id }: { id: string }) {
  const { workspace, can } = useSession();
  const [dialog, setDialog] = useState<'rename' | 'delete' | 'reinstall'>();
  const [install, setInstall] = useState<GatewayWithInstall>();
  const [installError, setInstallError] = useState<string>();
  const path = { workspace, gateway: id };
  const gw = useLoad(
    () => call(api.GET('/api/v1/workspaces/{workspace}/gateways/{gateway}', { params: { path } })),
    [id],
  );
  const deployed = useLoad(async () => {
    if (!gw.data) return [];
    const list = await call(
      api.GET('/api/v1/workspaces/{workspace}/environments/{environment}/collections', {
        params: { path: { workspace, environment: gw.data.environment } },
      }),
    );
    return list.items.filter((c) => c.target?.type === 'edge' && c.target.gateway === gw.data!.name).map((c) => c.name);
  }, [gw.data?.name]);
  if (!gw.data)
    return gw.state === 'error' ? <ErrorState message={gw.error} retry={gw.reload} /> : <Loading what="the gateway" />;
  const g = gw.data;
  const status = gatewayStatus(g);
  const writable = can('admin:gateways:write');
  return (
    <>
      <nav class="crumbs" aria-label="Breadcrumb">
        <a {...link('/gateways')}>Gateways</a> / {g.name}
      </nav>
      <PageHeader
        title={g.name}
        description={`Edge gateway of ${g.environment}, installed with ${g.installMethod === 'helm' ? 'Helm' : 'Docker'}.`}
        actions={
          writable && (
            <>
              <button type="button" class="btn" onClick={() => setDialog('rename')}>
                Rename
              </button>
              <button
                type="button"
                class="btn"
                onClick={async () => {
                  setInstallError(undefined);
                  try {
                    setInstall(
                      await call(
                        api.POST('/api/v1/workspaces/{workspace}/gateways/{gateway}/install-command', {
                          params: { path },
                        }),
                      ),
                    );
                    setDialog('reinstall');
                  } catch (e) {
                    setInstallError((e as Error).message);
                  }
                }}
              >
                Reinstall command
              </button>
              <button type="button" class="btn btn-danger" onClick={() => setDialog('delete')}>
                Delete
              </button>
            </>
          )
        }
      />
      {installError && <Alert>{installError}</Alert>}
      <div class="cards">
        <div class="card stat">
          <div class="small muted">Status</div>
          <Badge tone={status.tone}>{status.label}</Badge>
        </div>
        <div class="card stat">
          <div class="small muted">Instances online</div>
          <div class="stat-value">
            {g.instancesOnline} / {g.instances.length}
          </div>
        </div>
        <div class="card stat">
          <div class="small muted">Versions</div>
          <div>
            {g.versions.join(', ') || '—'} <UpdateBadge gateway={g} />
          </div>
        </div>
        <div class="card stat">
          <div class="small muted">Last synced</div>
          <div>{ago(g.lastSyncedAt)}</div>
        </div>
        <div class="card stat">
          <div class="small muted">Configuration</div>
          <div>{g.configVersion || g.configSync.latestVersion ? <ConfigSync gateway={g} /> : 'none served yet'}</div>
        </div>
        <div class="card stat">
          <div class="small muted">Certificate expires</div>
          <div>{formatTime(g.certificateExpiresAt)}</div>
        </div>
      </div>
      <h2>Instances</h2>
      <DataTable
        label="Instances"
        rows={g.instances}
        rowKey={(i) => i.instanceId}
        empty={
          <Empty title="No instance has connected yet">
            Run the install command on a machine; its instances appear here within a few seconds.
          </Empty>
        }
        columns={[
          { key: 'host', label: 'Host', value: (i) => i.hostname ?? i.instanceId },
          {
            key: 'status',
            label: 'Status',
            value: (i) => (i.online ? 'online' : 'offline'),
            render: (i) => (
              <>
                <Badge tone={i.online ? 'good' : 'bad'}>{i.online ? 'online' : 'offline'}</Badge>{' '}
                {i.fallback && <Badge tone="warn">fallback</Badge>}
              </>
            ),
          },
          { key: 'version', label: 'Version', value: (i) => i.softwareVersion },
          {
            key: 'config',
            label: 'Configuration',
            value: (i) => i.appliedVersion,
            render: (i) =>
              i.configBehindBy > 0 ? (
                <>
                  v{i.appliedVersion} <Badge tone="warn">behind by {i.configBehindBy}</Badge>
                </>
              ) : g.configSync.latestVersion > 0 ? (
                <>
                  v{i.appliedVersion} <Badge tone="good">in sync</Badge>
                </>
              ) : (
                `v${i.appliedVersion}`
              ),
          },
          {
            key: 'seen',
            label: 'Last heartbeat',
            class: 'nowrap',
            value: (i) => i.lastSeenAt,
            render: (i) => ago(i.lastSeenAt),
          },
          { key: 'error', label: 'Last error', value: (i) => i.lastError ?? '', render: (i) => i.lastError ?? '—' },
        ]}
      />
      {dialog === 'rename' && <Rename name={g.name} path={path} onClose={() => (setDialog(undefined), gw.reload())} />}
      {dialog === 'reinstall' && install && (
        <Modal title={`Reinstall ${g.name}`} onClose={() => setDialog(undefined)} wide>
          <InstallStep gateway={install.gateway} install={install.install} />
        </Modal>
      )}
      {dialog === 'delete' && (
        <Confirm
          title={`Delete gateway ${g.name}?`}
          confirmLabel="Delete gateway"
          onClose={() => setDialog(undefined)}
          onConfirm={async () => {
            await call(api.DELETE('/api/v1/workspaces/{workspace}/gateways/{gateway}', { params: { path } }));
            navigate('/gateways');
          }}
        >
          <p>
            Its certificates are revoked and its {g.instances.length} instance(s) disconnected at once.{' '}
            {deployed.data && deployed.data.length > 0 ? (
              <>
                The collections deployed to it are then served nowhere (deactivated):{' '}
                <strong>{deployed.data.join(', ')}</strong>.
              </>
            ) : (
              'No collection is deployed to it.'
            )}
          </p>
        </Confirm>
      )}
    </>
  );
}

function Rename({
  name: old,
  path,
  onClose,
}: {
  name: string;
  path: { workspace: string; gateway: string };
  onClose: () => void;
}) {
  const [name, setName] = useState(old);
  const { busy, error, submit } = useSubmit(async () => {
    await call(api.PATCH('/api/v1/workspaces/{workspace}/gateways/{gateway}', { params: { path }, body: { name } }));
    onClose();
  });
  return (
    <Modal title={`Rename ${old}`} onClose={onClose}>
      <form onSubmit={submit}>
        {error && <Alert>{error}</Alert>}
        <TextField
          label="New name"
          id="gw-rename"
          hint="Collections deployed to this gateway follow the new name."
          required
          value={name}
          onValue={setName}
        />
        <FormActions busy={busy} onCancel={onClose}>
          Rename
        </FormActions>
      </form>
    </Modal>
  );
}
