/**
 * Analytics: requests, error rate, latency (p50, p95, p99) and 429s over time from the control plane's analytics
 * operations, optionally split by gateway, collection, endpoint or client; a time-range picker and auto-refresh;
 * the top clients and the top refused requests with their error codes.
 */
import { lazy, Suspense } from 'preact/compat';
import { useEffect, useMemo, useState } from 'preact/hooks';
import { api, call } from '../../api/client';
import type { Ok } from '../../api/types';
import { useSession } from '../../session';
import { described, Field, formatTime } from '../../ui/form';
import { useLoad } from '../../ui/load';
import { Empty, ErrorState, Loading, PageHeader } from '../../ui/states';
import { DataTable } from '../../ui/table';

const Chart = lazy(() => import('./chart'));

const RANGES = [
  { value: '15m', label: 'Last 15 minutes', bucket: '1m' },
  { value: '1h', label: 'Last hour', bucket: '1m' },
  { value: '6h', label: 'Last 6 hours', bucket: '5m' },
  { value: '24h', label: 'Last 24 hours', bucket: '15m' },
  { value: '7d', label: 'Last 7 days', bucket: '1h' },
] as const;
const GROUPS = [
  { value: '', label: 'All traffic' },
  { value: 'gateway', label: 'By gateway' },
  { value: 'collection', label: 'By collection' },
  { value: 'endpoint', label: 'By endpoint' },
  { value: 'client', label: 'By client' },
];
const COLORS = ['#2563eb', '#16a34a', '#d97706', '#9333ea', '#0891b2', '#dc2626', '#64748b'];

type SeriesResult = Ok<'getAnalyticsSeries'>;
type Dimension = NonNullable<SeriesResult['groupBy']>;

export function AnalyticsPage() {
  const { workspace } = useSession();
  const [range, setRange] = useState('1h');
  const [groupBy, setGroupBy] = useState('');
  const [auto, setAuto] = useState(true);
  const bucket = RANGES.find((r) => r.value === range)!.bucket;
  const data = useLoad(async () => {
    const path = { workspace };
    const [total, grouped, clients, refusals] = await Promise.all([
      call(
        api.GET('/api/v1/workspaces/{workspace}/analytics/series', {
          params: { path, query: { from: range, bucket } },
        }),
      ),
      groupBy
        ? call(
            api.GET('/api/v1/workspaces/{workspace}/analytics/series', {
              params: { path, query: { from: range, bucket, groupBy: groupBy as Dimension } },
            }),
          )
        : Promise.resolve(undefined),
      call(
        api.GET('/api/v1/workspaces/{workspace}/analytics/top-clients', {
          params: { path, query: { from: range } },
        }),
      ),
      call(
        api.GET('/api/v1/workspaces/{workspace}/analytics/refusals', {
          params: { path, query: { from: range } },
        }),
      ),
    ]);
    return { total, grouped, clients: clients.items, refusals: refusals.items };
  }, [range, bucket, groupBy]);
  useEffect(() => {
    if (!auto) return;
    const t = setInterval(() => data.reload(), 10_000);
    return () => clearInterval(t);
  }, [auto, data.reload]);
  const view = useMemo(() => {
    if (!data.data) return undefined;
    const main = data.data.total.series[0];
    const points = main?.points ?? [];
    const times = points.map((p) => Date.parse(p.at) / 1000);
    const pick = (f: (p: SeriesResult['series'][number]['points'][number]) => number | null) => points.map(f);
    const byGroup = data.data.grouped?.series.map((s, i) => {
      const at = new Map(s.points.map((p) => [p.at, p.requests]));
      return {
        label: s.groupName ?? s.group ?? '(none)',
        values: points.map((p) => at.get(p.at) ?? 0),
        color: COLORS[i % COLORS.length]!,
      };
    });
    return {
      times,
      totals: main?.totals,
      requests: byGroup ?? [{ label: 'requests', values: pick((p) => p.requests), color: COLORS[0]! }],
      errorRate: pick((p) => (p.requests ? 100 * p.errorRate : null)),
      p50: pick((p) => (p.requests ? p.latencyMs.p50 : null)),
      p95: pick((p) => (p.requests ? p.latencyMs.p95 : null)),
      p99: pick((p) => (p.requests ? p.latencyMs.p99 : null)),
      limited: pick((p) => p.rateLimited),
    };
  }, [data.data]);
  const totals = view?.totals;
  return (
    <>
      <PageHeader
        title="Analytics"
        description="Traffic through the cloud gateway and the edge gateways."
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
            <Field label="Split" id="group">
              <select {...described('group')} value={groupBy} onChange={(e) => setGroupBy(e.currentTarget.value)}>
                {GROUPS.map((g) => (
                  <option key={g.value} value={g.value}>
                    {g.label}
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
                {totals?.requests ?? 0}
              </div>
            </div>
            <div class="card stat">
              <div class="small muted">Error rate</div>
              <div class="stat-value">{totals?.requests ? `${(100 * totals.errorRate).toFixed(1)} %` : '—'}</div>
            </div>
            <div class="card stat">
              <div class="small muted">Latency p95</div>
              <div class="stat-value">{totals?.requests ? `${totals.latencyMs.p95.toFixed(0)} ms` : '—'}</div>
            </div>
            <div class="card stat">
              <div class="small muted">Rate limited (429)</div>
              <div class="stat-value">{totals?.rateLimited ?? 0}</div>
            </div>
          </div>
          {!totals?.requests ? (
            <Empty title="No requests in this range">
              Call an API through a gateway with a client's token; requests appear here within a few seconds.
            </Empty>
          ) : (
            <Suspense fallback={<Loading what="charts" />}>
              <div class="charts">
                <Chart title={`Requests per ${bucket}`} times={view.times} series={view.requests} />
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
                    { label: 'p50', values: view.p50, color: '#0891b2' },
                    { label: 'p95', values: view.p95, color: '#9333ea' },
                    { label: 'p99', values: view.p99, color: '#d97706' },
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
                rows={data.data!.clients}
                rowKey={(c) => c.clientId}
                pageSize={10}
                initialSort={{ key: 'requests', dir: 'desc' }}
                empty={<Empty title="No client traffic" />}
                columns={[
                  {
                    key: 'name',
                    label: 'Client',
                    value: (c) => (c.clientId === '-' ? '(no key recognised)' : (c.clientName ?? c.clientId)),
                  },
                  { key: 'requests', label: 'Requests', value: (c) => c.requests },
                  {
                    key: 'errors',
                    label: 'Error rate',
                    value: (c) => c.errorRate,
                    render: (c) => `${(100 * c.errorRate).toFixed(1)} %`,
                  },
                  {
                    key: 'p95',
                    label: 'p95',
                    value: (c) => c.latencyMs.p95,
                    render: (c) => `${c.latencyMs.p95.toFixed(0)} ms`,
                  },
                ]}
              />
            </section>
            <section>
              <h2>Top refusals</h2>
              <DataTable
                label="Top refusals"
                rows={data.data!.refusals}
                rowKey={(r) => `${r.code} ${r.source} ${r.collection ?? ''} ${r.endpoint ?? ''} ${r.clientId ?? ''}`}
                pageSize={10}
                initialSort={{ key: 'count', dir: 'desc' }}
                empty={<Empty title="No refused requests" />}
                columns={[
                  { key: 'code', label: 'Error code', value: (r) => r.code, render: (r) => <code>{r.code}</code> },
                  {
                    key: 'where',
                    label: 'Where',
                    value: (r) => `${r.collection ?? ''} ${r.endpoint ?? ''} ${r.clientName ?? r.clientId ?? ''}`,
                  },
                  { key: 'count', label: 'Count', value: (r) => r.count },
                  {
                    key: 'last',
                    label: 'Last',
                    class: 'nowrap',
                    value: (r) => r.lastAt,
                    render: (r) => formatTime(r.lastAt),
                  },
                ]}
              />
            </section>
          </div>
        </>
      )}
    </>
  );
}
