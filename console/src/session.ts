/** The signed-in user as GET /api/v1/me describes it, and what its permissions allow the console to show. */
import { createContext } from 'preact';
import { useContext } from 'preact/hooks';
import type { paths } from './api/schema';

export type Me = paths['/api/v1/me']['get']['responses']['200']['content']['application/json'];

export interface Session {
  me: Me;
  /** `default`: the workspace every call is made in. */
  workspace: string;
  /** Whether the user's role grants `permission` (the same patterns as the server: exact, `prefix:*`, `*`). */
  can(permission: string): boolean;
  signOut(): Promise<void>;
}

export function grants(granted: readonly string[], permission: string): boolean {
  return granted.some(
    (g) => g === '*' || g === permission || (g.endsWith(':*') && permission.startsWith(g.slice(0, -1))),
  );
}

export const SessionContext = createContext<Session | undefined>(undefined);

export function useSession(): Session {
  const s = useContext(SessionContext);
  if (!s) throw new Error('useSession outside a signed-in console');
  return s;
}
