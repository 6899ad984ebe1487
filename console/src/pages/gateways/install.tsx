/**
 * The install step of a gateway: its one-time registration token with a live countdown to its expiry (five minutes),
 * a regenerate button, and the install commands to copy — the one for the gateway's mode and the plain CLI.
 */
import { useEffect, useState } from 'preact/hooks';
import { api, call, serverNow } from '../../api/client';
import type { Ok } from '../../api/types';
import { useSession } from '../../session';
import { CodeBlock, CopyButton } from '../../ui/form';
import { Alert } from '../../ui/states';

export type GatewayWithInstall = Ok<'createGateway'>;
export type Gateway = GatewayWithInstall['gateway'];
export type Install = GatewayWithInstall['install'];

function useNow(everyMs: number): number {
  const [now, setNow] = useState(serverNow());
  useEffect(() => {
    const t = setInterval(() => setNow(serverNow()), everyMs);
    return () => clearInterval(t);
  }, [everyMs]);
  return now;
}

export function Countdown({ expiresAt }: { expiresAt: string }) {
  const now = useNow(1000);
  const left = Math.max(0, Math.ceil((Date.parse(expiresAt) - now) / 1000));
  const text = `${Math.floor(left / 60)}:${String(left % 60).padStart(2, '0')}`;
  return (
    <span class={left === 0 ? 'countdown expired' : left < 60 ? 'countdown low' : 'countdown'} data-testid="countdown">
      {left === 0 ? 'expired' : text}
    </span>
  );
}

export function InstallStep({ gateway, install: first }: { gateway: Gateway; install: Install }) {
  const { workspace } = useSession();
  const [install, setInstall] = useState(first);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const now = useNow(1000);
  const expired = Date.parse(install.expiresAt) <= now;
  const regenerate = async () => {
    setBusy(true);
    setError(undefined);
    try {
      const r = await call(
        api.POST('/api/v1/workspaces/{workspace}/gateways/{gateway}/install-command', {
          params: { path: { workspace, gateway: gateway.id } },
        }),
      );
      setInstall(r.install);
    } catch (e) {
      setError((e as Error).message);
    } finally {
      setBusy(false);
    }
  };
  return (
    <div class="install">
      <div class="token-row">
        <div>
          <div class="small muted">Registration token (one use)</div>
          <code class="token" data-testid="registration-token">
            {install.token}
          </code>
        </div>
        <div class="token-expiry">
          <div class="small muted">Expires in</div>
          <Countdown expiresAt={install.expiresAt} />
        </div>
        <div class="token-actions">
          <CopyButton text={install.token} label="Copy token" />
          <button type="button" class="btn btn-small" onClick={regenerate} disabled={busy} aria-busy={busy}>
            {busy ? 'Regenerating…' : 'Regenerate'}
          </button>
        </div>
      </div>
      {expired && (
        <Alert kind="error">
          This registration token expired: the gateway would refuse it. Regenerate to get a new token and commands.
        </Alert>
      )}
      {error && <Alert>{error}</Alert>}
      <div class={expired ? 'commands stale' : 'commands'} aria-disabled={expired}>
        <CodeBlock
          label={gateway.installMethod === 'helm' ? 'Helm (Kubernetes): install command' : 'Docker: install command'}
          text={install.command}
        />
        <CodeBlock label="Plain CLI (a machine with the gatehouse command)" text={install.localCommand} />
      </div>
      <p class="small muted">
        The token works once, for five minutes; regenerating makes earlier unused tokens stop working. The CA pin{' '}
        <code>{install.caPin.slice(0, 19)}…</code> lets the gateway check it is talking to this control plane.
      </p>
    </div>
  );
}
