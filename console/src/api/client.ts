/**
 * The admin API client: openapi-fetch typed by schema.d.ts (generated from the admin API's OpenAPI document, so a
 * change the console does not follow fails the typecheck). Requests go to the same origin with the HttpOnly session
 * cookie; the CSRF token lives in this module's memory only (never in localStorage or sessionStorage) and is sent
 * on every state-changing request. A 401 on any call but sign-in tells the app that the session has ended.
 */
import createClient, { type Middleware } from 'openapi-fetch';
import type { paths } from './schema';

let csrfToken: string | undefined;
let serverClockOffsetMs = 0;

/**
 * The control plane's clock as this page sees it: the local clock corrected by the offset measured from the last
 * response's Date header, so that a countdown to a server-side expiry (a registration token's five minutes) is right
 * even when this machine's clock is off.
 */
export function serverNow(): number {
  return Date.now() + serverClockOffsetMs;
}
const sessionEndedListeners = new Set<(reason: string) => void>();

export function setCsrfToken(token: string | undefined): void {
  csrfToken = token;
}

/** Called with the server's reason when a request is refused because the session is gone (expired, signed out). */
export function onSessionEnded(listener: (reason: string) => void): () => void {
  sessionEndedListeners.add(listener);
  return () => sessionEndedListeners.delete(listener);
}

const session: Middleware = {
  onRequest({ request }) {
    if (request.method === 'GET' || request.method === 'HEAD') return request;
    if (csrfToken) request.headers.set('X-CSRF-Token', csrfToken);
    // The admin API reads every POST as JSON: an operation without a body gets an empty object.
    if (request.method === 'POST' && !request.headers.has('content-type')) {
      request.headers.set('content-type', 'application/json');
      return new Request(request, { body: '{}' });
    }
    // A session's state-changing requests must say JSON even without a body (DELETE): the server's CSRF check.
    if (!request.headers.has('content-type')) request.headers.set('content-type', 'application/json');
    return request;
  },
  async onResponse({ request, response }) {
    const date = Date.parse(response.headers.get('date') ?? '');
    // The Date header has whole seconds: ignore offsets below that resolution.
    if (!Number.isNaN(date)) {
      const offset = date - Date.now();
      serverClockOffsetMs = Math.abs(offset) > 2000 ? offset : 0;
    }
    if (response.status === 401 && !new URL(request.url).pathname.startsWith('/api/v1/auth/')) {
      const problem = (await response
        .clone()
        .json()
        .catch(() => ({}))) as { detail?: string };
      for (const l of sessionEndedListeners) l(problem.detail ?? 'your session has ended');
    }
    return response;
  },
};

export const api = createClient<paths>({ baseUrl: location.origin, credentials: 'same-origin' });
api.use(session);

/** A problem+json refusal as one sentence: the server's detail (what, where, what to do), else its title. */
export function problemText(error: unknown, fallback = 'the request failed'): string {
  if (error && typeof error === 'object') {
    const p = error as { detail?: unknown; title?: unknown; errors?: { path: string; message: string }[] };
    if (typeof p.detail === 'string') return p.detail;
    if (typeof p.title === 'string') return p.title;
  }
  if (error instanceof Error) return error.message;
  return fallback;
}

/** The problem's error code (`GH_ERR_…`), when it has one. */
export function problemCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** Unwraps an openapi-fetch result: the data, or throws an Error carrying the problem's text and code. */
export async function call<T>(
  promise: Promise<{ data?: T; error?: unknown; response: Response }>,
): Promise<NonNullable<T>> {
  const { data, error, response } = await promise;
  if (error !== undefined || !response.ok) throw new ApiError(problemText(error), problemCode(error), response.status);
  return data as NonNullable<T>;
}

export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    message: string,
    readonly code: string | undefined,
    readonly status: number,
  ) {
    super(message);
  }
}

/**
 * Query parameters an operation reads but its OpenAPI entry does not declare yet (`?since=`, `?limit=`,
 * `?cursor=`…): passed through untyped, in this one place.
 */
export function undocumentedQuery(query: Record<string, string | undefined>): never {
  return Object.fromEntries(Object.entries(query).filter(([, v]) => v !== undefined && v !== '')) as never;
}
