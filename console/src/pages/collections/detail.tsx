/**
 * A collection: its endpoints, edit (a new draft revision), publish, the version history with a diff between
 * versions and roll back (publish an earlier version again), and promote the project's published collections to
 * another environment.
 */
import { useState } from 'preact/hooks';
import { api, call } from '../../api/client';
import type { Ok } from '../../api/types';
import { link } from '../../router';
import { useSession } from '../../session';
import { useActorNames } from '../../ui/actors';
import { Confirm, Modal } from '../../ui/dialog';
import { described, Field, formatTime, Submit } from '../../ui/form';
import { useLoad } from '../../ui/load';
import { Alert, Badge, Empty, ErrorState, Loading, PageHeader } from '../../ui/states';
import { DataTable } from '../../ui/table';
import { CollectionForm } from './form';
import { useEdgeGateways, useProjects } from './page';

type Version = Ok<'listCollectionVersions'>['items'][number];

/** A line diff of two JSON documents (longest common subsequence over lines; collections are small). */
const NOTHING_TO_PUBLISH = `Nothing to publish: the draft equals the published version. Edit the collection or import an OpenAPI document to change the draft.`;

export function lineDiff(a: string, b: string): { kind: ' ' | '+' | '-'; text: string }[] {
  const x = a.split('\n');
  const y = b.split('\n');
  const lcs: number[][] = Array.from({ length: x.length + 1 }, () => new Array<number>(y.length + 1).fill(0));
  for (let i = x.length - 1; i >= 0; i--)
    for (let j = y.length - 1; j >= 0; j--)
      lcs[i]![j] = x[i] === y[j] ? lcs[i + 1]![j + 1]! + 1 : Math.max(lcs[i + 1]![j]!, lcs[i]![j + 1]!);
  const out: { kind: ' ' | '+' | '-'; text: string }[] = [];
  let i = 0;
  let j = 0;
  while (i < x.length && j < y.length) {
    if (x[i] === y[j]) {
      out.push({ kind: ' ', text: x[i++]! });
      j++;
    } else if (lcs[i + 1]![j]! >= lcs[i]![j + 1]!) out.push({ kind: '-', text: x[i++]! });
    else out.push({ kind: '+', text: y[j++]! });
  }
  while (i < x.length) out.push({ kind: '-', text: x[i++]! });
  while (j < y.length) out.push({ kind: '+', text: y[j++]! });
  return out;
}

export function CollectionDetailPage({ env, name }: { env: string; name: string }) {
  const { workspace, can, me } = useSession();
  const path = { workspace, environment: env, collection: name };
  const [dialog, setDialog] = useState<
    'edit' | 'publish' | 'promote' | 'delete' | { rollback: number } | { diff: [Version, Version] }
  >();
  const [notice, setNotice] = useState<string>();
  const col = useLoad(
    () =>
      call(
        api.GET('/api/v1/workspaces/{workspace}/environments/{environment}/collections/{collection}', {
          params: { path },
        }),
      ),
    [env, name],
  );
  const versions = useLoad(
    async () =>
      (
        await call(
          api.GET('/api/v1/workspaces/{workspace}/environments/{environment}/collections/{collection}/versions', {
            params: { path },
          }),
        )
      ).items.sort((a, b) => b.version - a.version),
    [env, name],
  );
  const actorNames = useActorNames((versions.data ?? []).flatMap((v) => (v.publishedBy ? [v.publishedBy] : [])));
  const projects = useProjects();
  const gateways = useEdgeGateways(env);
  const reload = () => (col.reload(), versions.reload());
  if (!col.data)
    return col.state === 'error' ? (
      <ErrorState message={col.error} retry={col.reload} />
    ) : (
      <Loading what="the collection" />
    );
  const c = col.data;
  const writable = can('admin:collections:write');
  const nothingToPublish = !!c.publishedVersion && !c.unpublishedChanges;
  return (
    <>
      <nav class="crumbs" aria-label="Breadcrumb">
        <a {...link('/collections')}>Collections</a> / {env} / {c.name}
      </nav>
      <PageHeader
        title={c.name}
        description={`${c.basePath} → ${c.upstream.url} · project ${c.project} · ${
          c.target?.type === 'edge' ? `edge gateway ${c.target.gateway}` : 'cloud gateway'
        }`}
        actions={
          <>
            {writable && (
              <button type="button" class="btn" onClick={() => setDialog('edit')}>
                Edit
              </button>
            )}
            {writable && (
              <a class="btn" {...link(`/collections/${env}/${encodeURIComponent(name)}/import`)}>
                Import OpenAPI…
              </a>
            )}
            {can('admin:collections:publish') && (
              <button
                type="button"
                class="btn btn-primary"
                disabled={nothingToPublish}
                title={nothingToPublish ? NOTHING_TO_PUBLISH : undefined}
                aria-describedby={nothingToPublish ? 'publish-why' : undefined}
                onClick={() => setDialog('publish')}
              >
                Publish
              </button>
            )}
            {can('admin:deploy') && me.workspace.devEnvironment === env && (
              <button type="button" class="btn" onClick={() => setDialog('promote')}>
                Promote…
              </button>
            )}
            {writable && (
              <button type="button" class="btn btn-danger" onClick={() => setDialog('delete')}>
                Delete
              </button>
            )}
          </>
        }
      />
      {notice && <Alert kind="success">{notice}</Alert>}
      {nothingToPublish && can('admin:collections:publish') && (
        <p id="publish-why" class="muted small">
          {NOTHING_TO_PUBLISH}
        </p>
      )}
      <p>
        {c.publishedVersion ? (
          <Badge tone="good">published v{c.publishedVersion}</Badge>
        ) : (
          <Badge tone="warn">never published: gateways do not serve it yet</Badge>
        )}{' '}
        {c.publishedVersion && c.unpublishedChanges && <Badge tone="info">the draft has unpublished changes</Badge>}
      </p>
      <h2>Endpoints</h2>
      <DataTable
        label="Endpoints"
        rows={c.endpoints}
        rowKey={(e) => `${e.method} ${e.path}`}
        empty={<Empty title="No endpoints" />}
        columns={[
          { key: 'method', label: 'Method', value: (e) => e.method, render: (e) => <code>{e.method}</code> },
          {
            key: 'path',
            label: 'Path',
            value: (e) => c.basePath.replace(/\/$/, '') + e.path,
            render: (e) => <code>{e.path}</code>,
          },
          {
            key: 'permission',
            label: 'Permission',
            value: (e) => e.permission,
            render: (e) => <code>{e.permission}</code>,
          },
        ]}
      />
      <h2>Version history</h2>
      {versions.state === 'error' && <ErrorState message={versions.error} retry={versions.reload} />}
      {!versions.data && versions.state === 'loading' && <Loading what="versions" />}
      {versions.data && (
        <DataTable
          label="Versions"
          rows={versions.data}
          rowKey={(v) => String(v.version)}
          empty={<Empty title="Not published yet">Publish the draft to create version 1.</Empty>}
          columns={[
            {
              key: 'version',
              label: 'Version',
              value: (v) => v.version,
              render: (v) => (
                <>
                  v{v.version} {v.version === c.publishedVersion && <Badge tone="good">live</Badge>}
                  {v.restoredFrom !== undefined && <span class="muted small"> (restores v{v.restoredFrom})</span>}
                </>
              ),
            },
            {
              key: 'at',
              label: 'Published',
              class: 'nowrap',
              value: (v) => v.publishedAt,
              render: (v) => formatTime(v.publishedAt),
            },
            {
              key: 'by',
              label: 'By',
              value: (v) => (v.publishedBy ? (actorNames.get(v.publishedBy) ?? v.publishedBy) : ''),
              render: (v) =>
                v.publishedBy && <span title={v.publishedBy}>{actorNames.get(v.publishedBy) ?? v.publishedBy}</span>,
            },
            {
              key: 'actions',
              label: 'Actions',
              render: (v) => {
                const previous = versions.data!.find((p) => p.version < v.version);
                return (
                  <div class="row-actions">
                    {previous && (
                      <button type="button" class="btn btn-small" onClick={() => setDialog({ diff: [previous, v] })}>
                        Diff with v{previous.version}
                      </button>
                    )}
                    {can('admin:collections:publish') && v.version !== c.publishedVersion && (
                      <button type="button" class="btn btn-small" onClick={() => setDialog({ rollback: v.version })}>
                        Roll back to v{v.version}
                      </button>
                    )}
                  </div>
                );
              },
            },
          ]}
        />
      )}
      {dialog === 'edit' && (
        <Modal title={`Edit ${c.name}`} onClose={() => setDialog(undefined)} wide>
          <CollectionForm
            initial={c}
            projects={projects.data ?? [c.project]}
            gateways={gateways.data ?? []}
            submitLabel="Save draft"
            onCancel={() => setDialog(undefined)}
            onSubmit={async (body) => {
              await call(
                api.PUT('/api/v1/workspaces/{workspace}/environments/{environment}/collections/{collection}', {
                  params: { path },
                  body,
                }),
              );
              setDialog(undefined);
              setNotice('Draft saved. Publish it to make the gateways serve it.');
              reload();
            }}
          />
        </Modal>
      )}
      {dialog === 'publish' && (
        <Confirm
          title={`Publish ${c.name}?`}
          confirmLabel="Publish"
          danger={false}
          onClose={() => setDialog(undefined)}
          onConfirm={async () => {
            const v = await call(
              api.POST('/api/v1/workspaces/{workspace}/environments/{environment}/collections/{collection}/publish', {
                params: { path },
                body: {},
              }),
            );
            setNotice(
              `Published v${v.version}: the ${c.target?.type === 'edge' ? 'edge' : 'cloud'} gateway serves it within a second.`,
            );
            reload();
          }}
        >
          <p>
            The draft becomes version {(versions.data?.[0]?.version ?? 0) + 1} and{' '}
            {c.target?.type === 'edge' ? `edge gateway ${c.target.gateway}` : 'the cloud gateway'} of {env} serves it
            within a second, replacing {c.publishedVersion ? `v${c.publishedVersion}` : 'nothing (first publish)'}.
          </p>
        </Confirm>
      )}
      {typeof dialog === 'object' && 'rollback' in dialog && (
        <Confirm
          title={`Roll back ${c.name} to v${dialog.rollback}?`}
          confirmLabel={`Roll back to v${dialog.rollback}`}
          onClose={() => setDialog(undefined)}
          onConfirm={async () => {
            const v = await call(
              api.POST('/api/v1/workspaces/{workspace}/environments/{environment}/collections/{collection}/publish', {
                params: { path },
                body: { version: dialog.rollback },
              }),
            );
            setNotice(`Rolled back: v${v.version} restores v${dialog.rollback} and is live now.`);
            reload();
          }}
        >
          <p>
            Version {dialog.rollback} is published again as a new version; gateways serve it within a second, replacing
            the live v{c.publishedVersion}. The draft is not changed.
          </p>
        </Confirm>
      )}
      {typeof dialog === 'object' && 'diff' in dialog && (
        <Modal
          title={`v${dialog.diff[0].version} → v${dialog.diff[1].version}`}
          onClose={() => setDialog(undefined)}
          wide
        >
          <pre class="diff" tabIndex={0} aria-label="Differences">
            {lineDiff(JSON.stringify(dialog.diff[0].spec, null, 2), JSON.stringify(dialog.diff[1].spec, null, 2)).map(
              (l, i) => (
                <div key={i} class={l.kind === '+' ? 'add' : l.kind === '-' ? 'del' : ''}>
                  {l.kind} {l.text}
                </div>
              ),
            )}
          </pre>
        </Modal>
      )}
      {dialog === 'promote' && (
        <Promote env={env} project={c.project} name={c.name} onClose={() => setDialog(undefined)} />
      )}
      {dialog === 'delete' && (
        <Confirm
          title={`Delete ${c.name}?`}
          confirmLabel="Delete collection"
          onClose={() => setDialog(undefined)}
          onConfirm={async () => {
            await call(
              api.DELETE('/api/v1/workspaces/{workspace}/environments/{environment}/collections/{collection}', {
                params: { path },
              }),
            );
            history.back();
          }}
        >
          <p>
            The gateways of {env} stop serving {c.basePath} within a second, and its {versions.data?.length ?? 0}{' '}
            published version(s) are deleted. Roles that name its endpoints keep the names but grant nothing here.
          </p>
        </Confirm>
      )}
    </>
  );
}

function Promote({ env, project, name, onClose }: { env: string; project: string; name: string; onClose: () => void }) {
  const { workspace, me } = useSession();
  const targets = me.workspace.environments.filter((e) => e !== env);
  const [to, setTo] = useState(targets[0] ?? '');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const [done, setDone] = useState<string>();
  return (
    <Modal title={`Promote ${name}`} onClose={onClose}>
      {done ? (
        <>
          <Alert kind="success">{done}</Alert>
          <div class="form-actions">
            <button type="button" class="btn btn-primary" onClick={onClose}>
              Done
            </button>
          </div>
        </>
      ) : (
        <form
          onSubmit={async (e) => {
            e.preventDefault();
            setBusy(true);
            try {
              const r = await call(
                api.POST('/api/v1/workspaces/{workspace}/environments/{environment}/projects/{project}/deploy', {
                  params: { path: { workspace, environment: env, project } },
                  body: { to, collections: [name] },
                }),
              );
              setDone(`Deployed to ${r.environment}: ${r.deployed.map((d) => `${d.name} v${d.version}`).join(', ')}.`);
            } catch (err) {
              setError((err as Error).message);
            } finally {
              setBusy(false);
            }
          }}
        >
          <p>
            The published version of {name} in {env} is copied to the chosen environment and published there.
          </p>
          {error && <Alert>{error}</Alert>}
          <Field label="To environment" id="promote-to">
            <select {...described('promote-to')} value={to} onChange={(e) => setTo(e.currentTarget.value)}>
              {targets.map((t) => (
                <option key={t}>{t}</option>
              ))}
            </select>
          </Field>
          <div class="form-actions">
            <button type="button" class="btn" onClick={onClose}>
              Cancel
            </button>
            <Submit busy={busy}>{busy ? 'Promoting…' : `Promote to ${to}`}</Submit>
          </div>
        </form>
      )}
    </Modal>
  );
}
