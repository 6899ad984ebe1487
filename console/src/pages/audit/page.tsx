/** Audit log: who changed what and when, filterable by actor, action and resource, with before and after. */
import { useState } from 'preact/hooks';
import { api, call } from '../../api/client';
import type { Ok } from '../../api/types';
import { useSession } from '../../session';
import { Modal } from '../../ui/dialog';
import { described, Field, formatTime } from '../../ui/form';
import { useLoad } from '../../ui/load';
import { Empty, ErrorState, Loading, PageHeader } from '../../ui/states';
import { DataTable } from '../../ui/table';
import { lineDiff } from '../collections/detail';

type Entry = Ok<'listAuditLog'>['items'][number];

const json = (v: unknown) => (v === undefined ? '' : JSON.stringify(v, null, 2));

export function AuditPage() {
  const { workspace } = useSession();
  const [filters, setFilters] = useState({ actor: '', action: '', resourceType: '' });
  const [applied, setApplied] = useState(filters);
  const [pages, setPages] = useState<string[]>([]);
  const [shown, setShown] = useState<Entry>();
  const log = useLoad(async () => {
    const items: Entry[] = [];
    let cursor: string | undefined;
    // The first page, then each older page the user asked for.
    for (let i = 0; i <= pages.length; i++) {
      const r = await call(
        api.GET('/api/v1/workspaces/{workspace}/audit-log', {
          params: { path: { workspace }, query: { ...applied, cursor, limit: 100 } },
        }),
      );
      items.push(...r.items);
      cursor = r.nextCursor;
      if (!cursor) break;
    }
    return { items, more: cursor };
  }, [applied, pages.length]);
  return (
    <>
      <PageHeader
        title="Audit log"
        description="Every change made through the admin API or this console: who, what, when, before and after."
      />
      <form
        class="filters"
        onSubmit={(e) => {
          e.preventDefault();
          setPages([]);
          setApplied(filters);
        }}
      >
        <Field label="Actor id" id="audit-actor">
          <input
            {...described('audit-actor')}
            value={filters.actor}
            placeholder="usr_… or cli_…"
            onInput={(e) => setFilters({ ...filters, actor: e.currentTarget.value })}
          />
        </Field>
        <Field label="Action" id="audit-action">
          <input
            {...described('audit-action')}
            value={filters.action}
            placeholder="createClient"
            onInput={(e) => setFilters({ ...filters, action: e.currentTarget.value })}
          />
        </Field>
        <Field label="Resource type" id="audit-type">
          <input
            {...described('audit-type')}
            value={filters.resourceType}
            placeholder="client, role, collection…"
            onInput={(e) => setFilters({ ...filters, resourceType: e.currentTarget.value })}
          />
        </Field>
        <button type="submit" class="btn">
          Apply filters
        </button>
      </form>
      {!log.data && log.state === 'loading' && <Loading what="the audit log" />}
      {log.state === 'error' && <ErrorState message={log.error} retry={log.reload} />}
      {log.data && (
        <>
          <DataTable
            label="Audit entries"
            rows={log.data.items}
            rowKey={(e) => e.id}
            initialSort={{ key: 'at', dir: 'desc' }}
            empty={
              <Empty title="No changes recorded">Changes made through the admin API or this console appear here.</Empty>
            }
            columns={[
              { key: 'at', label: 'When', class: 'nowrap', value: (e) => e.at, render: (e) => formatTime(e.at) },
              {
                key: 'actor',
                label: 'Who',
                value: (e) => `${e.actor.name ?? ''} ${e.actor.id}`,
                render: (e) => (
                  <>
                    {e.actor.name ?? e.actor.id}
                    <div class="muted small">{e.actor.kind}</div>
                  </>
                ),
              },
              { key: 'action', label: 'Action', value: (e) => e.action, render: (e) => <code>{e.action}</code> },
              {
                key: 'resource',
                label: 'Resource',
                value: (e) => `${e.resourceType} ${e.resourceId ?? ''}`,
                render: (e) => (
                  <>
                    {e.resourceType} <span class="muted small">{e.resourceId}</span>
                  </>
                ),
              },
              { key: 'ip', label: 'From', value: (e) => e.ip ?? '' },
              {
                key: 'details',
                label: 'Details',
                render: (e) => (
                  <button type="button" class="btn btn-small" onClick={() => setShown(e)}>
                    Before / after
                  </button>
                ),
              },
            ]}
          />
          {log.data.more && (
            <div class="form-actions">
              <button
                type="button"
                class="btn"
                onClick={() => setPages([...pages, log.data!.more!])}
                aria-busy={log.state === 'loading'}
              >
                {log.state === 'loading' ? 'Loading…' : 'Load older entries'}
              </button>
            </div>
          )}
        </>
      )}
      {shown && (
        <Modal title={`${shown.action} · ${formatTime(shown.at)}`} onClose={() => setShown(undefined)} wide>
          <p class="small muted">
            Request <code>{shown.requestId}</code> by {shown.actor.kind} {shown.actor.name ?? ''}{' '}
            <code>{shown.actor.id}</code>
          </p>
          <pre class="diff" tabIndex={0} aria-label="Before and after">
            {lineDiff(json(shown.before), json(shown.after)).map((l, i) => (
              <div key={i} class={l.kind === '+' ? 'add' : l.kind === '-' ? 'del' : ''}>
                {l.kind} {l.text}
              </div>
            ))}
          </pre>
        </Modal>
      )}
    </>
  );
}
