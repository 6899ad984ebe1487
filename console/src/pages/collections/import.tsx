/**
 * Import an OpenAPI document into a collection (or create the collection from it): pick the file, see what the import
 * changes (a dry run: operations added, removed and changed, permissions, the roles affected, overlapping paths,
 * warnings), then apply it as a new draft revision. A document the import refuses lists every problem with its place
 * (JSON pointer, line and column).
 */
import { useState } from 'preact/hooks';
import { api, ApiError, call, type FieldProblem } from '../../api/client';
import type { BodyOf, Ok } from '../../api/types';
import { link } from '../../router';
import { useSession } from '../../session';
import { described, Field, Submit } from '../../ui/form';
import { useLoad } from '../../ui/load';
import { Alert, Badge, Empty, ErrorState, Loading, PageHeader } from '../../ui/states';
import { DataTable } from '../../ui/table';
import { useProjects } from './page';

type Result = Ok<'importCollectionOpenApi'>;
type Body = BodyOf<'importCollectionOpenApi'>;

export function ImportOpenApiPage({ env, name }: { env: string; name: string }) {
  const { workspace, can } = useSession();
  const path = { workspace, environment: env, collection: name };
  const existing = useLoad(async () => {
    const r = await api.GET('/api/v1/workspaces/{workspace}/environments/{environment}/collections/{collection}', {
      params: { path },
    });
    if (r.response.status === 404) return null;
    return call(Promise.resolve(r));
  }, [env, name]);
  const projects = useProjects();
  const [file, setFile] = useState<{ name: string; text: string }>();
  const [create, setCreate] = useState({ project: '', upstream: '', basePath: '' });
  const [busy, setBusy] = useState<'preview' | 'apply'>();
  const [preview, setPreview] = useState<Result>();
  const [applied, setApplied] = useState<Result>();
  const [error, setError] = useState<{ message: string; problems: FieldProblem[] }>();

  const collectionUrl = `/collections/${env}/${encodeURIComponent(name)}`;
  if (!can('admin:collections:write'))
    return <ErrorState message="Your role does not allow changing collections (admin:collections:write)." />;
  if (existing.state === 'error') return <ErrorState message={existing.error} retry={existing.reload} />;
  if (existing.data === undefined) return <Loading what="the collection" />;
  const isNew = existing.data === null;

  const body = (dryRun: boolean): Body => ({
    spec: file!.text,
    dryRun,
    ...(isNew
      ? {
          create: {
            project: create.project || projects.data?.[0] || 'default',
            upstream: create.upstream,
            ...(create.basePath ? { basePath: create.basePath } : {}),
          },
        }
      : {}),
  });
  const run = async (dryRun: boolean) => {
    setBusy(dryRun ? 'preview' : 'apply');
    setError(undefined);
    try {
      const r = await call(
        api.POST('/api/v1/workspaces/{workspace}/environments/{environment}/collections/{collection}/openapi', {
          params: { path },
          body: body(dryRun),
        }),
      );
      if (dryRun) setPreview(r);
      else {
        setApplied(r);
        setPreview(undefined);
        existing.reload();
      }
    } catch (e) {
      setPreview(undefined);
      setError({ message: (e as Error).message, problems: e instanceof ApiError ? e.errors : [] });
    } finally {
      setBusy(undefined);
    }
  };

  return (
    <>
      <nav class="crumbs" aria-label="Breadcrumb">
        <a {...link('/collections')}>Collections</a> / {env} / {isNew ? name : <a {...link(collectionUrl)}>{name}</a>} /
        Import OpenAPI
      </nav>
      <PageHeader
        title={`Import OpenAPI into ${name}`}
        description={
          isNew
            ? `Collection ${name} does not exist in ${env} yet: the import creates it as a draft from the document.`
            : "The document's operations become the collection's endpoints in a new draft revision; the published version keeps being served until you publish."
        }
      />
      {applied && (
        <Alert kind="success">
          {applied.applied
            ? `Imported: ${applied.created ? 'collection created' : 'the draft changed'} (revision ${applied.revision}). Publish it to make the gateways serve it.`
            : 'Nothing to import: the draft already matches the document.'}{' '}
          <a {...link(collectionUrl)}>Open {name}</a>
        </Alert>
      )}
      <form
        class="stack"
        onSubmit={(e) => {
          e.preventDefault();
          void run(true);
        }}
      >
        <Field
          label="OpenAPI document"
          id="import-file"
          hint="Swagger 2.0, OpenAPI 3.0 or 3.1, as JSON or YAML. Nothing changes until you apply."
        >
          <input
            {...described('import-file', undefined, true)}
            type="file"
            accept=".json,.yaml,.yml,application/json,application/yaml"
            required
            onChange={async (e) => {
              const f = e.currentTarget.files?.[0];
              setPreview(undefined);
              setApplied(undefined);
              setError(undefined);
              setFile(f ? { name: f.name, text: await f.text() } : undefined);
            }}
          />
        </Field>
        {isNew && (
          <div class="grid-2">
            <Field label="Project" id="import-project">
              <select
                {...described('import-project')}
                value={create.project || projects.data?.[0]}
                onChange={(e) => setCreate({ ...create, project: e.currentTarget.value })}
              >
                {(projects.data ?? []).map((p) => (
                  <option key={p}>{p}</option>
                ))}
              </select>
            </Field>
            <Field label="Upstream URL" id="import-upstream" hint="Where the gateway forwards requests.">
              <input
                {...described('import-upstream', undefined, true)}
                type="url"
                required
                placeholder="https://billing.internal:8443"
                value={create.upstream}
                onInput={(e) => setCreate({ ...create, upstream: e.currentTarget.value })}
              />
            </Field>
            <Field
              label="Base path (optional)"
              id="import-base"
              hint={`Default: the path of the document's servers, else /${name}.`}
            >
              <input
                {...described('import-base', undefined, true)}
                value={create.basePath}
                placeholder={`/${name}`}
                onInput={(e) => setCreate({ ...create, basePath: e.currentTarget.value })}
              />
            </Field>
          </div>
        )}
        <div class="form-actions">
          <Submit busy={busy === 'preview'}>{busy === 'preview' ? 'Comparing…' : 'Preview changes'}</Submit>
        </div>
      </form>
      {error && (
        <section aria-labelledby="import-errors">
          <Alert>
            {error.problems.length > 0
              ? `The document has ${error.problems.length} problem${error.problems.length === 1 ? '' : 's'}; nothing was changed. Each is listed below with where it is in the document.`
              : error.message}
          </Alert>
          {error.problems.length > 0 && (
            <>
              <h2 id="import-errors">Problems ({error.problems.length})</h2>
              <DataTable
                label="Problems in the document"
                rows={error.problems}
                empty={<Empty title="No problems listed" />}
                rowKey={(p) => `${p.pointer ?? p.path}:${p.line ?? ''}:${p.message}`}
                columns={[
                  {
                    key: 'where',
                    label: 'Where',
                    value: (p) => p.pointer ?? p.path,
                    render: (p) => <Where pointer={p.pointer} path={p.path} />,
                  },
                  {
                    key: 'line',
                    label: 'Line:column',
                    value: (p) => p.line ?? 0,
                    render: (p) => (p.line !== undefined ? `${p.line}:${p.column ?? 1}` : ''),
                  },
                  { key: 'message', label: 'Problem', value: (p) => p.message },
                ]}
              />
            </>
          )}
        </section>
      )}
      {preview && file && (
        <Preview
          result={preview}
          file={file.name}
          busy={busy === 'apply'}
          onApply={() => void run(false)}
          onCancel={() => setPreview(undefined)}
        />
      )}
    </>
  );
}

function Preview({
  result,
  file,
  busy,
  onApply,
  onCancel,
}: {
  result: Result;
  file: string;
  busy: boolean;
  onApply: () => void;
  onCancel: () => void;
}) {
  const { diff } = result;
  const ops = [
    ...diff.operations.added.map((o) => ({ ...o, change: 'added' as const, fields: [] as string[] })),
    ...diff.operations.removed.map((o) => ({ ...o, change: 'removed' as const, fields: [] as string[] })),
    ...diff.operations.changed.map((o) => ({ ...o, change: 'changed' as const })),
  ];
  return (
    <section aria-labelledby="import-preview" class="stack">
      <h2 id="import-preview">
        Changes from {file} <span class="muted small">(OpenAPI {result.version})</span>
      </h2>
      <p>
        <Badge tone="good">{diff.operations.added.length} added</Badge>{' '}
        <Badge tone="warn">{diff.operations.removed.length} removed</Badge>{' '}
        <Badge tone="info">{diff.operations.changed.length} changed</Badge>
        {result.serverBasePath !== undefined && (
          <span class="muted small">
            {' '}
            · servers path <code>{result.serverBasePath}</code>
          </span>
        )}
      </p>
      {diff.empty ? (
        <Empty title="No changes">The collection's endpoints already match this document.</Empty>
      ) : (
        <DataTable
          label="Operations"
          rows={ops}
          empty={<Empty title="No operations" />}
          rowKey={(o) => `${o.change} ${o.method} ${o.path}`}
          columns={[
            {
              key: 'change',
              label: 'Change',
              value: (o) => o.change,
              render: (o) => (
                <Badge tone={o.change === 'added' ? 'good' : o.change === 'removed' ? 'warn' : 'info'}>
                  {o.change}
                </Badge>
              ),
            },
            { key: 'method', label: 'Method', value: (o) => o.method, render: (o) => <code>{o.method}</code> },
            { key: 'path', label: 'Path', value: (o) => o.path, render: (o) => <code>{o.path}</code> },
            {
              key: 'permission',
              label: 'Permission',
              value: (o) => o.permission,
              render: (o) => <code>{o.permission}</code>,
            },
            { key: 'fields', label: 'What changed', value: (o) => o.fields.join(', ') },
          ]}
        />
      )}
      {(diff.permissions.added.length > 0 || diff.permissions.removed.length > 0) && (
        <>
          <h3>Permissions</h3>
          <ul class="plain-list">
            {diff.permissions.added.map((p) => (
              <li key={`+${p}`}>
                <Badge tone="good">new</Badge> <code>{p}</code>
              </li>
            ))}
            {diff.permissions.removed.map((p) => (
              <li key={`-${p}`}>
                <Badge tone="warn">no longer used</Badge> <code>{p}</code>
              </li>
            ))}
          </ul>
        </>
      )}
      {diff.roles.length > 0 && (
        <>
          <h3>Roles affected</h3>
          <p class="muted small">
            These roles grant permissions or endpoints the import removes: they grant them nowhere after it.
          </p>
          <ul class="plain-list">
            {diff.roles.map((r) => (
              <li key={r.role}>
                <strong>{r.role}</strong>:{' '}
                {[...r.permissions.map((p) => p), ...r.endpoints.map((e) => `${e.method} ${e.path}`)].join(', ')}
              </li>
            ))}
          </ul>
        </>
      )}
      {result.overlaps.length > 0 && (
        <>
          <h3>Overlapping paths</h3>
          <ul class="plain-list">
            {result.overlaps.map((o) => (
              <li key={`${o.method} ${o.wins} ${o.other}`}>
                <code>
                  {o.method} {o.wins}
                </code>{' '}
                wins over{' '}
                <code>
                  {o.method} {o.other}
                </code>{' '}
                where both match
              </li>
            ))}
          </ul>
        </>
      )}
      {result.warnings.length > 0 && (
        <>
          <h3>Warnings</h3>
          <ul class="plain-list">
            {result.warnings.map((w) => (
              <li key={`${w.pointer}:${w.message}`}>
                <Where pointer={w.pointer} />
                {w.line !== undefined && (
                  <span class="muted small">
                    {' '}
                    line {w.line}
                    {w.column !== undefined && `:${w.column}`}
                  </span>
                )}
                : {w.message}
              </li>
            ))}
          </ul>
        </>
      )}
      <div class="form-actions">
        <button type="button" class="btn" onClick={onCancel} disabled={busy}>
          Cancel
        </button>
        <button type="button" class="btn btn-primary" disabled={busy || diff.empty} aria-busy={busy} onClick={onApply}>
          {busy && <span class="spinner spinner-inline" aria-hidden="true" />}
          {busy ? 'Applying…' : 'Apply as a new draft'}
        </button>
      </div>
    </section>
  );
}

/**
 * A JSON pointer into the uploaded document, readable: `/paths/~1a~1{id}/get` shows as `paths › /a/{id} › get` (RFC
 * 6901 unescaping: `~1` is `/`, `~0` is `~`), the raw pointer kept as the tooltip. Errors not in the document (a
 * request field such as `basePath`) show their path as is.
 */
export function readablePointer(pointer: string): string {
  if (pointer === '' || pointer === '/') return '(document root)';
  return pointer
    .replace(/^\//, '')
    .split('/')
    .map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'))
    .join(' › ');
}

function Where({ pointer, path }: { pointer?: string; path?: string }) {
  if (pointer === undefined) return <code>{path || '(document root)'}</code>;
  return <code title={`JSON pointer ${pointer || '(root)'}`}>{readablePointer(pointer)}</code>;
}
