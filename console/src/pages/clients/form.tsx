/** The create-client form: role, environments, projects, IP ranges (validated inline as CIDR v4/v6), org and user ids. */
import { useState } from 'preact/hooks';
import { api, call } from '../../api/client';
import type { Ok } from '../../api/types';
import { useSession } from '../../session';
import { described, Field, Submit } from '../../ui/form';
import { useLoad } from '../../ui/load';
import { Alert } from '../../ui/states';
import { cidrProblem, splitRanges } from './cidr';

export function ClientForm({
  onCreated,
  onCancel,
}: {
  onCreated: (r: Ok<'createClient'>) => void;
  onCancel: () => void;
}) {
  const { workspace, me } = useSession();
  const roles = useLoad(
    async () =>
      (await call(api.GET('/api/v1/workspaces/{workspace}/roles', { params: { path: { workspace } } }))).items,
    [workspace],
  );
  const projects = useLoad(
    async () =>
      (await call(api.GET('/api/v1/workspaces/{workspace}/projects', { params: { path: { workspace } } }))).items,
    [workspace],
  );
  const [name, setName] = useState('');
  const [role, setRole] = useState('');
  const [envs, setEnvs] = useState<string[]>([me.workspace.devEnvironment]);
  const [projs, setProjs] = useState<string[]>(['default']);
  const [ips, setIps] = useState('');
  const [orgId, setOrgId] = useState('');
  const [userId, setUserId] = useState('');
  const [touchedIps, setTouchedIps] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const ipProblem = splitRanges(ips).map(cidrProblem).find(Boolean);
  const roleNames = roles.data?.map((r) => r.name) ?? [];
  const chosenRole = role || roleNames[0] || '';
  const toggle = (list: string[], set: (l: string[]) => void, v: string) =>
    set(list.includes(v) ? list.filter((x) => x !== v) : [...list, v]);
  return (
    <form
      noValidate
      onSubmit={async (e) => {
        e.preventDefault();
        setTouchedIps(true);
        if (ipProblem) {
          document.getElementById('client-ips')?.focus();
          return;
        }
        setBusy(true);
        setError(undefined);
        try {
          onCreated(
            await call(
              api.POST('/api/v1/workspaces/{workspace}/clients', {
                params: { path: { workspace } },
                body: {
                  name,
                  role: chosenRole,
                  environments: envs,
                  projects: projs,
                  ...(splitRanges(ips).length ? { allowedIps: splitRanges(ips) } : {}),
                  ...(orgId ? { orgId } : {}),
                  ...(userId ? { userId } : {}),
                },
              }),
            ),
          );
        } catch (err) {
          setError((err as Error).message);
          setBusy(false);
        }
      }}
    >
      {error && <Alert>{error}</Alert>}
      {roles.state === 'ready' && roleNames.length === 0 && (
        <Alert kind="info">There is no client role yet: create one under Client roles first.</Alert>
      )}
      <div class="grid-2">
        <Field label="Name" id="client-name" hint="e.g. my-app">
          <input
            {...described('client-name', undefined, true)}
            value={name}
            required
            onInput={(e) => setName(e.currentTarget.value)}
          />
        </Field>
        <Field label="Role" id="client-role" hint="Which endpoints it may call.">
          <select
            {...described('client-role', undefined, true)}
            value={chosenRole}
            onChange={(e) => setRole(e.currentTarget.value)}
          >
            {roleNames.map((r) => (
              <option key={r}>{r}</option>
            ))}
          </select>
        </Field>
      </div>
      <div class="grid-2">
        <fieldset class="field">
          <legend>Environments</legend>
          {me.workspace.environments.map((env) => (
            <label class="check" key={env}>
              <input type="checkbox" checked={envs.includes(env)} onChange={() => toggle(envs, setEnvs, env)} />
              {env}
            </label>
          ))}
        </fieldset>
        <fieldset class="field">
          <legend>Projects</legend>
          {(projects.data ?? [{ name: 'default' }]).map((p) => (
            <label class="check" key={p.name}>
              <input
                type="checkbox"
                checked={projs.includes(p.name)}
                onChange={() => toggle(projs, setProjs, p.name)}
              />
              {p.name}
            </label>
          ))}
        </fieldset>
      </div>
      <Field
        label="Allowed IP ranges"
        id="client-ips"
        hint="Optional. CIDR ranges, IPv4 or IPv6, one per line or comma-separated (e.g. 203.0.113.0/24, 2001:db8::/32). Empty allows any address."
        error={touchedIps ? ipProblem : undefined}
      >
        <textarea
          {...described('client-ips', touchedIps ? ipProblem : undefined, true)}
          rows={2}
          value={ips}
          onInput={(e) => setIps(e.currentTarget.value)}
          onBlur={() => setTouchedIps(true)}
        />
      </Field>
      <div class="grid-2">
        <Field label="Org id" id="client-org" hint="Optional: put into the token's org_id claim.">
          <input
            {...described('client-org', undefined, true)}
            value={orgId}
            onInput={(e) => setOrgId(e.currentTarget.value)}
          />
        </Field>
        <Field label="User id" id="client-user" hint="Optional: the token's user_id claim.">
          <input
            {...described('client-user', undefined, true)}
            value={userId}
            onInput={(e) => setUserId(e.currentTarget.value)}
          />
        </Field>
      </div>
      <div class="form-actions">
        <button type="button" class="btn" onClick={onCancel}>
          Cancel
        </button>
        <Submit busy={busy}>{busy ? 'Creating…' : 'Create client'}</Submit>
      </div>
    </form>
  );
}
