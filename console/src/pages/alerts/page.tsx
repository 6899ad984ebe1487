/** Alerts: the alerts the control plane raised (gateway connectivity, version mismatch, auth-failure spikes…) and their webhook delivery. */
import { api, call } from '../../api/client';
import { useSession } from '../../session';
import { formatTime } from '../../ui/form';
import { useLoad } from '../../ui/load';
import { Badge, Empty, ErrorState, Loading, PageHeader } from '../../ui/states';
import { DataTable } from '../../ui/table';

export function AlertsPage() {
  const { workspace } = useSession();
  const alerts = useLoad(
    async () =>
      (await call(api.GET('/api/v1/workspaces/{workspace}/alerts', { params: { path: { workspace } } }))).items,
    [workspace],
  );
  return (
    <>
      <PageHeader
        title="Alerts"
        description="Raised when a gateway loses its connection, runs a mismatched version, or sees a spike of authentication failures. Rules and the webhook destination are set when the control plane starts (docs/telemetry.md)."
        actions={
          <button type="button" class="btn" onClick={alerts.reload}>
            Refresh
          </button>
        }
      />
      {!alerts.data && alerts.state === 'loading' && <Loading what="alerts" />}
      {alerts.state === 'error' && <ErrorState message={alerts.error} retry={alerts.reload} />}
      {alerts.data && (
        <DataTable
          label="Alerts"
          rows={alerts.data}
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
              key: 'delivered',
              label: 'Webhook',
              value: (a) => a.deliveredAt ?? '',
              render: (a) =>
                a.deliveredAt ? `delivered ${formatTime(a.deliveredAt)}` : `${a.deliveryAttempts} attempt(s)`,
            },
          ]}
        />
      )}
    </>
  );
}
