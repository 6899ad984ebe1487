/** The collection form (create and edit): base path, upstream, project, deployment target and the endpoints table. */
import { useState } from 'preact/hooks';
import type { BodyOf, Ok } from '../../api/types';
import { described, Field } from '../../ui/form';
import { FormActions, SelectField, TextField, useSubmit } from '../../ui/fields';
import { Alert } from '../../ui/states';

export type Collection = Ok<'getCollection'>;
export type CollectionInput = BodyOf<'createCollection'>;
type Endpoint = CollectionInput['endpoints'][number];
const METHODS: Endpoint['method'][] = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];

/** The input fields of a collection as the API returns it (what a replace sends back unchanged). */
export function inputOf(c: Collection): CollectionInput {
  const {
    id: _i,
    environment: _e,
    revision: _r,
    publishedVersion: _p,
    unpublishedChanges: _u,
    createdAt: _c,
    updatedAt: _up,
    ...input
  } = c;
  return input;
}

export function CollectionForm({
  initial,
  projects,
  gateways,
  submitLabel,
  onSubmit,
  onCancel,
}: {
  initial?: Collection;
  projects: string[];
  /** Edge gateways of this environment, for the deployment target. */
  gateways: string[];
  submitLabel: string;
  onSubmit: (input: CollectionInput) => Promise<void>;
  onCancel: () => void;
}) {
  const [name, setName] = useState(initial?.name ?? '');
  const [basePath, setBasePath] = useState(initial?.basePath ?? '/');
  const [upstream, setUpstream] = useState(initial?.upstream.url ?? 'http://127.0.0.1:9000');
  const [project, setProject] = useState(initial?.project ?? projects[0] ?? 'default');
  const [target, setTarget] = useState(initial?.target?.type === 'edge' ? initial.target.gateway : 'cloud');
  const [endpoints, setEndpoints] = useState<Endpoint[]>(
    initial?.endpoints.map((e) => ({ method: e.method, path: e.path, permission: e.permission })) ?? [
      { method: 'GET', path: '/', permission: '' },
    ],
  );
  const { busy, error, submit } = useSubmit(async () => {
    await onSubmit({
      ...(initial ? inputOf(initial) : {}),
      name,
      basePath,
      upstream: { ...initial?.upstream, url: upstream },
      project,
      endpoints,
      target: target === 'cloud' ? { type: 'cloud' } : { type: 'edge', gateway: target },
    });
  });
  const setEndpoint = (i: number, patch: Partial<Endpoint>) =>
    setEndpoints(endpoints.map((e, j) => (j === i ? { ...e, ...patch } : e)));
  return (
    <form onSubmit={submit}>
      {error && <Alert>{error}</Alert>}
      <div class="grid-2">
        <TextField
          label="Name"
          id="col-name"
          hint="e.g. billing"
          required
          disabled={!!initial}
          value={name}
          onValue={setName}
        />
        <TextField
          label="Base path"
          id="col-base"
          hint="Requests under this path go to this collection."
          required
          value={basePath}
          onValue={setBasePath}
        />
        <TextField
          label="Upstream URL"
          id="col-upstream"
          hint="Where the gateway forwards allowed requests."
          type="url"
          required
          value={upstream}
          onValue={setUpstream}
        />
        <SelectField label="Project" id="col-project" value={project} onValue={setProject} options={projects} />
        <Field label="Deployment target" id="col-target" hint="The cloud gateway, or this environment's edge gateway.">
          <select
            {...described('col-target', undefined, true)}
            value={target}
            onChange={(e) => setTarget(e.currentTarget.value)}
          >
            <option value="cloud">Cloud gateway</option>
            {gateways.map((g) => (
              <option key={g} value={g}>
                Edge gateway {g}
              </option>
            ))}
          </select>
        </Field>
      </div>
      <fieldset class="endpoints">
        <legend>Endpoints</legend>
        <table class="compact">
          <thead>
            <tr>
              <th scope="col">Method</th>
              <th scope="col">Path</th>
              <th scope="col">Permission</th>
              <th scope="col">
                <span class="sr-only">Remove</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {endpoints.map((ep, i) => (
              <tr key={i}>
                <td>
                  <select
                    aria-label={`Endpoint ${i + 1} method`}
                    value={ep.method}
                    onChange={(e) => setEndpoint(i, { method: e.currentTarget.value as Endpoint['method'] })}
                  >
                    {METHODS.map((m) => (
                      <option key={m}>{m}</option>
                    ))}
                  </select>
                </td>
                <td>
                  <input
                    aria-label={`Endpoint ${i + 1} path`}
                    value={ep.path}
                    required
                    placeholder="/orgs/{org}/invoices"
                    onInput={(e) => setEndpoint(i, { path: e.currentTarget.value })}
                  />
                </td>
                <td>
                  <input
                    aria-label={`Endpoint ${i + 1} permission`}
                    value={ep.permission}
                    required
                    placeholder="invoices:read"
                    onInput={(e) => setEndpoint(i, { permission: e.currentTarget.value })}
                  />
                </td>
                <td>
                  <button
                    type="button"
                    class="btn btn-ghost btn-small"
                    disabled={endpoints.length === 1}
                    aria-label={`Remove endpoint ${i + 1}`}
                    onClick={() => setEndpoints(endpoints.filter((_, j) => j !== i))}
                  >
                    Remove
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
        <button
          type="button"
          class="btn btn-small"
          onClick={() => setEndpoints([...endpoints, { method: 'GET', path: '', permission: '' }])}
        >
          Add endpoint
        </button>
      </fieldset>
      <FormActions busy={busy} onCancel={onCancel}>
        {busy ? 'Saving…' : submitLabel}
      </FormActions>
    </form>
  );
}
