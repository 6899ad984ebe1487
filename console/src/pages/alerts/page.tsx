/**
 * Alerts: the history of alerts the control plane raised (gateway connectivity, version mismatch, auth-failure
 * spikes…) with their deliveries, the rules that send them to webhook destinations, and the destinations with a
 * "send test" button.
 */
import { useState } from 'preact/hooks';
import { api, call } from '../../api/client';
import type { paths } from '../../api/schema';
import { useSession } from '../../session';
import { Confirm, Modal } from '../../ui/dialog';
import { CopyButton, described, Field, formatTime, Submit } from '../../ui/form';
import { useLoad } from '../../ui/load';
import { Alert, Badge, Empty, ErrorState, Loading, PageHeader } from '../../ui/states';
import { DataTable } from '../../ui/table';

type Ok<P extends keyof paths, M extends 'get' | 'post'> = paths[P][M] extends {
  responses: { 200: { content: { 'application/json': infer T } } };
}
  ? T
  : never;
type AlertItem = Ok<'/api/v1/workspaces/{workspace}/alerts', 'get'>['items'][number];
type Rule = Ok<'/api/v1/workspaces/{workspace}/alert-rules', 'get'>['items'][number];
type Destination = Ok<'/api/v1/workspaces/{workspace}/alert-destinations', 'get'>['items'][number];
type TestResult = Ok<'/api/v1/workspaces/{workspace}/alert-destinations/{destination}/send-test', 'post'>;
type RuleBody = NonNullable<
  paths['/api/v1/workspaces/{workspace}/alert-rules']['post']['requestBody']
>['content']['application/json'];

const KINDS: { value: RuleBody['kind']; label: string }[] = [
  { value: 'auth_failure_spike', label: 'Authentication-failure spike' },
  { value: 'connectivity_lost', label: 'Gateway connectivity lost' },
  { value: 'version_mismatch', label: 'Gateway version mismatch' },
  { value: 'rate_limit_store_degraded', label: 'Rate-limit store degraded' },
];
const kindLabel = (k: string) => KINDS.find((x) => x.value === k)?.label ?? k;

export function AlertsPage() {
  const { can } = useSession();
  return (
    <>
      <PageHeader
        title="Alerts"
        description="Raised when a gateway loses its connection, runs a mismatched version, sees a spike of authentication failures or loses its rate-limit store. Rules send them to webhook destinations, signed with each destination's secret."
      />
      <History />
      {can('admin:alerts:read') && <RulesAndDestinations />}
    </>
  );
}

const PAGE = 50;

function History() {
  const { workspace } = useSession();
  const [open, setOpen] = useState<'all' | 'true' | 'false'>('all');
  const [older, setOlder] = useState<{ items: AlertItem[]; next?: string }>({ items: [] });
  const [loadingMore, setLoadingMore] = useState(false);
  const [moreError, setMoreError] = useState<string>();
  const fetchPage = (before?: string) =>
    call(
      api.GET('/api/v1/workspaces/{workspace}/alerts', {
        params: {
          path: { workspace },
          query: {
            limit: PAGE,
            ...(open !== 'all' && { open: open === 'true' }),
            ...(before !== undefined && { before }),
          },
        },
      }),
    );
  const first = useLoad(async () => {
    setOlder({ items: [] });
    return fetchPage();
  }, [workspace, open]);
  const next = older.next ?? (older.items.length === 0 ? first.data?.next : undefined);
  const rows = [...(first.data?.items ?? []), ...older.items];
  return (
    <section class="section" aria-labelledby="alert-history">
      <div class="section-head">
        <h2 id="alert-history">History</h2>
        <div class="toolbar">
          <div class="field">
            <label for="alert-state">Show</label>
            <select
              id="alert-state"
              value={open}
              onChange={(e) => setOpen(e.currentTarget.value as 'all' | 'true' | 'false')}
            >
              <option value="all">all alerts</option>
              <option value="true">firing</option>
              <option value="false">resolved</option>
            </select>
          </div>
          <button type="button" class="btn" onClick={first.reload}>
            Refresh
          </button>
        </div>
      </div>
      {!first.data && first.state === 'loading' && <Loading what="alerts" />}
      {first.state === 'error' && <ErrorState message={first.error} retry={first.reload} />}
      {first.data && (
        <DataTable
          label="Alerts"
          rows={rows}
          rowKey={(a) => a.id}
          initialSort={{ key: 'raised', dir: 'desc' }}
          empty={<Empty title="No alerts fired">All gateways are connected and healthy.</Empty>}
          columns={[
            {
              key: 'state',
              label: 'State',
              value: (a) => (a.resolvedAt ? 'resolved' : 'firing'),
              render: (a) => (
                <Badge tone={a.resolvedAt ? 'neutral' : 'bad'}>{a.resolvedAt ? 'resolved' : 'firing'}</Badge>
              ),
            },
            { key: 'kind', label: 'Kind', value: (a) => a.kind, render: (a) => <code>{a.kind}</code> },
            { key: 'message', label: 'Message', value: (a) => a.message },
            { key: 'gateway', label: 'Gateway', value: (a) => a.gatewayName ?? a.gateway ?? '' },
            {
              key: 'raised',
              label: 'Raised',
              class: 'nowrap',
              value: (a) => a.raisedAt,
              render: (a) => formatTime(a.raisedAt),
            },
            {
              key: 'resolved',
              label: 'Resolved',
              class: 'nowrap',
              value: (a) => a.resolvedAt ?? '',
              render: (a) => formatTime(a.resolvedAt),
            },
            {
              key: 'delivered',
              label: 'Deliveries',
              value: (a) => (a.deliveries ?? []).map((d) => d.destinationName).join(' '),
              render: (a) => <Deliveries alert={a} />,
            },
          ]}
        />
      )}
      {moreError && <Alert>{moreError}</Alert>}
      {next && (
        <div class="form-actions">
          <button
            type="button"
            class="btn"
            disabled={loadingMore}
            aria-busy={loadingMore}
            onClick={async () => {
              setLoadingMore(true);
              setMoreError(undefined);
              try {
                const page = await fetchPage(next);
                setOlder((o) => ({ items: [...o.items, ...page.items], ...(page.next ? { next: page.next } : {}) }));
              } catch (e) {
                setMoreError((e as Error).message);
              } finally {
                setLoadingMore(false);
              }
            }}
          >
            {loadingMore ? 'Loading…' : `Load ${PAGE} older alerts`}
          </button>
        </div>
      )}
    </section>
  );
}

function Deliveries({ alert }: { alert: AlertItem }) {
  const list = alert.deliveries ?? [];
  if (list.length === 0)
    return (
      <span class="muted">
        {alert.deliveredAt
          ? `webhook ${formatTime(alert.deliveredAt)}`
          : alert.deliveryAttempts
            ? 'webhook failed'
            : '—'}
      </span>
    );
  return (
    <ul class="plain">
      {list.map((d) => (
        <li key={`${d.destination}-${d.state}`}>
          {d.destinationName} ({d.state}):{' '}
          {d.deliveredAt ? (
            <Badge tone="good">delivered</Badge>
          ) : d.attempts === 0 ? (
            <Badge>pending</Badge>
          ) : (
            <>
              <Badge tone="bad">
                {d.lastStatus ? `HTTP ${d.lastStatus}` : 'failed'} ×{d.attempts}
              </Badge>{' '}
              <span class="small muted">{d.lastError}</span>
            </>
          )}
        </li>
      ))}
    </ul>
  );
}

function RulesAndDestinations() {
  const { workspace, can } = useSession();
  const writable = can('admin:alerts:write');
  const rules = useLoad(
    async () =>
      (await call(api.GET('/api/v1/workspaces/{workspace}/alert-rules', { params: { path: { workspace } } }))).items,
    [workspace],
  );
  const destinations = useLoad(
    async () =>
      (await call(api.GET('/api/v1/workspaces/{workspace}/alert-destinations', { params: { path: { workspace } } })))
        .items,
    [workspace],
  );
  const gateways = useLoad(
    async () =>
      can('admin:gateways:read')
        ? (
            await call(
              api.GET('/api/v1/workspaces/{workspace}/gateways', {
                // The list shows counts only: the instance rows of every gateway are the bulk of the answer.
                params: { path: { workspace }, query: { instances: 'none' } },
              }),
            )
          ).items
        : [],
    [workspace],
  );
  const [editing, setEditing] = useState<Rule | 'new'>();
  const [deletingRule, setDeletingRule] = useState<Rule>();
  const [editingDestination, setEditingDestination] = useState<Destination | 'new'>();
  const [deletingDestination, setDeletingDestination] = useState<Destination>();
  const reloadAll = () => {
    rules.reload();
    destinations.reload();
  };
  return (
    <>
      <section class="section" aria-labelledby="alert-rules">
        <div class="section-head">
          <h2 id="alert-rules">Rules</h2>
          {writable && (
            <button type="button" class="btn btn-primary" onClick={() => setEditing('new')}>
              New rule
            </button>
          )}
        </div>
        {!rules.data && rules.state === 'loading' && <Loading what="alert rules" />}
        {rules.state === 'error' && <ErrorState message={rules.error} retry={rules.reload} />}
        {rules.data && (
          <DataTable
            label="Alert rules"
            rows={rules.data}
            rowKey={(r) => r.id}
            initialSort={{ key: 'name', dir: 'asc' }}
            empty={
              <Empty title="No alert rules">
                Alerts are raised and listed above; add a rule to send them to a webhook.
              </Empty>
            }
            columns={[
              { key: 'name', label: 'Name', value: (r) => r.name },
              { key: 'kind', label: 'Alert', value: (r) => kindLabel(r.kind) },
              { key: 'gateway', label: 'Gateway', value: (r) => r.gatewayName ?? 'all' },
              {
                key: 'threshold',
                label: 'Threshold',
                value: (r) => r.threshold ?? '',
                render: (r) => thresholdText(r),
              },
              {
                key: 'destinations',
                label: 'Destinations',
                value: (r) => r.destinations.map((d) => d.name).join(', '),
                render: (r) => r.destinations.map((d) => d.name).join(', ') || <span class="muted">none</span>,
              },
              {
                key: 'enabled',
                label: 'Status',
                value: (r) => (r.enabled ? 'enabled' : 'disabled'),
                render: (r) => (
                  <Badge tone={r.enabled ? 'good' : 'neutral'}>{r.enabled ? 'enabled' : 'disabled'}</Badge>
                ),
              },
              ...(writable
                ? [
                    {
                      key: 'actions',
                      label: 'Actions',
                      render: (r: Rule) => (
                        <div class="row-actions">
                          <button
                            type="button"
                            class="btn btn-small"
                            aria-label={`Edit rule ${r.name}`}
                            onClick={() => setEditing(r)}
                          >
                            Edit
                          </button>
                          <button
                            type="button"
                            class="btn btn-small btn-danger"
                            aria-label={`Delete rule ${r.name}`}
                            onClick={() => setDeletingRule(r)}
                          >
                            Delete
                          </button>
                        </div>
                      ),
                    },
                  ]
                : []),
            ]}
          />
        )}
      </section>
      <section class="section" aria-labelledby="alert-destinations">
        <div class="section-head">
          <h2 id="alert-destinations">Webhook destinations</h2>
          {writable && (
            <button type="button" class="btn btn-primary" onClick={() => setEditingDestination('new')}>
              New destination
            </button>
          )}
        </div>
        {!destinations.data && destinations.state === 'loading' && <Loading what="alert destinations" />}
        {destinations.state === 'error' && <ErrorState message={destinations.error} retry={destinations.reload} />}
        {destinations.data && (
          <DataTable
            label="Webhook destinations"
            rows={destinations.data}
            rowKey={(d) => d.id}
            initialSort={{ key: 'name', dir: 'asc' }}
            empty={
              <Empty title="No webhook destinations">
                A destination is a URL that receives each alert as signed JSON when it is raised and when it is
                resolved.
              </Empty>
            }
            columns={[
              { key: 'name', label: 'Name', value: (d) => d.name },
              { key: 'url', label: 'URL', value: (d) => d.url, render: (d) => <code class="break">{d.url}</code> },
              { key: 'rules', label: 'Rules', value: (d) => d.rules.join(', ') },
              ...(writable
                ? [
                    {
                      key: 'actions',
                      label: 'Actions',
                      render: (d: Destination) => (
                        <div class="row-actions">
                          <SendTest destination={d} />
                          <button
                            type="button"
                            class="btn btn-small"
                            aria-label={`Edit destination ${d.name}`}
                            onClick={() => setEditingDestination(d)}
                          >
                            Edit
                          </button>
                          <button
                            type="button"
                            class="btn btn-small btn-danger"
                            aria-label={`Delete destination ${d.name}`}
                            onClick={() => setDeletingDestination(d)}
                          >
                            Delete
                          </button>
                        </div>
                      ),
                    },
                  ]
                : []),
            ]}
          />
        )}
      </section>
      {editing && (
        <RuleForm
          rule={editing === 'new' ? undefined : editing}
          destinations={destinations.data ?? []}
          gateways={(gateways.data ?? []).map((g) => ({ id: g.id, name: g.name }))}
          onClose={(saved) => {
            setEditing(undefined);
            if (saved) reloadAll();
          }}
        />
      )}
      {deletingRule && (
        <Confirm
          title={`Delete rule ${deletingRule.name}?`}
          confirmLabel="Delete rule"
          onClose={() => setDeletingRule(undefined)}
          onConfirm={async () => {
            await call(
              api.DELETE('/api/v1/workspaces/{workspace}/alert-rules/{rule}', {
                params: { path: { workspace, rule: deletingRule.id } },
              }),
            );
            reloadAll();
          }}
        >
          {kindLabel(deletingRule.kind)} alerts will still be raised and listed, but no longer sent to{' '}
          {deletingRule.destinations.map((d) => d.name).join(', ') || 'any destination'} by this rule.
        </Confirm>
      )}
      {editingDestination && (
        <DestinationForm
          destination={editingDestination === 'new' ? undefined : editingDestination}
          onClose={(saved) => {
            setEditingDestination(undefined);
            if (saved) reloadAll();
          }}
        />
      )}
      {deletingDestination && (
        <Confirm
          title={`Delete destination ${deletingDestination.name}?`}
          confirmLabel="Delete destination"
          onClose={() => setDeletingDestination(undefined)}
          onConfirm={async () => {
            await call(
              api.DELETE('/api/v1/workspaces/{workspace}/alert-destinations/{destination}', {
                params: { path: { workspace, destination: deletingDestination.id } },
              }),
            );
            reloadAll();
          }}
        >
          {deletingDestination.rules.length > 0
            ? `The rules ${deletingDestination.rules.join(', ')} stop sending to it (they stay), and its pending deliveries are dropped.`
            : 'No rule sends to it. Its pending deliveries are dropped.'}
        </Confirm>
      )}
    </>
  );
}

function thresholdText(r: Rule): string {
  return r.threshold !== undefined ? `${r.threshold} failures/min` : '—';
}

function SendTest({ destination }: { destination: Destination }) {
  const { workspace } = useSession();
  const [busy, setBusy] = useState(false);
  const [result, setResult] = useState<TestResult | { error: string; ok: false }>();
  return (
    <span class="send-test">
      <button
        type="button"
        class="btn btn-small"
        disabled={busy}
        aria-busy={busy}
        aria-label={`Send test to ${destination.name}`}
        onClick={async () => {
          setBusy(true);
          setResult(undefined);
          try {
            setResult(
              await call(
                api.POST('/api/v1/workspaces/{workspace}/alert-destinations/{destination}/send-test', {
                  params: { path: { workspace, destination: destination.id } },
                }),
              ),
            );
          } catch (e) {
            setResult({ ok: false, error: (e as Error).message });
          } finally {
            setBusy(false);
          }
        }}
      >
        {busy && <span class="spinner spinner-inline" aria-hidden="true" />}
        {busy ? 'Sending…' : 'Send test'}
      </button>{' '}
      <span role="status" aria-live="polite" data-testid={`send-test-${destination.name}`}>
        {result &&
          (result.ok ? (
            <Badge tone="good">
              Delivered: HTTP {'status' in result ? result.status : ''}
              {'durationMs' in result ? ` in ${result.durationMs} ms` : ''}
            </Badge>
          ) : (
            <Badge tone="bad">Failed: {result.error}</Badge>
          ))}
      </span>
    </span>
  );
}

function RuleForm({
  rule,
  destinations,
  gateways,
  onClose,
}: {
  rule?: Rule;
  destinations: Destination[];
  gateways: { id: string; name: string }[];
  onClose: (saved: boolean) => void;
}) {
  const { workspace } = useSession();
  const [name, setName] = useState(rule?.name ?? '');
  const [kind, setKind] = useState<RuleBody['kind']>((rule?.kind as RuleBody['kind']) ?? 'auth_failure_spike');
  const [gateway, setGateway] = useState(rule?.gateway ?? '');
  const [threshold, setThreshold] = useState(rule?.threshold !== undefined ? String(rule.threshold) : '');
  const [chosen, setChosen] = useState<string[]>(rule?.destinations.map((d) => d.id) ?? []);
  const [enabled, setEnabled] = useState(rule?.enabled ?? true);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const thresholdError =
    threshold !== '' && !/^[1-9]\d{0,6}$/.test(threshold) ? 'a whole number of failures per minute, 1 or more' : '';
  return (
    <Modal title={rule ? `Edit rule ${rule.name}` : 'New alert rule'} onClose={() => onClose(false)}>
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          if (thresholdError) return;
          setBusy(true);
          setError(undefined);
          const body: RuleBody = {
            name,
            kind,
            ...(gateway ? { gateway } : {}),
            ...(kind === 'auth_failure_spike' && threshold ? { threshold: Number(threshold) } : {}),
            destinations: chosen,
            enabled,
          };
          try {
            if (rule)
              await call(
                api.PUT('/api/v1/workspaces/{workspace}/alert-rules/{rule}', {
                  params: { path: { workspace, rule: rule.id } },
                  body,
                }),
              );
            else
              await call(
                api.POST('/api/v1/workspaces/{workspace}/alert-rules', { params: { path: { workspace } }, body }),
              );
            onClose(true);
          } catch (err) {
            setError((err as Error).message);
            setBusy(false);
          }
        }}
      >
        {error && <Alert>{error}</Alert>}
        <Field label="Name" id="rule-name" hint="Letters, digits, dot, dash and underscore.">
          <input
            {...described('rule-name', undefined, true)}
            required
            value={name}
            onInput={(e) => setName(e.currentTarget.value)}
          />
        </Field>
        <Field label="Alert" id="rule-kind">
          <select
            {...described('rule-kind')}
            value={kind}
            onChange={(e) => setKind(e.currentTarget.value as RuleBody['kind'])}
          >
            {KINDS.map((k) => (
              <option key={k.value} value={k.value}>
                {k.label}
              </option>
            ))}
          </select>
        </Field>
        <Field label="Gateway" id="rule-gateway">
          <select {...described('rule-gateway')} value={gateway} onChange={(e) => setGateway(e.currentTarget.value)}>
            <option value="">All gateways</option>
            <option value="cloud">cloud (the control plane's gateway)</option>
            {gateways.map((g) => (
              <option key={g.id} value={g.id}>
                {g.name}
              </option>
            ))}
          </select>
        </Field>
        {kind === 'auth_failure_spike' && (
          <Field
            label="Threshold (failures per minute)"
            id="rule-threshold"
            hint="Empty: the control plane's default (20). The lowest enabled threshold raises the alert."
            error={thresholdError}
          >
            <input
              {...described('rule-threshold', thresholdError, true)}
              inputMode="numeric"
              value={threshold}
              onInput={(e) => setThreshold(e.currentTarget.value.trim())}
            />
          </Field>
        )}
        <fieldset class="endpoints">
          <legend>Send to</legend>
          {destinations.length === 0 && <p class="muted">No destinations yet: create one below the rules.</p>}
          {destinations.map((d) => (
            <label class="check" key={d.id}>
              <input
                type="checkbox"
                checked={chosen.includes(d.id)}
                onChange={(e) =>
                  setChosen((c) => (e.currentTarget.checked ? [...c, d.id] : c.filter((x) => x !== d.id)))
                }
              />
              {d.name} <span class="muted small">{d.url}</span>
            </label>
          ))}
        </fieldset>
        <label class="check">
          <input type="checkbox" checked={enabled} onChange={(e) => setEnabled(e.currentTarget.checked)} />
          Enabled
        </label>
        <div class="form-actions">
          <button type="button" class="btn" onClick={() => onClose(false)}>
            Cancel
          </button>
          <Submit busy={busy}>{busy ? 'Saving…' : rule ? 'Save rule' : 'Create rule'}</Submit>
        </div>
      </form>
    </Modal>
  );
}

function DestinationForm({ destination, onClose }: { destination?: Destination; onClose: (saved: boolean) => void }) {
  const { workspace } = useSession();
  const [name, setName] = useState(destination?.name ?? '');
  const [url, setUrl] = useState(destination?.url ?? '');
  const [rotate, setRotate] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const [secret, setSecret] = useState<string>();
  const urlError = url !== '' && !/^https?:\/\/[^\s]+$/i.test(url) ? 'an http:// or https:// URL' : '';
  if (secret)
    return (
      <Modal title="Signing secret" onClose={() => onClose(true)}>
        <Alert kind="success">
          Destination <strong>{name}</strong> saved. Its signing secret is shown this once: the receiver checks{' '}
          <code>X-Gatehouse-Signature</code> (HMAC-SHA256 of the timestamp, a dot and the body) with it.
        </Alert>
        <div class="code">
          <div class="code-head">
            <span class="small muted">Signing secret</span>
            <CopyButton text={secret} />
          </div>
          <pre tabIndex={0} aria-label="Signing secret">
            <code>{secret}</code>
          </pre>
        </div>
        <div class="form-actions">
          <button type="button" class="btn btn-primary" onClick={() => onClose(true)}>
            Done
          </button>
        </div>
      </Modal>
    );
  return (
    <Modal
      title={destination ? `Edit destination ${destination.name}` : 'New webhook destination'}
      onClose={() => onClose(false)}
    >
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          if (urlError) return;
          setBusy(true);
          setError(undefined);
          try {
            if (destination) {
              const out = await call(
                api.PATCH('/api/v1/workspaces/{workspace}/alert-destinations/{destination}', {
                  params: { path: { workspace, destination: destination.id } },
                  body: { name, url, ...(rotate ? { rotateSecret: true } : {}) },
                }),
              );
              if (out.secret) setSecret(out.secret);
              else onClose(true);
            } else {
              const out = await call(
                api.POST('/api/v1/workspaces/{workspace}/alert-destinations', {
                  params: { path: { workspace } },
                  body: { name, url },
                }),
              );
              setSecret(out.secret);
            }
          } catch (err) {
            setError((err as Error).message);
          } finally {
            setBusy(false);
          }
        }}
      >
        {error && <Alert>{error}</Alert>}
        <Field label="Name" id="dest-name" hint="Letters, digits, dot, dash and underscore.">
          <input
            {...described('dest-name', undefined, true)}
            required
            value={name}
            onInput={(e) => setName(e.currentTarget.value)}
          />
        </Field>
        <Field
          label="URL"
          id="dest-url"
          hint="Receives a POST with the alert as JSON when it is raised and when it is resolved. Redirects are not followed."
          error={urlError}
        >
          <input
            {...described('dest-url', urlError, true)}
            required
            type="url"
            value={url}
            onInput={(e) => setUrl(e.currentTarget.value.trim())}
          />
        </Field>
        {destination && (
          <label class="check">
            <input type="checkbox" checked={rotate} onChange={(e) => setRotate(e.currentTarget.checked)} />
            Rotate the signing secret (the receiver must be given the new one)
          </label>
        )}
        <div class="form-actions">
          <button type="button" class="btn" onClick={() => onClose(false)}>
            Cancel
          </button>
          <Submit busy={busy}>{busy ? 'Saving…' : destination ? 'Save destination' : 'Create destination'}</Submit>
        </div>
      </form>
    </Modal>
  );
}
