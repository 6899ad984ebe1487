/**
 * The console shell: checks the session (GET /api/v1/me), shows sign-in or the signed-in layout (sidebar and page),
 * and sends the user back to sign-in, saying why, when a request finds the session ended.
 */
import type { ComponentChildren } from 'preact';
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { api, onSessionEnded, setCsrfToken } from './api/client';
import { AlertsPage } from './pages/alerts/page';
import { AnalyticsPage } from './pages/analytics/page';
import { AuditPage } from './pages/audit/page';
import { ClientsPage } from './pages/clients/page';
import { CollectionDetailPage } from './pages/collections/detail';
import { ImportOpenApiPage } from './pages/collections/import';
import { CollectionsPage } from './pages/collections/page';
import { GatewayDetailPage } from './pages/gateways/detail';
import { GatewaysPage } from './pages/gateways/page';
import { RolesPage } from './pages/roles/page';
import { SettingsPage } from './pages/settings/page';
import { SignInPage } from './pages/sign-in';
import { link, match, navigate, usePath } from './router';
import { grants, SessionContext, type Me, type Session } from './session';
import { Loading } from './ui/states';

interface NavItem {
  path: string;
  label: string;
  /** Shown only when the user's role grants this permission. */
  permission: string;
}

export const NAV: NavItem[] = [
  { path: '/gateways', label: 'Gateways', permission: 'admin:gateways:read' },
  { path: '/collections', label: 'Collections', permission: 'admin:collections:read' },
  { path: '/roles', label: 'Client roles', permission: 'admin:roles:read' },
  { path: '/clients', label: 'API clients', permission: 'admin:clients:read' },
  { path: '/analytics', label: 'Analytics', permission: 'admin:telemetry:read' },
  { path: '/alerts', label: 'Alerts', permission: 'admin:telemetry:read' },
  { path: '/audit', label: 'Audit log', permission: 'admin:audit:read' },
  { path: '/settings', label: 'Settings', permission: 'admin:workspaces:read' },
];

export function App() {
  const [me, setMe] = useState<Me | null>();
  const [notice, setNotice] = useState<string>();
  // Only a session that was signed in can end: a first visit's 401 from /me is not "signed out".
  const signedIn = useRef(false);
  signedIn.current = !!me;

  const refresh = async () => {
    const { data, response } = await api.GET('/api/v1/me');
    if (response.ok && data) {
      setCsrfToken(data.csrfToken);
      setMe(data);
    } else {
      setCsrfToken(undefined);
      setMe(null);
    }
  };

  useEffect(() => {
    refresh().catch(() => setMe(null));
    return onSessionEnded((reason) => {
      if (!signedIn.current) return;
      setCsrfToken(undefined);
      setMe(null);
      setNotice(`You were signed out: ${reason}`);
    });
  }, []);

  if (me === undefined) return <Loading what="the console" />;
  if (me === null)
    return (
      <SignInPage
        notice={notice}
        onSignedIn={async (csrf) => {
          setCsrfToken(csrf);
          setNotice(undefined);
          await refresh();
        }}
      />
    );
  return <SignedIn me={me} onSignedOut={() => setMe(null)} />;
}

function SignedIn({ me, onSignedOut }: { me: Me; onSignedOut: () => void }) {
  const path = usePath();
  const [menuOpen, setMenuOpen] = useState(false);
  const session = useMemo<Session>(
    () => ({
      me,
      workspace: me.workspace.name,
      can: (p) => grants(me.permissions, p),
      async signOut() {
        await api.POST('/api/v1/auth/logout');
        setCsrfToken(undefined);
        onSignedOut();
      },
    }),
    [me],
  );
  const nav = NAV.filter((n) => session.can(n.permission));
  useEffect(() => {
    if (path === '/' || path === '') navigate(nav[0]?.path ?? '/settings', { replace: true });
    setMenuOpen(false);
  }, [path]);
  const who = me.user?.email;
  return (
    <SessionContext.Provider value={session}>
      <div class="shell">
        <a class="skip" href="#main">
          Skip to content
        </a>
        <aside class={menuOpen ? 'sidebar open' : 'sidebar'}>
          <div class="brand">
            <span class="logo" aria-hidden="true">
              ◆
            </span>
            <span>Gatehouse</span>
            <button
              type="button"
              class="btn btn-ghost menu-toggle"
              aria-expanded={menuOpen}
              aria-controls="nav"
              onClick={() => setMenuOpen(!menuOpen)}
            >
              Menu
            </button>
          </div>
          <nav id="nav" aria-label="Console">
            <ul>
              {nav.map((n) => (
                <li key={n.path}>
                  <a {...link(n.path)} aria-current={path.startsWith(n.path) ? 'page' : undefined}>
                    {n.label}
                  </a>
                </li>
              ))}
            </ul>
          </nav>
          <div class="sidebar-foot">
            <div class="small muted">Workspace</div>
            <div class="ws">{me.workspace.name}</div>
            {who && <div class="small muted who">{who}</div>}
            <button type="button" class="btn btn-small" onClick={() => session.signOut()}>
              Sign out
            </button>
          </div>
        </aside>
        <main id="main" tabIndex={-1}>
          <Route path={path} />
        </main>
      </div>
    </SessionContext.Provider>
  );
}

function Route({ path }: { path: string }): ComponentChildren {
  let p: Record<string, string> | undefined;
  if (match('/gateways', path)) return <GatewaysPage />;
  if ((p = match('/gateways/:id', path))) return <GatewayDetailPage id={p.id!} />;
  if (match('/collections', path)) return <CollectionsPage />;
  if ((p = match('/collections/:env/:name', path))) return <CollectionDetailPage env={p.env!} name={p.name!} />;
  if ((p = match('/collections/:env/:name/import', path))) return <ImportOpenApiPage env={p.env!} name={p.name!} />;
  if (match('/roles', path)) return <RolesPage />;
  if (match('/clients', path)) return <ClientsPage />;
  if (match('/analytics', path)) return <AnalyticsPage />;
  if (match('/alerts', path)) return <AlertsPage />;
  if (match('/audit', path)) return <AuditPage />;
  if (match('/settings', path)) return <SettingsPage />;
  if (path === '/' || path === '') return <Loading what="the console" />;
  return (
    <div class="state">
      <strong>No page at {path}.</strong> <a {...link('/gateways')}>Go to gateways</a>
    </div>
  );
}
