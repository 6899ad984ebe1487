/**
 * Analytics: requests, error rate, latency and 429s over time from the gateways' telemetry, with a range picker,
 * auto-refresh, the top clients and the top refused requests with their error codes. Uses the per-minute telemetry
 * operation (counts, duration sums and maxima per minute); percentiles need the analytics operation.
 */
import { lazy, Suspense } from 'preact/compat';
import { useEffect, useMemo, useState } from 'preact/hooks';
import { api, call, undocumentedQuery } from '../../api/client';
import { useSession } from '../../session';
import { described, Field } from '../../ui/form';
import { useLoad } from '../../ui/load';
import { Empty, ErrorState, Loading, PageHeader } from '../../ui/states';
import { DataTable } from '../../ui/table';

const Chart = lazy(() => import('./chart'));

const RANGES = [
  { value: '15m', label: 'Last 15 minutes', minutes: 15 },
  { value: '1h', label: 'Last hour', minutes: 60 },
  { value: '6h', label: 'Last 6 hours', minutes: 360 },
  { value: '24h', label: 'Last 24 hours', minutes: 1440 },
];

export function AnalyticsPage() {
  const { workspace } = useSession();
  const [range, setRange] = useState('1h');
  const [auto, setAuto] = useState(true);
  const minutes = RANGES.find((r) => r.value === range)!.minutes;
  const data = useLoad(async () => {
    const [telemetry, refusals, clients] = await Promise.all([
      call(
        api.GET('/api/v1/workspaces/{workspace}/telemetry', {
          params: { path: { workspace }, query: undocumentedQuery({ since: range }) },
        }),
      ),
      call(
        api.GET('/api/v1/workspaces/{workspace}/security-events', {
          params: { path: { workspace }, query: undocumentedQuery({ since: range, limit: '1000' }) },
        }),
      ),
      call(api.GET('/api/v1/workspaces/{workspace}/clients', { params: { path: { workspace } } })).catch(() => ({
        items: [],
      })),
    ]);
    return { telemetry, refusals: refusals.items, clients: clients.items };
  }, [range]);
  useEffect(() => {
    if (!auto) return;
    const t = setInterval(() => data.reload(), 10_000);
    return () => clearInterval(t);
  }, [auto, data.reload]);
  const view = useMemo(() => {
    if (!data.data) return undefined;
    const rows = data.data.telemetry.items;
    const end = Math.ceil(Date.now() / 60_000) * 60;
    const start = end - minutes * 60;
    const times: number[] = [];
    for (let t = start; t < end; t += 60) times.push(t);
    const index = new Map(times.map((t, i) => [t, i]));
    const zero = () => times.map(() => 0);
    const requests = zero();
    const errors = zero();
    const limited = zero();
    const durationSum = zero();
    const durationMax = zero();
    const byClient = new Map<string, { requests: number; errors: number }>();
    for (const r of rows) {
      const i = index.get(Date.parse(r.minute) / 1000);
      if (i === undefined) continue;
      requests[i]! += r.count;
      if (r.status >= 400) errors[i]! += r.count;
      if (r.status === 429) limited[i]! += r.count;
      durationSum[i]! += r.durationMsSum;
      durationMax[i] = Math.max(durationMax[i]!, r.durationMsMax);
      const c = byClient.get(r.clientId) ?? { requests: 0, errors: 0 };
      c.requests += r.count;
      if (r.status >= 400) c.errors += r.count;
      byClient.set(r.clientId, c);
    }
    const names = new Map(data.data.clients.map((c) => [c.id, c.name]));
    const refusals = new Map<string, { reason: string; kind: string; count: number; last: string }>();
    for (const e of data.data.refusals) {
      const r = refusals.get(e.reason) ?? { reason: e.reason, kind: e.kind, count: 0, last: e.at };
      r.count++;
      if (e.at > r.last) r.last = e.at;
      refusals.set(e.reason, r);
    }
    const total = requests.reduce((a, b) => a + b, 0);
    return {
      times,
      total,
      errorsTotal: errors.reduce((a, b) => a + b, 0),
      limitedTotal: limited.reduce((a, b) => a + b, 0),
      requests,
      errorRate: requests.map((n, i) => (n ? (100 * errors[i]!) / n : null)),
      avg: requests.map((n, i) => (n ? durationSum[i]! / n : null)),
      max: requests.map((n, i) => (n ? durationMax[i]! : null)),
      limited,
      topClients: [...byClient]
        .map(([id, v]) => ({ id, name: id === '-' ? '(no key recognised)' : (names.get(id) ?? id), ...v }))
        .sort((a, b) => b.requests - a.requests),
      topRefusals: [...refusals.values()].sort((a, b) => b.count - a.count),
    };
  }, [data.data, minutes]);
  return (
    <>
      <PageHeader
        title="Analytics"
        description="Traffic through the cloud gateway and the edge gateways, per minute."
        actions={
          <div class="toolbar">
            <Field label="Time range" id="range">
              <select {...described('range')} value={range} onChange={(e) => setRange(e.currentTarget.value)}>
                {RANGES.map((r) => (
                  <option key={r.value} value={r.value}>
                    {r.label}
                  </option>
                ))}
              </select>
            </Field>
            <label class="check">
              <input type="checkbox" checked={auto} onChange={() => setAuto(!auto)} />
              Auto-refresh (10 s)
            </label>
            <button type="button" class="btn" onClick={data.reload} aria-busy={data.state === 'loading'}>
              {data.state === 'loading' ? 'Refreshing…' : 'Refresh'}
            </button>
          </div>
        }
      />
      {!data.data && data.state === 'loading' && <Loading what="analytics" />}
      {data.state === 'error' && <ErrorState message={data.error} retry={data.reload} />}
      {view && (
        <>
          <div class="cards">
            <div class="card stat">
              <div class="small muted">Requests</div>
              <div class="stat-value" data-testid="requests-total">
                {view.total}
              </div>
            </div>
            <div class="card stat">
              <div class="small muted">Error rate</div>
              <div class="stat-value">
                {view.total ? `${((100 * view.errorsTotal) / view.total).toFixed(1)} %` : '—'}
              </div>
            </div>
            <div class="card stat">
              <div class="small muted">Rate limited (429)</div>
              <div class="stat-value">{view.limitedTotal}</div>
            </div>
            <div class="card stat">
              <div class="small muted">Refused requests</div>
              <div class="stat-value">{data.data!.refusals.length}</div>
            </div>
          </div>
          {view.total === 0 ? (
            <Empty title="No requests in this range">
              Call an API through a gateway with a client's token; requests appear here within a few seconds.
            </Empty>
          ) : (
            <Suspense fallback={<Loading what="charts" />}>
              <div class="charts">
                <Chart
                  title="Requests per minute"
                  times={view.times}
                  series={[{ label: 'requests', values: view.requests, color: '#2563eb' }]}
                />
                <Chart
                  title="Error rate"
                  unit=" %"
                  times={view.times}
                  series={[{ label: 'errors %', values: view.errorRate, color: '#dc2626' }]}
                />
                <Chart
                  title="Latency"
                  unit=" ms"
                  times={view.times}
                  series={[
                    { label: 'average', values: view.avg, color: '#0891b2' },
                    { label: 'max', values: view.max, color: '#9333ea' },
                  ]}
                />
                <Chart
                  title="Rate limited (429)"
                  times={view.times}
                  series={[{ label: '429s', values: view.limited, color: '#d97706' }]}
                />
              </div>
            </Suspense>
          )}
          <div class="grid-2">
            <section>
              <h2>Top clients</h2>
              <DataTable
                label="Top clients"
                rows={view.topClients}
                rowKey={(c) => c.id}
                pageSize={10}
                initialSort={{ key: 'requests', dir: 'desc' }}
                empty={<Empty title="No client traffic" />}
                columns={[
                  { key: 'name', label: 'Client', value: (c) => c.name },
                  { key: 'requests', label: 'Requests', value: (c) => c.requests },
                  { key: 'errors', label: 'Errors', value: (c) => c.errors },
                ]}
              />
            </section>
            <section>
              <h2>Top refusals</h2>
              <DataTable
                label="Top refusals"
                rows={view.topRefusals}
                rowKey={(r) => r.reason}
                pageSize={10}
                initialSort={{ key: 'count', dir: 'desc' }}
                empty={<Empty title="No refused requests" />}
                columns={[
                  {
                    key: 'reason',
                    label: 'Error code',
                    value: (r) => r.reason,
                    render: (r) => <code>{r.reason}</code>,
                  },
                  { key: 'kind', label: 'Kind', value: (r) => r.kind },
                  { key: 'count', label: 'Count', value: (r) => r.count },
                ]}
              />
            </section>
          </div>
        </>
      )}
    </>
  );
}
