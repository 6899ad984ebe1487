/** Gateways: the edge gateways with their status, instances, versions, last sync and update badge; set up a new one. */
import { useState } from 'preact/hooks';
import { api, call } from '../../api/client';
import { link } from '../../router';
import { useSession } from '../../session';
import { Modal } from '../../ui/dialog';
import { ago, CodeBlock, described, Field, Submit } from '../../ui/form';
import { useLoad } from '../../ui/load';
import { Alert, Badge, Empty, ErrorState, Loading, PageHeader } from '../../ui/states';
import { DataTable } from '../../ui/table';
import { InstallStep, type Gateway, type GatewayWithInstall } from './install';

export function gatewayStatus(g: Gateway): { label: string; tone: 'good' | 'bad' | 'warn' | 'neutral' } {
  if (g.instancesTotal === 0) return { label: 'not installed', tone: 'neutral' };
  if (g.status === 'online') return { label: 'online', tone: 'good' };
  if (g.status === 'fallback') return { label: 'fallback', tone: 'warn' };
  return { label: 'offline', tone: 'bad' };
}

export function UpdateBadge({ gateway }: { gateway: Gateway }) {
  const [open, setOpen] = useState(false);
  const u = gateway.updateAvailable;
  if (!u) return null;
  return (
    <>
      <button type="button" class="badge badge-info badge-button" onClick={() => setOpen(true)}>
        Update to v{u.version}
      </button>
      {open && (
        <Modal title={`Update ${gateway.name} to v${u.version}`} onClose={() => setOpen(false)} wide>
          <p>
            Run the command for the way the gateway is installed; instances restart one at a time and keep serving their
            last configuration meanwhile.
          </p>
          <CodeBlock
            label={gateway.installMethod === 'helm' ? 'Helm (how this gateway is installed)' : 'Helm'}
            text={u.commands.helm}
          />
          <CodeBlock
            label={gateway.installMethod === 'docker' ? 'Docker (how this gateway is installed)' : 'Docker'}
            text={u.commands.docker}
          />
          <ReleaseNotes since={oldest(gateway.versions)} />
        </Modal>
      )}
    </>
  );
}

/** "in sync" or "behind by N / vX" against the newest configuration published to the gateway. */
export function ConfigSync({ gateway: g }: { gateway: Gateway }) {
  const s = g.configSync;
  if (s.state === 'in_sync')
    return (
      <span data-testid={`config-${g.name}`}>
        <Badge tone="good">in sync</Badge> v{s.latestVersion}
      </span>
    );
  if (s.state === 'behind')
    return (
      <span data-testid={`config-${g.name}`}>
        <Badge tone="warn">behind by {s.behindBy}</Badge> v{g.configVersion} / v{s.latestVersion}
      </span>
    );
  return (
    <span data-testid={`config-${g.name}`} class="muted">
      {g.configVersion ? `v${g.configVersion}` : '—'}
      {s.latestVersion ? ` (latest v${s.latestVersion})` : ''}
    </span>
  );
}

/** The oldest of the versions the gateway's instances run (the release notes start after it). */
function oldest(versions: string[]): string | undefined {
  const parse = (v: string) => v.split(/[.+-]/).slice(0, 3).map(Number);
  return [...versions].sort((a, b) => {
    const [x, y] = [parse(a), parse(b)];
    for (let i = 0; i < 3; i++) if (x[i] !== y[i]) return (x[i] ?? 0) - (y[i] ?? 0);
    return 0;
  })[0];
}

/** The release notes from the control plane's own changelog (no outside web site: many control planes are offline). */
function ReleaseNotes({ since }: { since: string | undefined }) {
  const notes = useLoad(
    () =>
      call(
        api.GET('/api/v1/release-notes', {
          params: { query: { since } },
        }),
      ),
    [since],
  );
  if (notes.state === 'error') return <ErrorState message={notes.error} retry={notes.reload} />;
  if (!notes.data) return <Loading what="release notes" />;
  return (
    <section>
      <h3>Release notes{since ? ` since v${since}` : ''}</h3>
      {notes.data.items.length === 0 && <Empty title="No release notes" />}
      {notes.data.items.map((n) => (
        <details key={n.version} open={n.version === notes.data!.items[0]?.version}>
          <summary>
            v{n.version}
            {n.date ? ` · ${n.date}` : ''}
          </summary>
          <pre class="notes">{n.markdown}</pre>
        </details>
      ))}
    </section>
  );
}

export function GatewaysPage() {
  const { workspace, can, me } = useSession();
  const [setup, setSetup] = useState(false);
  const gateways = useLoad(
    async () =>
      (
        await call(
          api.GET('/api/v1/workspaces/{workspace}/gateways', {
            // The list shows counts only: the instance rows of every gateway are the bulk of the answer.
            params: { path: { workspace }, query: { instances: 'none' } },
          }),
        )
      ).items,
    [workspace],
  );
  const taken = new Set(gateways.data?.map((g) => g.environment));
  const free = me.workspace.environments.filter((e) => !taken.has(e));
  return (
    <>
      <PageHeader
        title="Gateways"
        description="Edge gateways run in your infrastructure and get their configuration from this control plane. The cloud gateway is built in."
        actions={
          can('admin:gateways:write') && (
            <button type="button" class="btn btn-primary" onClick={() => setSetup(true)}>
              Set up gateway
            </button>
          )
        }
      />
      {gateways.state === 'loading' && !gateways.data && <Loading what="gateways" />}
      {gateways.state === 'error' && <ErrorState message={gateways.error} retry={gateways.reload} />}
      {gateways.data && (
        <DataTable
          label="Gateways"
          rows={gateways.data}
          rowKey={(g) => g.id}
          initialSort={{ key: 'name', dir: 'asc' }}
          empty={
            <Empty title="No edge gateways yet">
              Collections deployed to the cloud are served by the built-in cloud gateway. Set up an edge gateway to
              serve traffic from your own infrastructure.
            </Empty>
          }
          columns={[
            {
              key: 'name',
              label: 'Name',
              value: (g) => g.name,
              render: (g) => <a {...link(`/gateways/${g.id}`)}>{g.name}</a>,
            },
            { key: 'env', label: 'Environment', value: (g) => g.environment },
            {
              key: 'status',
              label: 'Status',
              value: (g) => gatewayStatus(g).label,
              render: (g) => {
                const s = gatewayStatus(g);
                return <Badge tone={s.tone}>{s.label}</Badge>;
              },
            },
            {
              key: 'instances',
              label: 'Instances',
              value: (g) => g.instancesOnline,
              render: (g) => `${g.instancesOnline} online / ${g.instancesTotal}`,
            },
            {
              key: 'version',
              label: 'Version',
              value: (g) => g.versions.join(', '),
              render: (g) => (
                <>
                  {g.versions.join(', ') || '—'} <UpdateBadge gateway={g} />
                </>
              ),
            },
            {
              key: 'synced',
              label: 'Last synced',
              value: (g) => g.lastSyncedAt ?? '',
              render: (g) => ago(g.lastSyncedAt),
            },
            {
              key: 'config',
              label: 'Configuration',
              value: (g) => `${g.configSync.state} ${g.configSync.behindBy} ${g.configVersion}`,
              render: (g) => <ConfigSync gateway={g} />,
            },
            { key: 'mode', label: 'Install', value: (g) => g.installMethod },
          ]}
        />
      )}
      {setup && (
        <SetUpGateway
          environments={free}
          onClose={() => {
            setSetup(false);
            gateways.reload();
          }}
        />
      )}
    </>
  );
}

function SetUpGateway({ environments, onClose }: { environments: string[]; onClose: () => void }) {
  const { workspace } = useSession();
  const [name, setName] = useState('');
  const [environment, setEnvironment] = useState(environments[0] ?? '');
  const [mode, setMode] = useState<'docker' | 'helm'>('docker');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const [created, setCreated] = useState<GatewayWithInstall>();
  if (created)
    return (
      <Modal title={`Install ${created.gateway.name}`} onClose={onClose} wide>
        <Alert kind="success">
          Gateway <strong>{created.gateway.name}</strong> created for {created.gateway.environment}. Run one of these
          commands within five minutes; the gateway then appears online in the list.
        </Alert>
        <InstallStep gateway={created.gateway} install={created.install} />
        <div class="form-actions">
          <button type="button" class="btn btn-primary" onClick={onClose}>
            Done
          </button>
        </div>
      </Modal>
    );
  return (
    <Modal title="Set up gateway" onClose={onClose}>
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          setBusy(true);
          setError(undefined);
          try {
            setCreated(
              await call(
                api.POST('/api/v1/workspaces/{workspace}/gateways', {
                  params: { path: { workspace } },
                  body: { name, environment, installMethod: mode },
                }),
              ),
            );
          } catch (err) {
            setError((err as Error).message);
          } finally {
            setBusy(false);
          }
        }}
      >
        {environments.length === 0 && (
          <Alert kind="info">
            Every environment already has its edge gateway (one per environment, with any number of instances).
          </Alert>
        )}
        {error && <Alert>{error}</Alert>}
        <Field label="Name" id="gw-name" hint="Letters, digits, dot, dash and underscore, e.g. eu-west.">
          <input
            {...described('gw-name', undefined, true)}
            value={name}
            required
            pattern="[A-Za-z0-9][A-Za-z0-9._\-]{0,127}"
            onInput={(e) => setName(e.currentTarget.value)}
          />
        </Field>
        <Field label="Environment" id="gw-env">
          <select {...described('gw-env')} value={environment} onChange={(e) => setEnvironment(e.currentTarget.value)}>
            {environments.map((env) => (
              <option key={env} value={env}>
                {env}
              </option>
            ))}
          </select>
        </Field>
        <fieldset class="field">
          <legend>Mode</legend>
          <label class="radio">
            <input type="radio" name="gw-mode" checked={mode === 'docker'} onChange={() => setMode('docker')} />
            Standalone (Docker or a plain host)
          </label>
          <label class="radio">
            <input type="radio" name="gw-mode" checked={mode === 'helm'} onChange={() => setMode('helm')} />
            Kubernetes (Helm)
          </label>
        </fieldset>
        <div class="form-actions">
          <button type="button" class="btn" onClick={onClose}>
            Cancel
          </button>
          <Submit busy={busy}>{busy ? 'Creating…' : 'Create and show install command'}</Submit>
        </div>
      </form>
    </Modal>
  );
}
