/** Sign-in with a console user's workspace, email and password (POST /api/v1/auth/login sets the HttpOnly cookie). */
import { useState } from 'preact/hooks';
import { api, problemText } from '../api/client';
import { described, Field, Submit } from '../ui/form';
import { Alert } from '../ui/states';

export function SignInPage({ notice, onSignedIn }: { notice?: string; onSignedIn: (csrf: string) => Promise<void> }) {
  const [workspace, setWorkspace] = useState('default');
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  return (
    <div class="signin">
      <form
        class="card signin-card"
        aria-labelledby="signin-title"
        onSubmit={async (e) => {
          e.preventDefault();
          setBusy(true);
          setError(undefined);
          const {
            data,
            error: problem,
            response,
          } = await api.POST('/api/v1/auth/login', {
            body: { workspace, email, password },
          });
          if (!response.ok || !data) {
            setError(problemText(problem, `sign-in failed (${response.status})`));
            setBusy(false);
            return;
          }
          await onSignedIn(data.csrfToken);
        }}
      >
        <div class="brand brand-large">
          <span class="logo" aria-hidden="true">
            ◆
          </span>
          Gatehouse
        </div>
        <h1 id="signin-title">Sign in to the console</h1>
        {notice && <Alert kind="info">{notice}</Alert>}
        {error && <Alert>{error}</Alert>}
        <Field label="Workspace" id="signin-workspace">
          <input
            {...described('signin-workspace')}
            value={workspace}
            required
            autoComplete="organization"
            onInput={(e) => setWorkspace(e.currentTarget.value)}
          />
        </Field>
        <Field label="Email" id="signin-email">
          <input
            {...described('signin-email')}
            type="email"
            value={email}
            required
            autoComplete="username"
            onInput={(e) => setEmail(e.currentTarget.value)}
          />
        </Field>
        <Field label="Password" id="signin-password">
          <input
            {...described('signin-password')}
            type="password"
            value={password}
            required
            autoComplete="current-password"
            onInput={(e) => setPassword(e.currentTarget.value)}
          />
        </Field>
        <Submit busy={busy}>{busy ? 'Signing in…' : 'Sign in'}</Submit>
        <p class="small muted">
          First start? Create a console user with the installation admin token that <code>npm start</code> printed:{' '}
          <code>bin/gatehouse user create --email you@example.com</code> (see the README’s “Console” section).
        </p>
      </form>
    </div>
  );
}
